//! The checkpoint round. Before the HSM signs anything, the round checks what it would sign
//! over: the newest checkpoint in the database (signature, link to the one before it, still
//! matching its entry), every entry from there to the head, and that the database still holds,
//! unchanged, the last checkpoint this process's witness wrote. Over a broken segment it
//! refuses (H6: a database writer cannot have the HSM sign a forged head), raises
//! `cloudca_audit_chain_broken` and logs `audit.chain_broken`; the first round that finds the
//! chain whole again records `audit.chain_recovered`. A checkpoint is then signed, appended
//! to the witness (fsynced) and only then committed: no witness, no checkpoint.

use std::path::PathBuf;

use super::{witness, AuditError, SignatureCheck};
use crate::hsm::HsmPool;
use crate::store::audit::{AuditVerdict, Checkpoint, GENESIS};
use crate::store::{AuditRecord, Store};

/// Why a round refused to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct Refusal {
    /// The `reason` label of `cloudca_audit_checkpoint_refusals_total`: `chain_broken`,
    /// `checkpoints_deleted`, `audit_certificate` (not the pinned one) or `witness`.
    pub reason: &'static str,
    /// What was found, naming the entry or checkpoint.
    pub problem: String,
}

impl Refusal {
    fn new(reason: &'static str, problem: impl Into<String>) -> Refusal {
        Refusal { reason, problem: problem.into() }
    }
}

/// Runs checkpoint rounds for one process: its witness file, the last checkpoint it knows it
/// witnessed, and whether its last round found the chain broken.
pub struct Checkpointer {
    witness: PathBuf,
    /// `[audit] certificate_sha256`: re-checked every round, since the row can change under a
    /// running daemon.
    pinned: Option<String>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The newest checkpoint this process wrote to its witness (or read from it at start).
    last_witnessed: Option<Checkpoint>,
    /// The last round refused because the chain was broken.
    broken: bool,
}

/// What the checks found intact: the head to sign and what the new checkpoint chains to.
struct Segment {
    head_seq: i64,
    head_hash: String,
    latest: Option<Checkpoint>,
}

impl Checkpointer {
    /// A checkpointer writing to `witness`; reads the witness's last line, so a restarted daemon
    /// knows what it signed before. An unreadable witness is reported by every round.
    /// `pinned` is the audit certificate's fingerprint from the configuration.
    pub fn open(witness: PathBuf, pinned: Option<String>) -> Checkpointer {
        let last_witnessed = match witness::last(&witness) {
            Ok(last) => {
                match &last {
                    Some(c) => tracing::info!(witness = %witness.display(), last = %c.name(), "audit witness read"),
                    None => tracing::info!(witness = %witness.display(), "audit witness empty or new"),
                }
                last
            }
            Err(e) => {
                tracing::error!(error = %e, "audit witness unreadable; checkpoints are refused until it is fixed");
                None
            }
        };
        Checkpointer { witness, pinned, state: tokio::sync::Mutex::new(State { last_witnessed, broken: false }) }
    }

    /// One round: checks, then signs the head if it moved since the newest checkpoint. Returns
    /// the entry covered, `None` when there was nothing new, or the refusal.
    pub async fn round(&self, store: &Store, hsm: &HsmPool, now_ms: i64) -> Result<Option<i64>, AuditError> {
        let mut state = self.state.lock().await;
        let segment = match self.check(store, &state, now_ms).await? {
            Ok(segment) => segment,
            Err(refusal) => return Err(refuse(&mut state, refusal)),
        };
        if state.broken {
            recovered(store, now_ms).await?;
            state.broken = false;
        }
        let newest_seq = segment.latest.as_ref().map_or(0, |c| c.seq);
        if segment.head_seq == 0 || segment.head_seq <= newest_seq {
            return Ok(None);
        }
        if let Err(e) = witness::writable(&self.witness) {
            return Err(refuse(&mut state, Refusal::new("witness", format!("{e}; no checkpoint signed"))));
        }
        let (label, algorithm, _) = SignatureCheck::load(store, self.pinned.as_deref()).await?;
        let mut c = Checkpoint {
            counter: Some(segment.latest.as_ref().and_then(|c| c.counter).map_or(1, |n| n + 1)),
            prev_hash: Some(segment.latest.as_ref().map_or_else(|| GENESIS.to_string(), Checkpoint::record_hash)),
            seq: segment.head_seq,
            hash: segment.head_hash,
            at: now_ms,
            signature: Vec::new(),
        };
        c.signature = hsm.sign(&label, algorithm, &c.message()).await?;
        let pending = store.begin_checkpoint(&c).await?;
        if let Err(e) = witness::append(&self.witness, &c) {
            drop(pending);
            return Err(refuse(&mut state, Refusal::new("witness", format!("{e}; no checkpoint signed"))));
        }
        state.last_witnessed = Some(c.clone());
        pending.commit().await?;
        journal(&c);
        Ok(Some(c.seq))
    }

