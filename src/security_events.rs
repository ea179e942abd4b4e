//! Security events anyone can cause as fast as they can send (a wrong SMS code, a refused
//! unlock, a stale QR claim, a forged webhook) and officers' reads of personal data, written
//! to the audit log through an [`audit::coalesce::Coalescer`]: the first per (kind, key) in
//! each minute is written, the rest are counted and the next written entry carries the count
//! as `coalesced`. The key names who causes the event (a phone, a client address, an officer
//! and what they read), so one client cannot flood the hash-chained log, yet the log still
//! shows that it happened and how often.
//!
//! The two kinds of event fail differently:
//! - a refusal ([`SecurityEvents::refused`]) stays the refusal it was when its entry cannot be
//!   written: the write failure is logged, never turned into success, and not into a 503
//!   either (entries the coalescer counts are not written at all, so the answer cannot hang on
//!   one write);
//! - a read ([`SecurityEvents::read`]) happens only once it is on record: an entry that cannot
//!   be written fails the read (fail closed, as the admin listener's denial audit does).
//!
//! Each service that writes such events builds its own when it is built (`Mobile`,
//! `Custody`, `Proofs`, `Signing`, `Ra`); clones share the counts.
//!
//! [`audit::coalesce::Coalescer`]: crate::audit::coalesce::Coalescer

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::audit::coalesce::{Admission, Coalescer};
use crate::clock::Clock;
use crate::store::{AuditRecord, Store, StoreError};

/// Writes rate-bounded security events; see the module docs.
#[derive(Clone)]
pub struct SecurityEvents {
    store: Store,
    clock: Arc<dyn Clock>,
    /// One entry per (kind, key) per minute; shared by clones of the owning service.
    coalescer: Arc<Coalescer>,
    /// Bumped when an admitted entry could not be written, and part of every key: the
    /// coalescer took that entry for written, so without a fresh key the next reads of the
    /// same thing would be only counted, and served with nothing on record.
    epoch: Arc<AtomicU64>,
}

impl SecurityEvents {
    /// Events of one service: one per (kind, key) per minute (a fixed window, not a config
    /// key), at most 10,000 keys tracked before further ones share one overflow slot.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> SecurityEvents {
        SecurityEvents::with(store, clock, Coalescer::per_minute())
    }

    fn with(store: Store, clock: Arc<dyn Clock>, coalescer: Coalescer) -> SecurityEvents {
        SecurityEvents { store, clock, coalescer: Arc::new(coalescer), epoch: Arc::new(AtomicU64::new(0)) }
    }

    /// Records a refusal caused by `key`. Never fails the caller: a write that fails is logged
    /// and the caller answers with its refusal as before.
    pub async fn refused(&self, kind: &str, actor: &str, key: &str, serial: Option<&str>, detail: serde_json::Value) {
        tracing::info!(target: "audit", kind, actor, %detail, "refused");
        if let Err(e) = self.write(kind, actor, key, serial, detail).await {
            tracing::warn!(kind, actor, error = %e, "cannot audit a refusal; it is refused all the same");
        }
    }

    /// Records a read of personal data before it is served: Err when the entry cannot be
    /// written, and then the read must not happen.
    pub async fn read(
        &self,
        kind: &str,
        actor: &str,
        key: &str,
        serial: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(kind, actor, key, serial, detail).await.map(|_| ())
    }

    /// Writes the event if the coalescer admits it; Ok(false) when it was only counted.
    async fn write(
        &self,
        kind: &str,
        actor: &str,
        key: &str,
        serial: Option<&str>,
        mut detail: serde_json::Value,
    ) -> Result<bool, StoreError> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let Admission::Write { coalesced } = self.coalescer.admit(kind, &format!("{epoch}|{key}"), Instant::now())
        else {
            return Ok(false);
        };
        if coalesced > 0 {
            if let Some(map) = detail.as_object_mut() {
                map.insert("coalesced".into(), coalesced.into());
            }
        }
        let record = AuditRecord::new(self.clock.as_ref(), kind, actor, serial, detail);
        if let Err(e) = self.store.audit(&record).await {
            self.epoch.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Connection;

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::AuditQuery;

    async fn store(dir: &std::path::Path) -> (Store, String) {
        let url = format!("sqlite://{}", dir.join("events.db").display());
        let config = crate::config::DatabaseConfig {
            url: url.clone(),
            password_file: None,
            max_connections: 2,
            acquire_timeout_seconds: 5,
        };
        (Store::open(&config).await.unwrap_or_else(|e| panic!("{e}")), url)
    }

    async fn details(store: &Store, kind: &str) -> Vec<serde_json::Value> {
        let query = AuditQuery { kind: Some(kind.into()), limit: 100, ..AuditQuery::default() };
        let found = store.audit_events(&query).await.unwrap_or_else(|e| panic!("{e}"));
        found.iter().map(|e| serde_json::from_str(&e.record.detail).unwrap_or_default()).collect()
    }

    #[tokio::test]
    async fn the_next_entry_after_a_window_carries_the_count_of_those_not_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, _) = store(dir.path()).await;
        let window = Duration::from_millis(300);
        let events = SecurityEvents::with(store.clone(), Arc::new(SystemClock), Coalescer::new(window, 100));
        for _ in 0..4 {
            events
                .refused("sms.code_failed", "phone:+8613800138000", "+8613800138000", None, serde_json::json!({}))
                .await;
        }
        // Another key is its own entry.
        events.refused("sms.code_failed", "phone:+8613900139000", "+8613900139000", None, serde_json::json!({})).await;
        assert_eq!(details(&store, "sms.code_failed").await.len(), 2);
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        events.refused("sms.code_failed", "phone:+8613800138000", "+8613800138000", None, serde_json::json!({})).await;
        let written = details(&store, "sms.code_failed").await;
        assert_eq!(written.len(), 3, "{written:?}");
        assert_eq!(written[0].get("coalesced"), None, "none before the first");
        assert_eq!(written[2]["coalesced"], 3, "three were counted, not written: {written:?}");
    }

    #[tokio::test]
    async fn a_read_whose_entry_cannot_be_written_fails_and_the_next_is_written_not_counted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, url) = store(dir.path()).await;
        let events = SecurityEvents::new(store.clone(), Arc::new(SystemClock));
        let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let block = "CREATE TRIGGER block BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'blocked'); END";
        sqlx::query(block).execute(&mut raw).await.unwrap_or_else(|e| panic!("{e}"));
        let read =
            || events.read("order.identity_read", "reviewer:ab", "reviewer:ab|order-1", None, serde_json::json!({}));
        assert!(read().await.is_err(), "the database refused the entry: the read must not happen");
        // A refusal whose entry cannot be written returns all the same.
        events.refused("sms.code_failed", "phone:+8613800138000", "+8613800138000", None, serde_json::json!({})).await;
        sqlx::query("DROP TRIGGER block").execute(&mut raw).await.unwrap_or_else(|e| panic!("{e}"));
        // Within the same minute, the next read of the same order is written, not counted
        // against the entry that never made it.
        read().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(details(&store, "order.identity_read").await.len(), 1);
        read().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(details(&store, "order.identity_read").await.len(), 1, "then coalesced as usual");
    }
}
