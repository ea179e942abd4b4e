//! Identity proofs and the writes that spend them. A PIN is set (first PIN, unlock, reset)
//! only in the same transaction that spends a passed proof for exactly that action, target and
//! phone, so a proof works once, and a failed or refused attempt writes nothing else.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, Store, StoreError};

/// An identity proof as stored.
#[derive(Debug, Clone)]
pub struct ProofRecord {
    /// Random id.
    pub id: String,
    /// The logged-in holder who started it.
    pub phone: String,
    /// `enrol`, `unlock` or `reset`.
    pub purpose: String,
    /// The approval (enrol) or credential it is for.
    pub target: String,
    /// `face` or `bank_card`.
    pub method: String,
    /// The provider's face session, or the bank card's reserved phone.
    pub reference: String,
    /// `pending`, `passed`, `failed` or `used`.
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Not usable after this (unix seconds).
    pub expires_at: i64,
}

const COLUMNS: &str = "id, phone, purpose, target, method, reference, state, created_at, expires_at";

fn proof(r: &AnyRow) -> Result<ProofRecord, sqlx::Error> {
    Ok(ProofRecord {
        id: r.try_get("id")?,
        phone: r.try_get("phone")?,
        purpose: r.try_get("purpose")?,
        target: r.try_get("target")?,
        method: r.try_get("method")?,
        reference: r.try_get("reference")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Spends a passed proof inside a transaction: true when it was passed, unexpired, and for
/// exactly this phone, purpose and target.
async fn spend(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    p: &ProofSpend<'_>,
    now: i64,
) -> Result<bool, StoreError> {
    let spent = sqlx::query(
        "UPDATE identity_proofs SET state = 'used', updated_at = $5 WHERE id = $1 AND phone = $2 AND purpose = $3 \
         AND target = $4 AND state = 'passed' AND expires_at > $5",
    )
    .bind(p.id)
    .bind(p.phone)
    .bind(p.purpose)
    .bind(p.target)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(spent == 1)
}

/// Which proof a write spends, and what it must have been for.
#[derive(Debug, Clone, Copy)]
pub struct ProofSpend<'a> {
    /// Proof id.
    pub id: &'a str,
    /// The holder's phone.
    pub phone: &'a str,
    /// `enrol`, `unlock` or `reset`.
    pub purpose: &'a str,
    /// Approval or credential id.
    pub target: &'a str,
}

impl Store {
    /// Records a started proof with its audit event.
    pub async fn insert_proof(&self, p: &ProofRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO identity_proofs ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8)"
        );
        let q = sqlx::query(&sql)
            .bind(&p.id)
            .bind(&p.phone)
            .bind(&p.purpose)
            .bind(&p.target)
            .bind(&p.method)
            .bind(&p.reference)
            .bind(&p.state)
            .bind(p.created_at)
            .bind(p.expires_at);
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// One proof.
    pub async fn proof(&self, id: &str) -> Result<Option<ProofRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM identity_proofs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(proof).transpose().map_err(StoreError::from)
    }

    /// Proofs started for a target since `since`: the per-credential (and per-approval) limit,
    /// counted in the database so it holds across daemons.
    pub async fn proofs_started_since(&self, target: &str, since: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM identity_proofs WHERE target = $1 AND created_at >= $2")
            .bind(target)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Records the provider's verdict on a pending proof (`pending` → `passed` or `failed`),
    /// with its audit event; false when it was no longer pending.
    pub async fn judge_proof(&self, id: &str, to: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let q =
            sqlx::query("UPDATE identity_proofs SET state = $2, updated_at = $3 WHERE id = $1 AND state = 'pending'")
                .bind(id)
                .bind(to)
                .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Spends an enrolment proof and claims its approval (`approved` → `enrolling`, unexpired)
    /// in one transaction, with the audit event. False, and nothing written, unless both hold.
    pub async fn claim_approval_with_proof(
        &self,
        p: &ProofSpend<'_>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE approvals SET status = 'enrolling' WHERE id = $1 AND phone = $2 AND status = 'approved' \
             AND expires_at > $3",
        )
        .bind(p.target)
        .bind(p.phone)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 || !spend(&mut tx, p, now).await? {
            return Ok(false);
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// Spends an unlock or reset proof and sets the new PIN hash in one transaction, with the
    /// audit event: only on a credential of this phone in `from` (`locked` for an unlock,
    /// `active` for a reset); it ends active with no failures counted. An unlock (given its
    /// `allowance`) also counts against the credential's unlock allowance in the same
    /// statement (see [`Store::lift_lock`]). False, and nothing written, unless all hold.
    pub async fn reset_pin_with_proof(
        &self,
        p: &ProofSpend<'_>,
        from: &str,
        pin_hash: &str,
        now: i64,
        allowance: Option<super::custody::UnlockAllowance>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let set = match allowance {
            Some(allowance) => {
                let (since, max) = allowance.window(now);
                let sql = format!(
                    "UPDATE credentials SET pin_hash = $5, failed_attempts = 0, status = 'active', updated_at = $2, \
                     {} WHERE id = $1 AND phone = $6 AND status = $7 AND {}",
                    super::custody::COUNT_UNLOCK,
                    super::custody::UNLOCK_ALLOWED
                );
                let q = sqlx::query(&sql).bind(p.target).bind(now).bind(since).bind(max);
                q.bind(pin_hash).bind(p.phone).bind(from).execute(&mut *tx).await?.rows_affected()
            }
            None => sqlx::query(
                "UPDATE credentials SET pin_hash = $3, failed_attempts = 0, status = 'active', updated_at = $5 \
                 WHERE id = $1 AND phone = $2 AND status = $4",
            )
            .bind(p.target)
            .bind(p.phone)
            .bind(pin_hash)
            .bind(from)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if set != 1 || !spend(&mut tx, p, now).await? {
            return Ok(false);
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }
}
