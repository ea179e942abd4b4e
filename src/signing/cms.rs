//! Detached CMS SignedData (RFC 5652) over a document hash, for a signer whose private key stays
//! in the HSM, built from the `cms` crate's types (`SignedData`, `SignerInfo`, ...) and encoded
//! with `der`.
//!
//! The HSM never sees the document and this module never sees a key, so building a signature is
//! two steps with the HSM call in between (build, sign, assemble):
//!
//! 1. [`signed_attributes`] (or [`signed_attributes_pades`], without signingTime) returns the
//!    DER `SET OF Attribute` (contentType, signingTime, messageDigest, signingCertificateV2).
//!    Those exact bytes are the *message* the HSM signs (it hashes them itself with SHA-256).
//! 2. [`signed_data`] wraps the attributes, the signature and the certificates into a
//!    `ContentInfo` carrying a detached `SignedData` (no eContent), ready to write as `.p7s`.
//!
//! The `cms` crate's own builder (`SignerInfoBuilder`, feature `builder`) is not used: it signs
//! through the synchronous `signature` traits and pulls in its RSA, AES and elliptic-curve
//! stacks; the two functions here are the same finalize/assemble split around an async HSM call.
//!
//! Step 2 decodes everything it is given (strict DER) and checks the signature against the signer
//! certificate's public key before emitting anything: a CMS file whose signature does not verify
//! (wrong key label, raw `r||s` instead of DER, attributes built for another certificate) is
//! refused here instead of being discovered by a relying party.
//!
//! Encoding notes that verifiers are strict about:
//! * The attributes are a DER `SET OF` (`SetOfVec` sorts them). OpenSSL re-encodes the parsed
//!   attributes before checking the signature, so unsorted attributes would fail to verify.
//! * `ESSCertIDv2.hashAlgorithm` is omitted because SHA-256 is its DEFAULT (DER forbids encoding a
//!   default), and `issuerSerial` repeats the signer certificate's issuer Name and serial; the
//!   certificate is checked to be DER, so the re-encoded Name and serial are byte for byte the
//!   certificate's. `openssl cms -verify -cades` (and CAdES/PAdES validators) reject the
//!   signature when the certHash or issuerSerial does not match the signer certificate.
//! * SHA-2 `AlgorithmIdentifier`s are written without parameters (RFC 5754 §2), ECDSA signature
//!   algorithms without parameters (RFC 5758), `sha256WithRSAEncryption` with NULL (RFC 4055).
//! * The digest algorithm and the hash under the signature agree (RFC 5753 §2.1.1, RFC 5754):
//!   SHA-256 for both supported algorithms. There is no P-384 variant: it would need a SHA-384
//!   document digest, and the signing API takes SHA-256 document hashes.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE_V_2, ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME,
};
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ID_EC_PUBLIC_KEY, ID_SHA_256, RSA_ENCRYPTION, SECP_256_R_1, SHA_256_WITH_RSA_ENCRYPTION,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::asn1;

/// Signature algorithm of the signer key. It decides the `signatureAlgorithm` of the SignerInfo;
/// the document digest (`digestAlgorithm`, `messageDigest`) and the hash the signer applies to
/// the signed attributes are SHA-256 in every case, as RFC 5753/5754 pair them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmsAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaPkcs1Sha256,
}

impl CmsAlgorithm {
    /// The SignerInfo `signatureAlgorithm`: ECDSA without parameters (RFC 5758 §3.2), RSA with
    /// an explicit NULL (RFC 4055 §5).
    fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA_256, parameters: None },
            CmsAlgorithm::RsaPkcs1Sha256 => {
                AlgorithmIdentifierOwned { oid: SHA_256_WITH_RSA_ENCRYPTION, parameters: Some(der::asn1::Any::null()) }
            }
        }
    }

    /// The DER of [`Self::signature_algorithm`].
    pub fn signature_algorithm_der(self) -> Vec<u8> {
        asn1::encode(&self.signature_algorithm())
    }

    /// The ring algorithm that checks a signature made by this kind of key over the attributes.
    fn ring_verification(self) -> &'static dyn ring::signature::VerificationAlgorithm {
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            CmsAlgorithm::RsaPkcs1Sha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }

    /// Whether a SubjectPublicKeyInfo algorithm is a key this algorithm can have signed with.
    fn fits_key(self, key: &AlgorithmIdentifierOwned) -> bool {
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => {
                key.oid == ID_EC_PUBLIC_KEY
                    && key.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                        == Some(SECP_256_R_1)
            }
            CmsAlgorithm::RsaPkcs1Sha256 => key.oid == RSA_ENCRYPTION,
        }
    }
}

