//! Organisation administration from the phone: members (added, changed, removed),
//! administrator hand-over, seal requests and who may use each seal. Every change needs a fresh `admin` SMS code besides the session: an attempt per
//! client address and per phone (rate limits).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::errors;
use super::mobile::{attempt, Holder};
use crate::api::problem::{JsonBody, Problem};
use crate::api::throttle::ClientIp;
use crate::daemon::Instance;
use crate::mobile::Purpose;

pub(super) async fn list(State(i): State<Instance>, holder: Holder) -> Result<Response, Problem> {
    let mut items = Vec::new();
    for (credit_code, role) in i.store.orgs_of(&holder.phone).await.map_err(|e| Problem::internal(&e))? {
        let seals: Vec<_> = i
            .store
            .seals_of(&credit_code)
            .await
            .map_err(|e| Problem::internal(&e))?
            .iter()
            .map(|s| serde_json::json!({ "id": s.id, "name": s.name, "status": s.status }))
            .collect();
        let seals = with_users(&i, &credit_code, &role, seals).await?;
        let members = if role == "admin" {
            let list = i.store.org_members(&credit_code).await.map_err(|e| Problem::internal(&e))?;
            serde_json::json!(list
                .iter()
                .map(|(p, r)| serde_json::json!({ "phone": p, "role": r }))
                .collect::<Vec<_>>())
        } else {
            serde_json::Value::Null
        };
        items.push(serde_json::json!({ "credit_code": credit_code, "role": role, "seals": seals, "members": members }));
    }
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The seals as listed, each with the phones allowed to stamp with it (`users`) for the
/// administrator and seal administrators, who grant that leave; anyone else sees no list. The
/// grants of all the organisation's seals come in one query.
async fn with_users(
    i: &Instance,
    credit_code: &str,
    role: &str,
    seals: Vec<serde_json::Value>,
) -> Result<Vec<serde_json::Value>, Problem> {
    if role != "admin" && role != "seal-admin" {
        return Ok(seals);
    }
    let grants = i.store.seal_users_of(credit_code).await.map_err(|e| Problem::internal(&e))?;
    Ok(attach_users(seals, &grants))
}

/// Sets each listed seal's `users` to the phones `grants` (seal id, phone) give it; a seal
/// with none gets an empty list.
fn attach_users(seals: Vec<serde_json::Value>, grants: &[(String, String)]) -> Vec<serde_json::Value> {
    let mut users: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for (seal, phone) in grants {
        users.entry(seal.as_str()).or_default().push(phone.as_str());
    }
    seals
        .into_iter()
        .map(|mut seal| {
            let listed = seal["id"].as_str().and_then(|id| users.get(id)).cloned().unwrap_or_default();
            seal["users"] = serde_json::json!(listed);
            seal
        })
        .collect()
}

/// Body of a member change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    pub(crate) phone: String,
    pub(crate) role: String,
    code: String,
}

pub(super) async fn set_member(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(credit_code): Path<String>,
    JsonBody(b): JsonBody<MemberBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    i.mobile.check_code(&holder.phone, Purpose::Admin, &credit_code, &b.code).await.map_err(errors::login)?;
    i.seals.set_member(&holder.phone, &credit_code, &b.phone, &b.role).await.map_err(errors::seal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of a member removal: the member's phone and a fresh administrator code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveBody {
    pub(crate) phone: String,
    code: String,
}

/// `POST /v1/mobile/orgs/{credit_code}/members/remove`: the administrator removes a member
/// (handbook 人员管理), who loses their leave to use the organisation's seals with it.
pub(super) async fn remove_member(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(credit_code): Path<String>,
    JsonBody(b): JsonBody<RemoveBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    i.mobile.check_code(&holder.phone, Purpose::Admin, &credit_code, &b.code).await.map_err(errors::login)?;
    // An administrator role offered to the member and not yet accepted goes with them, in
    // the removal's transaction.
    i.seals.remove_member(&holder.phone, &credit_code, &b.phone).await.map_err(errors::seal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of a hand-over offer: the new administrator's phone, name and ID number (checked by
/// the carrier before anything moves), and the current administrator's fresh `admin` code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandOverBody {
    pub(crate) phone: String,
    pub(crate) name: String,
    pub(crate) id_number: String,
    code: String,
}

/// `POST /v1/mobile/orgs/{credit_code}/handover`: the administrator offers the role (review
/// M3); 202 once the new administrator's identity is checked and their acceptance code sent.
/// Nothing moves until they accept.
pub(super) async fn hand_over(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(credit_code): Path<String>,
    JsonBody(b): JsonBody<HandOverBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    i.mobile.check_code(&holder.phone, Purpose::Admin, &credit_code, &b.code).await.map_err(errors::login)?;
    let to = crate::ra::NewAdministrator { phone: &b.phone, name: &b.name, id_number: &b.id_number };
    i.ra.offer_hand_over(&holder.phone, &credit_code, &to).await.map_err(crate::api::ra::problem)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "accept_with_code_sent_to": "phone" }))).into_response())
}

