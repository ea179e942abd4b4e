//! Wiring: config → HSM pool → store → hierarchy (every key checked against its certificate) →
//! services → listeners. [`Instance::open`] is shared by the daemon, the CLI commands that sign,
//! and the benchmark, so all three run exactly the production path.

use std::sync::Arc;

use crate::ca::{CaError, Hierarchy, IssuanceService};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::hsm::{HsmError, HsmPool};
use crate::status::{StatusError, StatusService};
use crate::store::{Store, StoreError};

/// Why an instance could not start. Each message names the cause an operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// HSM module, token or PIN.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// Database.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Hierarchy or key check.
    #[error("{0}")]
    Ca(#[from] CaError),
    /// Profiles.
    #[error("policies: {0}")]
    Policies(String),
    /// Status publication set-up.
    #[error("status: {0}")]
    Status(#[from] StatusError),
    /// The timestamp authority's key, certificate or settings.
    #[error("timestamp authority: {0}")]
    Tsa(#[from] crate::tsa::TsaError),
    /// TLS material of the admin listener.
    #[error("TLS: {0}")]
    Tls(String),
    /// The audit certificate is not the one `cloudca.toml` pins.
    #[error("audit: {0}")]
    AuditPin(#[from] crate::audit::pin::PinError),
    /// Listener binding.
    #[error("listener {name} ({addr}): {reason}")]
    Listen {
        /// Listener key in `[listeners]`.
        name: &'static str,
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        reason: String,
    },
}

/// A running CA: the HSM pool, the store and the services built on them.
///
/// Every router takes the instance as its state, and axum clones the state for every request:
/// the parts sit behind one `Arc`, so a request clones one pointer, not the dozen services
/// (each with its own `Arc`s) that [`Parts`] holds. Fields are read through `Deref`.
#[derive(Clone)]
pub struct Instance(Arc<Parts>);

impl std::ops::Deref for Instance {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl From<Parts> for Instance {
    fn from(parts: Parts) -> Self {
        Instance(Arc::new(parts))
    }
}

/// What an [`Instance`] is made of. Cloned only while wiring ([`serve`] re-wires the services
/// that report issuance), never per request.
#[derive(Clone)]
pub struct Parts {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// HSM sessions.
    pub hsm: HsmPool,
    /// Database.
    pub store: Store,
    /// Issuance.
    pub issuance: IssuanceService,
    /// Revocation, CRLs, OCSP.
    pub status: StatusService,
    /// Back-office credentials and their revocation.
    pub operators: crate::operators::Operators,
    /// Holders' cloud keys and PINs.
    pub custody: crate::custody::Custody,
    /// The mobile app's SMS login.
    pub mobile: crate::mobile::Mobile,
    /// Signing sessions.
    pub signing: crate::signing::Signing,
    /// Organisation members and seals.
    pub seals: crate::seals::Seals,
    /// The RFC 3161 timestamp authority (`POST /tsa`).
    pub tsa: crate::tsa::Tsa,
    /// The CSC API for relying platforms (`/csc/v1/`, `/csc/v2/`).
    pub csc: crate::csc::Csc,
    /// The registration authority (application orders, review).
    pub ra: crate::ra::Ra,
    /// The sandbox providers' pay and face pages.
    pub sandboxes: crate::ra::setup::Sandboxes,
    /// This daemon's rate limits (`[limits]`), shared by every listener.
    pub limits: Arc<crate::ratelimit::Limits>,
}

impl Instance {
    /// Starts the HSM pool, opens the store, loads and checks the hierarchy and profiles.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Instance, StartError> {
        let hsm = start_hsm(&config).await?;
        let store = Store::open(&config.database).await?;
        crate::audit::pin::audit_authority(&store, config.audit.certificate_sha256.as_deref()).await?;
        let hierarchy = Hierarchy::load(&store, &hsm).await?;
        let profiles =
            crate::policies::load_profiles(&config.policies_dir, &hierarchy).map_err(StartError::Policies)?;
        let writer = store.writer(config.issuance.max_batch);
        let profiles = crate::policies::Swappable::new(profiles);
        let status = StatusService::new(
            store.clone(),
            hsm.clone(),
            &hierarchy,
            profiles.clone(),
            config.status.clone(),
            config.publication.clone(),
            clock.clone(),
        )?;
        let public = crate::status::ocsp::budget::PublicShare::of_pool(config.hsm.worker_count());
        status.limit_ocsp_signing(config.hsm.ocsp_concurrency, public.clone());
        let tsa = crate::tsa::Tsa::new(&config, &hierarchy, hsm.clone(), store.clone(), clock.clone())?;
        tsa.share_pool_with(public);
        let operators = crate::operators::Operators::new(
            store.clone(),
            hsm.clone(),
            &hierarchy,
            config.ca.organization.clone(),
            clock.clone(),
        );
        operators.revoked.refresh(&store).await?;
        let issuance = IssuanceService {
            hsm: hsm.clone(),
            serials: Arc::new(crate::ca::reserve::SerialReserve::new(writer.clone())),
            writer,
            hierarchy: Arc::new(hierarchy),
            profiles,
            publication: config.publication.clone(),
            status: config.status.clone(),
            issued: None,
            clock,
        };
        // The raw provider goes to `Mobile`, which puts it behind the SMS gate (country list,
        // hourly budget); every other sender gets the gated one.
        let raw_sms = crate::ra::setup::sms(&config);
        let limits = Arc::new(crate::ratelimit::Limits::new(&config.limits));
        let provider_deadline = std::time::Duration::from_millis(config.ra.provider_timeout_ms);
        let mobile = crate::mobile::Mobile::new(
            store.clone(),
            hsm.clone(),
            raw_sms.clone(),
            issuance.clock.clone(),
            config.custody.clone(),
            limits.clone(),
            provider_deadline,
        );
        let sms = mobile.sms();
        // One provider set for the RA and for custody's identity proofs. The sandbox texts face
        // links through the raw provider: `BoundedFaceLinks` has already passed them through
        // the gate (as it must for a real provider, which texts them itself).
        let (mut providers, sandboxes) =
            crate::ra::setup::providers(&config, raw_sms, &store).map_err(StartError::Policies)?;
        providers.sms = sms.clone();
        providers.identity =
            Arc::new(crate::providers::identity::BoundedFaceLinks::new(providers.identity, mobile.clone()));
        let proofs = crate::custody::Proofs::new(
            store.clone(),
            providers.identity.clone(),
            mobile.clone(),
            issuance.clock.clone(),
            config.custody.clone(),
            provider_deadline,
        );
        let custody = crate::custody::Custody::new(crate::custody::CustodyParts {
            store: store.clone(),
            hsm: hsm.clone(),
            issuance: issuance.clone(),
            status: status.clone(),
            proofs,
            sms,
            config: config.custody.clone(),
        });
        let seals = crate::seals::Seals::new(store.clone(), issuance.clock.clone());
        let documents =
            crate::signing::pades::Documents { tsa: tsa.clone(), status: status.clone(), store: store.clone() };
        let signing =
            crate::signing::Signing::new(store.clone(), custody.clone(), seals.clone(), issuance.clock.clone())
                .with_documents(documents);
        let csc =
            crate::csc::Csc::new(store.clone(), custody.clone(), signing.clone(), tsa.clone(), issuance.clock.clone());
        let channels = crate::policies::load_channels(&config.policies_dir).map_err(StartError::Policies)?;
        let services = crate::ra::Services::new(&issuance, &status, &custody, &mobile, &seals);
        let ra =
            crate::ra::Ra::new(store.clone(), issuance.clock.clone(), channels, providers, services, config.ra.clone());
        Ok(Instance::from(Parts {
            config: Arc::new(config),
            limits,
            ra,
            sandboxes,
            hsm,
            store,
            issuance,
            status,
            operators,
            custody,
            mobile,
            signing,
            seals,
            tsa,
            csc,
        }))
    }

    /// What the instance can do now.
    pub async fn readiness(&self) -> Readiness {
        if let Err(e) = self.store.ping().await {
            return Readiness::NotReady(format!("database: {e}"));
        }
        match self.hsm.readiness() {
            Ok(()) => Readiness::Ready,
            Err(e) => Readiness::Degraded(format!("hsm: {e}")),
        }
    }
}

impl Instance {
    /// Renewal, information change and re-issue on this instance.
    pub fn lifecycle(&self) -> crate::lifecycle::Lifecycle<'_> {
        crate::lifecycle::Lifecycle { issuance: &self.issuance, status: &self.status, store: &self.store }
    }
}

/// Readiness, as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Everything works.
    Ready,
    /// The HSM is away: nothing new can be signed, but pre-signed OCSP responses and current
    /// CRLs are still served (so status endpoints stay in rotation).
    Degraded(String),
    /// The database is unreachable.
    NotReady(String),
}

/// Starts the HSM pool off the async executor (module loading and login block).
pub async fn start_hsm(config: &Config) -> Result<HsmPool, HsmError> {
    let hsm_config = config.hsm.clone();
    tokio::task::spawn_blocking(move || HsmPool::start(&hsm_config))
        .await
        .map_err(|e| HsmError::NotReady(format!("start-up task failed: {e}")))?
}

/// Runs the daemon until `shutdown` resolves: binds the listeners, serves, drains.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let instance = Instance::open(config, Arc::new(SystemClock)).await?;
    serve(instance, shutdown).await
}

