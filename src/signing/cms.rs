//! Detached CMS SignedData (RFC 5652) over a document hash, for a signer whose private key stays
//! in the HSM.
//!
//! The HSM never sees the document and this module never sees a key, so building a signature is
//! two steps with the HSM call in between:
//!
//! 1. [`signed_attributes`] returns the DER `SET OF Attribute` (contentType, signingTime,
//!    messageDigest, signingCertificateV2). Those exact bytes are the *message* the HSM signs
//!    (it hashes them itself: SHA-256 for P-256 and RSA, SHA-384 for P-384, which is what
//!    [`crate::hsm::HsmPool::sign`] does for the matching [`crate::hsm::KeyAlgorithm`]).
//! 2. [`signed_data`] wraps the attributes, the signature and the certificates into a
//!    `ContentInfo` carrying a detached `SignedData` (no eContent), ready to write as `.p7s`.
//!
//! Step 2 re-parses everything it is given and checks the signature against the signer
//! certificate's public key before emitting anything: a CMS file whose signature does not verify
//! (wrong key label, raw `r||s` instead of DER, attributes built for another certificate) is
//! refused here instead of being discovered by a relying party.
//!
//! Encoding notes that verifiers are strict about:
//! * The attributes are sorted in DER `SET OF` order. OpenSSL re-encodes the parsed attributes
//!   (sorting them) before checking the signature, so unsorted attributes fail to verify.
//! * `ESSCertIDv2.hashAlgorithm` is omitted because SHA-256 is its DEFAULT (DER forbids encoding a
//!   default), and `issuerSerial` repeats the signer certificate's issuer Name and serial byte for
//!   byte. `openssl cms -verify -cades` (and CAdES/PAdES validators) reject the signature when
//!   the certHash or issuerSerial does not match the signer certificate; plain `cms -verify`
//!   ignores the attribute, so [`signed_data`] checks the match itself.
//! * SHA-2 `AlgorithmIdentifier`s are written without parameters (RFC 5754 §2), ECDSA signature
//!   algorithms without parameters (RFC 5758), `sha256WithRSAEncryption` with NULL (RFC 4055).

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::asn1::{self, tag};

/// id-data (1.2.840.113549.1.7.1): the type of the detached content.
const ID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
/// id-signedData (1.2.840.113549.1.7.2).
const ID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
/// id-contentType attribute (1.2.840.113549.1.9.3).
const ID_CONTENT_TYPE: &[u64] = &[1, 2, 840, 113549, 1, 9, 3];
/// id-messageDigest attribute (1.2.840.113549.1.9.4).
const ID_MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 4];
/// id-signingTime attribute (1.2.840.113549.1.9.5).
const ID_SIGNING_TIME: &[u64] = &[1, 2, 840, 113549, 1, 9, 5];
/// id-aa-signingCertificateV2 attribute (1.2.840.113549.1.9.16.2.47, RFC 5035).
const ID_AA_SIGNING_CERTIFICATE_V2: &[u64] = &[1, 2, 840, 113549, 1, 9, 16, 2, 47];
/// id-sha256 (2.16.840.1.101.3.4.2.1).
const ID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// ecdsa-with-SHA384 (1.2.840.10045.4.3.3).
const ECDSA_WITH_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
/// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
/// id-ecPublicKey (1.2.840.10045.2.1).
const ID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
const CURVE_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
/// secp384r1 / P-384 (1.3.132.0.34).
const CURVE_P384: &[u64] = &[1, 3, 132, 0, 34];
/// rsaEncryption (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];

