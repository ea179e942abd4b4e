//! Coordination between daemons sharing one database.
//!
//! Requests need no coordination: every piece of state they touch (serials, revocations, CRL
//! numbers, OCSP responses, signing sessions, PIN counters, the audit chain) lives in the
//! database and is changed by single statements or compare-and-set transactions. Background
//! work is different: a CRL build, the OCSP refresh, the RA's pass (completions, reminders)
//! and audit checkpoints must each be done by one daemon at a time, or relying parties would
//! see two CRLs for one moment and holders two reminders.
//!
//! Each such job has a lease ([`Job`]) in the `leases` table. Before a round of work a daemon
//! calls [`Leases::hold`]: it takes the lease if it is free or expired and renews it if it is
//! already its own. The holder renews at every round (rounds are far shorter than [`TTL`]); a
//! daemon that dies or loses the database simply stops renewing, and the next daemon to ask
//! after the expiry takes over, with a higher epoch; the same daemon restarted (same host and
//! public listener) takes its own leases back at once. A graceful shutdown releases its leases
//! at once. With SQLite (one daemon) the same code runs and always wins.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// How long a lease lasts without renewal: the longest a job stays undone after its holder
/// died. Longer than any round of work, so a live holder never loses it mid-round.
pub const TTL: Duration = Duration::from_secs(20);

/// How often a holder renews its leases (and others look for expired ones): a dead holder's
/// job resumes elsewhere within `TTL + RENEW`.
pub const RENEW: Duration = Duration::from_secs(5);

/// Work that must happen once across all daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Building and signing CRLs (every partition).
    Crl,
    /// Re-signing OCSP responses before they expire, and pre-signing missing ones.
    OcspRefresh,
    /// The RA's background pass: completing orders, retries, expiry reminders.
    Ra,
    /// Signing audit checkpoints.
    AuditCheckpoint,
    /// Deleting finished signing sessions (and the PDFs they hold).
    SessionPurge,
}

impl Job {
    /// Every job, for metrics.
    pub const ALL: [Job; 5] = [Job::Crl, Job::OcspRefresh, Job::Ra, Job::AuditCheckpoint, Job::SessionPurge];

    /// The lease's name in the database and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Job::Crl => "crl",
            Job::OcspRefresh => "ocsp-refresh",
            Job::Ra => "ra",
            Job::AuditCheckpoint => "audit-checkpoint",
            Job::SessionPurge => "session-purge",
        }
    }
}

/// This daemon's view of the leases. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    store: Store,
    holder: Arc<str>,
    clock: Arc<dyn Clock>,
}

/// What [`Leases::hold`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Ours, as it was at the last round.
    Kept,
    /// Ours from now on: another daemon held it (or nobody did). Whatever that holder left
    /// half done must be redone from the database, not from this daemon's memory.
    Taken {
        /// The new epoch.
        epoch: i64,
    },
    /// Another daemon's.
    Elsewhere,
}

impl Held {
    /// Whether this daemon does the work this round.
    pub fn is_ours(self) -> bool {
        !matches!(self, Held::Elsewhere)
    }
}

impl Leases {
    /// A daemon's leases under `holder` (see [`holder_name`]).
    pub fn new(store: Store, clock: Arc<dyn Clock>, holder: String) -> Leases {
        Leases { store, holder: holder.into(), clock }
    }

    /// This daemon's holder name (host, process, random suffix), as it appears in the table.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or renews the lease of `job`. A database error counts as not holding it: the
    /// work waits for the next round rather than risk being done twice.
    pub async fn hold(&self, job: Job, last: &mut Option<i64>) -> Held {
        let now = self.clock.now();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let expires = now_ms + TTL.as_millis() as i64;
        let held = match self.store.take_lease(job.name(), &self.holder, now_ms, expires).await {
            Ok(Some(epoch)) if *last == Some(epoch) => Held::Kept,
            Ok(Some(epoch)) => {
                tracing::info!(job = job.name(), epoch, holder = %self.holder, "lease taken");
                Held::Taken { epoch }
            }
            Ok(None) => Held::Elsewhere,
            Err(e) => {
                tracing::warn!(job = job.name(), error = %e, "cannot renew the lease; pausing the job");
                Held::Elsewhere
            }
        };
        *last = match held {
            Held::Kept => *last,
            Held::Taken { epoch } => Some(epoch),
            Held::Elsewhere => None,
        };
        crate::metrics::get().leases_held.with_label_values(&[job.name()]).set(i64::from(held.is_ours()));
        held
    }

