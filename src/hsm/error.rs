//! HSM errors: every PKCS#11 failure keeps the function that failed and its CKR code, so an
//! operator can match a log line against the vendor manual without guessing.

use cryptoki::error::{Error as CkError, RvError};

/// What went wrong talking to the HSM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// A PKCS#11 call returned an error code.
    #[error("{function} failed with {code}")]
    Pkcs11 {
        /// The PKCS#11 function, e.g. `C_Sign`.
        function: String,
        /// The CKR code name, e.g. `CKR_SESSION_HANDLE_INVALID`.
        code: String,
        /// Whether the session or token went away (the pool rebuilds sessions for these).
        session_lost: bool,
    },
    /// The module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    Module {
        /// The configured module path.
        path: String,
        /// Why loading failed.
        reason: String,
    },
    /// No slot holds a token with the configured label.
    #[error("no token labelled {label:?} (tokens present: {present})")]
    TokenNotFound {
        /// The configured label.
        label: String,
        /// The labels that were found, for the operator.
        present: String,
    },
    /// The token refused the PIN; the pool never retries it, to avoid locking the token.
    #[error("the token refused the user PIN ({code}); not retrying, to avoid locking the token")]
    LoginRefused {
        /// The CKR code, e.g. `CKR_PIN_INCORRECT`.
        code: String,
    },
    /// The PIN source could not be read.
    #[error("cannot read the HSM PIN: {0}")]
    Pin(String),
    /// A key with that label is expected but absent.
    #[error("no {class} key labelled {label:?} on the token")]
    KeyNotFound {
        /// The object label.
        label: String,
        /// `private` or `public`.
        class: &'static str,
    },
    /// A key with that label already exists: the ceremony never overwrites keys.
    #[error("a key labelled {0:?} already exists on the token; refusing to overwrite it")]
    KeyExists(String),
    /// The pool has no working session right now (token gone, rebuild pending).
    #[error("the HSM is not ready: {0}")]
    NotReady(String),
    /// A wrapped holder key does not unwrap under the KEK: tampered, truncated, or from
    /// another HSM.
    #[error("the wrapped key is invalid for this HSM")]
    InvalidBlob,
    /// A wrapped holder key's binding MAC does not verify: the blob is not the one stored for
    /// this credential and certificate; it was not unwrapped.
    #[error("the wrapped key is not bound to this credential")]
    NotBound,
    /// The custody KEK was made by an older ceremony, without the protections that keep holder
    /// keys in the HSM: a key made under it could be exported by anyone with the user PIN.
    #[error(
        "the custody KEK lacks {missing}: anyone with the user PIN can unwrap the holder keys it \
         wraps as extractable and export them in plaintext, so no new holder key is made under it; \
         run `cloudca --config FILE ceremony custody` on one host, then restart every daemon \
         (pkcs11-config/README.md, \"Existing tokens\")"
    )]
    LegacyKek {
        /// The protections it lacks, e.g. `CKA_UNWRAP_TEMPLATE, CKA_MODIFIABLE=false`.
        missing: String,
    },
    /// `hsm.trusted_kek` is set but the Security Officer has not marked the KEK trusted, so
    /// holder keys (CKA_WRAP_WITH_TRUSTED) cannot be wrapped under it.
    #[error(
        "hsm.trusted_kek is set but the custody KEK is not CKA_TRUSTED: the Security Officer must \
         mark it trusted with the HSM vendor's tool (pkcs11-config/README.md)"
    )]
    KekNotTrusted,
    /// The pool has stopped.
    #[error("the HSM pool is shut down")]
    ShutDown,
    /// The token returned data we cannot interpret (e.g. a malformed EC point).
    #[error("unexpected data from the token: {0}")]
    BadData(String),
}

impl HsmError {
    /// Converts a cryptoki error, classifying the codes after which sessions must be rebuilt.
    pub(crate) fn from_cryptoki(err: CkError) -> Self {
        match err {
            CkError::Pkcs11(rv, function) => HsmError::Pkcs11 {
                function: format!("C_{function:?}"),
                code: rv_name(rv),
                session_lost: is_session_lost(rv),
            },
            other => HsmError::Pkcs11 { function: "cryptoki".into(), code: other.to_string(), session_lost: false },
        }
    }

    /// True when the session or token went away and a rebuild may help.
    pub fn is_session_lost(&self) -> bool {
        matches!(self, HsmError::Pkcs11 { session_lost: true, .. })
    }
}

/// The codes that mean "this session (or the login) is gone", from the PKCS#11 spec.
fn is_session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::UserNotLoggedIn
            | RvError::DeviceError
            // A cached handle that no longer names an object: find the objects again.
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
    )
}

/// The CKR_* name for a return value, as the PKCS#11 spec and vendor manuals spell it.
pub(crate) fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names_follow_the_spec_spelling() {
        assert_eq!(rv_name(RvError::SessionHandleInvalid), "CKR_SESSION_HANDLE_INVALID");
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
    }

    #[test]
    fn session_loss_codes_are_classified_for_rebuild() {
        let lost =
            HsmError::from_cryptoki(CkError::Pkcs11(RvError::SessionHandleInvalid, cryptoki::context::Function::Sign));
        assert!(lost.is_session_lost());
        assert_eq!(lost.to_string(), "C_Sign failed with CKR_SESSION_HANDLE_INVALID");
        let other =
            HsmError::from_cryptoki(CkError::Pkcs11(RvError::MechanismInvalid, cryptoki::context::Function::SignInit));
        assert!(!other.is_session_lost());
    }
}