/// Signature algorithm of the signer key. It decides the `signatureAlgorithm` of the SignerInfo
/// and which hash the signer applies to the signed attributes; the document digest
/// (`digestAlgorithm`, `messageDigest`) is SHA-256 in every case because the caller hands us a
/// precomputed SHA-256 of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmsAlgorithm {
    /// ECDSA on P-256; the signer computes SHA-256 over the signed attributes.
    EcdsaP256Sha256,
    /// ECDSA on P-384; the signer computes SHA-384 over the signed attributes and the
    /// signatureAlgorithm is ecdsa-with-SHA384, while digestAlgorithm/messageDigest stay SHA-256.
    ///
    /// Interoperability warning: OpenSSL (checked with 3.0) hashes the signed attributes with the
    /// SignerInfo *digestAlgorithm* (SHA-256 here), not with the signature algorithm's hash, so
    /// `openssl cms -verify` rejects these signatures ("CMS_SignerInfo_verify: verification
    /// failure"). Verifiers that take the hash from the signatureAlgorithm accept them.
    /// An OpenSSL-verifiable P-384 signature needs either a SHA-384 document digest
    /// (digestAlgorithm sha384) or a P-384 signature over SHA-256 (ecdsa-with-SHA256).
    EcdsaP384Sha384,
    /// RSA PKCS#1 v1.5; the signer computes SHA-256 over the signed attributes.
    RsaPkcs1Sha256,
}

impl CmsAlgorithm {
    /// The DER AlgorithmIdentifier for the SignerInfo `signatureAlgorithm`: ECDSA without
    /// parameters (RFC 5758 §3.2), RSA with an explicit NULL (RFC 4055 §5).
    pub fn signature_algorithm_der(self) -> Vec<u8> {
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => asn1::sequence(&[&asn1::oid(ECDSA_WITH_SHA256)]),
            CmsAlgorithm::EcdsaP384Sha384 => asn1::sequence(&[&asn1::oid(ECDSA_WITH_SHA384)]),
            CmsAlgorithm::RsaPkcs1Sha256 => asn1::sequence(&[&asn1::oid(SHA256_WITH_RSA), &asn1::tlv(tag::NULL, &[])]),
        }
    }

    /// The ring algorithm that checks a signature made by this kind of key over the attributes.
    fn ring_verification(self) -> &'static dyn ring::signature::VerificationAlgorithm {
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            CmsAlgorithm::EcdsaP384Sha384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
            CmsAlgorithm::RsaPkcs1Sha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }

    /// Whether a SubjectPublicKeyInfo AlgorithmIdentifier (its content octets) is a key this
    /// algorithm can have produced the signature with.
    fn fits_key(self, spki_algorithm: &[u8]) -> bool {
        let Some((oid_tag, key_oid, params)) = asn1::read_tlv(spki_algorithm) else {
            return false;
        };
        if oid_tag != tag::OID {
            return false;
        }
        let is = |arcs: &[u64]| asn1::oid(arcs)[2..] == *key_oid;
        match self {
            CmsAlgorithm::EcdsaP256Sha256 => is(ID_EC_PUBLIC_KEY) && params == asn1::oid(CURVE_P256).as_slice(),
            CmsAlgorithm::EcdsaP384Sha384 => is(ID_EC_PUBLIC_KEY) && params == asn1::oid(CURVE_P384).as_slice(),
            CmsAlgorithm::RsaPkcs1Sha256 => is(RSA_ENCRYPTION),
        }
    }
}

