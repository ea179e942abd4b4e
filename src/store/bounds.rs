//! Rows that bound what strangers can make the CA spend (security review M7, M12): the global
//! SMS budget per clock hour, whether a phone may receive a login code at all, the per-order
//! upload quota, and the collection of blobs no material references any more.
//!
//! Every bound is one conditional `UPDATE … WHERE counter < limit` on a row, so it holds exactly
//! across daemons on one database: the row lock (PostgreSQL) or the single writer (SQLite)
//! orders concurrent takers, and the loser sees zero rows changed.

use sqlx::{Any, Row, Transaction};

use super::{AuditRecord, NewMaterial, Store, StoreError};

/// Hours of SMS budget rows kept (older ones are deleted when a new hour starts).
const BUDGET_ROWS_KEPT_HOURS: i64 = 48;

/// Why an upload was not stored: the order's bounds (nothing was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefusal {
    /// The order's uploads, replaced ones included, would pass `ra.order_upload_bytes`.
    Quota,
    /// This kind of material was uploaded `ra.uploads_per_material` times already.
    Replacements,
}

/// The bounds an upload is checked against.
#[derive(Debug, Clone, Copy)]
pub struct UploadBounds {
    /// Most bytes one order may upload in total, replaced uploads included.
    pub order_bytes: i64,
    /// Most uploads of one kind of material per order, the first included.
    pub per_material: i64,
}

impl Store {
    /// Takes one SMS from the budget of clock hour `hour` (unix seconds / 3600): true when
    /// fewer than `budget` were sent in that hour by any daemon on this database.
    pub async fn take_sms_budget(&self, hour: i64, budget: i64) -> Result<bool, StoreError> {
        let created = sqlx::query("INSERT INTO sms_budget (hour, sent) VALUES ($1, 0) ON CONFLICT (hour) DO NOTHING")
            .bind(hour)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if created == 1 {
            // A new hour: the old rows have done their job.
            sqlx::query("DELETE FROM sms_budget WHERE hour < $1")
                .bind(hour - BUDGET_ROWS_KEPT_HOURS)
                .execute(&self.pool)
                .await?;
        }
        let taken = sqlx::query("UPDATE sms_budget SET sent = sent + 1 WHERE hour = $1 AND sent < $2")
            .bind(hour)
            .bind(budget)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(taken == 1)
    }

    /// Whether a phone may be sent login and administrator codes: it has an approval waiting
    /// for enrolment, a credential that is not destroyed, or a place in an organisation (put
    /// there by its administrator). Anyone else has nothing to log in to, so texting them only
    /// serves SMS pumping and bombing.
    pub async fn phone_has_standing(&self, phone: &str, now: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM approvals WHERE phone = $1 AND status = 'approved' AND expires_at > $2) \
             + (SELECT COUNT(*) FROM credentials WHERE phone = $1 AND status IN ('active', 'locked')) \
             + (SELECT COUNT(*) FROM org_members WHERE phone = $1) AS n",
        )
        .bind(phone)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Stores an applicant's upload within the order's bounds, in one transaction: charges the
    /// order's byte quota and the kind's upload count, stores the blob once, replaces the
    /// earlier upload of that kind, deletes the earlier blob when nothing references it any
    /// more, and appends the audit record. A refusal writes nothing.
    pub async fn put_material_within(
        &self,
        m: &NewMaterial<'_>,
        bounds: UploadBounds,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<Result<(), UploadRefusal>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Err(refusal) = charge_upload(&mut tx, m, bounds).await? {
            tx.rollback().await?;
            return Ok(Err(refusal));
        }
        replace_material(&mut tx, m, now).await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(Ok(()))
    }

    /// Saves an open order (compare-and-set on its version, as `save_order`) and stores `m` as
    /// one of its materials within `bounds`, in one transaction: the legal representative's
    /// letter signed online and the authorisation it carries are kept together or not at all
    /// (review of the letter link, L2). `Ok(false)`: the order changed meanwhile.
    pub async fn save_order_with_material(
        &self,
        o: &super::OrderRecord,
        m: &NewMaterial<'_>,
        bounds: UploadBounds,
        now: i64,
        audits: &[&AuditRecord],
    ) -> Result<Result<bool, UploadRefusal>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let query = super::ra::bind_order(sqlx::query(super::ra::SAVE_ORDER), o);
        if query.execute(&mut *tx).await.map_err(StoreError::classify)?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Ok(false));
        }
        if let Err(refusal) = charge_upload(&mut tx, m, bounds).await? {
            tx.rollback().await?;
            return Ok(Err(refusal));
        }
        replace_material(&mut tx, m, now).await?;
        super::writer::insert_audits(&mut tx, audits).await?;
        super::audit::commit(tx, audits.len()).await?;
        Ok(Ok(true))
    }

    /// Deletes up to `limit` blobs created before `before` that no material references
    /// (uploads a crash left behind, or replaced before blobs were collected on replacement).
    /// Returns how many went, and empties the SQLite WAL when any did ([`Store::empty_wal`]).
    /// Meant for the RA background pass.
    pub async fn sweep_unreferenced_blobs(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM ra_blobs WHERE sha256 IN (SELECT b.sha256 FROM ra_blobs b WHERE b.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM ra_materials m WHERE m.sha256 = b.sha256) LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if deleted > 0 {
            // The documents leave no copy in the WAL (an upload grows it past the frames
            // normal traffic writes over).
            self.empty_wal("the sweep of unreferenced uploads").await;
        }
        Ok(deleted)
    }

    /// Whether a blob is stored (tests and the sweep's callers).
    pub async fn blob_exists(&self, sha256: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM ra_blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}

