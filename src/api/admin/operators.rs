//! Back-office credentials: issue and revoke operator client certificates.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{actor, rfc3339};
use crate::api::problem::{JsonBody, Problem};
use crate::daemon::Instance;
use crate::operators::{OperatorError, OperatorRevocation};
use crate::roles::{Caller, Role};
use crate::store::OperatorCertRecord;

fn json(r: &OperatorCertRecord) -> serde_json::Value {
    serde_json::json!({
        "serial": r.serial, "fingerprint": r.fingerprint, "subject": r.subject, "role": r.role,
        "not_after": rfc3339(r.not_after), "status": r.status,
        "pem": pem::encode(&pem::Pem::new("CERTIFICATE", r.der.clone())),
    })
}

fn problem(e: OperatorError) -> Problem {
    match e {
        OperatorError::Request(r) => Problem::bad_request(r.to_string()),
        OperatorError::Refused(m) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        OperatorError::UnknownSerial(_) => Problem::not_found("no operator certificate with that serial"),
        OperatorError::BadSerial(_) => Problem::bad_request("not a hexadecimal serial"),
        OperatorError::NoOperatorCa => Problem::new(StatusCode::CONFLICT, e.to_string()),
        OperatorError::Ca(crate::ca::CaError::Hsm(h)) => Problem::unavailable(&h),
        other => Problem::internal(&other),
    }
}

/// Body of an operator-certificate issuance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    pub(crate) csr: String,
    pub(crate) role: String,
    #[serde(default = "default_days")]
    pub(crate) validity_days: i64,
}

fn default_days() -> i64 {
    365
}

pub(super) async fn issue(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<IssueBody>,
) -> Result<Response, Problem> {
    let role: Role = body.role.parse().map_err(Problem::bad_request)?;
    let days = u32::try_from(body.validity_days).map_err(|_| Problem::bad_request("validity_days: 1 to 397"))?;
    let record = instance.operators.issue(body.csr.as_bytes(), role, days, &actor(&caller)).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(json(&record))).into_response())
}

pub(super) async fn list(State(instance): State<Instance>) -> Result<Response, Problem> {
    let items: Vec<_> = instance.operators.list().await.map_err(problem)?.iter().map(json).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// Body of an operator-certificate revocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    pub(crate) reason: String,
}

pub(super) async fn revoke(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Response, Problem> {
    let reason = super::reason(&body.reason)?;
    let outcome = match instance.operators.revoke(&serial, reason, &actor(&caller)).await.map_err(problem)? {
        OperatorRevocation::Revoked => "revoked",
        OperatorRevocation::AlreadyRevoked => "already revoked",
    };
    Ok(Json(serde_json::json!({ "outcome": outcome })).into_response())
}
