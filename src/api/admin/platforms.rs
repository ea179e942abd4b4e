//! Relying-platform registry.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{actor, rfc3339};
use crate::api::problem::{JsonBody, Problem};
use crate::daemon::Instance;
use crate::platforms::{PlatformError, Registration};
use crate::roles::Caller;
use crate::store::PlatformRecord;

fn json(p: &PlatformRecord) -> serde_json::Value {
    serde_json::json!({
        "name": p.name, "display_name": p.display_name, "fingerprint": p.fingerprint,
        "callback_url": p.callback_url, "status": p.status, "registered_at": rfc3339(p.registered_at),
    })
}

fn problem(e: PlatformError) -> Problem {
    match e {
        PlatformError::Invalid(m) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        PlatformError::Duplicate => Problem::new(StatusCode::CONFLICT, e.to_string()),
        PlatformError::Unknown(_) => Problem::not_found("no relying platform with that name"),
        PlatformError::Store(s) => Problem::internal(&s),
    }
}

pub(super) async fn register(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Registration>,
) -> Result<Response, Problem> {
    let clock = instance.issuance.clock.as_ref();
    let record = crate::platforms::register(&instance.store, clock, &body, &actor(&caller)).await.map_err(problem)?;
    // Its certificate is a platform here from its next request, not after the cache time.
    instance.operators.platforms.forget();
    Ok((StatusCode::CREATED, Json(json(&record))).into_response())
}

pub(super) async fn list(State(instance): State<Instance>) -> Result<Response, Problem> {
    let items: Vec<_> = instance.store.platforms().await.map_err(|e| Problem::internal(&e))?.iter().map(json).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

pub(super) async fn show(State(instance): State<Instance>, Path(name): Path<String>) -> Result<Response, Problem> {
    let record = instance.store.platform(&name).await.map_err(|e| Problem::internal(&e))?;
    let record = record.ok_or_else(|| Problem::not_found("no relying platform with that name"))?;
    Ok(Json(json(&record)).into_response())
}

pub(super) async fn disable(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let clock = instance.issuance.clock.as_ref();
    let record = crate::platforms::disable(&instance.store, clock, &name, &actor(&caller)).await.map_err(problem)?;
    // Its open connections here lose the role at their next request, not after the cache time.
    instance.operators.platforms.forget();
    Ok(Json(json(&record)).into_response())
}