impl TryFrom<crate::hsm::KeyAlgorithm> for CmsAlgorithm {
    type Error = CmsError;

    /// The CMS algorithm of a CA/HSM key, so callers can pass the same algorithm they give
    /// [`crate::hsm::HsmPool::sign`]; P-384 has none (see the module notes).
    fn try_from(key: crate::hsm::KeyAlgorithm) -> Result<Self, CmsError> {
        match key {
            crate::hsm::KeyAlgorithm::EcdsaP256 => Ok(CmsAlgorithm::EcdsaP256Sha256),
            crate::hsm::KeyAlgorithm::Rsa3072 => Ok(CmsAlgorithm::RsaPkcs1Sha256),
            other => Err(CmsError::UnsupportedAlgorithm(other)),
        }
    }
}

/// Why a CMS structure could not be built. All of these are caller or HSM mistakes detected
/// before any bytes leave this module; none is retryable as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// A certificate is not one well-formed DER X.509 certificate (`role` says which one).
    #[error("{role} is not a DER X.509 certificate: {reason}")]
    MalformedCertificate {
        /// "signer certificate" or "chain certificate N" (0-based).
        role: String,
        /// What the decoder objected to.
        reason: String,
    },
    /// The signing time cannot be written as UTCTime/GeneralizedTime (UTC year outside 1970..=9999).
    #[error("signing time {0} cannot be encoded (UTC year must be 1970..=9999)")]
    SigningTimeOutOfRange(time::OffsetDateTime),
    /// The bytes given as signed attributes are not what [`signed_attributes`] returns.
    #[error("signed attributes: {0}")]
    MalformedSignedAttributes(&'static str),
    /// The signed attributes name a different signer certificate (their signingCertificateV2
    /// does not match the certificate given to [`signed_data`]).
    #[error("the signed attributes were built for a different signer certificate")]
    SignerCertificateMismatch,
    /// The signer certificate's key is not of the kind the algorithm says.
    #[error("the signer certificate's key is not a {0:?} key")]
    KeyAlgorithmMismatch(CmsAlgorithm),
    /// No CMS algorithm pairs with this key algorithm.
    #[error("no CMS signature algorithm for {0} keys (the document digest is SHA-256)")]
    UnsupportedAlgorithm(crate::hsm::KeyAlgorithm),
    /// The signature does not verify over the signed attributes with the signer certificate's key.
    #[error(
        "the signature does not verify with the signer certificate's key over the signed attributes \
         (wrong key, wrong hash, or ECDSA given as raw r||s instead of DER SEQUENCE {{r, s}})"
    )]
    SignatureMismatch,
}

/// Step 1: the DER of the SignedAttributes as a SET (tag 0x31), exactly the bytes the signer
/// signs (RFC 5652 §5.4: the signature covers the DER of the SET OF attributes with the SET tag,
/// not the `[0]` IMPLICIT form stored in the SignerInfo).
///
/// Attributes: contentType = id-data, signingTime (UTCTime through 2049, GeneralizedTime after,
/// RFC 5652 §11.3; sub-second precision is dropped), messageDigest = `document_sha256`, and
/// signingCertificateV2 (RFC 5035) with one ESSCertIDv2 holding the SHA-256 of
/// `signer_cert_der` and its issuerSerial, which binds the signature to this exact certificate
/// so it cannot be re-attributed to another certificate for the same key.
pub fn signed_attributes(
    document_sha256: &[u8; 32],
    signing_time: time::OffsetDateTime,
    signer_cert_der: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let utc = signing_time
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (1970..=9999).contains(&t.year()))
        .ok_or(CmsError::SigningTimeOutOfRange(signing_time))?;
    build_signed_attributes(document_sha256, Some(utc), signer_cert_der)
}

