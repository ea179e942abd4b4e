//! Background work that keeps CRLs and OCSP responses current:
//!
//! - the revocation feed: polls `revocations` for rows newer than the last seen, so a
//!   revocation made by another process (the CLI, another daemon on PostgreSQL) reaches this
//!   daemon's CRLs and OCSP answers within `propagation_seconds`;
//! - CRL rebuilds: right after a revocation (coalescing bursts) and on schedule;
//! - OCSP refresh: re-signs responses before they expire and pre-signs certificates that have
//!   none (e.g. issued while the HSM was away), a bounded number per round;
//! - pre-signing of freshly issued certificates, fed by issuance.
//!
//! When the HSM is down, every step that needs it is retried on the next round; what was
//! already signed keeps being served.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::StatusService;

/// Most OCSP responses refreshed per round (the rest wait for the next round).
const REFRESH_BATCH: i64 = 2000;

/// Starts the tasks; they stop when `shutdown` fires.
pub fn spawn(status: StatusService, issued: mpsc::Receiver<String>, shutdown: broadcast::Receiver<()>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(presign_issued(status.clone(), issued, shutdown.resubscribe())),
        tokio::spawn(maintain(status, shutdown)),
    ]
}

async fn presign_issued(status: StatusService, mut issued: mpsc::Receiver<String>, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            serial = issued.recv() => match serial {
                Some(serial) => {
                    if let Err(e) = status.presign(&serial).await {
                        tracing::debug!(serial = %serial, error = %e, "pre-signing deferred to the refresher");
                    }
                }
                None => return,
            },
            _ = shutdown.recv() => return,
        }
    }
}

async fn maintain(status: StatusService, mut shutdown: broadcast::Receiver<()>) {
    let config = status.inner.config.clone();
    let poll = Duration::from_secs(u64::from(config.propagation_seconds / 4).max(1));
    let mut last_id = match status.inner.store.last_revocation_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the revocation feed; status tasks not started");
            return;
        }
    };
    for (issuer, shard) in status.partitions() {
        status.mark_dirty(&issuer, shard);
    }
    let period = Duration::from_secs(60 * u64::from(config.crl_rebuild_minutes));
    let mut rebuild = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut refresh = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {
                last_id = follow_feed(&status, last_id).await;
            }
            _ = status.inner.wake.notified() => {
                // Let a burst of revocations land in one rebuild.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = rebuild.tick() => {
                for (issuer, shard) in status.partitions() {
                    status.mark_dirty(&issuer, shard);
                }
            }
            _ = refresh.tick() => refresh_ocsp(&status).await,
            _ = shutdown.recv() => return,
        }
        rebuild_dirty(&status).await;
    }
}

/// Applies revocations made anywhere since `last_id`; returns the new position.
async fn follow_feed(status: &StatusService, mut last_id: i64) -> i64 {
    let store = &status.inner.store;
    let rows = match store.revocations_after(last_id, 1000).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "revocation feed unavailable");
            return last_id;
        }
    };
    for r in rows {
        status.forget_ocsp(&r.serial);
        let stale = match store.ocsp(&r.serial).await {
            Ok(Some(resp)) => resp.this_update < r.revoked_at,
            Ok(None) => true,
            Err(_) => true,
        };
        if stale {
            if let Err(e) = status.presign(&r.serial).await {
                tracing::warn!(serial = %r.serial, error = %e, "cannot re-sign the OCSP response yet");
                return last_id; // retry this row next round
            }
        }
        status.mark_dirty(&r.issuer, r.crl_shard);
        last_id = r.id;
    }
    last_id
}

async fn rebuild_dirty(status: &StatusService) {
    let dirty: Vec<_> = status.inner.dirty.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
    for (issuer, shard) in dirty {
        if let Err(e) = status.build_crl(&issuer, shard).await {
            tracing::warn!(issuer = %issuer, shard, error = %e, "CRL rebuild failed; retrying next round");
            status.inner.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert((issuer, shard));
        }
    }
}

async fn refresh_ocsp(status: &StatusService) {
    let now = status.inner.clock.now().unix_timestamp();
    let before = now + 3600 * i64::from(status.inner.config.ocsp_refresh_hours);
    let longest_service = status.inner.profiles.values().map(|p| p.status_after_expiry_days).max().unwrap_or(0);
    let served_after = now - 86400 * i64::from(longest_service);
    let due = match status.inner.store.ocsp_due(before, served_after, REFRESH_BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list OCSP responses to refresh");
            return;
        }
    };
    for serial in due {
        if let Err(e) = status.presign(&serial).await {
            tracing::warn!(error = %e, "OCSP refresh paused until the next round");
            return;
        }
    }
}
