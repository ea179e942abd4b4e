//! Operations on the status services: CRL rebuild, HSM pool, readiness.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::problem::Problem;
use crate::daemon::{Instance, Readiness};
use crate::status::StatusError;

/// Rebuilds and publishes every CRL partition now (normally the maintenance task does this
/// on its schedule and after revocations).
pub(super) async fn rebuild_crls(State(instance): State<Instance>) -> Result<Response, Problem> {
    let mut crls = Vec::new();
    for (ca, partition) in instance.status.partitions() {
        let crl = instance.status.build_crl(&ca, partition).await.map_err(|e| match e {
            StatusError::Hsm(h) => Problem::unavailable(&h),
            other => Problem::internal(&other),
        })?;
        crls.push(serde_json::json!({
            "ca": ca, "partition": partition, "number": crl.number, "entries": crl.entries,
            "next_update": crl.next_update.format(&time::format_description::well_known::Rfc3339).ok(),
        }));
    }
    tracing::info!(target: "audit", partitions = crls.len(), "CRLs rebuilt on request");
    Ok(Json(serde_json::json!({ "crls": crls })).into_response())
}

pub(super) async fn hsm(State(instance): State<Instance>) -> Response {
    let ready = instance.hsm.readiness();
    Json(serde_json::json!({ "sessions": instance.hsm.size(), "ready": ready.is_ok(), "reason": ready.err() }))
        .into_response()
}

pub(super) async fn readiness(State(instance): State<Instance>) -> Response {
    let (status, reason) = match instance.readiness().await {
        Readiness::Ready => ("ready", None),
        Readiness::Degraded(r) => ("degraded", Some(r)),
        Readiness::NotReady(r) => ("not ready", Some(r)),
    };
    Json(serde_json::json!({ "status": status, "reason": reason })).into_response()
}
