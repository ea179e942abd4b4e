//! The CA hierarchy rows: which HSM key signs for which authority, and its certificate.

use sqlx::Row;

use super::{Store, StoreError};

/// One CA key and certificate (root, issuing CA or OCSP responder).
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    /// Short name (`root`, `org`, `org-ocsp`).
    pub name: String,
    /// `root`, `issuing` or `ocsp`.
    pub role: String,
    /// The authority that signed this certificate (None for a self-signed root).
    pub issuer: Option<String>,
    /// CKA_LABEL of the key pair in the HSM.
    pub key_label: String,
    /// Key algorithm name (`ecdsa-p256`, ...).
    pub key_algorithm: String,
    /// Certificate DER.
    pub certificate: Vec<u8>,
    /// SHA-256 fingerprint of the certificate, hex.
    pub fingerprint: String,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl Store {
    /// Records a new authority; fails on a duplicate name (the ceremony never overwrites).
    pub async fn insert_authority(&self, a: &AuthorityRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorities (name, role, issuer, key_label, key_algorithm, certificate, fingerprint, not_after, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.name)
        .bind(&a.role)
        .bind(&a.issuer)
        .bind(&a.key_label)
        .bind(&a.key_algorithm)
        .bind(&a.certificate)
        .bind(&a.fingerprint)
        .bind(a.not_after)
        .bind(crate::clock::unix_now())
        .execute(&self.pool)
        .await
        .map_err(StoreError::classify)?;
        Ok(())
    }

    /// Every authority, root first.
    pub async fn authorities(&self) -> Result<Vec<AuthorityRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, role, issuer, key_label, key_algorithm, certificate, fingerprint, not_after FROM authorities \
             ORDER BY CASE role WHEN 'root' THEN 0 WHEN 'issuing' THEN 1 ELSE 2 END, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuthorityRecord {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    issuer: r.try_get("issuer")?,
                    key_label: r.try_get("key_label")?,
                    key_algorithm: r.try_get("key_algorithm")?,
                    certificate: r.try_get("certificate")?,
                    fingerprint: r.try_get("fingerprint")?,
                    not_after: r.try_get("not_after")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
