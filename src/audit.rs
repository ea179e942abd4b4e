//! The audit log's trust anchor: checkpoints of the hash chain signed by the `audit` key in the
//! HSM, and the full verification (`cloudca audit verify`): the chain links, then every
//! checkpoint's signature and position. Rewriting history then needs the audit key, not just
//! write access to the database.

pub mod coalesce;
pub mod pin;

use crate::hsm::{HsmError, HsmPool, KeyAlgorithm};
use crate::store::audit::{checkpoint_message, AuditVerdict, Checkpoint};
use crate::store::{Store, StoreError};

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
}

/// The audit key as stored in the hierarchy: label, algorithm and public key bits.
async fn audit_key(store: &Store) -> Result<(String, KeyAlgorithm, Vec<u8>), AuditError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let record = store.authorities().await?.into_iter().find(|a| a.role == "audit").ok_or(AuditError::NoAuditKey)?;
    let algorithm = KeyAlgorithm::from_name(&record.key_algorithm).ok_or(AuditError::NoAuditKey)?;
    let (_, cert) = X509Certificate::from_der(&record.certificate).map_err(|_| AuditError::NoAuditKey)?;
    Ok((record.key_label, algorithm, cert.tbs_certificate.subject_pki.subject_public_key.data.to_vec()))
}

/// Signs the current head if it moved since the last checkpoint; returns the seq covered.
pub async fn checkpoint(store: &Store, hsm: &HsmPool, now_ms: i64) -> Result<Option<i64>, AuditError> {
    let (seq, hash) = store.audit_head().await?;
    let last = store.checkpoints().await?.last().map(|c| c.seq).unwrap_or(0);
    if seq == 0 || seq <= last {
        return Ok(None);
    }
    let (label, algorithm, _) = audit_key(store).await?;
    let signature = hsm.sign(&label, algorithm, &checkpoint_message(seq, &hash, now_ms)).await?;
    store.put_checkpoint(&Checkpoint { seq, hash, at: now_ms, signature }).await?;
    Ok(Some(seq))
}

/// What the full verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Chain and checkpoints intact.
    Intact {
        /// Entries.
        entries: i64,
        /// Checkpoints verified.
        checkpoints: usize,
    },
    /// The first problem.
    Broken(String),
}

/// Walks the chain, then checks every checkpoint: signed by the audit key, and matching the
/// entry it names (a chain cut or rewritten before a checkpoint no longer matches it).
pub async fn verify(store: &Store) -> Result<Verdict, AuditError> {
    let entries = match store.verify_audit().await? {
        AuditVerdict::Intact { entries, .. } => entries,
        AuditVerdict::Broken { seq, problem } => return Ok(Verdict::Broken(format!("entry {seq}: {problem}"))),
    };
    let checkpoints = store.checkpoints().await?;
    if checkpoints.is_empty() {
        return Ok(Verdict::Intact { entries, checkpoints: 0 });
    }
    let (_, algorithm, public_key) = audit_key(store).await?;
    let key = ring::signature::UnparsedPublicKey::new(algorithm.ring_verification(), public_key);
    for c in &checkpoints {
        if key.verify(&checkpoint_message(c.seq, &c.hash, c.at), &c.signature).is_err() {
            return Ok(Verdict::Broken(format!(
                "checkpoint at entry {}: signature does not verify with the audit key",
                c.seq
            )));
        }
        match store.audit_hash(c.seq).await? {
            Some(h) if h == c.hash => {}
            Some(_) => {
                return Ok(Verdict::Broken(format!("entry {}: differs from its signed checkpoint (rewritten)", c.seq)))
            }
            None => {
                return Ok(Verdict::Broken(format!(
                    "entry {}: missing, but a signed checkpoint covers it (log cut)",
                    c.seq
                )))
            }
        }
    }
    Ok(Verdict::Intact { entries, checkpoints: checkpoints.len() })
}
