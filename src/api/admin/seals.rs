//! Seal requests in the back office: reviewers see pending additions and changes (with the
//! image) and decide them. A read of the pending requests (seal images, the requesting
//! holders' phones) is audited before it is served (`seal.requests_read`, once per officer and
//! set of requests per minute).

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use sha2::Digest;

use super::{actor, rfc3339};
use crate::api::problem::{JsonBody, Problem};
use crate::daemon::Instance;
use crate::roles::Caller;
use crate::seals::SealError;

pub(super) async fn pending(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let requests = instance.store.seal_requests("pending").await.map_err(|e| Problem::internal(&e))?;
    if !requests.is_empty() {
        let ids: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
        let what = hex::encode(sha2::Sha256::digest(ids.join(",").as_bytes()));
        let detail = serde_json::json!({ "requests": ids });
        let officer = actor(&caller);
        let read = instance.ra.audit_officer_read(&officer, "seal.requests_read", &what, None, detail);
        read.await.map_err(crate::api::ra::problem)?;
    }
    let items: Vec<_> = requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "credit_code": r.credit_code, "seal_id": r.seal_id, "name": r.name,
                "png": base64::engine::general_purpose::STANDARD.encode(&r.png), "requested_by": r.requested_by,
                "created_at": rfc3339(r.created_at),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// A reviewer's decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    approve: bool,
}

pub(super) async fn decide(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, Problem> {
    let seal = instance.seals.decide(&actor(&caller), &id, body.approve).await.map_err(|e| match e {
        SealError::NotFound => Problem::not_found("no pending seal request with that id"),
        other => Problem::internal(&other),
    })?;
    Ok(Json(serde_json::json!({ "approved": body.approve, "seal_id": seal })).into_response())
}