impl From<crate::hsm::KeyAlgorithm> for CmsAlgorithm {
    /// The CMS algorithm of a CA/HSM key, so callers can pass the same algorithm they give
    /// [`crate::hsm::HsmPool::sign`] (which hashes the message exactly as listed on each variant).
    fn from(key: crate::hsm::KeyAlgorithm) -> Self {
        match key {
            crate::hsm::KeyAlgorithm::EcdsaP256 => CmsAlgorithm::EcdsaP256Sha256,
            crate::hsm::KeyAlgorithm::EcdsaP384 => CmsAlgorithm::EcdsaP384Sha384,
            crate::hsm::KeyAlgorithm::Rsa3072 => CmsAlgorithm::RsaPkcs1Sha256,
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
        /// What the parser objected to.
        reason: String,
    },
    /// The signing time cannot be written as UTCTime/GeneralizedTime (UTC year outside 0..=9999).
    #[error("signing time {0} cannot be encoded (UTC year must be 0000..=9999)")]
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
    let signer = Cert::parse(signer_cert_der, "signer certificate".into())?;
    let utc = signing_time
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or(CmsError::SigningTimeOutOfRange(signing_time))?;

    let mut attributes = [
        content_type_attribute(),
        attribute(ID_SIGNING_TIME, &asn1::time(utc)),
        attribute(ID_MESSAGE_DIGEST, &asn1::tlv(tag::OCTET_STRING, document_sha256)),
        signing_certificate_v2_attribute(&signer),
    ];
    attributes.sort_by(|a, b| der_set_order(a, b));
    Ok(asn1::tlv(tag::SET, &attributes.concat()))
}

/// Step 2: the ContentInfo(SignedData) DER, detached (no eContent), ready to ship as `.p7s`.
///
/// SignedData version 1, digestAlgorithms {sha256}, encapContentInfo {id-data} without content,
/// certificates = `signer_cert_der` then `chain_der` in the given order (issuing CA ... root;
/// the root is optional, exact duplicates are left out), and one SignerInfo: version 1,
/// sid = issuerAndSerialNumber, digestAlgorithm sha256, signedAttrs = `signed_attributes_der`
/// with its SET tag changed to `[0]` IMPLICIT (0xA0), signatureAlgorithm per `algorithm`, and
/// `signature` (DER ECDSA `SEQUENCE {r, s}` or the RSA PKCS#1 v1.5 block) made over
/// `signed_attributes_der` by the signer.
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
    let signer = Cert::parse(signer_cert_der, "signer certificate".into())?;
    for (i, cert) in chain_der.iter().enumerate() {
        Cert::parse(cert, format!("chain certificate {i}"))?;
    }
    check_signed_attributes(signed_attributes_der, &signing_certificate_v2_attribute(&signer))?;
    if !algorithm.fits_key(signer.spki_algorithm) {
        return Err(CmsError::KeyAlgorithmMismatch(algorithm));
    }
    ring::signature::UnparsedPublicKey::new(algorithm.ring_verification(), signer.public_key)
        .verify(signed_attributes_der, signature)
        .map_err(|_| CmsError::SignatureMismatch)?;

    // The stored form of signedAttrs is [0] IMPLICIT SET OF: same length and content, new tag
    // (the slice is a checked, non-empty TLV at this point).
    let signed_attrs_implicit = [&[0xa0][..], &signed_attributes_der[1..]].concat();

    let sha256 = sha256_algorithm();
    let signer_info = asn1::sequence(&[
        &asn1::small_integer(1),
        &asn1::sequence(&[signer.issuer, &asn1::tlv(tag::INTEGER, signer.serial)]),
        &sha256,
        &signed_attrs_implicit,
        &algorithm.signature_algorithm_der(),
        &asn1::tlv(tag::OCTET_STRING, signature),
    ]);

    let mut certificates: Vec<&[u8]> = vec![signer_cert_der];
    for cert in chain_der {
        if !certificates.contains(&cert.as_slice()) {
            certificates.push(cert);
        }
    }

    let signed_data = asn1::sequence(&[
        &asn1::small_integer(1),
        &asn1::tlv(tag::SET, &sha256),
        &asn1::sequence(&[&asn1::oid(ID_DATA)]),
        &asn1::context(0, true, &certificates.concat()),
        &asn1::tlv(tag::SET, &signer_info),
    ]);
    Ok(asn1::sequence(&[&asn1::oid(ID_SIGNED_DATA), &asn1::context(0, true, &signed_data)]))
}

/// The parts of a certificate CMS needs, borrowed from its DER.
struct Cert<'a> {
    /// The whole certificate DER (hashed for ESSCertIDv2).
    der: &'a [u8],
    /// The issuer Name, whole TLV, byte for byte as in the certificate.
    issuer: &'a [u8],
    /// The serialNumber INTEGER content octets, byte for byte as in the certificate.
    serial: &'a [u8],
    /// The content octets of the SubjectPublicKeyInfo AlgorithmIdentifier.
    spki_algorithm: &'a [u8],
    /// The subjectPublicKey bits (EC point or RSAPublicKey DER).
    public_key: &'a [u8],
}