/// Step 1 for PAdES (ETSI EN 319 142-1 §5.2.1): the same attributes without signingTime, which
/// PAdES forbids in the CMS (the time is the PDF signature dictionary's /M or a timestamp).
pub fn signed_attributes_pades(document_sha256: &[u8; 32], signer_cert_der: &[u8]) -> Result<Vec<u8>, CmsError> {
    build_signed_attributes(document_sha256, None, signer_cert_der)
}

fn build_signed_attributes(
    document_sha256: &[u8; 32],
    signing_time: Option<time::OffsetDateTime>,
    signer_cert_der: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let signer = parse_certificate(signer_cert_der, "signer certificate".into())?;
    let mut attributes = vec![
        content_type_attribute(),
        attribute(ID_MESSAGE_DIGEST, &OctetString::new(document_sha256.as_slice()).map_err(bad_attribute)?)?,
        signing_certificate_v2_attribute(signer_cert_der, &signer)?,
    ];
    if let Some(at) = signing_time {
        attributes.push(attribute(ID_SIGNING_TIME, &asn1::x509_time(at))?);
    }
    let set: Attributes = SetOfVec::from_iter(attributes).map_err(bad_attribute)?;
    Ok(asn1::encode(&set))
}

fn bad_attribute(_: der::Error) -> CmsError {
    CmsError::MalformedSignedAttributes("an attribute cannot be encoded")
}

/// Step 2: the ContentInfo(SignedData) DER, detached (no eContent), ready to ship as `.p7s`.
///
/// SignedData version 1, digestAlgorithms {sha256}, encapContentInfo {id-data} without content,
/// certificates = `signer_cert_der` and `chain_der` (issuing CA ... root; the root is optional,
/// exact duplicates are left out; a DER SET OF, so in DER order), and one SignerInfo: version 1,
/// sid = issuerAndSerialNumber, digestAlgorithm sha256, signedAttrs = `signed_attributes_der`
/// stored as `[0]` IMPLICIT, signatureAlgorithm per `algorithm`, and `signature` (DER ECDSA
/// `SEQUENCE {r, s}` or the RSA PKCS#1 v1.5 block) made over `signed_attributes_der`.
///
/// Before building, the signature is verified against the signer certificate's public key and
/// the attributes are checked to be a well-formed DER set that names this signer certificate,
/// so a structure that would not verify is never returned.
pub fn signed_data(
    signer_cert_der: &[u8],
    chain_der: &[Vec<u8>],
    signed_attributes_der: &[u8],
    signature: &[u8],
    algorithm: CmsAlgorithm,
) -> Result<Vec<u8>, CmsError> {
    let signer = parse_certificate(signer_cert_der, "signer certificate".into())?;
    let mut chain = Vec::with_capacity(chain_der.len());
    for (i, cert) in chain_der.iter().enumerate() {
        chain.push(parse_certificate(cert, format!("chain certificate {i}"))?);
    }
    let signed_attrs =
        check_signed_attributes(signed_attributes_der, &signing_certificate_v2_attribute(signer_cert_der, &signer)?)?;
    let spki = signer.tbs_certificate().subject_public_key_info();
    if !algorithm.fits_key(&spki.algorithm) {
        return Err(CmsError::KeyAlgorithmMismatch(algorithm));
    }
    ring::signature::UnparsedPublicKey::new(algorithm.ring_verification(), spki.subject_public_key.raw_bytes())
        .verify(signed_attributes_der, signature)
        .map_err(|_| CmsError::SignatureMismatch)?;

    let internal = |_: der::Error| CmsError::MalformedSignedAttributes("the SignedData cannot be encoded");
    let sha256 = sha256_algorithm();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate().issuer().clone(),
            serial_number: signer.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm.signature_algorithm(),
        signature: OctetString::new(signature).map_err(internal)?,
        unsigned_attrs: None,
    };
    let mut certificates = SetOfVec::new();
    for cert in std::iter::once(signer).chain(chain) {
        let choice = CertificateChoices::Certificate(cert);
        if !certificates.iter().any(|c| *c == choice) {
            certificates.insert(choice).map_err(internal)?;
        }
    }
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::from_iter([sha256]).map_err(internal)?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: ID_DATA, econtent: None },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::from_iter([signer_info]).map_err(internal)?),
    };
    let content = Any::encode_from(&signed).map_err(internal)?;
    Ok(asn1::encode(&ContentInfo { content_type: ID_SIGNED_DATA, content }))
}

