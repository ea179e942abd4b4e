//! The session pool: a fixed set of worker threads, each owning one logged-in session, taking
//! jobs from async code over a channel. Sessions are `Send` but not `Sync`, and a blocking
//! `C_Sign` must never run on the async executor, so no session ever crosses an `.await`.
//!
//! Recovery: when a call fails with a session-loss code (see [`HsmError::is_session_lost`]) the
//! worker marks the pool not ready, bumps the generation, forgets cached object handles, opens a
//! new session (re-finding the slot by label) and retries the job once. Login happens at most
//! once per generation, and never again after the token refused the PIN. When no session has
//! worked for [`REINIT_AFTER`], the module itself is re-initialised
//! ([`context::Module::reinitialise`]), for modules that never see a vanished token again
//! otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::custody::KekState;
use super::{context, HsmError};
use crate::metrics;

/// How long an idle worker waits before checking that its session is still alive, so that
/// readiness notices a lost token even without traffic.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Minimum spacing between two rebuild attempts while the token is away.
const REBUILD_BACKOFF: Duration = Duration::from_secs(1);
/// How long no session may work before the module is re-initialised.
const REINIT_AFTER: Duration = Duration::from_secs(3);

/// Shared state of the pool, visible to every worker.
pub(crate) struct Shared {
    /// The process-wide PKCS#11 module.
    module: context::Module,
    /// The token label: the slot is re-found by it on every rebuild.
    label: String,
    /// The user PIN, kept (zeroized on drop by `secrecy`) to log in again after a rebuild.
    pin: AuthPin,
    /// The slot the token was last seen in.
    slot: Mutex<Slot>,
    /// Bumped on every detected loss; a worker whose session is older must reopen it.
    generation: AtomicU64,
    /// Serialises rebuilds and holds whether the current generation still needs a login.
    rebuild: Mutex<RebuildState>,
    /// Whether the pool can serve jobs now (shared with the module's registry).
    ready: Arc<AtomicBool>,
    /// Why the pool is not ready, for `/ready` and logs.
    reason: Mutex<String>,
    /// Since when the pool has not been ready.
    down_since: Mutex<Option<Instant>>,
    /// Object handles found by label, tagged with the generation they were found in.
    handles: RwLock<HashMap<(String, bool), (u64, ObjectHandle)>>,
    /// The custody KEK and its protections, read once per generation like the handles, so
    /// that checking them adds no round trip to an unwrap.
    kek: RwLock<Option<(u64, KekState)>>,
}

/// What the current generation still needs.
struct RebuildState {
    /// Whether no session of this generation has logged in yet.
    needs_login: bool,
    /// Set when the token refused the PIN: we never try again (that could lock the token).
    login_refused: Option<String>,
    /// When the last rebuild was attempted, for the backoff.
    last_attempt: Option<Instant>,
    /// Login attempts that failed for reasons other than the PIN, in a row.
    login_failures: u32,
    /// Whether the last login failed because the token itself did not answer.
    token_silent: bool,
}

/// Login failures of any kind in a row after which the pool stops trying (some HSMs report a
/// wrong PIN as CKR_DEVICE_ERROR or CKR_FUNCTION_FAILED).
const MAX_LOGIN_FAILURES: u32 = 3;

/// A unit of work for a worker: run it with a session, or fail it without one.
pub(crate) trait Job: Send {
    /// Runs the job; returns the error if it was a session loss the worker should recover from
    /// and retry, having not answered yet.
    fn run(&mut self, session: &Session, shared: &Shared) -> Option<HsmError>;
    /// Answers the caller with an error.
    fn fail(self: Box<Self>, err: HsmError);
}

