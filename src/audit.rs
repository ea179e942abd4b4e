//! The audit log's trust anchor: checkpoints of the hash chain signed by the `audit` key in the
//! HSM, chained to one another and copied to a witness file outside the database, and the full
//! verification (`cloudca audit verify`). Rewriting history then needs the audit key and this
//! host's files, not just write access to the database.
//!
//! - [`checkpoint`]: the round the daemon runs every minute: check the segment since the last
//!   checkpoint, refuse over a broken one, else sign, witness, store.
//! - [`verify`]: entries, every checkpoint's signature and link, and the witnesses.
//! - [`witness`]: the append-only file.

pub mod checkpoint;
pub mod coalesce;
pub mod pin;
pub mod verify;
pub mod witness;

pub use checkpoint::{Checkpointer, Refusal};
pub use verify::{verify, Verdict, WitnessSource};

use crate::hsm::{HsmError, KeyAlgorithm};
use crate::store::{Store, StoreError};

/// A phone as an audit entry's *detail* names it (the member added or removed, the person a
/// role is offered to, the phone a code went to): the first three and last four characters,
/// the rest `*` ([`crate::ra::validate::mask`]; on an E.164 number, the country code and the
/// last four digits). Every detail that carries a phone goes through this one function, so the
/// log, read by auditors in bulk, never holds a bystander's whole number; the entry still tells
/// members apart and can be matched against the row it changed, which holds the phone whole.
/// The `phone:` *actor* of an organisation or seal event is not masked by this: it is who
/// acted, kept whole for accountability (ARCHITECTURE.md, "Audit").
pub fn masked_phone(phone: &str) -> String {
    crate::ra::validate::mask(phone)
}

/// Why checkpointing or verification failed (not: what verification found).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Database.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// HSM.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// No audit key in the hierarchy.
    #[error("no audit key in the CA hierarchy (run the ceremony)")]
    NoAuditKey,
    /// The checkpoint round refused to sign (see [`Refusal`]).
    #[error("audit checkpoint refused: {0}")]
    Refused(Refusal),
    /// A witness file could not be read.
    #[error("{0}")]
    Witness(#[from] witness::WitnessError),
    /// The audit certificate in the database is not the one `cloudca.toml` pins.
    #[error("{0}")]
    Pin(#[from] pin::PinError),
}

/// The audit key as stored in the hierarchy: label, algorithm and public key bits. Every use
/// of the audit key's certificate goes through here, so a check of that certificate (the pin
/// in `cloudca.toml`) has one place to live.
async fn audit_key(store: &Store, pinned: Option<&str>) -> Result<(String, KeyAlgorithm, Vec<u8>), AuditError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let record = pin::audit_authority(store, pinned).await?.ok_or(AuditError::NoAuditKey)?;
    let algorithm = KeyAlgorithm::from_name(&record.key_algorithm).ok_or(AuditError::NoAuditKey)?;
    let (_, cert) = X509Certificate::from_der(&record.certificate).map_err(|_| AuditError::NoAuditKey)?;
    Ok((record.key_label, algorithm, cert.tbs_certificate.subject_pki.subject_public_key.data.to_vec()))
}

/// Checks checkpoint signatures with the audit key's public key.
struct SignatureCheck {
    key: ring::signature::UnparsedPublicKey<Vec<u8>>,
}

impl SignatureCheck {
    async fn load(store: &Store, pinned: Option<&str>) -> Result<(String, KeyAlgorithm, SignatureCheck), AuditError> {
        let (label, algorithm, public_key) = audit_key(store, pinned).await?;
        let key = ring::signature::UnparsedPublicKey::new(algorithm.ring_verification(), public_key);
        Ok((label, algorithm, SignatureCheck { key }))
    }

    fn verifies(&self, c: &crate::store::audit::Checkpoint) -> bool {
        self.key.verify(&c.message(), &c.signature).is_ok()
    }
}
