//! The certificate authority: profiles, request checking, serials, TBS building and the
//! sign-once issuance flow ([`issue`]), the key ceremony ([`ceremony`]) and the loaded
//! hierarchy ([`authority`]). This module never holds a PKCS#11 session: it asks
//! [`crate::hsm::HsmPool`] to sign bytes it has already built and checked.

pub mod authority;
pub mod ceremony;
pub mod csr;
pub mod extensions;
pub mod identifiers;
pub mod issue;
pub mod lint;
pub mod profile;
pub mod reserve;
pub mod serial;
pub mod subject;

use sha2::Digest;

pub use authority::{Authority, Hierarchy};
pub use csr::{SubjectKeyType, VerifiedRequest};
pub use issue::{IssuanceService, Issued};
pub use profile::Profile;

use crate::hsm::HsmError;
use crate::store::StoreError;

/// A request that does not fit its profile: the applicant's mistake, reported in words they can
/// act on. Nothing is stored when one of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No profile by that name.
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// The CSR does not parse.
    #[error("malformed CSR: {0}")]
    MalformedCsr(String),
    /// The CSR's self-signature does not verify.
    #[error("the CSR signature does not verify (the request was altered or not signed by its key)")]
    BadCsrSignature,
    /// Key type or size not allowed.
    #[error("key not allowed: {0}")]
    KeyType(String),
    /// A subject attribute is missing, extra or invalid.
    #[error("subject not allowed: {0}")]
    Subject(String),
}

/// Why an operation of the CA failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The request is out of profile.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The hierarchy is missing, inconsistent, or a key does not match its certificate.
    #[error("CA hierarchy: {0}")]
    Hierarchy(String),
    /// Building the certificate failed (a bug, not the applicant's fault).
    #[error("certificate build: {0}")]
    Build(String),
    /// The pre-signing lint found the TBS differs from what was intended.
    #[error("pre-signing lint: {0}")]
    Lint(String),
}

/// The key identifier of a public key: the leftmost 160 bits of the SHA-256 of the
/// subjectPublicKey bits (RFC 7093 §2 method 1). Used for SKI, AKI and CKA_ID.
pub fn key_identifier(spki: &[u8]) -> Vec<u8> {
    let bits = spki_bits(spki).unwrap_or(spki);
    sha2::Sha256::digest(bits)[..20].to_vec()
}

/// The subjectPublicKey BIT STRING content of a SubjectPublicKeyInfo (without the unused-bits
/// byte), or None when it is not one strict DER SubjectPublicKeyInfo.
pub(crate) fn spki_bits(spki: &[u8]) -> Option<&[u8]> {
    use der::Decode;
    spki::SubjectPublicKeyInfoRef::from_der(spki).ok()?.subject_public_key.as_bytes()
}
