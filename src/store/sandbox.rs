//! Rows of the sandbox providers' state (`sandbox_state`): one JSON value per (kind, id),
//! changed only by compare-and-swap on the whole value, so two daemons never lose each other's
//! changes. See `providers::sandbox_state` for the typed side.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// A sandbox row's value.
    pub async fn sandbox_get(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM sandbox_state WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Stores a new sandbox row (ids are random: a clash is an error, not an overwrite).
    pub async fn sandbox_insert(&self, kind: &str, id: &str, value: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sandbox_state (kind, id, value, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(kind)
            .bind(id)
            .bind(value)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::classify)?;
        Ok(())
    }

    /// Replaces (or, with `new = None`, deletes) a row if its value is still `old`; false
    /// when someone changed it meanwhile.
    pub async fn sandbox_swap(
        &self,
        kind: &str,
        id: &str,
        old: &str,
        new: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done =
            match new {
                Some(value) => sqlx::query(
                    "UPDATE sandbox_state SET value = $1, updated_at = $2 WHERE kind = $3 AND id = $4 AND value = $5",
                )
                .bind(value)
                .bind(now)
                .bind(kind)
                .bind(id)
                .bind(old)
                .execute(&self.pool)
                .await?,
                None => {
                    sqlx::query("DELETE FROM sandbox_state WHERE kind = $1 AND id = $2 AND value = $3")
                        .bind(kind)
                        .bind(id)
                        .bind(old)
                        .execute(&self.pool)
                        .await?
                }
            };
        Ok(done.rows_affected() == 1)
    }
}