impl Shared {
    /// Logs in (first pool) and builds the shared state.
    pub(crate) fn connect(module: context::Module, label: &str, pin: AuthPin) -> Result<(Self, Session), HsmError> {
        let slot = context::slot_for_label(&module.ctx, label)?;
        let ready = Arc::new(AtomicBool::new(false));
        module.register(&ready);
        let shared = Shared {
            module,
            label: label.to_string(),
            pin,
            slot: Mutex::new(slot),
            generation: AtomicU64::new(0),
            rebuild: Mutex::new(RebuildState {
                needs_login: true,
                login_refused: None,
                last_attempt: None,
                login_failures: 0,
                token_silent: false,
            }),
            ready,
            reason: Mutex::new("starting".into()),
            down_since: Mutex::new(None),
            handles: RwLock::new(HashMap::new()),
            kek: RwLock::new(None),
        };
        let session = shared.open_session()?;
        Ok((shared, session))
    }

    /// Opens a session on the token, logging in if this generation has not yet.
    fn open_session(&self) -> Result<Session, HsmError> {
        let mut state = lock(&self.rebuild);
        if let Some(code) = &state.login_refused {
            return Err(HsmError::LoginRefused { code: code.clone() });
        }
        let slot = *lock(&self.slot);
        let ctx = &self.module.ctx;
        let (session, slot) = match ctx.open_rw_session(slot) {
            Ok(s) => (s, slot),
            Err(_) => {
                // The token may have come back in another slot: find it by label again.
                let slot = context::slot_for_label(ctx, &self.label)?;
                *lock(&self.slot) = slot;
                (ctx.open_rw_session(slot).map_err(HsmError::from_cryptoki)?, slot)
            }
        };
        if state.needs_login || !is_logged_in(&session) {
            // Never hammer the token with logins: at most one attempt per backoff period.
            let failed_before = state.login_failures > 0 || state.token_silent;
            if state.last_attempt.is_some_and(|t| t.elapsed() < REBUILD_BACKOFF) && failed_before {
                return Err(HsmError::NotReady("waiting before the next login attempt".into()));
            }
            state.last_attempt = Some(Instant::now());
            match session.login(UserType::User, Some(&self.pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(CkError::Pkcs11(
                    rv @ (RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::PinExpired
                    | RvError::PinInvalid
                    | RvError::PinLenRange),
                    _,
                )) => {
                    let code = super::error::rv_name(rv);
                    state.login_refused = Some(code.clone());
                    self.set_not_ready(&format!("login refused: {code}"));
                    tracing::error!(target: "audit", event = "hsm.login_refused", code = %code, "the token refused the PIN; not retrying");
                    return Err(HsmError::LoginRefused { code });
                }
                Err(e) => {
                    let err = HsmError::from_cryptoki(e);
                    if ctx.get_token_info(slot).is_err() {
                        // The token itself does not answer (its files or device are gone):
                        // an outage, not a PIN some HSMs report as a device error.
                        state.token_silent = true;
                        return Err(err);
                    }
                    state.login_failures += 1;
                    if state.login_failures >= MAX_LOGIN_FAILURES {
                        state.login_refused = Some(err.to_string());
                        tracing::error!(target: "audit", event = "hsm.login_refused", error = %err, "login failed {MAX_LOGIN_FAILURES} times in a row; not retrying");
                    }
                    return Err(err);
                }
            }
            state.login_failures = 0;
            state.token_silent = false;
            state.needs_login = false;
            tracing::info!(token = %self.label, "logged in to the token");
        }
        self.ready.store(true, Ordering::SeqCst);
        *lock(&self.down_since) = None;
        metrics::get().hsm_ready.set(1);
        Ok(session)
    }

    /// Records a session loss seen by a worker whose session belongs to `seen_generation`.
    fn mark_lost(&self, seen_generation: u64, why: &HsmError) {
        let mut state = lock(&self.rebuild);
        if self.generation.load(Ordering::SeqCst) == seen_generation {
            self.generation.fetch_add(1, Ordering::SeqCst);
            state.needs_login = true;
            self.handles.write().unwrap_or_else(|p| p.into_inner()).clear();
            self.set_not_ready(&why.to_string());
            metrics::get().hsm_rebuilds.inc();
            tracing::warn!(error = %why, "HSM session lost; rebuilding sessions");
        }
    }

    fn set_not_ready(&self, reason: &str) {
        self.ready.store(false, Ordering::SeqCst);
        lock(&self.down_since).get_or_insert_with(Instant::now);
        metrics::get().hsm_ready.set(0);
        *lock(&self.reason) = reason.to_string();
    }

    /// Whether the module should be re-initialised: nothing has worked for [`REINIT_AFTER`]
    /// and the token has not refused the PIN (a re-initialisation must never become a way
    /// round the no-second-login rule).
    fn wants_reinit(&self) -> bool {
        let down_long = lock(&self.down_since).is_some_and(|t| t.elapsed() >= REINIT_AFTER);
        down_long && lock(&self.rebuild).login_refused.is_none()
    }

    /// After a re-initialisation every session is gone: a new generation, with a login.
    fn after_reinit(&self) {
        let mut state = lock(&self.rebuild);
        self.generation.fetch_add(1, Ordering::SeqCst);
        state.needs_login = true;
        state.last_attempt = None;
        self.handles.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Finds a key object by label (private or public), caching the handle for this generation.
    pub(crate) fn find_key(&self, session: &Session, label: &str, private: bool) -> Result<ObjectHandle, HsmError> {
        let key = (label.to_string(), private);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, h)) = self.handles.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if *g == generation {
                return Ok(*h);
            }
        }
        let found = find_objects(session, label, private)?;
        let handle = *found.first().ok_or(HsmError::KeyNotFound {
            label: label.to_string(),
            class: if private { "private" } else { "public" },
        })?;
        // A handle found under an older generation is never cached for the new one.
        if self.generation.load(Ordering::SeqCst) == generation {
            self.handles.write().unwrap_or_else(|p| p.into_inner()).insert(key, (generation, handle));
        }
        Ok(handle)
    }

    /// A secret (AES or HMAC) key by label, cached like [`Self::find_key`].
    pub(crate) fn find_secret_key(&self, session: &Session, label: &str) -> Result<ObjectHandle, HsmError> {
        let key = (format!("secret:{label}"), true);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, h)) = self.handles.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if *g == generation {
                return Ok(*h);
            }
        }
        let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())];
        let found = session.find_objects(&template).map_err(HsmError::from_cryptoki)?;
        let handle = *found.first().ok_or(HsmError::KeyNotFound { label: label.to_string(), class: "secret" })?;
        if self.generation.load(Ordering::SeqCst) == generation {
            self.handles.write().unwrap_or_else(|p| p.into_inner()).insert(key, (generation, handle));
        }
        Ok(handle)
    }

    /// The custody KEK's state, read by `read` once per generation.
    pub(crate) fn kek(
        &self,
        session: &Session,
        read: impl FnOnce(&Session) -> Result<KekState, HsmError>,
    ) -> Result<KekState, HsmError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, state)) = self.kek.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if *g == generation {
                return Ok(state.clone());
            }
        }
        let state = read(session)?;
        if self.generation.load(Ordering::SeqCst) == generation {
            *self.kek.write().unwrap_or_else(|p| p.into_inner()) = Some((generation, state.clone()));
        }
        Ok(state)
    }

    /// Forgets the KEK's state: the custody ceremony just replaced or created it.
    pub(crate) fn forget_kek(&self) {
        *self.kek.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether the pool serves jobs now, and if not, why.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(lock(&self.reason).clone())
        }
    }

    /// The slot the token was last found in.
    pub(crate) fn slot(&self) -> Slot {
        *lock(&self.slot)
    }

    /// The module the pool's sessions live on.
    pub(crate) fn module(&self) -> &context::Module {
        &self.module
    }
}

