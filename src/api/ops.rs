//! The operations listener. `/live` says the process serves HTTP; `/ready` says it can do its
//! job (HSM sessions up, database answering) and why not otherwise; `/metrics` is Prometheus.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::daemon::{Instance, Readiness};

/// Routes of the operations listener.
pub fn router(instance: Instance) -> Router {
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .with_state(instance)
}

/// The operations listener's OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi/ops.json");

/// (method, path) of every route, for the OpenAPI drift test.
pub const ROUTES: &[(&str, &str)] =
    &[("GET", "/live"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/openapi.json")];

async fn ready(State(instance): State<Instance>) -> impl IntoResponse {
    match instance.readiness().await {
        Readiness::Ready => {
            (StatusCode::OK, Json(serde_json::json!({ "status": "ready", "hsm_sessions": instance.hsm.size() })))
        }
        Readiness::Degraded(reason) => {
            (StatusCode::OK, Json(serde_json::json!({ "status": "degraded", "reason": reason })))
        }
        Readiness::NotReady(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not ready", "reason": reason })))
        }
    }
}

async fn metrics(State(instance): State<Instance>) -> impl IntoResponse {
    // The checkpoint age is computed at scrape time, so it keeps growing if checkpoints stop.
    if let Ok(Some(at_ms)) = instance.store.last_checkpoint_at().await {
        let age = instance.issuance.clock.now().unix_timestamp() - at_ms / 1000;
        crate::metrics::get().audit_checkpoint_age.set(age.max(0));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}