/// Serves an opened instance until `shutdown` resolves (tests open the instance themselves).
pub async fn serve(
    instance: Instance,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (instance, issued_rx) = rewire(&instance);
    let listeners = &instance.config.listeners;
    let metrics = bind("metrics", listeners.metrics).await?;
    let public = bind("public", listeners.public).await?;
    tracing::info!(metrics = %listeners.metrics, public = %listeners.public, "cloudca serving");
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let holder = crate::coord::holder_name(instance.config.listeners.public);
    let leases = crate::coord::Leases::new(instance.store.clone(), instance.issuance.clock.clone(), holder);
    tracing::info!(holder = leases.holder(), "lease holder name");
    // Recorded before the background jobs start, so the first checkpoint round covers it: a
    // round that ran first would find nothing new and the start would wait a whole period.
    audit_start(&instance).await?;
    let mut tasks = crate::status::tasks::spawn(instance.status.clone(), leases.clone(), issued_rx, tx.subscribe());
    tasks.extend(background(&instance, &leases, &tx));
    let roles = crate::policies::Swappable::new(
        crate::roles::Roles::load(&instance.config.policies_dir).map_err(StartError::Policies)?,
    );
    tasks.push(tokio::spawn(crate::policies::watch(instance.clone(), roles.clone(), tx.subscribe())));
    // The TLS listeners are bound before the metrics listener serves: `/ready` answering means
    // every listener accepts connections.
    if let Some(tls_config) = &instance.config.tls {
        tasks.extend(serve_tls(&instance, tls_config, roles, &tx).await?);
    }
    let observe = crate::api::observe::layer;
    let a = tokio::spawn(crate::api::accept::serve_plain(
        metrics,
        guard(&instance, "metrics"),
        observe(crate::api::ops::router(instance.clone()), "metrics"),
        tx.subscribe(),
    ));
    // The public listener is the OCSP hot path, measured against a bare-hyper ceiling: it only
    // gets the lean request counter (see ARCHITECTURE.md).
    let b = crate::api::public::spawn(public, instance.clone(), tx.subscribe());
    shutdown.await;
    let drain = std::time::Duration::from_secs(instance.config.listeners.drain_seconds);
    tracing::info!(bound_seconds = drain.as_secs(), "shutting down: no new connections; draining requests in flight");
    let _ = tx.send(());
    let drained = tokio::time::timeout(drain, async {
        let _ = tokio::join!(a, b);
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(bound_seconds = drain.as_secs(), "requests still in flight after the drain bound; closing them");
    }
    if let Err(e) = leases.release().await {
        tracing::warn!(error = %e, "cannot release leases; the other daemons take over when they expire");
    }
    instance.store.close().await;
    let _ = tokio::task::spawn_blocking(crate::hsm::shutdown).await;
    tracing::info!("stopped: database connections and HSM sessions closed");
    Ok(())
}

/// A copy of the instance whose issuance reports each new certificate (for OCSP pre-signing)
/// on the returned channel, with custody, signing and the RA re-wired onto it.
fn rewire(instance: &Instance) -> (Instance, tokio::sync::mpsc::Receiver<String>) {
    let mut parts = Parts::clone(instance);
    let (issued_tx, issued_rx) = tokio::sync::mpsc::channel(4096);
    parts.issuance.issued = Some(issued_tx);
    parts.custody.notify_issued(parts.issuance.issued.clone());
    let documents = crate::signing::pades::Documents {
        tsa: parts.tsa.clone(),
        status: parts.status.clone(),
        store: parts.store.clone(),
    };
    parts.signing = crate::signing::Signing::new(
        parts.store.clone(),
        parts.custody.clone(),
        parts.seals.clone(),
        parts.issuance.clock.clone(),
    )
    .with_documents(documents);
    parts.csc = crate::csc::Csc::new(
        parts.store.clone(),
        parts.custody.clone(),
        parts.signing.clone(),
        parts.tsa.clone(),
        parts.issuance.clock.clone(),
    );
    let p = &parts;
    let services = crate::ra::Services::new(&p.issuance, &p.status, &p.custody, &p.mobile, &p.seals);
    parts.ra.rewire(services);
    (Instance::from(parts), issued_rx)
}

/// The once-only background jobs, each on the daemon holding its lease: audit checkpoints,
/// the RA's pass and the purge of finished signing sessions. The RA's metrics are read by every daemon (each exports its own).
fn background(
    instance: &Instance,
    leases: &crate::coord::Leases,
    tx: &tokio::sync::broadcast::Sender<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use crate::coord::{run_job, Job};
    let (i, j, k) = (instance.clone(), instance.clone(), instance.clone());
    let ra_period = std::time::Duration::from_secs(instance.config.ra.task_seconds);
    let checkpointer = Arc::new(crate::audit::Checkpointer::open(
        instance.config.audit_witness(),
        instance.config.audit.certificate_sha256.clone(),
    ));
    vec![
        tokio::spawn(after_start(
            tx.subscribe(),
            run_job(leases.clone(), Job::AuditCheckpoint, CHECKPOINT_PERIOD, tx.subscribe(), move || {
                let (i, c) = (i.clone(), checkpointer.clone());
                async move { checkpoint(&i, &c).await }
            }),
        )),
        tokio::spawn(run_job(leases.clone(), Job::Ra, ra_period, tx.subscribe(), move || {
            let j = j.clone();
            async move { j.ra.pass().await }
        })),
        tokio::spawn(run_job(leases.clone(), Job::SessionPurge, PURGE_PERIOD, tx.subscribe(), move || {
            let k = k.clone();
            async move { purge_sessions(&k).await }
        })),
        tokio::spawn(ra_gauge(instance.clone(), tx.subscribe())),
        tokio::spawn(tsa_tally(instance.clone(), tx.subscribe())),
    ]
}

/// Runs `job` once the daemon has been serving for [`FIRST_CHECKPOINT_DELAY`]: the first
/// checkpoint (which covers `config.loaded`) is signed a few seconds after start, not while an
/// operator's `audit verify` right after start could read the witness line before its row is
/// committed (a verify between the two reports the checkpoint missing).
async fn after_start(mut shutdown: tokio::sync::broadcast::Receiver<()>, job: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = tokio::time::sleep(FIRST_CHECKPOINT_DELAY) => job.await,
        _ = shutdown.recv() => {}
    }
}

