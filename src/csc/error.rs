//! CSC errors: an HTTP status, the CSC `error` code and an `error_description` (CSC API
//! v1.0.4.0 §10.1 and v2.0.0.2 §11.1). The API layer turns them into
//! `{"error": ..., "error_description": ...}`; nothing else of the cause reaches the body.

/// A CSC error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct CscError {
    /// HTTP status.
    pub status: u16,
    /// The CSC error code (`invalid_request`, `access_denied`, ...).
    pub error: &'static str,
    /// What went wrong, for the platform's developers.
    pub description: String,
}

impl CscError {
    /// 400 `invalid_request`: a parameter is missing or wrong, or the SAD does not allow it.
    pub fn invalid(description: impl Into<String>) -> CscError {
        CscError { status: 400, error: "invalid_request", description: description.into() }
    }

    /// 400 `access_denied`: the holder refused.
    pub fn denied(description: impl Into<String>) -> CscError {
        CscError { status: 400, error: "access_denied", description: description.into() }
    }

    /// 403 `access_denied`: no registered relying-platform certificate.
    pub fn forbidden() -> CscError {
        CscError {
            status: 403,
            error: "access_denied",
            description: "a registered relying-platform certificate is required (mutual TLS)".into(),
        }
    }

    /// 429: the platform's rate limit.
    pub fn too_many() -> CscError {
        CscError { status: 429, error: "too_many_requests", description: "rate limit reached; try again later".into() }
    }

    /// 501 `not_implemented`: a CSC method this service does not offer.
    pub fn not_implemented(method: &str) -> CscError {
        CscError {
            status: 501,
            error: "not_implemented",
            description: format!("{method} is not implemented by this service"),
        }
    }

    /// 503: a dependency (HSM, database, TSA) is away; the cause goes to the log only.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> CscError {
        tracing::warn!(error = %cause, "CSC request failed on a dependency");
        CscError { status: 503, error: "temporarily_unavailable", description: "try again later".into() }
    }

    /// 500: our own fault; the cause goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> CscError {
        tracing::error!(error = %cause, "CSC request failed");
        CscError { status: 500, error: "server_error", description: "internal error".into() }
    }
}

impl From<crate::store::StoreError> for CscError {
    fn from(e: crate::store::StoreError) -> CscError {
        if e.is_unavailable() {
            CscError::unavailable(&e)
        } else {
            CscError::internal(&e)
        }
    }
}
