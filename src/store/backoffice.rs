//! Back-office rows: operator client certificates and registered relying platforms. Every
//! change is written in one transaction with its audit event, so a change is never recorded
//! without its audit entry (and fails if the audit write fails).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AuditRecord, Store, StoreError};

/// A client certificate issued by the operator CA.
#[derive(Debug, Clone)]
pub struct OperatorCertRecord {
    /// Lowercase hex serial.
    pub serial: String,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    /// RFC 4514 subject.
    pub subject: String,
    /// Role name as in `roles.toml`.
    pub role: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Unix seconds.
    pub not_after: i64,
    /// Certificate DER.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds, when revoked.
    pub revoked_at: Option<i64>,
    /// Revocation reason name, when revoked.
    pub reason: Option<String>,
}

/// A relying platform allowed to open signing sessions.
#[derive(Debug, Clone)]
pub struct PlatformRecord {
    /// Stable slug.
    pub name: String,
    /// Shown to holders before they sign.
    pub display_name: String,
    /// SHA-256 of the platform's client certificate, hex.
    pub fingerprint: String,
    /// Where results are sent (https).
    pub callback_url: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Unix seconds.
    pub registered_at: i64,
}

const OPERATOR_COLUMNS: &str =
    "serial, fingerprint, subject, role, status, not_after, der, issued_at, revoked_at, reason";
const PLATFORM_COLUMNS: &str = "name, display_name, fingerprint, callback_url, status, registered_at";

fn operator(r: &AnyRow) -> Result<OperatorCertRecord, sqlx::Error> {
    Ok(OperatorCertRecord {
        serial: r.try_get("serial")?,
        fingerprint: r.try_get("fingerprint")?,
        subject: r.try_get("subject")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        not_after: r.try_get("not_after")?,
        der: r.try_get("der")?,
        issued_at: r.try_get("issued_at")?,
        revoked_at: r.try_get("revoked_at")?,
        reason: r.try_get("reason")?,
    })
}

fn platform(r: &AnyRow) -> Result<PlatformRecord, sqlx::Error> {
    Ok(PlatformRecord {
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        fingerprint: r.try_get("fingerprint")?,
        callback_url: r.try_get("callback_url")?,
        status: r.try_get("status")?,
        registered_at: r.try_get("registered_at")?,
    })
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Store {
    /// Runs one change and, if it touched a row, appends its audit event, in one transaction.
    /// Returns the rows changed (0: nothing written, no event). Unique violations are
    /// [`StoreError::Duplicate`].
    pub(super) async fn execute_audited(&self, query: AnyQuery<'_>, audit: &AuditRecord) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = query.execute(&mut *tx).await.map_err(StoreError::classify)?.rows_affected();
        if changed == 0 {
            return Ok(0);
        }
        super::writer::insert_audits(&mut tx, &[audit]).await?;
        super::audit::commit(tx, 1).await?;
        Ok(changed)
    }

    /// Records an issued operator certificate with its audit event.
    pub async fn insert_operator_cert(&self, c: &OperatorCertRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO operator_certificates ({OPERATOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let query = sqlx::query(&sql)
            .bind(&c.serial)
            .bind(&c.fingerprint)
            .bind(&c.subject)
            .bind(&c.role)
            .bind(&c.status)
            .bind(c.not_after)
            .bind(&c.der)
            .bind(c.issued_at)
            .bind(c.revoked_at)
            .bind(&c.reason);
        self.execute_audited(query, audit).await.map(|_| ())
    }

    /// Marks an operator certificate revoked with its audit event. Returns false (and writes
    /// nothing) when it was already revoked.
    pub async fn revoke_operator_cert(
        &self,
        serial: &str,
        at: i64,
        reason: &str,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE operator_certificates SET status = 'revoked', revoked_at = $1, reason = $2 \
             WHERE serial = $3 AND status = 'active'",
        )
        .bind(at)
        .bind(reason)
        .bind(serial);
        Ok(self.execute_audited(query, audit).await? > 0)
    }

    /// One operator certificate by serial.
    pub async fn operator_cert(&self, serial: &str) -> Result<Option<OperatorCertRecord>, StoreError> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operator_certificates WHERE serial = $1");
        let row = sqlx::query(&sql).bind(serial).fetch_optional(&self.pool).await?;
        row.as_ref().map(operator).transpose().map_err(StoreError::from)
    }

    /// Every operator certificate, newest first.
    pub async fn operator_certs(&self) -> Result<Vec<OperatorCertRecord>, StoreError> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operator_certificates ORDER BY issued_at DESC, serial");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(operator).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Fingerprints of revoked operator certificates, for the TLS layer.
    pub async fn revoked_operator_fingerprints(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT fingerprint FROM operator_certificates WHERE status = 'revoked'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("fingerprint")).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Registers a relying platform with its audit event; a duplicate name or fingerprint is
    /// [`StoreError::Duplicate`].
    pub async fn insert_platform(&self, p: &PlatformRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO relying_platforms ({PLATFORM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        let query = sqlx::query(&sql)
            .bind(&p.name)
            .bind(&p.display_name)
            .bind(&p.fingerprint)
            .bind(&p.callback_url)
            .bind(&p.status)
            .bind(p.registered_at);
        self.execute_audited(query, audit).await.map(|_| ())
    }

    /// Disables a platform with its audit event; false when it was not active.
    pub async fn disable_platform(&self, name: &str, audit: &AuditRecord) -> Result<bool, StoreError> {
        let query =
            sqlx::query("UPDATE relying_platforms SET status = 'disabled' WHERE name = $1 AND status = 'active'")
                .bind(name);
        Ok(self.execute_audited(query, audit).await? > 0)
    }

    /// One platform by name.
    pub async fn platform(&self, name: &str) -> Result<Option<PlatformRecord>, StoreError> {
        let sql = format!("SELECT {PLATFORM_COLUMNS} FROM relying_platforms WHERE name = $1");
        let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(platform).transpose().map_err(StoreError::from)
    }

    /// The active platform with this client-certificate fingerprint, if any.
    pub async fn platform_by_fingerprint(&self, fingerprint: &str) -> Result<Option<PlatformRecord>, StoreError> {
        let sql =
            format!("SELECT {PLATFORM_COLUMNS} FROM relying_platforms WHERE fingerprint = $1 AND status = 'active'");
        let row = sqlx::query(&sql).bind(fingerprint).fetch_optional(&self.pool).await?;
        row.as_ref().map(platform).transpose().map_err(StoreError::from)
    }

    /// Every platform by name.
    pub async fn platforms(&self) -> Result<Vec<PlatformRecord>, StoreError> {
        let sql = format!("SELECT {PLATFORM_COLUMNS} FROM relying_platforms ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(platform).collect::<Result<_, _>>().map_err(StoreError::from)
    }
}
