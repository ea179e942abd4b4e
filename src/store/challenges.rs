//! The order query's random codes (`query_challenges`, issue 17): issued for a page, taken
//! once. Only the answer's hash is kept.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Keeps a new random code's hash until `expires_at`, and drops the expired ones.
    pub async fn insert_challenge(
        &self,
        id: &str,
        answer_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM query_challenges WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("INSERT INTO query_challenges (id, answer_hash, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(answer_hash)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes a live random code (it is gone afterwards, whatever the answer): its hash, or
    /// None when there is no such live code.
    pub async fn take_challenge(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("DELETE FROM query_challenges WHERE id = $1 AND expires_at > $2 RETURNING answer_hash")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("answer_hash")).transpose().map_err(StoreError::from)
    }
}
