//! Key algorithms the CA supports, and what each means for PKCS#11 (key generation templates,
//! the signing mechanism) and for X.509 (the signature algorithm, the signature encoding).

use serde::{Deserialize, Serialize};
use sha2::Digest;

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_256_WITH_RSA_ENCRYPTION};
use der::asn1::Uint;
use spki::AlgorithmIdentifierOwned;

use crate::asn1;

/// The algorithm of a CA key. ECDSA P-256 is the default: it is what the HSM signs fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256.
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// RSA 3072-bit with PKCS#1 v1.5 and SHA-256.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

/// DER of the named-curve OIDs, as CKA_EC_PARAMS wants them.
const P256_OID_DER: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID_DER: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1), prepended before CKM_RSA_PKCS.
const SHA256_DIGEST_INFO: &[u8] =
    &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

impl KeyAlgorithm {
    /// The config and database spelling.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
        }
    }

    /// Parses the config and database spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::EcdsaP256, Self::EcdsaP384, Self::Rsa3072].into_iter().find(|a| a.name() == name)
    }

    /// CKA_EC_PARAMS for EC keys.
    pub(crate) fn ec_params(self) -> Option<&'static [u8]> {
        match self {
            KeyAlgorithm::EcdsaP256 => Some(P256_OID_DER),
            KeyAlgorithm::EcdsaP384 => Some(P384_OID_DER),
            KeyAlgorithm::Rsa3072 => None,
        }
    }

    /// The rcgen signature algorithm this key signs certificates with.
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa3072 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// The ring verification algorithm matching [`Self::signature_algorithm`], used to prove at
    /// start-up that each HSM key matches its certificate.
    pub fn ring_verification(self) -> &'static dyn ring::signature::VerificationAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
            KeyAlgorithm::Rsa3072 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }

    /// The DER AlgorithmIdentifier of the signature, for structures we encode ourselves (CRLs,
    /// OCSP responses): ECDSA without parameters (RFC 5758 §3.2), RSA with NULL (RFC 4055 §5).
    pub fn signature_algorithm_der(self) -> Vec<u8> {
        let (oid, parameters) = match self {
            KeyAlgorithm::EcdsaP256 => (ECDSA_WITH_SHA_256, None),
            KeyAlgorithm::EcdsaP384 => (ECDSA_WITH_SHA_384, None),
            KeyAlgorithm::Rsa3072 => (SHA_256_WITH_RSA_ENCRYPTION, Some(der::asn1::Any::null())),
        };
        asn1::encode(&AlgorithmIdentifierOwned { oid, parameters })
    }

    /// What the token is asked to sign: SoftHSM2 has only raw CKM_ECDSA, so we hash here;
    /// for RSA we send the DigestInfo so the token never sees the whole message.
    pub(crate) fn token_input(self, message: &[u8]) -> Vec<u8> {
        match self {
            KeyAlgorithm::EcdsaP256 => sha2::Sha256::digest(message).to_vec(),
            KeyAlgorithm::EcdsaP384 => sha2::Sha384::digest(message).to_vec(),
            KeyAlgorithm::Rsa3072 => [SHA256_DIGEST_INFO, sha2::Sha256::digest(message).as_slice()].concat(),
        }
    }

    /// The PKCS#11 mechanism that signs [`Self::token_input`].
    pub(crate) fn mechanism(self) -> cryptoki::mechanism::Mechanism<'static> {
        match self {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => cryptoki::mechanism::Mechanism::Ecdsa,
            KeyAlgorithm::Rsa3072 => cryptoki::mechanism::Mechanism::RsaPkcs,
        }
    }

    /// Turns the token's raw output into the X.509 signature value: ECDSA tokens return r||s,
    /// X.509 wants `SEQUENCE { INTEGER r, INTEGER s }`; RSA signatures pass through.
    pub(crate) fn x509_signature(self, raw: Vec<u8>) -> Result<Vec<u8>, super::HsmError> {
        if self == KeyAlgorithm::Rsa3072 {
            return Ok(raw);
        }
        if raw.is_empty() || !raw.len().is_multiple_of(2) {
            return Err(super::HsmError::BadData(format!("ECDSA signature of {} bytes", raw.len())));
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        let bad = |e: der::Error| super::HsmError::BadData(format!("ECDSA signature value: {e}"));
        let value = EcdsaSigValue { r: Uint::new(r).map_err(bad)?, s: Uint::new(s).map_err(bad)? };
        Ok(asn1::encode(&value))
    }
}

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 5480 §2.2 / RFC 3279).
#[derive(der::Sequence)]
struct EcdsaSigValue {
    r: Uint,
    s: Uint,
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der_sequences() {
        let mut raw = vec![0x80; 32];
        raw.extend(vec![0x01; 32]);
        let der = KeyAlgorithm::EcdsaP256.x509_signature(raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert!(KeyAlgorithm::EcdsaP256.x509_signature(vec![1, 2, 3]).is_err());
        // Leading zeros of r and s are stripped: the INTEGERs are minimal.
        let mut raw = vec![0x00; 31];
        raw.push(0x05);
        raw.extend(vec![0x01; 32]);
        let der = KeyAlgorithm::EcdsaP256.x509_signature(raw).unwrap();
        assert_eq!(&der[2..5], &[0x02, 1, 0x05]);
    }

    #[test]
    fn signature_algorithm_identifiers() {
        assert_eq!(KeyAlgorithm::EcdsaP256.signature_algorithm_der(), hex::decode("300a06082a8648ce3d040302").unwrap());
        assert_eq!(KeyAlgorithm::EcdsaP384.signature_algorithm_der(), hex::decode("300a06082a8648ce3d040303").unwrap());
        assert_eq!(
            KeyAlgorithm::Rsa3072.signature_algorithm_der(),
            hex::decode("300d06092a864886f70d01010b0500").unwrap()
        );
    }

    #[test]
    fn names_round_trip() {
        for a in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384, KeyAlgorithm::Rsa3072] {
            assert_eq!(KeyAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(KeyAlgorithm::from_name("dsa"), None);
    }
}
