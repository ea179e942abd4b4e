//! Lease rows: take, renew, release and list (see `crate::coord`).

use super::{Store, StoreError};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Which work (`crl`, `ocsp-refresh`, ...).
    pub name: String,
    /// The daemon holding it.
    pub holder: String,
    /// Unix milliseconds after which anyone may take it.
    pub expires_at: i64,
    /// Rises by one whenever the holder changes.
    pub epoch: i64,
}

impl Store {
    /// Takes `name` for `holder` until `expires_at` if it is free, expired or already ours;
    /// returns the epoch when `holder` now holds it. One statement, so two daemons racing for
    /// it cannot both win: the row lock (PostgreSQL) or the write lock (SQLite) orders them and
    /// the `WHERE` sees the winner's row.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, expires_at, epoch) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
             epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_at)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(epoch,)| epoch))
    }

    /// Gives up every lease `holder` has, so a successor need not wait for them to expire.
    pub async fn release_leases(&self, holder: &str) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE leases SET expires_at = 0 WHERE holder = $1").bind(holder).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Every lease, by name.
    pub async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT name, holder, expires_at, epoch FROM leases ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, holder, expires_at, epoch)| LeaseRecord { name, holder, expires_at, epoch })
            .collect())
    }
}