/// Decodes `der` as exactly one strict DER X.509 certificate: no trailing bytes, and re-encoding
/// gives the same bytes, so the issuer Name and serial copied out of it are the certificate's own.
fn parse_certificate(der: &[u8], role: String) -> Result<Certificate, CmsError> {
    let bad = |reason: String| CmsError::MalformedCertificate { role: role.clone(), reason };
    let cert = Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    if cert.to_der().map_err(|e| bad(e.to_string()))? != der {
        return Err(bad("not DER: re-encoding differs".into()));
    }
    Ok(cert)
}

/// `Attribute ::= SEQUENCE { attrType OID, attrValues SET OF AttributeValue }` with one value.
/// Shared with the timestamp authority's tokens (`tsa::token`).
pub(crate) fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute, CmsError> {
    let value = Any::from_der(&value.to_der().map_err(bad_attribute)?).map_err(bad_attribute)?;
    Ok(Attribute { oid, values: SetOfVec::from_iter([value]).map_err(bad_attribute)? })
}

/// contentType = id-data, the only content type this module signs.
fn content_type_attribute() -> Attribute {
    attribute(ID_CONTENT_TYPE, &ID_DATA).expect("invariant: an OID attribute always encodes")
}

/// The SHA-256 AlgorithmIdentifier, parameters absent (RFC 5754 §2).
fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA_256, parameters: None }
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies ... OPTIONAL }`
/// (RFC 5035 §3); no policies.
#[derive(Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT id-sha256, certHash, issuerSerial OPTIONAL }`:
/// hashAlgorithm is always SHA-256 here, so always omitted (DER leaves out a DEFAULT).
#[derive(Debug, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`;
/// GeneralNames holds one directoryName (`[4]` EXPLICIT Name).
#[derive(Debug, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// signingCertificateV2 (RFC 5035 §5.4.1.1) naming `signer` by the SHA-256 of its DER and its
/// issuer and serial. Shared with the timestamp authority's tokens (`tsa::token`).
pub(crate) fn signing_certificate_v2_attribute(signer_der: &[u8], signer: &Certificate) -> Result<Attribute, CmsError> {
    let tbs = signer.tbs_certificate();
    let value = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: OctetString::new(Sha256::digest(signer_der).as_slice()).map_err(bad_attribute)?,
            issuer_serial: IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                serial_number: tbs.serial_number().clone(),
            },
        }],
    };
    attribute(ID_AA_SIGNING_CERTIFICATE_V_2, &value)
}

