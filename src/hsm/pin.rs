//! The HSM user PIN comes from a file or an environment variable, never from the config file
//! itself, so the config can be shared, versioned and logged without leaking it.

use cryptoki::types::AuthPin;

use super::HsmError;
use crate::config::HsmConfig;

/// A PIN taken out of the environment at start-up and removed from it, so child processes and
/// later lookups never see it. (The kernel keeps the initial environment in `/proc/PID/environ`,
/// readable by the same user and root: `pin_file` with mode 0600 is the better source.) Never
/// printed.
#[derive(Clone, Default)]
pub struct PinSecret(pub(crate) Option<zeroize::Zeroizing<String>>);

impl std::fmt::Debug for PinSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "PinSecret([redacted])" } else { "PinSecret(None)" })
    }
}

impl PinSecret {
    /// Moves the variable's value into a secret and deletes the variable. Call while the
    /// process is still single-threaded (`main` does, through `Config::apply_hsm_env`).
    pub fn take_from_env(var: &str) -> PinSecret {
        let value = std::env::var(var).ok().map(zeroize::Zeroizing::new);
        std::env::remove_var(var);
        PinSecret(value)
    }
}

/// Reads the PIN from `hsm.pin_file` or `hsm.pin_env` (exactly one is set: config validation
/// enforces it). Trailing newlines are trimmed; the value is held in a zeroizing secret.
pub fn read_pin(config: &HsmConfig) -> Result<AuthPin, HsmError> {
    let raw = match (&config.pin_file, &config.pin_env) {
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|e| HsmError::Pin(format!("hsm.pin_file {}: {e}", path.display())))?
        }
        (None, Some(var)) => match &config.pin_from_env.0 {
            Some(pin) => pin.to_string(),
            None => std::env::var(var).map_err(|_| HsmError::Pin(format!("hsm.pin_env: variable {var} is not set")))?,
        },
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