    /// Gives up every lease at shutdown so the other daemons take over at their next round.
    pub async fn release(&self) -> Result<(), StoreError> {
        let released = self.store.release_leases(&self.holder).await?;
        for job in Job::ALL {
            crate::metrics::get().leases_held.with_label_values(&[job.name()]).set(0);
        }
        tracing::info!(released, "leases released");
        Ok(())
    }
}

/// Runs `work` every `period` on whichever daemon holds the lease of `job`, until `shutdown`.
/// The lease is renewed every [`RENEW`], so a period longer than [`TTL`] does not let it lapse
/// between rounds; a daemon that takes the lease over works at once, since the previous holder
/// may have died mid-round.
pub async fn run_job<F, Fut>(
    leases: Leases,
    job: Job,
    period: Duration,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(RENEW.min(period));
    let mut epoch = None;
    let mut last_run: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        let due = last_run.is_none_or(|t| t.elapsed() >= period);
        match leases.hold(job, &mut epoch).await {
            Held::Taken { .. } => {}
            Held::Kept if due => {}
            _ => continue,
        }
        work().await;
        last_run = Some(tokio::time::Instant::now());
    }
}

/// `host/public-listener`: the same for a daemon and its restart, so a daemon restarted after
/// a crash takes its own leases back at once instead of waiting out [`TTL`]; different for any
/// two daemons alive at once, since two processes cannot both have bound one address on one
/// host (the listeners are bound before any lease is asked for).
pub fn holder_name(public_listener: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{public_listener}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    async fn store(dir: &std::path::Path) -> Store {
        let url = format!("sqlite://{}", dir.join("leases.db").display());
        Store::open(&crate::config::DatabaseConfig {
            url,
            password_file: None,
            max_connections: 4,
            acquire_timeout_seconds: 5,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dead_holder_is_replaced_after_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let clock = Arc::new(FakeClock::new(time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()));
        let a = Leases::new(store.clone(), clock.clone(), "host-a/127.0.0.1:80".into());
        let b = Leases::new(store.clone(), clock.clone(), "host-b/127.0.0.1:80".into());
        let (mut la, mut lb) = (None, None);
        assert_eq!(a.hold(Job::Crl, &mut la).await, Held::Taken { epoch: 1 });
        assert_eq!(b.hold(Job::Crl, &mut lb).await, Held::Elsewhere, "a holds it");
        assert_eq!(a.hold(Job::Crl, &mut la).await, Held::Kept, "renewed");
        assert!(b.hold(Job::Ra, &mut lb).await.is_ours(), "leases are per job");
        // a dies: b takes over only once the lease has expired.
        clock.advance(time::Duration::seconds(TTL.as_secs() as i64 - 1));
        assert_eq!(b.hold(Job::Crl, &mut lb).await, Held::Elsewhere);
        clock.advance(time::Duration::seconds(2));
        assert_eq!(b.hold(Job::Crl, &mut lb).await, Held::Taken { epoch: 2 });
        assert_eq!(a.hold(Job::Crl, &mut la).await, Held::Elsewhere, "a, back, finds it taken");
        // b stops gracefully: a takes over at once.
        b.release().await.unwrap();
        assert_eq!(a.hold(Job::Crl, &mut la).await, Held::Taken { epoch: 3 });
        let rows = store.leases().await.unwrap();
        assert_eq!(rows.iter().find(|r| r.name == "crl").map(|r| r.holder.as_str()), Some(a.holder()));
        // a crashes and restarts under the same name: its leases are its own again at once.
        let restarted = Leases::new(store.clone(), clock.clone(), a.holder().to_string());
        assert_eq!(restarted.hold(Job::Crl, &mut None).await, Held::Taken { epoch: 3 });
        assert_eq!(b.hold(Job::Crl, &mut lb).await, Held::Elsewhere);
    }
}
