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
        .with_state(instance)
}

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

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}