/// How long after start the first checkpoint round runs (well inside a minute).
const FIRST_CHECKPOINT_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the chain's head is signed while it grows.
const CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// How often finished signing sessions are looked for.
const PURGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes the signing sessions that ended more than `custody.finished_session_seconds` ago.
async fn purge_sessions(instance: &Instance) {
    let now = instance.issuance.clock.now();
    let before = now.unix_timestamp() - instance.config.custody.finished_session_seconds;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    match instance.store.purge_signing_sessions(before, now_ms).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "finished signing sessions deleted"),
        Err(e) => tracing::warn!(error = %e, "cannot purge finished signing sessions; retrying next round"),
    }
}

/// Binds the `admin` (mutual TLS) and `api` (TLS) listeners, with certificate reload and the
/// revoked-credential refresh running beside them.
async fn serve_tls(
    instance: &Instance,
    tls_config: &crate::config::TlsConfig,
    roles: crate::policies::Swappable<crate::roles::Roles>,
    tx: &tokio::sync::broadcast::Sender<()>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
    use crate::api::mtls::{self, TlsListener};
    use crate::api::tls::{ClientAuth, Reloadable};
    let revoked = instance.operators.revoked.clone();
    let mut tasks = Vec::new();
    let listeners = [
        ("admin", instance.config.listeners.admin, ClientAuth::Required, crate::api::admin::router(instance.clone())),
        ("api", instance.config.listeners.api, ClientAuth::Optional, crate::api::clients::router(instance.clone())),
    ];
    for (name, addr, auth, router) in listeners {
        let tls = Reloadable::new(tls_config, auth, revoked.clone()).map_err(StartError::Tls)?;
        let listener = bind(name, addr).await?;
        tracing::info!(listener = name, %addr, "TLS listener");
        tasks.push(tokio::spawn(tls.clone().watch(tx.subscribe())));
        let router = crate::api::observe::layer(router, name);
        let config = TlsListener { name, tls, roles: roles.clone(), router, instance: instance.clone() };
        tasks.push(tokio::spawn(mtls::serve(listener, guard(instance, name), config, tx.subscribe())));
    }
    tasks.push(tokio::spawn(refresh_revoked(instance.clone(), tx.subscribe())));
    Ok(tasks)
}

