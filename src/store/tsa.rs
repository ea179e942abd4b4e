//! The timestamp authority's serial counter (`tsa_serials`, one row).

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Reserves `count` TSA serials for this process: returns the first; the block is
    /// `first .. first + count`. One statement, so two daemons (or two callers) never get
    /// overlapping blocks on either backend.
    pub async fn reserve_tsa_serials(&self, count: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("UPDATE tsa_serials SET next = next + $1 WHERE id = 1 RETURNING next")
            .bind(count)
            .fetch_one(&self.pool)
            .await?;
        let next: i64 = row.try_get("next")?;
        Ok(next - count)
    }
}
