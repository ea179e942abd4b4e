//! The audit chain: how an entry is hashed, and the verification that walks the chain.

use futures_util::TryStreamExt;
use sha2::Digest;
use sqlx::Row;

use super::{jcs, AuditRecord, Store, StoreError};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 (hex) over the RFC 8785 canonical JSON (JCS) of `[seq, at, kind, actor, serial,
/// detail, prev_hash]` (`serial` null when absent), so any JCS tool recomputes it. The detail is
/// hashed as the string it is stored as, never re-serialised, so no JSON library's map order
/// can change a hash. Entries written before JCS hashed serde_json's compact text of the same
/// array, which is byte-identical for strings and safe integers: old chains verify unchanged
/// (pinned in `tests/it/audit_hash.rs`). `seq` and `at` are safe integers (within 2^53, as JCS
/// numbers are exact there); the walk refuses entries whose are not.
pub fn entry_hash(seq: i64, a: &AuditRecord, prev_hash: &str) -> String {
    use super::jcs::Value::{Integer, Null, String as Text};
    let serial = a.serial.as_deref().map_or(Null, Text);
    let canonical = super::jcs::array(&[
        Integer(seq),
        Integer(a.at),
        Text(&a.kind),
        Text(&a.actor),
        serial,
        Text(&a.detail),
        Text(prev_hash),
    ]);
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry chains to the previous one and the head matches.
    Intact {
        /// Entries checked.
        entries: i64,
        /// Hash of the last entry.
        head: String,
    },
    /// The first problem, naming the entry.
    Broken {
        /// The sequence number where the chain breaks.
        seq: i64,
        /// What is wrong there.
        problem: String,
    },
}

/// A signed checkpoint of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Position in the chain of checkpoints (1, 2, 3 ...); `None` for a legacy checkpoint
    /// written before migration 13, which starts the chain.
    pub counter: Option<i64>,
    /// [`Checkpoint::record_hash`] of the previous checkpoint ([`GENESIS`] for the first);
    /// `None` for a legacy checkpoint.
    pub prev_hash: Option<String>,
    /// The entry it covers.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// Unix milliseconds.
    pub at: i64,
    /// Signature by the audit key over [`Checkpoint::message`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The bytes the audit key signs: a domain-separation tag, then counter, previous
    /// checkpoint's hash, seq, head hash and time for a chained checkpoint; the legacy form
    /// (tag, seq, hash, time) for one written before checkpoints were chained.
    pub fn message(&self) -> Vec<u8> {
        let (seq, hash, at) = (self.seq, &self.hash, self.at);
        match (self.counter, &self.prev_hash) {
            (Some(counter), Some(prev)) => {
                format!("cloudca-audit-checkpoint-v2\n{counter}\n{prev}\n{seq}\n{hash}\n{at}").into_bytes()
            }
            _ => format!("cloudca-audit-checkpoint\n{seq}\n{hash}\n{at}").into_bytes(),
        }
    }

    /// SHA-256 (hex) of the signed message: what the next checkpoint's `prev_hash` names.
    pub fn record_hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.message()))
    }

    /// How reports name it: `checkpoint 7 (entry 120)`, or `legacy checkpoint (entry 40)`.
    pub fn name(&self) -> String {
        match self.counter {
            Some(n) => format!("checkpoint {n} (entry {})", self.seq),
            None => format!("legacy checkpoint (entry {})", self.seq),
        }
    }
}

/// Commits a transaction that appended `appended` audit entries, and counts them.
pub(super) async fn commit(tx: sqlx::Transaction<'_, sqlx::Any>, appended: usize) -> Result<(), StoreError> {
    tx.commit().await?;
    crate::metrics::get().audit_appends.inc_by(appended as u64);
    Ok(())
}

/// A checkpoint row inserted but not committed: the caller writes its witness first, then
/// [`PendingCheckpoint::commit`]s (dropping it rolls the row back). A second signer racing for
/// the same counter fails at the insert, before any witness holds its copy.
pub struct PendingCheckpoint {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl PendingCheckpoint {
    /// Makes the checkpoint durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

const CHECKPOINT_COLUMNS: &str = "counter, prev_hash, seq, hash, at, signature";

fn checkpoint_row(r: &sqlx::any::AnyRow) -> Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        counter: r.try_get("counter")?,
        prev_hash: r.try_get("prev_hash")?,
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        at: r.try_get("at")?,
        signature: r.try_get("signature")?,
    })
}

