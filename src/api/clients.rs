//! The `api` listener (TLS, client certificates optional): phones and relying platforms.
//! Today it serves its health and OpenAPI document; the signing and application endpoints
//! arrive with the signing and workflow work and are added to this router.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::daemon::{Instance, Readiness};

/// The api listener's OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi/api.json");

/// (method, path) of every route, for the OpenAPI drift test.
pub const ROUTES: &[(&str, &str)] = &[("GET", "/openapi.json"), ("GET", "/v1/health")];

/// Routes of the api listener.
pub fn router(instance: Instance) -> Router {
    Router::new()
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/v1/health", get(health))
        .fallback(super::limits::not_found)
        .layer(axum::middleware::from_fn(super::limits::buffer_body))
        .with_state(instance)
}

async fn health(State(instance): State<Instance>) -> Response {
    let status = match instance.readiness().await {
        Readiness::Ready => "ready",
        Readiness::Degraded(_) => "degraded",
        Readiness::NotReady(_) => "not ready",
    };
    Json(serde_json::json!({ "status": status })).into_response()
}