impl<'a> Cert<'a> {
    /// Validates `der` as exactly one X.509 certificate (x509-parser, no trailing bytes), then
    /// takes the fields out of the raw bytes so they are reproduced exactly, never re-encoded.
    fn parse(der: &'a [u8], role: String) -> Result<Self, CmsError> {
        let bad = |reason: String| CmsError::MalformedCertificate { role: role.clone(), reason };
        match x509_parser::parse_x509_certificate(der) {
            Ok(([], _)) => {}
            Ok((rest, _)) => return Err(bad(format!("{} bytes after the certificate", rest.len()))),
            Err(e) => return Err(bad(e.to_string())),
        }
        Self::fields(der).ok_or_else(|| bad("unexpected certificate layout".into()))
    }

    /// Walks Certificate → TBSCertificate to serial, issuer and subjectPublicKeyInfo.
    fn fields(der: &'a [u8]) -> Option<Self> {
        let (cert, _) = expect(der, tag::SEQUENCE)?;
        let (tbs, _) = expect(cert, tag::SEQUENCE)?;
        let (first_tag, _, after_version) = asn1::read_tlv(tbs)?;
        let tbs = if first_tag == 0xa0 { after_version } else { tbs };
        let (serial, rest) = expect(tbs, tag::INTEGER)?;
        let (_signature, rest) = expect(rest, tag::SEQUENCE)?;
        let (_, after_issuer) = expect(rest, tag::SEQUENCE)?;
        let issuer = &rest[..rest.len() - after_issuer.len()];
        let (_validity, rest) = expect(after_issuer, tag::SEQUENCE)?;
        let (_subject, rest) = expect(rest, tag::SEQUENCE)?;
        let (spki, _) = expect(rest, tag::SEQUENCE)?;
        let (spki_algorithm, rest) = expect(spki, tag::SEQUENCE)?;
        let (bits, _) = expect(rest, tag::BIT_STRING)?;
        let (&unused_bits, public_key) = bits.split_first()?;
        (unused_bits == 0).then_some(Cert { der, issuer, serial, spki_algorithm, public_key })
    }
}

/// Reads one TLV that must carry `want` as its tag: (content, rest).
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (got, content, rest) = asn1::read_tlv(input)?;
    (got == want).then_some((content, rest))
}

/// `Attribute ::= SEQUENCE { attrType OID, attrValues SET OF AttributeValue }` with one value.
fn attribute(kind: &[u64], value: &[u8]) -> Vec<u8> {
    asn1::sequence(&[&asn1::oid(kind), &asn1::tlv(tag::SET, value)])
}

/// contentType = id-data, the only content type this module signs.
fn content_type_attribute() -> Vec<u8> {
    attribute(ID_CONTENT_TYPE, &asn1::oid(ID_DATA))
}

/// The SHA-256 AlgorithmIdentifier, parameters absent (RFC 5754 §2).
fn sha256_algorithm() -> Vec<u8> {
    asn1::sequence(&[&asn1::oid(ID_SHA256)])
}

/// signingCertificateV2 (RFC 5035 §5.4.1.1):
///
/// ```text
/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},  -- omitted: it is SHA-256
///     certHash OCTET STRING,                                            -- SHA-256 of the cert DER
///     issuerSerial IssuerSerial }
/// IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
/// ```
///
/// GeneralNames holds one directoryName, `[4]` EXPLICIT Name (GeneralName is a CHOICE, so the
/// tag is explicit whatever the module default is).
fn signing_certificate_v2_attribute(signer: &Cert<'_>) -> Vec<u8> {
    let cert_hash = Sha256::digest(signer.der);
    let issuer_serial = asn1::sequence(&[
        &asn1::sequence(&[&asn1::context(4, true, signer.issuer)]),
        &asn1::tlv(tag::INTEGER, signer.serial),
    ]);
    let ess_cert_id_v2 = asn1::sequence(&[&asn1::tlv(tag::OCTET_STRING, &cert_hash), &issuer_serial]);
    let signing_certificate_v2 = asn1::sequence(&[&asn1::sequence(&[&ess_cert_id_v2])]);
    attribute(ID_AA_SIGNING_CERTIFICATE_V2, &signing_certificate_v2)
}