    /// The checks before signing; `Ok(Err(_))` is a refusal, `Err(_)` a failure to check.
    async fn check(&self, store: &Store, state: &State, now_ms: i64) -> Result<Result<Segment, Refusal>, AuditError> {
        // A swapped audit certificate would make a writer's own checkpoints look signed.
        match super::pin::audit_authority(store, self.pinned.as_deref()).await {
            Ok(_) => {}
            Err(super::pin::PinError::Store(e)) => return Err(e.into()),
            Err(e) => return Ok(Err(Refusal::new("audit_certificate", e.to_string()))),
        }
        let tail = match witness::last(&self.witness) {
            Ok(tail) => tail,
            Err(e) => return Ok(Err(Refusal::new("witness", e.to_string()))),
        };
        // The newer of what this process remembers and what its witness says.
        let known = [tail, state.last_witnessed.clone()].into_iter().flatten().max_by_key(|c| c.counter);
        let mut latest = store.latest_checkpoint().await?;
        if let Some(w) = &known {
            if complete_interrupted(store, w, latest.as_ref(), self.pinned.as_deref(), now_ms).await? {
                latest = store.latest_checkpoint().await?;
            }
        }
        let (head_seq, head_hash) = store.audit_head().await?;
        if let Some(w) = &known {
            if let Some(refusal) = against_witness(store, w, latest.as_ref()).await? {
                return Ok(Err(refusal));
            }
        }
        let (from_seq, from_hash) = match &latest {
            None => (0, GENESIS.to_string()),
            Some(c) => {
                if let Some(problem) = check_latest(store, c, self.pinned.as_deref()).await? {
                    return Ok(Err(Refusal::new("chain_broken", problem)));
                }
                (c.seq, c.hash.clone())
            }
        };
        if head_seq < from_seq {
            return Ok(Err(Refusal::new(
                "chain_broken",
                format!("the head says entry {head_seq}, but a signed checkpoint covers entry {from_seq} (log cut)"),
            )));
        }
        match store.verify_audit_segment(from_seq, &from_hash, head_seq, &head_hash).await? {
            AuditVerdict::Intact { .. } => Ok(Ok(Segment { head_seq, head_hash, latest })),
            AuditVerdict::Broken { seq, problem } => {
                Ok(Err(Refusal::new("chain_broken", format!("entry {seq}: {problem}"))))
            }
        }
    }
}

/// A daemon stopped between the witness append and the commit leaves a witnessed checkpoint the
/// database lacks. When it is exactly the next link (the counter after the database's newest,
/// chained to it, signed by the pinned audit key, naming an entry whose hash it holds), the
/// round finishes that commit instead of refusing for ever; anything else stays a deletion.
async fn complete_interrupted(
    store: &Store,
    witnessed: &Checkpoint,
    latest: Option<&Checkpoint>,
    pinned: Option<&str>,
    now_ms: i64,
) -> Result<bool, AuditError> {
    let Some(n) = witnessed.counter else { return Ok(false) };
    if store.checkpoint_by_counter(n).await?.is_some() {
        return Ok(false);
    }
    let expected_counter = latest.and_then(|c| c.counter).map_or(1, |m| m + 1);
    let expected_prev = latest.map_or_else(|| GENESIS.to_string(), Checkpoint::record_hash);
    let next = n == expected_counter
        && witnessed.prev_hash.as_deref() == Some(expected_prev.as_str())
        && witnessed.seq > latest.map_or(0, |c| c.seq);
    if !next || store.audit_hash(witnessed.seq).await?.as_deref() != Some(witnessed.hash.as_str()) {
        return Ok(false);
    }
    let (_, _, signatures) = SignatureCheck::load(store, pinned).await?;
    if !signatures.verifies(witnessed) {
        return Ok(false);
    }
    store.begin_checkpoint(witnessed).await?.commit().await?;
    let record = AuditRecord {
        at: now_ms,
        kind: "audit.checkpoint_completed".into(),
        actor: "daemon".into(),
        serial: None,
        detail: serde_json::json!({ "checkpoint": witnessed.name(), "from": "witness" }).to_string(),
    };
    store.audit(&record).await?;
    tracing::warn!(
        event = "audit.checkpoint_completed",
        checkpoint = %witnessed.name(),
        "a checkpoint witnessed before a stop was missing from the database; its commit is completed"
    );
    Ok(true)
}

