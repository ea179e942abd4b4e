//! The session pool: a fixed set of worker threads, each owning one logged-in session, taking
//! jobs from async code over a channel. Sessions are `Send` but not `Sync`, and a blocking
//! `C_Sign` must never run on the async executor, so no session ever crosses an `.await`.
//!
//! Recovery: when a call fails with a session-loss code (see [`HsmError::is_session_lost`]) the
//! worker marks the pool not ready, bumps the generation, forgets cached object handles, opens a
//! new session (re-finding the slot by label) and retries the job once. Login happens at most
//! once per generation, and never again after the token refused the PIN.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{context, HsmError};
use crate::metrics;

/// How long an idle worker waits before checking that its session is still alive, so that
/// readiness notices a lost token even without traffic.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Minimum spacing between two rebuild attempts while the token is away.
const REBUILD_BACKOFF: Duration = Duration::from_secs(1);

/// Shared state of the pool, visible to every worker.
pub(crate) struct Shared {
    /// The process-wide PKCS#11 context.
    ctx: Pkcs11,
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
    /// Whether the pool can serve jobs now.
    ready: AtomicBool,
    /// Why the pool is not ready, for `/ready` and logs.
    reason: Mutex<String>,
    /// Object handles found by label, tagged with the generation they were found in.
    handles: RwLock<HashMap<(String, bool), (u64, ObjectHandle)>>,
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
    pub(crate) fn connect(ctx: Pkcs11, label: &str, pin: AuthPin) -> Result<(Self, Session), HsmError> {
        let slot = context::slot_for_label(&ctx, label)?;
        let shared = Shared {
            ctx,
            label: label.to_string(),
            pin,
            slot: Mutex::new(slot),
            generation: AtomicU64::new(0),
            rebuild: Mutex::new(RebuildState {
                needs_login: true,
                login_refused: None,
                last_attempt: None,
                login_failures: 0,
            }),
            ready: AtomicBool::new(false),
            reason: Mutex::new("starting".into()),
            handles: RwLock::new(HashMap::new()),
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
        let session = match self.ctx.open_rw_session(slot) {
            Ok(s) => s,
            Err(_) => {
                // The token may have come back in another slot: find it by label again.
                let slot = context::slot_for_label(&self.ctx, &self.label)?;
                *lock(&self.slot) = slot;
                self.ctx.open_rw_session(slot).map_err(HsmError::from_cryptoki)?
            }
        };
        if state.needs_login || !is_logged_in(&session) {
            // Never hammer the token with logins: at most one attempt per backoff period.
            if state.last_attempt.is_some_and(|t| t.elapsed() < REBUILD_BACKOFF) && state.login_failures > 0 {
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
                    state.login_failures += 1;
                    let err = HsmError::from_cryptoki(e);
                    if state.login_failures >= MAX_LOGIN_FAILURES {
                        state.login_refused = Some(err.to_string());
                        tracing::error!(target: "audit", event = "hsm.login_refused", error = %err, "login failed {MAX_LOGIN_FAILURES} times in a row; not retrying");
                    }
                    return Err(err);
                }
            }
            state.login_failures = 0;
            state.needs_login = false;
            tracing::info!(token = %self.label, "logged in to the token");
        }
        self.ready.store(true, Ordering::SeqCst);
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
        metrics::get().hsm_ready.set(0);
        *lock(&self.reason) = reason.to_string();
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
    loop {
        let next = crossbeam_channel::select! {
            recv(jobs) -> job => job.map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
            recv(stop) -> _ => Err(crossbeam_channel::RecvTimeoutError::Disconnected),
            default(HEALTH_INTERVAL) => Err(crossbeam_channel::RecvTimeoutError::Timeout),
        };
        match next {
            Ok(mut job) => {
                if let Err(e) = ensure_session(&shared, &mut session, &mut generation) {
                    job.fail(e);
                    continue;
                }
                let Some(s) = session.as_ref() else { continue };
                let Some(lost) = job.run(s, &shared) else { continue };
                // Session loss: rebuild and retry the job exactly once.
                shared.mark_lost(generation, &lost);
                session = None;
                match ensure_session(&shared, &mut session, &mut generation) {
                    Ok(()) => match session.as_ref().and_then(|s| job.run(s, &shared)) {
                        None => {}
                        Some(again) => {
                            shared.mark_lost(generation, &again);
                            session = None;
                            job.fail(again);
                        }
                    },
                    Err(e) => job.fail(e),
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => health_check(&shared, &mut session, &mut generation),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
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