/// Re-reads revoked back-office credentials every few seconds, so a revocation made by the
/// CLI or another daemon refuses the next handshake here too.
async fn refresh_revoked(instance: Instance, mut shutdown: tokio::sync::broadcast::Receiver<()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => if let Err(e) = instance.operators.revoked.refresh(&instance.store).await {
                tracing::warn!(error = %e, "cannot refresh revoked operator certificates; keeping the last list");
            },
            _ = shutdown.recv() => return,
        }
    }
}

/// The `config.loaded` audit event: which configuration and policies this daemon runs with
/// (their SHA-256), so a change between restarts shows in the audit log.
async fn audit_start(instance: &Instance) -> Result<(), StartError> {
    let record = crate::store::AuditRecord {
        at: instance.issuance.clock.now().unix_timestamp() * 1000,
        kind: "config.loaded".into(),
        actor: "daemon".into(),
        serial: None,
        detail: serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config_sha256": instance.config.source_sha256,
            "policies_sha256": crate::config::policies_digest(&instance.config.policies_dir),
            "listeners": {
                "public": instance.config.listeners.public.to_string(), "api": instance.config.listeners.api.to_string(),
                "admin": instance.config.listeners.admin.to_string(), "metrics": instance.config.listeners.metrics.to_string(),
            },
        })
        .to_string(),
    };
    instance.store.audit(&record).await?;
    Ok(())
}