/// Decodes `attrs` as one strict DER SET of attributes (SET OF order, no repeats, no trailing
/// bytes) with exactly one contentType (id-data), one messageDigest, at most one signingTime and
/// a signingCertificateV2 equal to `expected_ess`.
fn check_signed_attributes(attrs: &[u8], expected_ess: &Attribute) -> Result<Attributes, CmsError> {
    let bad = CmsError::MalformedSignedAttributes;
    if attrs.first() != Some(&0x31) {
        return Err(bad("must be the SET (tag 0x31) that signed_attributes returns"));
    }
    let set = Attributes::from_der(attrs).map_err(|e| match e.kind() {
        der::ErrorKind::TrailingData { .. } => bad("trailing bytes after the SET"),
        der::ErrorKind::SetOrdering => bad("attributes are not in DER SET OF order (or repeat)"),
        _ => bad("not a DER SET OF Attribute"),
    })?;
    // Decoding sorts a SET OF; only the same bytes on re-encoding show it was in DER order.
    if set.to_der().ok().as_deref() != Some(attrs) {
        return Err(bad("attributes are not in DER SET OF order (or repeat)"));
    }
    let count = |oid: ObjectIdentifier| set.iter().filter(|a| a.oid == oid).count();
    let content_type = set.iter().find(|a| a.oid == ID_CONTENT_TYPE);
    if content_type.is_some_and(|a| *a != content_type_attribute()) {
        return Err(bad("contentType must be id-data"));
    }
    if set.iter().any(|a| a.oid == ID_AA_SIGNING_CERTIFICATE_V_2 && a != expected_ess) {
        return Err(CmsError::SignerCertificateMismatch);
    }
    match (count(ID_CONTENT_TYPE), count(ID_MESSAGE_DIGEST), count(ID_AA_SIGNING_CERTIFICATE_V_2)) {
        (1, 1, 1) if count(ID_SIGNING_TIME) <= 1 => Ok(set),
        _ => Err(bad("need exactly one contentType, messageDigest and signingCertificateV2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING};
    use std::path::Path;
    use std::process::Command;

    /// A software hierarchy: root → issuing CA → signer.
    struct Pki {
        root_pem: String,
        issuing_der: Vec<u8>,
        signer_der: Vec<u8>,
        signer_key: KeyPair,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "cloudca test");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    }

    /// Builds the hierarchy; the signer key uses `alg` and, when given, is imported from PKCS#8.
    fn pki(alg: &'static rcgen::SignatureAlgorithm, signer_pkcs8_pem: Option<&str>) -> Pki {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let root_params = ca_params("CMS Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, &root_key);

        let issuing_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuing_params = ca_params("CMS Test Issuing CA");
        let issuing = issuing_params.signed_by(&issuing_key, &root_issuer).unwrap();
        let issuing_issuer = Issuer::new(issuing_params, &issuing_key);

        let signer_key = match signer_pkcs8_pem {
            Some(pem) => KeyPair::from_pem_and_sign_algo(pem, alg).unwrap(),
            None => KeyPair::generate_for(alg).unwrap(),
        };
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Document Signer");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        // High bit set: the DER INTEGER gets a leading zero that issuerSerial must reproduce.
        p.serial_number = Some(SerialNumber::from_slice(&[0x9c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]));
        let signer = p.signed_by(&signer_key, &issuing_issuer).unwrap();
        Pki { root_pem: root.pem(), issuing_der: issuing.der().to_vec(), signer_der: signer.der().to_vec(), signer_key }
    }

    fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new("openssl").current_dir(dir).args(args).output().expect("the openssl CLI must be installed")
    }

    /// `openssl cms -verify` as the brief gives it; `cades` adds `-cades`, with which OpenSSL
    /// also requires the ESS signingCertificate(V2) attribute and checks that its certHash and
    /// issuerSerial match the signer certificate (without it, OpenSSL 3.0 ignores the attribute).
    fn verify(dir: &Path, cades: bool) -> std::process::Output {
        let mut args = vec!["cms", "-verify"];
        if cades {
            args.push("-cades");
        }
        args.extend([
            "-binary",
            "-inform",
            "DER",
            "-in",
            "sig.p7s",
            "-content",
            "doc.bin",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ]);
        openssl(dir, &args)
    }

    fn text(o: &std::process::Output) -> String {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    }

    /// Hashes a document, builds the attributes, signs them with `sign`, builds the SignedData
    /// and writes doc.bin, sig.p7s and ca.pem into a temp dir.
    fn sign_document(
        pki: &Pki,
        algorithm: CmsAlgorithm,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (tempfile::TempDir, Vec<u8>) {
        let document = b"Quarterly report\nline 2 \x00\xff binary tail\n".repeat(100);
        let hash: [u8; 32] = Sha256::digest(&document).into();
        let now = time::OffsetDateTime::now_utc();
        let attrs = signed_attributes(&hash, now, &pki.signer_der).unwrap();
        assert_eq!(attrs[0], 0x31);
        let signature = sign(&attrs);
        let p7s = signed_data(&pki.signer_der, std::slice::from_ref(&pki.issuing_der), &attrs, &signature, algorithm)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("doc.bin"), &document).unwrap();
        std::fs::write(dir.path().join("sig.p7s"), &p7s).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.root_pem).unwrap();
        (dir, document)
    }

    fn ecdsa_signer(pki: &Pki, alg: &'static ring::signature::EcdsaSigningAlgorithm) -> impl FnOnce(&[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(alg, &pki.signer_key.serialize_der(), &rng).unwrap();
        move |msg| key.sign(&rng, msg).unwrap().as_ref().to_vec()
    }

    #[test]
    fn openssl_verifies_p256_signature_and_rejects_a_changed_document() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let sign = ecdsa_signer(&pki, &ECDSA_P256_SHA256_ASN1_SIGNING);
        let (dir, mut document) = sign_document(&pki, CmsAlgorithm::EcdsaP256Sha256, sign);

        let ok = verify(dir.path(), false);
        assert!(ok.status.success(), "openssl cms -verify failed: {}", text(&ok));
        assert!(text(&ok).contains("Verification successful"), "{}", text(&ok));
        let cades = verify(dir.path(), true);
        assert!(cades.status.success(), "openssl cms -verify -cades failed: {}", text(&cades));
        assert!(text(&cades).contains("CAdES Verification successful"), "{}", text(&cades));

        let printed = openssl(dir.path(), &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "sig.p7s"]);
        assert!(printed.status.success(), "{}", text(&printed));
        let printed = text(&printed);
        for needle in ["contentType", "signingTime", "messageDigest", "id-smime-aa-signingCertificateV2"] {
            assert!(printed.contains(needle), "{needle} missing from:\n{printed}");
        }
        assert!(printed.contains("eContent: <ABSENT>"), "not detached:\n{printed}");

        document[1234] ^= 0x01;
        std::fs::write(dir.path().join("doc.bin"), &document).unwrap();
        let changed = verify(dir.path(), false);
        assert!(!changed.status.success(), "a changed document verified: {}", text(&changed));
        // The signature over the attributes still verifies; the content digest is what fails.
        assert!(text(&changed).contains("CMS_SignerInfo_verify_content"), "{}", text(&changed));
    }

    #[test]
    fn openssl_verifies_rsa_signature() {
        let dir = tempfile::tempdir().unwrap();
        let gen = openssl(
            dir.path(),
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"],
        );
        assert!(gen.status.success(), "{}", text(&gen));
        let pem = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
        let pki = pki(&rcgen::PKCS_RSA_SHA256, Some(&pem));
        let der = pem::parse(&pem).unwrap().into_contents();
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let (dir, _) = sign_document(&pki, CmsAlgorithm::RsaPkcs1Sha256, |msg| {
            let mut sig = vec![0; key.public().modulus_len()];
            key.sign(&ring::signature::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).unwrap();
            sig
        });
        for cades in [false, true] {
            let ok = verify(dir.path(), cades);
            assert!(ok.status.success(), "openssl cms -verify (cades: {cades}) failed: {}", text(&ok));
        }
    }

    /// P-384 is gone: RFC 5753/5754 pair ecdsa-with-SHA384 with a SHA-384 digest, which a
    /// SHA-256 document hash cannot give. A P-384 signer certificate is refused with the
    /// P-256 algorithm instead of yielding a file OpenSSL cannot verify.
    #[test]
    fn p384_is_refused_not_mispaired() {
        assert!(matches!(
            CmsAlgorithm::try_from(crate::hsm::KeyAlgorithm::EcdsaP384),
            Err(CmsError::UnsupportedAlgorithm(_))
        ));
        let pki = pki(&rcgen::PKCS_ECDSA_P384_SHA384, None);
        let attrs = signed_attributes(&[3; 32], time::OffsetDateTime::now_utc(), &pki.signer_der).unwrap();
        let sig = ecdsa_signer(&pki, &ECDSA_P384_SHA384_ASN1_SIGNING)(&attrs);
        assert!(matches!(
            signed_data(&pki.signer_der, &[], &attrs, &sig, CmsAlgorithm::EcdsaP256Sha256),
            Err(CmsError::KeyAlgorithmMismatch(_))
        ));
    }

    /// The PAdES variant has no signingTime, and OpenSSL verifies it (also with `-cades`).
    #[test]
    fn pades_variant_omits_signing_time_and_verifies() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let document = b"%PDF-1.7 byte range".repeat(50);
        let hash: [u8; 32] = Sha256::digest(&document).into();
        let attrs = signed_attributes_pades(&hash, &pki.signer_der).unwrap();
        let set = Attributes::from_der(&attrs).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.iter().all(|a| a.oid != ID_SIGNING_TIME));
        let sig = ecdsa_signer(&pki, &ECDSA_P256_SHA256_ASN1_SIGNING)(&attrs);
        let p7s = signed_data(
            &pki.signer_der,
            std::slice::from_ref(&pki.issuing_der),
            &attrs,
            &sig,
            CmsAlgorithm::EcdsaP256Sha256,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("doc.bin"), &document).unwrap();
        std::fs::write(dir.path().join("sig.p7s"), &p7s).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.root_pem).unwrap();
        for cades in [false, true] {
            let ok = verify(dir.path(), cades);
            assert!(ok.status.success(), "openssl cms -verify (cades: {cades}) failed: {}", text(&ok));
        }
    }

    #[test]
    fn attributes_are_der_sorted_and_switch_to_generalized_time_after_2049() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let signer = parse_certificate(&pki.signer_der, "signer".into()).unwrap();
        for (at, time_tag) in [
            (time::macros::datetime!(2049-12-31 23:59:59 UTC), der::Tag::UtcTime),
            (time::macros::datetime!(2050-01-01 00:00:00 UTC), der::Tag::GeneralizedTime),
            (time::macros::datetime!(2050-01-01 00:30:00 +01:00), der::Tag::UtcTime),
        ] {
            let attrs = signed_attributes(&[7; 32], at, &pki.signer_der).unwrap();
            let set = Attributes::from_der(&attrs).unwrap();
            assert_eq!(set.len(), 4);
            assert_eq!(set.to_der().unwrap(), attrs, "attributes not in DER SET OF order");
            let time = set.iter().find(|a| a.oid == ID_SIGNING_TIME).unwrap();
            assert_eq!(der::Tagged::tag(time.values.get(0).unwrap()), time_tag, "{at}");
            let expected = signing_certificate_v2_attribute(&pki.signer_der, &signer).unwrap();
            check_signed_attributes(&attrs, &expected).unwrap();
        }
    }

    #[test]
    fn ess_cert_id_v2_omits_the_default_hash_algorithm_and_copies_issuer_serial() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let signer = parse_certificate(&pki.signer_der, "signer".into()).unwrap();
        assert_eq!(
            signer.tbs_certificate().serial_number().as_bytes(),
            &[0x00, 0x9c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]
        );
        let attr = signing_certificate_v2_attribute(&pki.signer_der, &signer).unwrap();
        let value = attr.values.get(0).unwrap().to_der().unwrap();
        // SEQUENCE { SEQUENCE OF { ESSCertIDv2 { OCTET STRING certHash, IssuerSerial } } }
        let ess = SigningCertificateV2::from_der(&value).unwrap();
        assert_eq!(ess.certs[0].cert_hash.as_bytes(), Sha256::digest(&pki.signer_der).as_slice());
        let ess_cert_id = ess.certs[0].to_der().unwrap();
        let first_of_ess_cert_id = der::asn1::AnyRef::from_der(&ess_cert_id).unwrap().value()[0];
        assert_eq!(first_of_ess_cert_id, 0x04, "hashAlgorithm must be omitted (DEFAULT sha256)");
        let issuer = &ess.certs[0].issuer_serial.issuer[0];
        assert_eq!(*issuer, GeneralName::DirectoryName(signer.tbs_certificate().issuer().clone()));
        let issuer_der = signer.tbs_certificate().issuer().to_der().unwrap();
        assert!(value.windows(issuer_der.len()).any(|w| w == issuer_der.as_slice()));
    }

    #[test]
    fn malformed_certificates_are_errors_not_panics() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let now = time::OffsetDateTime::now_utc();
        let good = pki.signer_der.clone();
        let mut with_trailer = good.clone();
        with_trailer.push(0);
        for bad in [vec![], b"not a certificate".to_vec(), good[..good.len() - 1].to_vec(), with_trailer] {
            assert!(matches!(signed_attributes(&[0; 32], now, &bad), Err(CmsError::MalformedCertificate { .. })));
            assert!(matches!(
                signed_data(&bad, &[], &[0x31, 0], &[], CmsAlgorithm::EcdsaP256Sha256),
                Err(CmsError::MalformedCertificate { .. })
            ));
        }
        // Every truncation and many single-byte corruptions: Ok or Err, never a panic.
        for len in 0..good.len() {
            assert!(signed_attributes(&[0; 32], now, &good[..len]).is_err());
        }
        for i in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut corrupt = good.clone();
                corrupt[i] ^= flip;
                let _ = signed_attributes(&[0; 32], now, &corrupt);
            }
        }

        let attrs = signed_attributes(&[0; 32], now, &good).unwrap();
        let sig = ecdsa_signer(&pki, &ECDSA_P256_SHA256_ASN1_SIGNING)(&attrs);
        let err = signed_data(&good, &[b"junk".to_vec()], &attrs, &sig, CmsAlgorithm::EcdsaP256Sha256).unwrap_err();
        assert!(err.to_string().contains("chain certificate 0"), "{err}");
    }

    #[test]
    fn signed_data_refuses_inputs_that_would_not_verify() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let other = self::pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let now = time::OffsetDateTime::now_utc();
        let attrs = signed_attributes(&[1; 32], now, &pki.signer_der).unwrap();
        let sig = ecdsa_signer(&pki, &ECDSA_P256_SHA256_ASN1_SIGNING)(&attrs);
        let alg = CmsAlgorithm::EcdsaP256Sha256;

        // The happy path, for contrast.
        signed_data(&pki.signer_der, &[], &attrs, &sig, alg).unwrap();

        // Attributes built for another certificate.
        let other_attrs = signed_attributes(&[1; 32], now, &other.signer_der).unwrap();
        assert!(matches!(
            signed_data(&pki.signer_der, &[], &other_attrs, &sig, alg),
            Err(CmsError::SignerCertificateMismatch)
        ));
        // Signed by another key.
        let other_sig = ecdsa_signer(&other, &ECDSA_P256_SHA256_ASN1_SIGNING)(&attrs);
        assert!(matches!(signed_data(&pki.signer_der, &[], &attrs, &other_sig, alg), Err(CmsError::SignatureMismatch)));
        // Raw r||s (what a PKCS#11 token returns) instead of DER.
        let rng = SystemRandom::new();
        let fixed = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pki.signer_key.serialize_der(),
            &rng,
        )
        .unwrap()
        .sign(&rng, &attrs)
        .unwrap();
        assert!(matches!(
            signed_data(&pki.signer_der, &[], &attrs, fixed.as_ref(), alg),
            Err(CmsError::SignatureMismatch)
        ));
        // Wrong algorithm for the key.
        assert!(matches!(
            signed_data(&pki.signer_der, &[], &attrs, &sig, CmsAlgorithm::RsaPkcs1Sha256),
            Err(CmsError::KeyAlgorithmMismatch(_))
        ));
        // The [0] IMPLICIT form, truncated, trailing bytes, not a set.
        let mut implicit = attrs.clone();
        implicit[0] = 0xa0;
        let mut trailing = attrs.clone();
        trailing.push(0);
        for bad in [implicit, attrs[..attrs.len() - 1].to_vec(), trailing, vec![], vec![0x31]] {
            assert!(matches!(
                signed_data(&pki.signer_der, &[], &bad, &sig, alg),
                Err(CmsError::MalformedSignedAttributes(_))
            ));
        }
    }

    #[test]
    fn unencodable_signing_times_are_errors() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let late = time::macros::datetime!(9999-12-31 23:00 -05:00);
        assert!(matches!(signed_attributes(&[0; 32], late, &pki.signer_der), Err(CmsError::SigningTimeOutOfRange(_))));
        let early = time::macros::datetime!(-0001-01-01 00:00 UTC);
        assert!(matches!(signed_attributes(&[0; 32], early, &pki.signer_der), Err(CmsError::SigningTimeOutOfRange(_))));
    }

    #[test]
    fn signature_algorithm_identifiers() {
        assert_eq!(
            CmsAlgorithm::EcdsaP256Sha256.signature_algorithm_der(),
            hex::decode("300a06082a8648ce3d040302").unwrap()
        );
        assert_eq!(
            CmsAlgorithm::RsaPkcs1Sha256.signature_algorithm_der(),
            hex::decode("300d06092a864886f70d01010b0500").unwrap()
        );
        assert_eq!(asn1::encode(&sha256_algorithm()), hex::decode("300b0609608648016503040201").unwrap());
        assert_eq!(CmsAlgorithm::try_from(crate::hsm::KeyAlgorithm::Rsa3072).unwrap(), CmsAlgorithm::RsaPkcs1Sha256);
    }
}
