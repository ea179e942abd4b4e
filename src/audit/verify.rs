//! The full verification behind `cloudca audit verify` and `GET /v1/audit/verify`: the entry
//! chain, every checkpoint (signature, the entry it names, its link to the checkpoint before
//! it, no counter missing), then each witness file (every checkpoint it holds is in the
//! database, unchanged; the database's newest is not older than the witness's).

use std::collections::HashMap;
use std::path::PathBuf;

use super::witness::{self, WitnessError};
use super::{AuditError, SignatureCheck};
use crate::store::audit::{AuditVerdict, Checkpoint, GENESIS};
use crate::store::Store;

/// What the full verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Chain, checkpoints and witnesses intact.
    Intact {
        /// Entries.
        entries: i64,
        /// Checkpoints verified.
        checkpoints: usize,
        /// Witness records found in the database unchanged (over all witness files read).
        witnessed: usize,
    },
    /// The first problem, naming the entry or checkpoint and what is wrong.
    Broken(String),
}

/// A witness file to check the database against.
#[derive(Debug, Clone)]
pub struct WitnessSource {
    /// The file.
    pub path: PathBuf,
    /// Named by the operator (`--witness`): missing is always an error. The default
    /// (`<data_dir>/audit-witness.log`) may be missing only while the database holds no
    /// chained checkpoint yet (a new CA whose daemon has not signed one).
    pub explicit: bool,
}

/// Verifies the audit certificate against its pin (`[audit] certificate_sha256`), then entries,
/// checkpoints and the given witnesses. A swapped certificate is a broken verdict: checkpoints
/// "verifying" with a database writer's own key prove nothing. A missing or unreadable witness
/// is an error ([`AuditError::Witness`]), not a verdict: without it nothing can be said.
///
/// A checkpoint round writes the witness before it commits the checkpoint to the database, so a
/// verify running between the two sees the newest witness record without its row. Only that
/// case (the last record of a witness, one past the database's newest) is read again, for up to
/// [`PENDING_WAIT`]: a deleted newest checkpoint is still reported, a moment later.
pub async fn verify(store: &Store, witnesses: &[WitnessSource], pinned: Option<&str>) -> Result<Verdict, AuditError> {
    let deadline = tokio::time::Instant::now() + PENDING_WAIT;
    loop {
        match verify_once(store, witnesses, pinned).await? {
            Outcome::Done(verdict) => return Ok(verdict),
            Outcome::Pending(problem) if tokio::time::Instant::now() >= deadline => {
                return Ok(Verdict::Broken(problem))
            }
            Outcome::Pending(_) => tokio::time::sleep(PENDING_POLL).await,
        }
    }
}

/// How long a witnessed checkpoint may take to reach the database (a round commits it right
/// after writing the witness; seconds cover a loaded machine).
pub const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a pending checkpoint is looked for again.
const PENDING_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// One pass: a verdict, or a newest witnessed checkpoint not (yet) in the database.
enum Outcome {
    Done(Verdict),
    Pending(String),
}

async fn verify_once(store: &Store, witnesses: &[WitnessSource], pinned: Option<&str>) -> Result<Outcome, AuditError> {
    let broken = |problem: String| Ok(Outcome::Done(Verdict::Broken(problem)));
    match super::pin::audit_authority(store, pinned).await {
        Ok(_) => {}
        Err(super::pin::PinError::Store(e)) => return Err(e.into()),
        Err(e) => return broken(e.to_string()),
    }
    let checkpoints = store.checkpoints().await?;
    let chained = checkpoints.iter().any(|c| c.counter.is_some());
    let mut witnessed = Vec::new();
    for source in witnesses {
        match witness::read_all(&source.path) {
            Ok(records) => witnessed.push((source.path.clone(), records)),
            Err(WitnessError::Missing(_)) if !source.explicit && !chained => {}
            Err(e) => return Err(e.into()),
        }
    }
    let entries = match store.verify_audit().await? {
        AuditVerdict::Intact { entries, .. } => entries,
        AuditVerdict::Broken { seq, problem } => return broken(format!("entry {seq}: {problem}")),
    };
    if let Some(problem) = check_checkpoints(store, &checkpoints, pinned).await? {
        return broken(problem);
    }
    let by_counter: HashMap<i64, &Checkpoint> = checkpoints.iter().filter_map(|c| c.counter.map(|n| (n, c))).collect();
    let newest = by_counter.keys().max().copied().unwrap_or(0);
    let mut count = 0;
    for (path, records) in &witnessed {
        for (i, w) in records.iter().enumerate() {
            if let Some(problem) = against_witness(w, &by_counter, newest, path) {
                let last = i + 1 == records.len();
                let pending = last && w.counter == Some(newest + 1);
                return Ok(if pending { Outcome::Pending(problem) } else { Outcome::Done(Verdict::Broken(problem)) });
            }
            count += 1;
        }
    }
    Ok(Outcome::Done(Verdict::Intact { entries, checkpoints: checkpoints.len(), witnessed: count }))
}