/// Spends the upload's bytes from the order's quota and one upload of its kind, or says which
/// bound refuses it. Each is a conditional update of one row, so two daemons cannot both pass
/// the last byte.
async fn charge_upload(
    tx: &mut Transaction<'static, Any>,
    m: &NewMaterial<'_>,
    bounds: UploadBounds,
) -> Result<Result<(), UploadRefusal>, StoreError> {
    let size = m.bytes.len() as i64;
    sqlx::query("INSERT INTO ra_upload_totals (order_id, bytes) VALUES ($1, 0) ON CONFLICT (order_id) DO NOTHING")
        .bind(m.order_id)
        .execute(&mut **tx)
        .await?;
    let charged =
        sqlx::query("UPDATE ra_upload_totals SET bytes = bytes + $2 WHERE order_id = $1 AND bytes + $2 <= $3")
            .bind(m.order_id)
            .bind(size)
            .bind(bounds.order_bytes)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if charged != 1 {
        return Ok(Err(UploadRefusal::Quota));
    }
    sqlx::query(
        "INSERT INTO ra_upload_counts (order_id, kind, uploads) VALUES ($1, $2, 0) \
         ON CONFLICT (order_id, kind) DO NOTHING",
    )
    .bind(m.order_id)
    .bind(m.kind)
    .execute(&mut **tx)
    .await?;
    let counted = sqlx::query(
        "UPDATE ra_upload_counts SET uploads = uploads + 1 WHERE order_id = $1 AND kind = $2 AND uploads < $3",
    )
    .bind(m.order_id)
    .bind(m.kind)
    .bind(bounds.per_material)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if counted != 1 {
        return Ok(Err(UploadRefusal::Replacements));
    }
    Ok(Ok(()))
}

/// Stores the blob (once), links it to the order under its kind in place of the earlier
/// upload, and deletes the earlier blob when no material references it any more (another
/// order may have uploaded the same bytes: blobs are content-addressed and shared).
pub(super) async fn replace_material(
    tx: &mut Transaction<'static, Any>,
    m: &NewMaterial<'_>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ra_blobs (sha256, content_type, bytes, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(m.sha256)
    .bind(m.content_type)
    .bind(m.bytes)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let old: Option<String> = sqlx::query("SELECT sha256 FROM ra_materials WHERE order_id = $1 AND kind = $2")
        .bind(m.order_id)
        .bind(m.kind)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("sha256"))
        .transpose()?;
    sqlx::query("DELETE FROM ra_materials WHERE order_id = $1 AND kind = $2")
        .bind(m.order_id)
        .bind(m.kind)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO ra_materials (order_id, kind, sha256, size, uploaded_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(m.order_id)
        .bind(m.kind)
        .bind(m.sha256)
        .bind(m.bytes.len() as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    if let Some(old) = old.filter(|old| old != m.sha256) {
        sqlx::query(
            "DELETE FROM ra_blobs WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM ra_materials WHERE sha256 = $1)",
        )
        .bind(&old)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