/// Body of a hand-over acceptance: the new administrator's phone, who offered the role, and
/// the code the offer texted to that phone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptBody {
    pub(crate) phone: String,
    pub(crate) from: String,
    code: String,
}

/// `POST /v1/mobile/orgs/{credit_code}/handover/accept`: the new administrator takes the role
/// with the code the offer texted them. No bearer token: they may have nothing in the app yet,
/// and the code to their phone, checked by the carrier as theirs, is the proof a login would
/// give.
pub(super) async fn accept_hand_over(
    State(i): State<Instance>,
    ip: ClientIp,
    Path(credit_code): Path<String>,
    JsonBody(b): JsonBody<AcceptBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    let (to, from) = (b.phone.trim(), b.from.trim());
    i.ra.accept_hand_over(to, &credit_code, from, &b.code).await.map_err(crate::api::ra::problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of a seal request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealBody {
    name: String,
    /// The PNG, base64.
    pub(crate) png: String,
    /// The seal to change; absent for a new seal.
    #[serde(default)]
    seal_id: Option<String>,
    code: String,
}

pub(super) async fn request_seal(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(credit_code): Path<String>,
    JsonBody(b): JsonBody<SealBody>,
) -> Result<Response, Problem> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(&b.png)
        .map_err(|_| Problem::bad_request("png: not base64"))?;
    attempt(&i, ip).await?;
    i.mobile.check_code(&holder.phone, Purpose::Admin, &credit_code, &b.code).await.map_err(errors::login)?;
    let request = i.seals.request(&holder.phone, &credit_code, &b.name, png, b.seal_id).await.map_err(errors::seal)?;
    let body = serde_json::json!({ "request_id": request.id, "status": request.status });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Body of a seal-use grant: the member, whether they may stamp with the seal, a fresh
/// administrator code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealUserBody {
    pub(crate) phone: String,
    allowed: bool,
    code: String,
}

/// `POST /v1/mobile/orgs/{credit_code}/seals/{seal_id}/users`: a seal administrator allows or
/// stops a member stamping with the seal.
pub(super) async fn set_seal_user(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path((credit_code, seal_id)): Path<(String, String)>,
    JsonBody(b): JsonBody<SealUserBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    i.mobile.check_code(&holder.phone, Purpose::Admin, &credit_code, &b.code).await.map_err(errors::login)?;
    i.seals.set_seal_user(&holder.phone, &credit_code, &seal_id, &b.phone, b.allowed).await.map_err(errors::seal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::attach_users;
    use serde_json::json;

    #[test]
    fn each_seal_gets_its_own_grants_and_a_seal_without_any_an_empty_list() {
        let seals = vec![json!({ "id": "a" }), json!({ "id": "b" }), json!({ "id": "c" })];
        let grants: Vec<(String, String)> = [("a", "+8613600136000"), ("a", "+8613700137000"), ("c", "+8613500135000")]
            .iter()
            .map(|(s, p)| (s.to_string(), p.to_string()))
            .collect();
        let listed = attach_users(seals, &grants);
        assert_eq!(listed[0]["users"], json!(["+8613600136000", "+8613700137000"]));
        assert_eq!(listed[1]["users"], json!([]));
        assert_eq!(listed[2]["users"], json!(["+8613500135000"]));
    }
}
