//! The public listener: what relying parties fetch over plain HTTP. For now the CA
//! certificates named by the caIssuers URLs (`/ca/{name}.crt`, DER, `application/pkix-cert`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::daemon::Instance;

/// Routes of the public listener.
pub fn router(instance: Instance) -> Router {
    Router::new().route("/ca/{file}", get(ca_certificate)).with_state(instance)
}

async fn ca_certificate(State(instance): State<Instance>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crt") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match instance.issuance.hierarchy.get(name) {
        Ok(a) => ([(header::CONTENT_TYPE, "application/pkix-cert")], a.record.certificate.clone()).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
