//! The HSM layer: the only module that talks PKCS#11. Everything else sees [`HsmPool`], which
//! signs, generates and inspects keys by label, and never a `cryptoki::Session`.
//!
//! Design: one PKCS#11 context per process ([`context`]); a fixed pool of worker threads, each
//! owning one logged-in session ([`pool`]); async callers send jobs and await a oneshot reply.
//! Hashing happens in the caller's thread, so a worker does nothing but `C_Sign`.

mod algorithm;
mod context;
pub mod custody;
mod error;
mod keys;
mod pin;
mod pool;
mod template;

use std::sync::Arc;
use std::time::Instant;

use cryptoki::session::Session;
use tokio::sync::oneshot;

pub use algorithm::KeyAlgorithm;
pub use custody::{Binding, WrappedKey};
pub use error::HsmError;
pub use keys::KeyProtection;
pub use pin::{read_pin, PinSecret};

use crate::config::HsmConfig;
use crate::metrics;
use pool::{Job, Shared};

/// A pool of logged-in HSM sessions. Cheap to clone; the workers stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct HsmPool {
    /// State shared with the workers (context, PIN, readiness, handle cache).
    shared: Arc<Shared>,
    /// Where jobs go; every worker takes from the same queue.
    jobs: crossbeam_channel::Sender<Box<dyn Job>>,
    /// Number of workers, for metrics and benchmarks.
    size: usize,
    /// Set by [`HsmPool::dangerous_suspend`].
    suspended: Arc<std::sync::atomic::AtomicBool>,
    /// `hsm.trusted_kek`: holder keys are generated CKA_WRAP_WITH_TRUSTED, and wrapped only
    /// under a KEK the Security Officer marked CKA_TRUSTED.
    trusted_kek: bool,
}

impl HsmPool {
    /// Loads the module, finds the token by label, logs in once and starts the workers.
    /// Fails with a message naming the cause: missing module, missing token, wrong PIN.
    pub fn start(config: &HsmConfig) -> Result<Self, HsmError> {
        let pin = read_pin(config)?;
        let module = context::module(&config.module)?;
        let (shared, first) = Shared::connect(module, &config.token_label, pin)?;
        let shared = Arc::new(shared);
        custody::report_at_start(&first, &shared, config.trusted_kek);
        let size = config.worker_count();
        let (tx, rx) = crossbeam_channel::bounded::<Box<dyn Job>>(size * 256);
        let mut first = Some(first);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut handles = Vec::with_capacity(size);
        for i in 0..size {
            let (shared, rx, stop) = (shared.clone(), rx.clone(), stop_rx.clone());
            let session = if i == 0 { first.take() } else { None };
            let handle = std::thread::Builder::new()
                .name(format!("hsm-worker-{i}"))
                .spawn(move || pool::worker(shared, rx, stop, session))
                .map_err(|e| HsmError::NotReady(format!("cannot start worker thread: {e}")))?;
            handles.push(handle);
        }
        lock_workers().push((stop_tx, handles));
        metrics::get().hsm_pool_size.set(size as i64);
        tracing::info!(token = %config.token_label, workers = size, "HSM pool started");
        Ok(HsmPool { shared, jobs: tx, size, suspended: Arc::default(), trusted_kek: config.trusted_kek })
    }

