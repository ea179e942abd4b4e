//! The HSM user PIN comes from a file or an environment variable, never from the config file
//! itself, so the config can be shared, versioned and logged without leaking it.

use cryptoki::types::AuthPin;

use super::HsmError;
use crate::config::HsmConfig;

/// Reads the PIN from `hsm.pin_file` or `hsm.pin_env` (exactly one is set: config validation
/// enforces it). Trailing newlines are trimmed; the value is held in a zeroizing secret.
pub fn read_pin(config: &HsmConfig) -> Result<AuthPin, HsmError> {
    let raw = match (&config.pin_file, &config.pin_env) {
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|e| HsmError::Pin(format!("hsm.pin_file {}: {e}", path.display())))?
        }
        (None, Some(var)) => {
            std::env::var(var).map_err(|_| HsmError::Pin(format!("hsm.pin_env: variable {var} is not set")))?
        }
        (None, None) => return Err(HsmError::Pin("neither hsm.pin_file nor hsm.pin_env is set".into())),
    };
    let mut raw = zeroize::Zeroizing::new(raw);
    let pin = raw.trim_end_matches(['\r', '\n']).to_string();
    zeroize::Zeroize::zeroize(&mut *raw);
    if pin.is_empty() {
        return Err(HsmError::Pin("the PIN is empty".into()));
    }
    Ok(AuthPin::new(pin.into()))
}
