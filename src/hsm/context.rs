//! The process-wide PKCS#11 context and token lookup. PKCS#11 allows one `C_Initialize` per
//! process, so every pool in the process shares one context per module path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::slot::Slot;

use super::HsmError;

/// Loaded modules by path: a second `C_Initialize` would fail with
/// CKR_CRYPTOKI_ALREADY_INITIALIZED, so the first load is kept for the life of the process.
static CONTEXTS: OnceLock<Mutex<HashMap<String, Pkcs11>>> = OnceLock::new();

/// Loads and initialises the module once per process, with OS locking (without it SoftHSM2
/// turns its locks off and concurrent sessions fail with CKR_GENERAL_ERROR).
pub(crate) fn context(module: &Path) -> Result<Pkcs11, HsmError> {
    let key = module.display().to_string();
    let contexts = CONTEXTS.get_or_init(Default::default);
    let mut contexts = contexts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(ctx) = contexts.get(&key) {
        return Ok(ctx.clone());
    }
    if !module.exists() {
        return Err(HsmError::Module { path: key, reason: "no such file".into() });
    }
    let ctx = Pkcs11::new(module).map_err(|e| HsmError::Module { path: key.clone(), reason: e.to_string() })?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).map_err(HsmError::from_cryptoki)?;
    contexts.insert(key, ctx.clone());
    Ok(ctx)
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
