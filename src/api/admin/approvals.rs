//! Approvals: the back office records that an identity, reachable at a phone, may hold a
//! certificate of a profile. The RA workflow will write the same record after its checks.

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{actor, rfc3339};
use crate::api::problem::{JsonBody, Problem};
use crate::custody::CustodyError;
use crate::daemon::Instance;
use crate::roles::Caller;

/// Body of an approval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalBody {
    pub(crate) profile: String,
    pub(crate) phone: String,
    /// `[[attribute, value], ...]` in order, e.g. `[["C","CN"],["CN","张三"],["serialNumber","..."]]`.
    pub(crate) subject: Vec<(String, String)>,
    /// The person who will hold the key: required for organisation certificates (the agent),
    /// the subject itself for personal ones.
    #[serde(default)]
    pub(crate) holder: Option<HolderBody>,
}

/// An approval's holder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HolderBody {
    pub(crate) name: String,
    pub(crate) id_number: String,
}

pub(super) async fn create(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<ApprovalBody>,
) -> Result<Response, Problem> {
    let holder = body.holder.map(|h| crate::store::HolderIdentity { name: h.name, id_number: h.id_number });
    let approval = instance
        .custody
        .create_approval(&body.profile, body.subject, &body.phone, holder, &actor(&caller))
        .await
        .map_err(|e| match e {
            CustodyError::Invalid(m) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            other => Problem::internal(&other),
        })?;
    let subject: serde_json::Value = serde_json::from_str(&approval.subject).unwrap_or_default();
    let body = serde_json::json!({
        "id": approval.id, "profile": approval.profile, "phone": approval.phone, "subject": subject,
        "identifier": approval.identifier, "status": approval.status, "created_at": rfc3339(approval.created_at),
        "expires_at": rfc3339(approval.expires_at),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
