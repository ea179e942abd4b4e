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
//!
//! With several daemons on one database, CRL builds and the OCSP refresh run only on the
//! daemon holding their lease (`crate::coord`); every daemon follows the feed (its own cache
//! must learn of revocations) and pre-signs what it issued itself.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::StatusService;
use crate::coord::{self, Held, Job, Leases};

/// Most OCSP responses refreshed per round (the rest wait for the next round).
const REFRESH_BATCH: i64 = 2000;

/// Ids below the newest seen that are read again on every poll: PostgreSQL hands out ids at
/// insert, not at commit, so a revocation can become visible after a newer one.
const FEED_LOOKBACK: i64 = 256;

/// Starts the tasks; they stop when `shutdown` fires. The revocation feed has its own task so
/// long CRL builds or OCSP refreshes never delay it past `propagation_seconds`.
pub fn spawn(
    status: StatusService,
    leases: Leases,
    issued: mpsc::Receiver<String>,
    shutdown: broadcast::Receiver<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let refresher = status.clone();
    vec![
        tokio::spawn(presign_issued(status.clone(), issued, shutdown.resubscribe())),
        tokio::spawn(feed(status.clone(), shutdown.resubscribe())),
        tokio::spawn(coord::run_job(
            leases.clone(),
            Job::OcspRefresh,
            REFRESH_PERIOD,
            shutdown.resubscribe(),
            move || {
                let status = refresher.clone();
                async move { refresh_ocsp(&status).await }
            },
        )),
        tokio::spawn(maintain(status, leases, shutdown)),
    ]
}

/// How often the OCSP refresher looks for responses due.
const REFRESH_PERIOD: Duration = Duration::from_secs(60);

async fn presign_issued(
    status: StatusService,
    mut issued: mpsc::Receiver<String>,
    mut shutdown: broadcast::Receiver<()>,
) {
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

async fn feed(status: StatusService, mut shutdown: broadcast::Receiver<()>) {
    let poll = Duration::from_secs(u64::from(status.inner.config.propagation_seconds / 4).max(1));
    let mut newest = status.inner.store.last_revocation_id().await.unwrap_or(0);
    let mut seen = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => newest = follow_feed(&status, newest, &mut seen).await,
            _ = shutdown.recv() => return,
        }
    }
}

/// CRL builds, on the daemon holding the `crl` lease only: after revocations (woken) and on
/// schedule. A daemon without the lease keeps its dirty set; if it takes the lease over, it
/// rebuilds every partition anyway, since the previous holder may have died before publishing.
async fn maintain(status: StatusService, leases: Leases, mut shutdown: broadcast::Receiver<()>) {
    let config = status.inner.config.clone();
    let period = Duration::from_secs(60 * u64::from(config.crl_rebuild_minutes));
    let mut rebuild = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut renew = tokio::time::interval(coord::RENEW);
    let mut epoch = None;
    loop {
        match leases.hold(Job::Crl, &mut epoch).await {
            Held::Taken { .. } => {
                mark_all(&status);
                rebuild_dirty(&status).await;
            }
            Held::Kept => rebuild_dirty(&status).await,
            Held::Elsewhere => {}
        }
        tokio::select! {
            _ = status.inner.wake.notified() => {
                // Let a burst of revocations land in one rebuild.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = rebuild.tick() => mark_all(&status),
            _ = renew.tick() => {}
            _ = shutdown.recv() => return,
        }
    }
}

fn mark_all(status: &StatusService) {
    for (issuer, shard) in status.partitions() {
        status.mark_dirty(&issuer, shard);
    }
}

/// Applies revocations made anywhere that this process has not seen yet; returns the newest
/// id seen. A row whose OCSP response cannot be re-signed now is retried on the next poll.
async fn follow_feed(status: &StatusService, newest: i64, seen: &mut BTreeSet<i64>) -> i64 {
    let store = &status.inner.store;
    let rows = match store.revocations_after(newest - FEED_LOOKBACK, 4096).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "revocation feed unavailable");
            return newest;
        }
    };
    let mut top = newest;
    for r in rows {
        top = top.max(r.id);
        if seen.contains(&r.id) {
            continue;
        }
        status.forget_ocsp(&r.serial);
        // The revoking process normally stored the revoked response already.
        let stale = !matches!(store.ocsp(&r.serial).await, Ok(Some(resp)) if resp.revoked);
        if stale {
            if let Err(e) = status.presign(&r.serial).await {
                tracing::warn!(serial = %r.serial, error = %e, "cannot re-sign the OCSP response yet");
                continue; // not marked seen: retried next poll
            }
        }
        status.mark_dirty(&r.issuer, r.crl_shard);
        seen.insert(r.id);
    }
    // Forget ids that fell out of the window.
    *seen = seen.split_off(&(top - FEED_LOOKBACK));
    top
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
    let longest_service =
        status.inner.profiles.current().values().map(|p| p.status_after_expiry_days).max().unwrap_or(0);
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
