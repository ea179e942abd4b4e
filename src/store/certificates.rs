//! Certificate rows: reserved serials and issued certificates.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

/// A serial reserved before signing (issuance step 2).
#[derive(Debug, Clone)]
pub struct Reservation {
    /// Lowercase hex serial.
    pub serial: String,
    /// Issuing CA name.
    pub issuer: String,
    /// Profile name.
    pub profile: String,
    /// Unix seconds.
    pub reserved_at: i64,
}

/// A signed certificate to store (issuance step 5).
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// The reserved serial (lowercase hex).
    pub serial: String,
    /// Issuing CA name.
    pub issuer: String,
    /// Profile name.
    pub profile: String,
    /// Subject as an RFC 4514 string.
    pub subject: String,
    /// Credit code or resident ID.
    pub identifier: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Certificate DER.
    pub der: Vec<u8>,
    /// SHA-256 fingerprint, hex.
    pub fingerprint: String,
    /// CRL partition named in the certificate's CDP.
    pub crl_shard: i64,
}

/// A certificate as stored.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// Lowercase hex serial.
    pub serial: String,
    /// Issuing CA name.
    pub issuer: String,
    /// Profile name.
    pub profile: String,
    /// `issued` or `revoked`.
    pub status: String,
    /// Subject as an RFC 4514 string.
    pub subject: String,
    /// Credit code or resident ID.
    pub identifier: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Certificate DER.
    pub der: Vec<u8>,
    /// SHA-256 fingerprint, hex.
    pub fingerprint: String,
    /// CRL partition named in the certificate's CDP.
    pub crl_shard: i64,
}

const COLUMNS: &str =
    "serial, issuer, profile, status, subject, identifier, not_before, not_after, der, fingerprint, crl_shard";

fn record(r: &AnyRow) -> Result<CertificateRecord, sqlx::Error> {
    Ok(CertificateRecord {
        serial: r.try_get("serial")?,
        issuer: r.try_get("issuer")?,
        profile: r.try_get("profile")?,
        status: r.try_get("status")?,
        subject: r.try_get("subject")?,
        identifier: r.try_get("identifier")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        der: r.try_get("der")?,
        fingerprint: r.try_get("fingerprint")?,
        crl_shard: r.try_get("crl_shard")?,
    })
}

impl Store {
    /// One certificate by serial (lowercase hex).
    pub async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM certificates WHERE serial = $1");
        let row = sqlx::query(&sql).bind(serial).fetch_optional(&self.pool).await?;
        row.as_ref().map(record).transpose().map_err(StoreError::from)
    }

    /// Certificates in serial order, `limit` at a time after `after` (keyset pagination, so a
    /// million rows list without OFFSET scans).
    pub async fn certificates(&self, after: &str, limit: i64) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM certificates WHERE serial > $1 ORDER BY serial LIMIT $2");
        let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(record).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Number of rows per status, for tests and operators.
    pub async fn count_certificates(&self, status: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM certificates WHERE status = $1")
            .bind(status)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Number of reserved serials (with or without a certificate).
    pub async fn count_serials(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM serials").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// Number of audit events of a kind.
    pub async fn count_audit_events(&self, kind: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE kind = $1")
            .bind(kind)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// Filters of a certificate search; every field set narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CertificateQuery {
    /// Exact serial (lowercase hex).
    pub serial: Option<String>,
    /// Substring of the RFC 4514 subject.
    pub subject: Option<String>,
    /// Exact credit code or resident ID.
    pub identifier: Option<String>,
    /// `issued` (and unexpired), `revoked`, or `expired` (issued, past not-after).
    pub status: Option<String>,
    /// Exact profile.
    pub profile: Option<String>,
    /// not-after at or after this (unix seconds).
    pub not_after_from: Option<i64>,
    /// not-after at or before this (unix seconds).
    pub not_after_to: Option<i64>,
    /// Keyset cursor: serials after this one.
    pub after: String,
    /// At most this many.
    pub limit: i64,
}

/// One bound value of a dynamic query.
enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Certificates matching the query, in serial order. `now` decides `issued` vs `expired`.
    pub async fn search_certificates(
        &self,
        q: &CertificateQuery,
        now: i64,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let mut binds = vec![Bind::Text(q.after.clone())];
        let mut sql = format!("SELECT {COLUMNS} FROM certificates WHERE serial > $1");
        // Appends a clause; its `?` (if any) becomes the next numbered placeholder.
        let mut add = |clause: &str, value: Option<Bind>| {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
            } else {
                sql.push_str(clause);
            }
        };
        if let Some(v) = &q.serial {
            add(" AND serial = ?", Some(Bind::Text(v.clone())));
        }
        if let Some(v) = &q.subject {
            let escaped = v.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            add(" AND subject LIKE ? ESCAPE '\\'", Some(Bind::Text(format!("%{escaped}%"))));
        }
        if let Some(v) = &q.identifier {
            add(" AND identifier = ?", Some(Bind::Text(v.clone())));
        }
        if let Some(v) = &q.profile {
            add(" AND profile = ?", Some(Bind::Text(v.clone())));
        }
        match q.status.as_deref() {
            Some("revoked") => add(" AND status = 'revoked'", None),
            Some("expired") => add(" AND status = 'issued' AND not_after < ?", Some(Bind::Int(now))),
            Some(_) => add(" AND status = 'issued' AND not_after >= ?", Some(Bind::Int(now))),
            None => {}
        }
        if let Some(v) = q.not_after_from {
            add(" AND not_after >= ?", Some(Bind::Int(v)));
        }
        if let Some(v) = q.not_after_to {
            add(" AND not_after <= ?", Some(Bind::Int(v)));
        }
        add(" ORDER BY serial LIMIT ?", Some(Bind::Int(q.limit)));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(record).collect::<Result<_, _>>().map_err(StoreError::from)
    }
}