/// Finds objects of a class with a label.
pub(crate) fn find_objects(session: &Session, label: &str, private: bool) -> Result<Vec<ObjectHandle>, HsmError> {
    let class = if private { ObjectClass::PRIVATE_KEY } else { ObjectClass::PUBLIC_KEY };
    session
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])
        .map_err(HsmError::from_cryptoki)
}

fn is_logged_in(session: &Session) -> bool {
    matches!(session.get_session_info().map(|i| i.session_state()), Ok(SessionState::RwUser | SessionState::RoUser))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One worker thread: owns a session, serves jobs, recovers from session loss.
pub(crate) fn worker(
    shared: Arc<Shared>,
    jobs: crossbeam_channel::Receiver<Box<dyn Job>>,
    stop: crossbeam_channel::Receiver<()>,
    mut session: Option<Session>,
) {
    let mut generation = shared.generation.load(Ordering::SeqCst);
    let mut epoch = *shared.module.enter();
    loop {
        let next = crossbeam_channel::select! {
            recv(jobs) -> job => job.map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
            recv(stop) -> _ => Err(crossbeam_channel::RecvTimeoutError::Disconnected),
            default(HEALTH_INTERVAL) => Err(crossbeam_channel::RecvTimeoutError::Timeout),
        };
        let gate = shared.module.enter();
        if *gate != epoch {
            // The module was re-initialised: the old handle means nothing now (or names
            // another session), so the session is forgotten, not closed.
            if let Some(old) = session.take() {
                std::mem::forget(old);
            }
            epoch = *gate;
        }
        match next {
            Ok(job) => serve(&shared, job, &mut session, &mut generation),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => health_check(&shared, &mut session, &mut generation),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        drop(gate);
        if session.is_none() && shared.wants_reinit() && shared.module.reinitialise(epoch) {
            shared.after_reinit();
        }
    }
}

/// Runs one job on the worker's session; on a session loss, rebuilds and retries it once.
fn serve(shared: &Shared, mut job: Box<dyn Job>, session: &mut Option<Session>, generation: &mut u64) {
    if let Err(e) = ensure_session(shared, session, generation) {
        job.fail(e);
        return;
    }
    let Some(s) = session.as_ref() else { return };
    let Some(lost) = job.run(s, shared) else { return };
    shared.mark_lost(*generation, &lost);
    *session = None;
    match ensure_session(shared, session, generation) {
        Ok(()) => match session.as_ref().and_then(|s| job.run(s, shared)) {
            None => {}
            Some(again) => {
                shared.mark_lost(*generation, &again);
                *session = None;
                job.fail(again);
            }
        },
        Err(e) => job.fail(e),
    }
}

/// Makes sure the worker holds a session of the current generation.
fn ensure_session(shared: &Shared, session: &mut Option<Session>, generation: &mut u64) -> Result<(), HsmError> {
    let current = shared.generation.load(Ordering::SeqCst);
    if session.is_some() && *generation == current {
        return Ok(());
    }
    *session = None;
    match shared.open_session() {
        Ok(s) => {
            *session = Some(s);
            *generation = current;
            Ok(())
        }
        Err(e) => {
            shared.set_not_ready(&e.to_string());
            Err(e)
        }
    }
}

/// While idle: probe the session, and retry a pending rebuild no more than once a second.
fn health_check(shared: &Shared, session: &mut Option<Session>, generation: &mut u64) {
    if let Some(s) = session.as_ref() {
        let probe = s.get_session_info().map_err(HsmError::from_cryptoki);
        let lost = match probe {
            Ok(info) if matches!(info.session_state(), SessionState::RwUser | SessionState::RoUser) => None,
            Ok(_) => Some(HsmError::NotReady("session is no longer logged in".into())),
            Err(e) if e.is_session_lost() => Some(e),
            Err(_) => None,
        };
        match lost {
            None if *generation == shared.generation.load(Ordering::SeqCst) => return,
            None => {}
            Some(e) => shared.mark_lost(*generation, &e),
        }
        *session = None;
    }
    {
        let mut state = lock(&shared.rebuild);
        if state.login_refused.is_some() || state.last_attempt.is_some_and(|t| t.elapsed() < REBUILD_BACKOFF) {
            return;
        }
        state.last_attempt = Some(Instant::now());
    }
    let _ = ensure_session(shared, session, generation);
}
