//! The audit chain: how an entry is hashed, and the verification that walks the chain.

use futures_util::TryStreamExt;
use sha2::Digest;
use sqlx::Row;

use super::{AuditRecord, Store, StoreError};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the canonical JSON of an entry and the previous entry's hash. JSON arrays of
/// plain values serialise one way only, so the hash is reproducible by any tool.
pub fn entry_hash(seq: i64, a: &AuditRecord, prev_hash: &str) -> String {
    let canonical = serde_json::json!([seq, a.at, a.kind, a.actor, a.serial, a.detail, prev_hash]).to_string();
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
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The entry it covers.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// Unix milliseconds.
    pub at: i64,
    /// Signature by the audit key over [`checkpoint_message`].
    pub signature: Vec<u8>,
}

/// The bytes the audit key signs for a checkpoint.
pub fn checkpoint_message(seq: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("cloudca-audit-checkpoint\n{seq}\n{hash}\n{at}").into_bytes()
}

/// Commits a transaction that appended `appended` audit entries, and counts them.
pub(super) async fn commit(tx: sqlx::Transaction<'static, sqlx::Any>, appended: usize) -> Result<(), StoreError> {
    tx.commit().await?;
    crate::metrics::get().audit_appends.inc_by(appended as u64);
    Ok(())
}

impl Store {
    /// The head of the chain: (last seq, its hash).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?;
        Ok((head.try_get("seq")?, head.try_get("hash")?))
    }

    /// Stores a signed checkpoint.
    pub async fn put_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING")
            .bind(c.seq)
            .bind(&c.hash)
            .bind(c.at)
            .bind(&c.signature)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query("SELECT seq, hash, at, signature FROM audit_checkpoints ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    at: r.try_get("at")?,
                    signature: r.try_get("signature")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
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
        let mut rows = sqlx::query(
            "SELECT seq, at, kind, actor, serial, detail, prev_hash, hash FROM audit_events WHERE seq <= $1 ORDER BY seq",
        )
        .bind(head_seq)
        .fetch(&self.pool);
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_string();
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
            if seq != expected_seq {
                let problem = if seq > expected_seq {
                    format!("entries {expected_seq}..{} are missing (deleted)", seq - 1)
                } else {
                    "out of sequence".to_string()
                };
                return Ok(AuditVerdict::Broken { seq: expected_seq.min(seq), problem });
            }
            if prev_hash != prev {
                return Ok(AuditVerdict::Broken {
                    seq,
                    problem: "does not chain to the entry before it (inserted, deleted or reordered)".into(),
                });
            }
            if entry_hash(seq, &record, &prev_hash) != hash {
                return Ok(AuditVerdict::Broken {
                    seq,
                    problem: "its content does not match its hash (edited)".into(),
                });
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
