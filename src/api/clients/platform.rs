//! The relying platform's endpoints (mutual TLS, a registered platform certificate): open a
//! signing session (rate-limited per platform: `limits.signing_sessions_per_platform`) and
//! long-poll it.

use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::errors;
use crate::api::problem::{JsonBody, Params, Problem};
use crate::daemon::Instance;
use crate::roles::Caller;
use crate::signing::OpenRequest;

/// The registered platform behind the client certificate, or 403.
fn platform(caller: Option<Extension<Caller>>) -> Result<String, Problem> {
    let refused = || Problem::new(StatusCode::FORBIDDEN, "a registered relying-platform certificate is required");
    // The registry decides: an active registration for this certificate, whatever role
    // roles.toml gives it.
    let Extension(caller) = caller.ok_or_else(refused)?;
    caller.platform.ok_or_else(refused)
}

pub(super) async fn open(
    State(i): State<Instance>,
    caller: Option<Extension<Caller>>,
    JsonBody(body): JsonBody<OpenRequest>,
) -> Result<Response, Problem> {
    let platform = platform(caller)?;
    crate::api::throttle::check(&i, &i.limits.signing_sessions_per_platform, &platform, String::new).await?;
    if body.format == crate::signing::Format::Pades {
        crate::api::throttle::check(&i, &i.limits.pdf_sessions_per_platform, &platform, String::new).await?;
    }
    let opened = i.signing.open(&platform, body).await.map_err(errors::signing)?;
    Ok((StatusCode::CREATED, Json(opened)).into_response())
}

/// Poll parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PollParams {
    wait: Option<u64>,
}

pub(super) async fn poll(
    State(i): State<Instance>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Params(p): Params<PollParams>,
) -> Result<Response, Problem> {
    let platform = platform(caller)?;
    // A CSC authorisation's signatures are released by `signHash` with its SAD, once.
    if i.csc.owns_session(&id).await.map_err(|e| Problem::internal(&e))? {
        return Err(errors::signing(crate::signing::SigningError::NotFound));
    }
    let wait = Duration::from_secs(p.wait.unwrap_or(0).min(30));
    let view = i.signing.poll(&platform, &id, wait).await.map_err(errors::signing)?;
    Ok(Json(view).into_response())
}