    /// Number of sessions (workers) in the pool.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `Ok` when the pool has working sessions; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.suspended.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("suspended (fault injection)".into());
        }
        self.shared.readiness()
    }

    /// Fault injection for tests and drills: while suspended every job fails as if the token
    /// were gone, without touching the real sessions.
    pub fn dangerous_suspend(&self, suspended: bool) {
        self.suspended.store(suspended, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection for tests and drills: runs `f` (a raw `C_CloseAllSessions`, say) while
    /// no PKCS#11 call of the process is in progress. A token reset or HSM fail-over drops
    /// sessions between two calls of ours; closing a session another thread is inside would,
    /// with an in-process module such as SoftHSM2, free memory under that call, a crash no
    /// real HSM causes.
    pub fn dangerous_exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _no_call_runs = self.shared.module().exclusive();
        f()
    }

    /// The PKCS#11 slot id the token currently sits in (tests use it to close sessions).
    pub fn slot_id(&self) -> u64 {
        self.shared.slot().id()
    }

    /// Signs `message` with the private key labelled `label`; returns the X.509 signature value.
    pub async fn sign(&self, label: &str, algorithm: KeyAlgorithm, message: &[u8]) -> Result<Vec<u8>, HsmError> {
        let input = algorithm.token_input(message);
        let rx = self.submit("sign", sign_job(label.to_string(), algorithm, input))?;
        let raw = rx.await.map_err(|_| HsmError::ShutDown)??;
        algorithm.x509_signature(raw)
    }

    /// Like [`Self::sign`] for synchronous callers (rcgen's `SigningKey`). Must not be called on
    /// an async executor thread; use it from `spawn_blocking` or plain threads.
    pub fn sign_blocking(&self, label: &str, algorithm: KeyAlgorithm, message: &[u8]) -> Result<Vec<u8>, HsmError> {
        let input = algorithm.token_input(message);
        let rx = self.submit("sign", sign_job(label.to_string(), algorithm, input))?;
        let raw = rx.blocking_recv().map_err(|_| HsmError::ShutDown)??;
        algorithm.x509_signature(raw)
    }

    /// Generates a persistent, sensitive, non-extractable key pair; refuses if the label exists.
    /// Returns the SubjectPublicKeyInfo DER.
    pub fn generate_key_pair_blocking(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Vec<u8>, HsmError> {
        let label = label.to_string();
        let rx = self.submit("generate", move |s: &Session, _: &Shared| {
            if !pool::find_objects(s, &label, true)?.is_empty() || !pool::find_objects(s, &label, false)?.is_empty() {
                return Err(HsmError::KeyExists(label.clone()));
            }
            keys::generate(s, &label, algorithm)
        })?;
        rx.blocking_recv().map_err(|_| HsmError::ShutDown)?
    }

    /// Whether any key object carries this label (the ceremony refuses to overwrite).
    pub fn key_exists_blocking(&self, label: &str) -> Result<bool, HsmError> {
        let label = label.to_string();
        let rx = self.submit("find", move |s: &Session, _: &Shared| {
            Ok(!pool::find_objects(s, &label, true)?.is_empty() || !pool::find_objects(s, &label, false)?.is_empty())
        })?;
        rx.blocking_recv().map_err(|_| HsmError::ShutDown)?
    }

    /// The SubjectPublicKeyInfo DER of the public key labelled `label`.
    pub async fn public_key(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Vec<u8>, HsmError> {
        let label = label.to_string();
        let rx = self.submit("public_key", move |s: &Session, sh: &Shared| {
            let handle = sh.find_key(s, &label, false)?;
            keys::public_key_info(s, handle, algorithm)
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }

    /// The protection attributes of the private key labelled `label`.
    pub async fn protection(&self, label: &str) -> Result<KeyProtection, HsmError> {
        let label = label.to_string();
        let rx = self.submit("protection", move |s: &Session, sh: &Shared| {
            let handle = sh.find_key(s, &label, true)?;
            keys::protection(s, handle)
        })?;
        rx.await.map_err(|_| HsmError::ShutDown)?
    }

    /// Queues a job, measuring it for the metrics.
    fn submit<T, F>(&self, op: &'static str, f: F) -> Result<oneshot::Receiver<Result<T, HsmError>>, HsmError>
    where
        T: Send + 'static,
        F: FnMut(&Session, &Shared) -> Result<T, HsmError> + Send + 'static,
    {
        if self.suspended.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HsmError::NotReady("suspended (fault injection)".into()));
        }
        let (tx, rx) = oneshot::channel();
        let task = Task { op, f, reply: Some(tx), queued: Instant::now() };
        self.jobs.send(Box::new(task)).map_err(|_| HsmError::ShutDown)?;
        Ok(rx)
    }
}

/// Every pool's stop signal and worker threads, so the process can stop them before it exits.
type Workers = Vec<(crossbeam_channel::Sender<()>, Vec<std::thread::JoinHandle<()>>)>;
static WORKERS: std::sync::Mutex<Workers> = std::sync::Mutex::new(Vec::new());

fn lock_workers() -> std::sync::MutexGuard<'static, Workers> {
    WORKERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stops every pool's workers and waits for them. Call before the process exits: the
/// module's exit-time destructors must not run while a worker is inside a PKCS#11 call
/// (SoftHSM2 then corrupts its heap).
pub fn shutdown() {
    let pools: Workers = std::mem::take(&mut *lock_workers());
    for (stop, handles) in pools {
        drop(stop); // disconnects: every worker's select wakes and leaves
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Initialises a new token in the first free slot and sets its user PIN, all through PKCS#11
/// (no PIN on any command line). For development instances and tests; production tokens are
/// initialised by the HSM vendor's tools under the HSM's own procedures.
pub fn provision_token(module: &std::path::Path, label: &str, so_pin: &str, user_pin: &str) -> Result<(), HsmError> {
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let ctx = context::context(module)?;
    let free = ctx
        .get_all_slots()
        .map_err(HsmError::from_cryptoki)?
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|t| !t.token_initialized()))
        .ok_or_else(|| HsmError::NotReady("no free slot to initialise a token in".into()))?;
    let so = AuthPin::new(so_pin.into());
    ctx.init_token(free, &so, label).map_err(HsmError::from_cryptoki)?;
    // SoftHSM2 moves a freshly initialised token to a new slot id: find it by label.
    let slot = context::slot_for_label(&ctx, label)?;
    let session = ctx.open_rw_session(slot).map_err(HsmError::from_cryptoki)?;
    session.login(UserType::So, Some(&so)).map_err(HsmError::from_cryptoki)?;
    session.init_pin(&AuthPin::new(user_pin.into())).map_err(HsmError::from_cryptoki)?;
    session.logout().map_err(HsmError::from_cryptoki)?;
    Ok(())
}

/// The signing job: find the key (cached per generation) and call `C_Sign` once.
fn sign_job(
    label: String,
    algorithm: KeyAlgorithm,
    input: Vec<u8>,
) -> impl FnMut(&Session, &Shared) -> Result<Vec<u8>, HsmError> + Send {
    move |s: &Session, sh: &Shared| {
        let key = sh.find_key(s, &label, true)?;
        s.sign(&algorithm.mechanism(), key, &input).map_err(HsmError::from_cryptoki)
    }
}

/// A job with its reply channel.
struct Task<T, F> {
    /// Operation name for metrics.
    op: &'static str,
    /// The work, re-runnable once after a session rebuild.
    f: F,
    /// Where the answer goes; taken when answered.
    reply: Option<oneshot::Sender<Result<T, HsmError>>>,
    /// When the job was queued, for the latency histogram.
    queued: Instant,
}

impl<T, F> Job for Task<T, F>
where
    T: Send + 'static,
    F: FnMut(&Session, &Shared) -> Result<T, HsmError> + Send + 'static,
{
    fn run(&mut self, session: &Session, shared: &Shared) -> Option<HsmError> {
        let result = (self.f)(session, shared);
        if let Err(e) = &result {
            if e.is_session_lost() {
                return Some(HsmError::from_ref(e));
            }
        }
        self.answer(result);
        None
    }

    fn fail(mut self: Box<Self>, err: HsmError) {
        self.answer(Err(err));
    }
}

impl<T, F> Task<T, F> {
    fn answer(&mut self, result: Result<T, HsmError>) {
        let m = metrics::get();
        m.hsm_operation_seconds.with_label_values(&[self.op]).observe(self.queued.elapsed().as_secs_f64());
        match &result {
            Ok(_) => m.hsm_operations.with_label_values(&[self.op]).inc(),
            Err(HsmError::Pkcs11 { function, code, .. }) => m.hsm_errors.with_label_values(&[function, code]).inc(),
            Err(_) => m.hsm_errors.with_label_values(&[self.op, "other"]).inc(),
        }
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(result);
        }
    }
}

impl HsmError {
    /// A copy of a session-loss error (the original is kept for the retry decision).
    fn from_ref(e: &HsmError) -> HsmError {
        match e {
            HsmError::Pkcs11 { function, code, session_lost } => {
                HsmError::Pkcs11 { function: function.clone(), code: code.clone(), session_lost: *session_lost }
            }
            other => HsmError::NotReady(other.to_string()),
        }
    }
}
