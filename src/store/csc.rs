//! CSC API authorisations (`csc_authorizations`): the handle a platform polls, the SAD issued
//! once (its hash only) and spent once. Each change is one conditional statement with its
//! audit event, so two daemons (or two requests) never both issue or both spend.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, CredentialRecord, Store, StoreError};

/// One CSC authorisation as stored.
#[derive(Debug, Clone)]
pub struct CscAuthorizationRecord {
    /// Random handle returned by `credentials/authorize`.
    pub handle: String,
    /// The registered platform that asked: only it may poll or spend.
    pub platform: String,
    /// The signing session the holder approves.
    pub session_id: String,
    /// The credential named in `credentials/authorize`.
    pub credential_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Hex SHA-256 of the SAD once issued.
    pub sad_hash: Option<String>,
    /// Unix seconds after which the SAD is refused.
    pub sad_expires_at: Option<i64>,
    /// Unix seconds when `signHash` spent the SAD, or `signPolling` released the signed PDF.
    pub spent_at: Option<i64>,
    /// `hashes` (`credentials/authorize`, released by `signHash` with a SAD) or `document`
    /// (`signatures/signDoc`, released by `signPolling`).
    pub kind: String,
}

const COLUMNS: &str =
    "handle, platform, session_id, credential_id, created_at, sad_hash, sad_expires_at, spent_at, kind";

fn record(r: &AnyRow) -> Result<CscAuthorizationRecord, sqlx::Error> {
    Ok(CscAuthorizationRecord {
        handle: r.try_get("handle")?,
        platform: r.try_get("platform")?,
        session_id: r.try_get("session_id")?,
        credential_id: r.try_get("credential_id")?,
        created_at: r.try_get("created_at")?,
        sad_hash: r.try_get("sad_hash")?,
        sad_expires_at: r.try_get("sad_expires_at")?,
        spent_at: r.try_get("spent_at")?,
        kind: r.try_get("kind")?,
    })
}

impl Store {
    /// Records a new CSC authorisation with its audit event.
    pub async fn insert_csc_authorization(
        &self,
        a: &CscAuthorizationRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO csc_authorizations (handle, platform, session_id, credential_id, created_at, kind) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&a.handle)
        .bind(&a.platform)
        .bind(&a.session_id)
        .bind(&a.credential_id)
        .bind(a.created_at)
        .bind(&a.kind);
        self.execute_audited(q, audit).await.map(|_| ())
    }

    /// The CSC authorisation with `column` (handle, session_id, sad_hash) equal to `value`.
    async fn csc_where(&self, column: &str, value: &str) -> Result<Option<CscAuthorizationRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM csc_authorizations WHERE {column} = $1");
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.pool).await?;
        row.as_ref().map(record).transpose().map_err(StoreError::from)
    }

    /// By handle.
    pub async fn csc_by_handle(&self, handle: &str) -> Result<Option<CscAuthorizationRecord>, StoreError> {
        self.csc_where("handle", handle).await
    }

    /// By signing session (whether a session belongs to the CSC API).
    pub async fn csc_by_session(&self, session_id: &str) -> Result<Option<CscAuthorizationRecord>, StoreError> {
        self.csc_where("session_id", session_id).await
    }

    /// By the hash of its SAD.
    pub async fn csc_by_sad(&self, sad_hash: &str) -> Result<Option<CscAuthorizationRecord>, StoreError> {
        self.csc_where("sad_hash", sad_hash).await
    }

    /// Issues the SAD of an authorisation once: false when one was issued already.
    pub async fn issue_csc_sad(
        &self,
        handle: &str,
        sad_hash: &str,
        expires_at: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE csc_authorizations SET sad_hash = $2, sad_expires_at = $3 WHERE handle = $1 AND kind = 'hashes' \
             AND sad_hash IS NULL",
        )
        .bind(handle)
        .bind(sad_hash)
        .bind(expires_at);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Spends an issued SAD once, before it expires: false when it was spent or expired.
    pub async fn spend_csc_sad(&self, handle: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE csc_authorizations SET spent_at = $2 WHERE handle = $1 AND sad_hash IS NOT NULL \
             AND spent_at IS NULL AND sad_expires_at >= $2",
        )
        .bind(handle)
        .bind(now);
        Ok(self.execute_audited(q, audit).await? > 0)
    }

    /// Marks a `signDoc` authorisation's signed PDF released, once, and drops the signed PDF
    /// from its session in the same transaction (nothing keeps it after its one release):
    /// false when it was released already.
    pub async fn release_csc_document(&self, handle: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE csc_authorizations SET spent_at = $2 WHERE handle = $1 AND kind = 'document' AND spent_at IS NULL",
        )
        .bind(handle)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if released == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_sessions SET result = NULL WHERE id = (SELECT session_id FROM csc_authorizations \
             WHERE handle = $1)",
        )
        .bind(handle)
        .execute(&mut *tx)
        .await?;
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(true)
    }

    /// The active credentials whose certificate names `identifier` (a resident ID number or a
    /// credit code), for `credentials/list`.
    pub async fn credentials_for_identifier(&self, identifier: &str) -> Result<Vec<CredentialRecord>, StoreError> {
        let sql = "SELECT c.id AS id FROM credentials c JOIN approvals a ON a.id = c.approval_id \
                   WHERE UPPER(a.identifier) = UPPER($1) AND c.status = 'active' ORDER BY c.created_at, c.id";
        let ids: Vec<String> = sqlx::query_scalar(sql).bind(identifier).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.credential(&id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }
}