/// The last checkpoint this process witnessed must still be in the database, unchanged.
async fn against_witness(
    store: &Store,
    witnessed: &Checkpoint,
    latest: Option<&Checkpoint>,
) -> Result<Option<Refusal>, AuditError> {
    let name = witnessed.name();
    let stored = store.checkpoint_by_counter(witnessed.counter.unwrap_or(0)).await?;
    Ok(match stored {
        Some(c) if c == *witnessed => None,
        Some(_) => Some(Refusal::new(
            "chain_broken",
            format!("{name}: the database's copy differs from this daemon's witness (checkpoint edited)"),
        )),
        None => Some(Refusal::new(
            "checkpoints_deleted",
            format!(
                "{name}: signed and witnessed by this daemon, missing from the database (newest there: {})",
                latest.map_or_else(|| "none".to_string(), Checkpoint::name)
            ),
        )),
    })
}

/// The newest checkpoint: signed by the audit key, linked to the one before it, and still
/// matching the entry it names.
async fn check_latest(store: &Store, c: &Checkpoint, pinned: Option<&str>) -> Result<Option<String>, AuditError> {
    let name = c.name();
    let (_, _, signatures) = SignatureCheck::load(store, pinned).await?;
    if !signatures.verifies(c) {
        return Ok(Some(format!("{name}: signature does not verify with the audit key (checkpoint edited or forged)")));
    }
    if let Some(n) = c.counter {
        let previous = if n > 1 {
            match store.checkpoint_by_counter(n - 1).await? {
                Some(p) => Some(p),
                None => return Ok(Some(format!("checkpoint {}: missing from the database (deleted)", n - 1))),
            }
        } else {
            store.legacy_checkpoint_before(c.seq).await?
        };
        if let Some(problem) = super::verify::link(c, previous.as_ref(), n) {
            return Ok(Some(problem));
        }
    }
    Ok(match store.audit_hash(c.seq).await? {
        Some(h) if h == c.hash => None,
        Some(_) => Some(format!("entry {}: differs from its signed {name} (rewritten)", c.seq)),
        None => Some(format!("entry {}: missing, but {name} covers it (log cut)", c.seq)),
    })
}

/// Counts and reports a refusal; it cannot go into the audit log (the chain it would extend
/// is the one in question), so it goes to the error log, the gauge and the counter.
fn refuse(state: &mut State, refusal: Refusal) -> AuditError {
    let metrics = crate::metrics::get();
    metrics.audit_checkpoint_refusals.with_label_values(&[refusal.reason]).inc();
    if refusal.reason != "witness" {
        state.broken = true;
        metrics.audit_chain_broken.set(1);
    }
    tracing::error!(
        event = "audit.chain_broken",
        reason = refusal.reason,
        problem = %refusal.problem,
        "audit checkpoint refused: nothing is signed over this chain until it is repaired"
    );
    AuditError::Refused(refusal)
}

/// The chain is whole again: record it and lower the gauge.
async fn recovered(store: &Store, now_ms: i64) -> Result<(), AuditError> {
    let record = AuditRecord {
        at: now_ms,
        kind: "audit.chain_recovered".into(),
        actor: "daemon".into(),
        serial: None,
        detail: serde_json::json!({ "checked": "newest checkpoint, entries to the head, witness" }).to_string(),
    };
    store.audit(&record).await?;
    crate::metrics::get().audit_chain_broken.set(0);
    tracing::warn!(event = "audit.chain_recovered", "audit chain intact again; checkpoints resume");
    Ok(())
}

/// Under systemd, each checkpoint also goes to the journal: a second copy outside the database.
fn journal(c: &Checkpoint) {
    let systemd = std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some();
    if systemd {
        tracing::info!(event = "audit.checkpoint", witness = %witness::line(c), "audit checkpoint signed");
    }
}