impl Store {
    /// The head of the chain: (last seq, its hash).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?;
        Ok((head.try_get("seq")?, head.try_get("hash")?))
    }

    /// Inserts a signed checkpoint in a transaction left open for the witness write.
    pub async fn begin_checkpoint(&self, c: &Checkpoint) -> Result<PendingCheckpoint, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (counter, prev_hash, seq, hash, at, signature) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.counter)
        .bind(&c.prev_hash)
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.at)
        .bind(&c.signature)
        .execute(&mut *tx)
        .await?;
        Ok(PendingCheckpoint { tx })
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(checkpoint_row).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    /// The newest checkpoint (highest entry covered), if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1");
        let row = sqlx::query(&sql).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(checkpoint_row).transpose()?)
    }

    /// The chained checkpoint with this counter, if stored.
    pub async fn checkpoint_by_counter(&self, counter: i64) -> Result<Option<Checkpoint>, StoreError> {
        let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE counter = $1");
        let row = sqlx::query(&sql).bind(counter).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(checkpoint_row).transpose()?)
    }

    /// The newest legacy (unchained) checkpoint below entry `seq`: what checkpoint 1 links to.
    pub async fn legacy_checkpoint_before(&self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE counter IS NULL AND seq < $1 ORDER BY seq DESC LIMIT 1"
        );
        let row = sqlx::query(&sql).bind(seq).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(checkpoint_row).transpose()?)
    }

    /// The hash of one entry, as stored.
    pub async fn audit_hash(&self, seq: i64) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT hash FROM audit_events WHERE seq = $1").bind(seq).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("hash")).transpose()?)
    }

    /// Walks the chain in sequence order (streaming) up to the head as it stood when the walk
    /// began, and names the first entry that was edited, deleted, inserted or reordered. The
    /// head is read first: entries appended while the walk runs (by this daemon or another)
    /// are past it and are left to the next verification instead of looking like a cut.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        let (head_seq, head_hash) = self.audit_head().await?;
        self.verify_audit_segment(0, GENESIS, head_seq, &head_hash).await
    }

    /// Walks the entries after `from_seq` (whose hash is `from_hash`: a verified checkpoint,
    /// or the genesis) up to the head `head_seq`/`head_hash`, recomputing every link; then
    /// looks for rows past the head. What the checkpoint job checks before it signs.
    pub async fn verify_audit_segment(
        &self,
        from_seq: i64,
        from_hash: &str,
        head_seq: i64,
        head_hash: &str,
    ) -> Result<AuditVerdict, StoreError> {
        let mut rows = sqlx::query(
            "SELECT seq, at, kind, actor, serial, detail, prev_hash, hash FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(from_seq)
        .bind(head_seq)
        .fetch(&self.pool);
        let mut expected_seq = from_seq + 1;
        let mut prev = from_hash.to_string();
        while let Some(r) = rows.try_next().await? {
            let seq: i64 = r.try_get("seq")?;
            let record = AuditRecord {
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                serial: r.try_get("serial")?,
                detail: r.try_get("detail")?,
            };
            let prev_hash: String = r.try_get("prev_hash")?;
            let hash: String = r.try_get("hash")?;
            if let Some(problem) = link_problem(seq, expected_seq, &record, &prev_hash, &hash, &prev) {
                return Ok(AuditVerdict::Broken { seq: expected_seq.min(seq), problem });
            }
            prev = hash;
            expected_seq += 1;
        }
        drop(rows);
        if head_seq != expected_seq - 1 || head_hash != prev {
            return Ok(AuditVerdict::Broken {
                seq: expected_seq,
                problem: format!(
                    "the chain ends at entry {} but its head says {head_seq} (entries removed from the end)",
                    expected_seq - 1
                ),
            });
        }
        // Rows past the head that the head never counted were written around the chain. Read
        // the highest row before the head again: a genuine append commits both at once.
        let max_row = sqlx::query("SELECT MAX(seq) AS seq FROM audit_events").fetch_one(&self.pool).await?;
        let max_seq: Option<i64> = max_row.try_get("seq")?;
        let (now_head, _) = self.audit_head().await?;
        if max_seq.unwrap_or(0) > now_head {
            return Ok(AuditVerdict::Broken {
                seq: now_head + 1,
                problem: "entries past the head of the chain (written around it)".into(),
            });
        }
        Ok(AuditVerdict::Intact { entries: expected_seq - 1, head: prev })
    }
}

/// What is wrong with one row of the walk, if anything: its position, its link to the entry
/// before it, or its own hash.
fn link_problem(
    seq: i64,
    expected_seq: i64,
    record: &AuditRecord,
    prev_hash: &str,
    hash: &str,
    prev: &str,
) -> Option<String> {
    if seq != expected_seq {
        return Some(if seq > expected_seq {
            format!("entries {expected_seq}..{} are missing (deleted)", seq - 1)
        } else {
            "out of sequence".to_string()
        });
    }
    if prev_hash != prev {
        return Some("does not chain to the entry before it (inserted, deleted or reordered)".into());
    }
    if !jcs::is_safe_integer(seq) || !jcs::is_safe_integer(record.at) {
        return Some("its time or position is beyond what its hash covers exactly (edited)".into());
    }
    if entry_hash(seq, record, prev_hash) != hash {
        return Some("its content does not match its hash (edited)".into());
    }
    None
}

/// One audit entry as stored, for queries.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Position in the chain.
    pub seq: i64,
    /// The event.
    pub record: AuditRecord,
    /// Its chain hash.
    pub hash: String,
}

/// Filters of an audit query; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    pub after_seq: i64,
    /// Exact action, e.g. `certificate.revoked`.
    pub kind: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact object serial.
    pub serial: Option<String>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Audit entries in sequence order matching the query (keyset pagination on `seq`).
    pub async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql =
            String::from("SELECT seq, at, kind, actor, serial, detail, hash FROM audit_events WHERE seq > $1");
        let mut binds = Vec::new();
        for (column, value) in [("kind", &q.kind), ("actor", &q.actor), ("serial", &q.serial)] {
            if let Some(v) = value {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {column} = ${}", binds.len() + 1));
            }
        }
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", binds.len() + 2));
        let mut query = sqlx::query(&sql).bind(q.after_seq);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.bind(q.limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    record: AuditRecord {
                        at: r.try_get("at")?,
                        kind: r.try_get("kind")?,
                        actor: r.try_get("actor")?,
                        serial: r.try_get("serial")?,
                        detail: r.try_get("detail")?,
                    },
                    hash: r.try_get("hash")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// When the newest checkpoint was signed (unix milliseconds), for the checkpoint-age gauge.
    pub async fn last_checkpoint_at(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(at) AS at FROM audit_checkpoints").fetch_one(&self.pool).await?;
        Ok(row.try_get("at")?)
    }
}