/// Signs an audit checkpoint if the chain grew since the last one (refusals log themselves).
async fn checkpoint(instance: &Instance, checkpointer: &crate::audit::Checkpointer) {
    let now = instance.issuance.clock.now().unix_timestamp() * 1000;
    match checkpointer.round(&instance.store, &instance.hsm, now).await {
        Ok(_) | Err(crate::audit::AuditError::Refused(_)) => {}
        Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; retrying next round"),
    }
}

/// Every minute, and once more at shutdown, the `tsa.issued` audit entry for the timestamp
/// tokens this daemon signed (each daemon counts its own: no lease).
async fn tsa_tally(instance: Instance, mut shutdown: tokio::sync::broadcast::Receiver<()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => instance.tsa.flush_tally().await,
            _ = shutdown.recv() => {
                instance.tsa.flush_tally().await;
                return;
            }
        }
    }
}

/// The RA's order metrics, on every daemon.
async fn ra_gauge(instance: Instance, mut shutdown: tokio::sync::broadcast::Receiver<()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(instance.config.ra.task_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => instance.ra.gauge().await,
            _ = shutdown.recv() => return,
        }
    }
}

/// The connection bounds of listener `name` (`[listeners]`).
pub(crate) fn guard(instance: &Instance, name: &'static str) -> crate::api::accept::Guard {
    crate::api::accept::Guard::new(name, crate::api::accept::Bounds::daemon(&instance.config.listeners, name))
}

async fn bind(name: &'static str, addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| StartError::Listen { name, addr, reason: e.to_string() })
}