/// Every checkpoint in entry order: signed by the audit key, matching the entry it names,
/// chained (counters 1, 2, 3 ... each naming the previous record's hash; legacy ones first).
async fn check_checkpoints(
    store: &Store,
    checkpoints: &[Checkpoint],
    pinned: Option<&str>,
) -> Result<Option<String>, AuditError> {
    if checkpoints.is_empty() {
        return Ok(None);
    }
    let (_, _, signatures) = SignatureCheck::load(store, pinned).await?;
    let mut previous: Option<&Checkpoint> = None;
    let mut expected = 1;
    for c in checkpoints {
        let name = c.name();
        if !signatures.verifies(c) {
            return Ok(Some(format!(
                "{name}: signature does not verify with the audit key (checkpoint edited or forged)"
            )));
        }
        match store.audit_hash(c.seq).await? {
            Some(h) if h == c.hash => {}
            Some(_) => return Ok(Some(format!("entry {}: differs from its signed {name} (rewritten)", c.seq))),
            None => return Ok(Some(format!("entry {}: missing, but a signed checkpoint covers it (log cut)", c.seq))),
        }
        if let Some(problem) = link(c, previous, expected) {
            return Ok(Some(problem));
        }
        if let Some(n) = c.counter {
            expected = n + 1;
        }
        previous = Some(c);
    }
    Ok(None)
}

/// What is wrong with `c`'s place in the chain of checkpoints, if anything.
pub(super) fn link(c: &Checkpoint, previous: Option<&Checkpoint>, expected: i64) -> Option<String> {
    let name = c.name();
    let Some(n) = c.counter else {
        return (expected > 1).then(|| {
            format!("{name}: an unchained checkpoint after chained ones (inserted, or signed by a daemon older than migration 13)")
        });
    };
    if n > expected {
        return Some(format!(
            "checkpoint {expected}: missing from the database, the next one is {name} (checkpoint missing: deleted)"
        ));
    }
    if n < expected {
        return Some(format!("{name}: out of order (checkpoint inserted or reordered)"));
    }
    let wanted = previous.map(Checkpoint::record_hash).unwrap_or_else(|| GENESIS.to_string());
    if c.prev_hash.as_deref() != Some(wanted.as_str()) {
        return Some(format!(
            "{name}: does not link to the checkpoint before it (checkpoint edited, inserted or replaced)"
        ));
    }
    None
}

/// One witness record against the database's checkpoints.
fn against_witness(
    w: &Checkpoint,
    by_counter: &HashMap<i64, &Checkpoint>,
    newest: i64,
    path: &std::path::Path,
) -> Option<String> {
    let name = w.name();
    let file = path.display();
    match by_counter.get(&w.counter.unwrap_or(0)) {
        None if w.counter.unwrap_or(0) > newest => Some(format!(
            "{name}: in witness {file}, but the database's newest is checkpoint {newest} \
             (checkpoint missing: checkpoints deleted, or entries cut from the end with them)"
        )),
        None => Some(format!("{name}: in witness {file}, not in the database (checkpoint missing: deleted)")),
        Some(c) if *c != w => {
            Some(format!("{name}: differs from the copy in witness {file} (checkpoint edited or replaced)"))
        }
        Some(_) => None,
    }
}
