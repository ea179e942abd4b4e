//! The timestamp authority's serial counter (`tsa_serials`, one row).

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Reserves `count` TSA serials for this process: returns the first; the block is
    /// `first .. first + count`, starting at the counter or at `floor`, whichever is higher (a
    /// counter restored from a back-up is behind serials already issued; a floor that grows
    /// with time keeps it ahead of them). One statement, so two daemons (or two callers) never
    /// get overlapping blocks on either backend.
    pub async fn reserve_tsa_serials(&self, count: i64, floor: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "UPDATE tsa_serials SET next = (CASE WHEN next > $2 THEN next ELSE $2 END) + $1 WHERE id = 1 RETURNING next",
        )
        .bind(count)
        .bind(floor)
            .fetch_one(&self.pool)
            .await?;
        let next: i64 = row.try_get("next")?;
        Ok(next - count)
    }
}