/// DER SET OF order (X.690 §11.6): encodings compared as octet strings, the shorter one padded
/// with trailing zero octets.
fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).copied().unwrap_or(0).cmp(&b.get(i).copied().unwrap_or(0)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Checks that `attrs` is one DER SET of attributes in SET OF order, with exactly one
/// contentType (id-data), one messageDigest, and a signingCertificateV2 equal to `expected_ess`.
fn check_signed_attributes(attrs: &[u8], expected_ess: &[u8]) -> Result<(), CmsError> {
    let bad = CmsError::MalformedSignedAttributes;
    let (set_tag, mut content, rest) = asn1::read_tlv(attrs).ok_or(bad("not a DER TLV"))?;
    if set_tag != tag::SET {
        return Err(bad("must be the SET (tag 0x31) that signed_attributes returns"));
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the SET"));
    }
    let (content_type, message_digest, signing_certificate) =
        (asn1::oid(ID_CONTENT_TYPE), asn1::oid(ID_MESSAGE_DIGEST), asn1::oid(ID_AA_SIGNING_CERTIFICATE_V2));
    let (mut n_content_type, mut n_message_digest, mut n_signing_certificate) = (0, 0, 0);
    let mut previous: Option<&[u8]> = None;
    while !content.is_empty() {
        let (attr, rest) = expect(content, tag::SEQUENCE).ok_or(bad("an element is not an Attribute SEQUENCE"))?;
        let whole = &content[..content.len() - rest.len()];
        if previous.is_some_and(|p| der_set_order(p, whole).is_ge()) {
            return Err(bad("attributes are not in DER SET OF order (or repeat)"));
        }
        let (oid_tag, _, _) = asn1::read_tlv(attr).ok_or(bad("an Attribute has no type"))?;
        if oid_tag != tag::OID {
            return Err(bad("an Attribute type is not an OBJECT IDENTIFIER"));
        }
        if attr.starts_with(&content_type) {
            if whole != content_type_attribute() {
                return Err(bad("contentType must be id-data"));
            }
            n_content_type += 1;
        } else if attr.starts_with(&message_digest) {
            n_message_digest += 1;
        } else if attr.starts_with(&signing_certificate) {
            if whole != expected_ess {
                return Err(CmsError::SignerCertificateMismatch);
            }
            n_signing_certificate += 1;
        }
        previous = Some(whole);
        content = rest;
    }
    match (n_content_type, n_message_digest, n_signing_certificate) {
        (1, 1, 1) => Ok(()),
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

    /// P-384 as specified (messageDigest/digestAlgorithm SHA-256, ecdsa-with-SHA384 over
    /// SHA-384 of the attributes): the structure parses in OpenSSL and our own check of the
    /// signature (inside `signed_data`) passes. OpenSSL 3.0's `cms -verify` hashes the attributes
    /// with the SignerInfo digestAlgorithm (SHA-256) rather than the signature algorithm's hash,
    /// so it rejects this combination (see [`CmsAlgorithm::EcdsaP384Sha384`]); the outcome is
    /// printed, not asserted, so a verifier change does not break the build.
    #[test]
    fn p384_structure_parses_in_openssl() {
        let pki = pki(&rcgen::PKCS_ECDSA_P384_SHA384, None);
        let sign = ecdsa_signer(&pki, &ECDSA_P384_SHA384_ASN1_SIGNING);
        let (dir, _) = sign_document(&pki, CmsAlgorithm::EcdsaP384Sha384, sign);
        let printed = openssl(dir.path(), &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "sig.p7s"]);
        assert!(printed.status.success(), "{}", text(&printed));
        assert!(text(&printed).contains("ecdsa-with-SHA384"), "{}", text(&printed));
        let verified = verify(dir.path(), false);
        eprintln!("openssl cms -verify on P-384/ecdsa-with-SHA384 + sha256 digest: {}", text(&verified));
    }

    #[test]
    fn attributes_are_der_sorted_and_switch_to_generalized_time_after_2049() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        for (at, time_tag) in [
            (time::macros::datetime!(2049-12-31 23:59:59 UTC), tag::UTC_TIME),
            (time::macros::datetime!(2050-01-01 00:00:00 UTC), tag::GENERALIZED_TIME),
            (time::macros::datetime!(2050-01-01 00:30:00 +01:00), tag::UTC_TIME),
        ] {
            let attrs = signed_attributes(&[7; 32], at, &pki.signer_der).unwrap();
            let (_, mut content, rest) = asn1::read_tlv(&attrs).unwrap();
            assert!(rest.is_empty());
            let mut elements = Vec::new();
            while !content.is_empty() {
                let (_, attr, rest) = asn1::read_tlv(content).unwrap();
                elements.push(content[..content.len() - rest.len()].to_vec());
                if attr.starts_with(&asn1::oid(ID_SIGNING_TIME)) {
                    let (_, values, _) = asn1::read_tlv(&attr[asn1::oid(ID_SIGNING_TIME).len()..]).unwrap();
                    assert_eq!(values[0], time_tag, "{at}");
                }
                content = rest;
            }
            assert_eq!(elements.len(), 4);
            assert!(elements.windows(2).all(|w| der_set_order(&w[0], &w[1]).is_lt()));
            check_signed_attributes(&attrs, &signing_certificate_v2_attribute(&Cert::fields(&pki.signer_der).unwrap()))
                .unwrap();
        }
    }

    #[test]
    fn ess_cert_id_v2_omits_the_default_hash_algorithm_and_copies_issuer_serial() {
        let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let signer = Cert::fields(&pki.signer_der).unwrap();
        assert_eq!(signer.serial, &[0x00, 0x9c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        let attr = signing_certificate_v2_attribute(&signer);
        let (_, attr_content, _) = asn1::read_tlv(&attr).unwrap();
        let (_, values, _) = asn1::read_tlv(&attr_content[asn1::oid(ID_AA_SIGNING_CERTIFICATE_V2).len()..]).unwrap();
        let (_, signing_cert, _) = asn1::read_tlv(values).unwrap();
        let (_, certs, _) = asn1::read_tlv(signing_cert).unwrap();
        let (_, ess_cert_id, _) = asn1::read_tlv(certs).unwrap();
        let (first_tag, hash, rest) = asn1::read_tlv(ess_cert_id).unwrap();
        assert_eq!(first_tag, tag::OCTET_STRING, "hashAlgorithm must be omitted (DEFAULT sha256)");
        assert_eq!(hash, Sha256::digest(&pki.signer_der).as_slice());
        let (_, issuer_serial, _) = asn1::read_tlv(rest).unwrap();
        let (_, general_names, rest) = asn1::read_tlv(issuer_serial).unwrap();
        let (dn_tag, name, _) = asn1::read_tlv(general_names).unwrap();
        assert_eq!((dn_tag, name), (0xa4, signer.issuer));
        assert_eq!(rest, asn1::tlv(tag::INTEGER, signer.serial).as_slice());
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
            CmsAlgorithm::EcdsaP384Sha384.signature_algorithm_der(),
            hex::decode("300a06082a8648ce3d040303").unwrap()
        );
        assert_eq!(
            CmsAlgorithm::RsaPkcs1Sha256.signature_algorithm_der(),
            hex::decode("300d06092a864886f70d01010b0500").unwrap()
        );
        assert_eq!(sha256_algorithm(), hex::decode("300b0609608648016503040201").unwrap());
        assert_eq!(CmsAlgorithm::from(crate::hsm::KeyAlgorithm::Rsa3072), CmsAlgorithm::RsaPkcs1Sha256);
    }
}
