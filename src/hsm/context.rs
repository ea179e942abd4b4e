//! The process-wide PKCS#11 context and token lookup. PKCS#11 allows one `C_Initialize` per
//! process (until `C_Finalize`), so every pool in the process shares one [`Module`] per path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::slot::Slot;

use super::HsmError;

/// Loaded modules by path: a second `C_Initialize` would fail with
/// CKR_CRYPTOKI_ALREADY_INITIALIZED, so the first load is kept for the life of the process.
static MODULES: OnceLock<Mutex<HashMap<String, Module>>> = OnceLock::new();

/// Least spacing of two re-initialisations of one module.
const REINIT_BACKOFF: Duration = Duration::from_secs(5);

/// A loaded, initialised module, shared by every pool of the process that uses it.
///
/// Some modules never recover a token that vanished (SoftHSM2 keeps a token whose files went
/// away invalid for the rest of the process, even after the files are back): only
/// `C_Finalize` and `C_Initialize` make them look again. That invalidates every session of
/// the process, so it happens only under the gate's write lock, while no other PKCS#11 call
/// runs, and only when no pool on the module is ready (nothing working is broken by it).
#[derive(Clone)]
pub(crate) struct Module {
    /// The context (valid across re-initialisations: the library stays loaded).
    pub(crate) ctx: Pkcs11,
    /// Calls hold it for reading; a re-initialisation for writing. The value is the epoch,
    /// bumped by every re-initialisation: a session from an older epoch is gone.
    gate: Arc<RwLock<u64>>,
    /// Every pool's readiness flag on this module.
    pools: Arc<Mutex<Vec<Weak<AtomicBool>>>>,
    /// When the module was last re-initialised (or tried), for the backoff.
    last_reinit: Arc<Mutex<Option<Instant>>>,
}

impl Module {
    /// Entered around every PKCS#11 call of a pool worker; the guard derefs to the epoch.
    pub(crate) fn enter(&self) -> RwLockReadGuard<'_, u64> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held while no other PKCS#11 call of the process may run (re-initialisation, fault
    /// injection).
    pub(crate) fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, u64> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a pool's readiness in [`Self::all_down`].
    pub(crate) fn register(&self, ready: &Arc<AtomicBool>) {
        lock(&self.pools).push(Arc::downgrade(ready));
    }

    /// Whether no pool on the module can serve now.
    fn all_down(&self) -> bool {
        let mut pools = lock(&self.pools);
        pools.retain(|p| p.strong_count() > 0);
        pools.iter().filter_map(Weak::upgrade).all(|ready| !ready.load(Ordering::SeqCst))
    }

    /// Finalises and initialises the module again, if nothing works on it and it was not done
    /// within the backoff; `seen` is the caller's epoch (another caller may have done it
    /// already). Must not be called while holding [`Self::enter`]'s guard. Returns whether
    /// it re-initialised.
    pub(crate) fn reinitialise(&self, seen: u64) -> bool {
        {
            let mut last = lock(&self.last_reinit);
            if last.is_some_and(|t| t.elapsed() < REINIT_BACKOFF) || !self.all_down() {
                return false;
            }
            *last = Some(Instant::now());
        }
        let mut epoch = self.exclusive();
        if *epoch != seen {
            return false;
        }
        if let Err(e) = self.ctx.clone().finalize() {
            tracing::warn!(error = %e, "C_Finalize failed; initialising anyway");
        }
        if let Err(e) = self.ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            tracing::error!(error = %e, "C_Initialize failed; the module will be tried again");
        }
        *epoch += 1;
        crate::metrics::get().hsm_module_reinits.inc();
        tracing::warn!(target: "audit", event = "hsm.module_reinitialised", epoch = *epoch, "no HSM session worked for a while: the PKCS#11 module was finalised and initialised again");
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads and initialises the module once per process, with OS locking (without it SoftHSM2
/// turns its locks off and concurrent sessions fail with CKR_GENERAL_ERROR).
pub(crate) fn module(path: &Path) -> Result<Module, HsmError> {
    let key = path.display().to_string();
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(module) = modules.get(&key) {
        return Ok(module.clone());
    }
    if !path.exists() {
        return Err(HsmError::Module { path: key, reason: "no such file".into() });
    }
    let ctx = Pkcs11::new(path).map_err(|e| HsmError::Module { path: key.clone(), reason: e.to_string() })?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).map_err(HsmError::from_cryptoki)?;
    let module = Module { ctx, gate: Arc::new(RwLock::new(0)), pools: Arc::default(), last_reinit: Arc::default() };
    modules.insert(key, module.clone());
    Ok(module)
}

/// The module's context, for one-off work outside a pool (provisioning a token).
pub(crate) fn context(path: &Path) -> Result<Pkcs11, HsmError> {
    Ok(module(path)?.ctx)
}

/// Finds the slot holding the token with this label. Slot ids change when SoftHSM2 tokens are
/// initialised, so the label is the only stable name.
pub(crate) fn slot_for_label(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    let slots = ctx.get_slots_with_token().map_err(HsmError::from_cryptoki)?;
    let mut present = Vec::new();
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(HsmError::from_cryptoki)?;
        let found = info.label().trim_end();
        if found == label {
            return Ok(slot);
        }
        if info.token_initialized() {
            present.push(format!("{found:?}"));
        }
    }
    Err(HsmError::TokenNotFound {
        label: label.to_string(),
        present: if present.is_empty() { "none".into() } else { present.join(", ") },
    })
}
