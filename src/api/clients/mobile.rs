//! The mobile app's endpoints: SMS login, identity proofs, credentials (first PIN, PIN change,
//! unlock, reset) and the holder's side of signing sessions. Every call but login carries
//! `Authorization: Bearer`. Setting a PIN without the old one (first PIN, unlock, reset) needs a
//! passed identity proof (`POST /v1/mobile/proofs`), never an SMS code alone.
//!
//! Rate limits: SMS sends per client address (and per phone, in `Mobile`); every call that
//! checks a secret (SMS code, PIN) is an attempt per client address, and per phone (in
//! `Mobile::check_code`) or per credential of the holder (PINs).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::errors;
use crate::api::problem::{JsonBody, Problem};
use crate::api::throttle::{self, ClientIp};
use crate::custody::{Pin, ProofMethod, ProofPurpose, ProvenPin};
use crate::daemon::Instance;
use crate::mobile::Purpose;

/// The holder behind a valid bearer token.
pub struct Holder {
    /// E.164 phone number.
    pub phone: String,
    token: String,
}

impl FromRequestParts<Instance> for Holder {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, instance: &Instance) -> Result<Holder, Problem> {
        let unauthorized = || Problem::new(StatusCode::UNAUTHORIZED, "log in first (Authorization: Bearer TOKEN)");
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        // RFC 6750: the scheme name is case-insensitive.
        let (scheme, token) = value.split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 128 {
            return Err(unauthorized());
        }
        let phone = instance.mobile.phone(token).await.map_err(errors::login)?.ok_or_else(unauthorized)?;
        Ok(Holder { phone, token: token.to_string() })
    }
}

fn pin(text: &str) -> Result<Pin, Problem> {
    Pin::new(text).map_err(|e| Problem::bad_request(e.to_string()))
}

/// One guess at a secret from this address (the per-phone count is `Mobile::check_code`'s).
pub(super) async fn attempt(i: &Instance, ip: ClientIp) -> Result<(), Problem> {
    throttle::check_ip(i, &i.limits.attempts_per_ip, ip).await
}

/// One PIN guess from this address at this holder's credential. Keyed by holder and
/// credential, so another holder naming the credential cannot spend its owner's budget.
async fn pin_attempt(i: &Instance, ip: ClientIp, holder: &Holder, credential: &str) -> Result<(), Problem> {
    attempt(i, ip).await?;
    let key = ("credential", holder.phone.as_str(), credential);
    throttle::check(i, &i.limits.attempts_per_credential, &key, || format!("credential:{credential}")).await
}

/// One request from this address that sets a PIN on this holder's approval or credential
/// (first PIN, unlock, reset), or starts the identity proof for it: counted apart from PIN
/// guesses, so proving identity does not spend the PIN's budget.
async fn pin_set_attempt(i: &Instance, ip: ClientIp, holder: &Holder, target: &str) -> Result<(), Problem> {
    attempt(i, ip).await?;
    let key = ("pin-set", holder.phone.as_str(), target);
    throttle::check(i, &i.limits.attempts_per_credential, &key, || format!("pin-set:{target}")).await
}

/// Body of a code request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeBody {
    pub(crate) phone: String,
    #[serde(default = "login_purpose")]
    pub(crate) purpose: String,
    /// What the code acts on: the organisation's credit code for `admin`; none for `login`.
    #[serde(default)]
    pub(crate) object: Option<String>,
}

fn login_purpose() -> String {
    "login".into()
}

pub(super) async fn send_code(
    State(i): State<Instance>,
    ip: ClientIp,
    JsonBody(b): JsonBody<CodeBody>,
) -> Result<Response, Problem> {
    let purpose = Purpose::parse(&b.purpose).map_err(errors::login)?;
    let object = match (purpose, b.object.as_deref()) {
        (Purpose::Login, None) => "",
        (Purpose::Admin, Some(code)) if crate::ra::validate::credit_code("object", code).is_ok() => code,
        (Purpose::Admin, _) => return Err(Problem::bad_request("object: the organisation's credit code")),
        _ => return Err(Problem::bad_request("object: a login code acts on nothing")),
    };
    throttle::check_ip(&i, &i.limits.sms_per_ip, ip).await?;
    i.mobile.send_code(&b.phone, purpose, object).await.map_err(errors::login)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent": true }))).into_response())
}

/// Body of a login.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    phone: String,
    code: String,
}

pub(super) async fn login(
    State(i): State<Instance>,
    ip: ClientIp,
    JsonBody(b): JsonBody<LoginBody>,
) -> Result<Response, Problem> {
    attempt(&i, ip).await?;
    let session = i.mobile.login(&b.phone, &b.code).await.map_err(errors::login)?;
    Ok(Json(
        serde_json::json!({ "token": session.token, "expires_at": crate::api::admin::rfc3339(session.expires_at) }),
    )
    .into_response())
}

pub(super) async fn logout(State(i): State<Instance>, holder: Holder) -> Result<Response, Problem> {
    i.mobile.logout(&holder.token).await.map_err(errors::login)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn credentials(State(i): State<Instance>, holder: Holder) -> Result<Response, Problem> {
    let store = &i.store;
    let approvals = store.approvals_for_phone(&holder.phone).await.map_err(|e| Problem::internal(&e))?;
    let credentials = store.credentials_for_phone(&holder.phone).await.map_err(|e| Problem::internal(&e))?;
    let mut items = Vec::new();
    for c in &credentials {
        let cert = store.certificate(&c.serial).await.map_err(|e| Problem::internal(&e))?;
        items.push(serde_json::json!({
            "id": c.id, "serial": c.serial, "status": c.status,
            "subject": cert.as_ref().map(|c| c.subject.clone()), "profile": cert.as_ref().map(|c| c.profile.clone()),
            "not_after": cert.as_ref().and_then(|c| crate::api::admin::rfc3339(c.not_after)),
            "certificate_status": cert.as_ref().map(|c| c.status.clone()),
        }));
    }
    let now = crate::clock::unix_now();
    let pending: Vec<_> = approvals
        .iter()
        .filter(|a| a.status == "approved" && a.expires_at > now)
        .map(|a| {
            let subject: serde_json::Value = serde_json::from_str(&a.subject).unwrap_or_default();
            let expires_at = crate::api::admin::rfc3339(a.expires_at);
            serde_json::json!({ "approval_id": a.id, "profile": a.profile, "subject": subject, "expires_at": expires_at })
        })
        .collect();
    Ok(Json(serde_json::json!({ "approvals": pending, "credentials": items })).into_response())
}

/// Body of an identity proof: what it is for (`enrol` an approval, `unlock` or `reset` a
/// credential), and how (`face`, or `bank_card` with the card and its reserved phone).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofBody {
    purpose: String,
    target: String,
    method: String,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    card_phone: Option<String>,
}

pub(super) async fn start_proof(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    JsonBody(b): JsonBody<ProofBody>,
) -> Result<Response, Problem> {
    let purpose = ProofPurpose::parse(&b.purpose).map_err(errors::custody)?;
    let method = match (b.method.as_str(), b.card, b.card_phone) {
        ("face", None, None) => ProofMethod::Face,
        ("bank_card", Some(card), Some(reserved_phone)) => ProofMethod::BankCard { card, reserved_phone },
        _ => return Err(Problem::bad_request("method: face, or bank_card with card and card_phone")),
    };
    pin_set_attempt(&i, ip, &holder, &b.target).await?;
    let custody = &i.custody;
    let person = match purpose {
        ProofPurpose::Enrol => custody.enrollable(&b.target, &holder.phone).await.map(|(_, h)| h),
        _ => custody.resettable(&b.target, &holder.phone, purpose).await.map(|(_, h)| h),
    }
    .map_err(errors::custody)?;
    let started =
        custody.proofs.start(&holder.phone, purpose, &b.target, &person, method).await.map_err(errors::custody)?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

pub(super) async fn proof(
    State(i): State<Instance>,
    holder: Holder,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let state = i.custody.proofs.poll(&id, &holder.phone).await.map_err(errors::custody)?;
    Ok(Json(serde_json::json!({ "proof_id": id, "state": state })).into_response())
}

/// Body of the first PIN: the approval, its passed identity proof (with the bank card's code
/// for a bank-card proof), the PIN.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollBody {
    approval_id: String,
    proof_id: String,
    #[serde(default)]
    code: Option<String>,
    pub(crate) pin: String,
}

pub(super) async fn enroll(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    JsonBody(b): JsonBody<EnrollBody>,
) -> Result<Response, Problem> {
    let pin = pin(&b.pin)?;
    pin_set_attempt(&i, ip, &holder, &b.approval_id).await?;
    let actor = format!("phone:{}", holder.phone);
    let proven = ProvenPin { proof_id: &b.proof_id, code: b.code.as_deref(), pin: &pin };
    let (credential, issued) =
        i.custody.enroll(&b.approval_id, &holder.phone, proven, &actor).await.map_err(errors::custody)?;
    if let Err(e) = i.status.presign(&issued.serial).await {
        tracing::warn!(error = %e, "OCSP pre-signing deferred to the refresh task");
    }
    let body = serde_json::json!({
        "id": credential.id, "serial": issued.serial, "status": credential.status,
        "certificate": pem::encode(&pem::Pem::new("CERTIFICATE", issued.der)),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Body of a PIN change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PinBody {
    pub(crate) old_pin: String,
    pub(crate) new_pin: String,
}

pub(super) async fn change_pin(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PinBody>,
) -> Result<Response, Problem> {
    let (old, new) = (pin(&b.old_pin)?, pin(&b.new_pin)?);
    pin_attempt(&i, ip, &holder, &id).await?;
    let actor = format!("phone:{}", holder.phone);
    i.custody.change_pin(&id, &holder.phone, &old, &new, &actor).await.map_err(errors::custody)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of an unlock or reset: the passed identity proof for it (with the bank card's code
/// for a bank-card proof), and the new PIN.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    proof_id: String,
    #[serde(default)]
    code: Option<String>,
    pub(crate) new_pin: String,
}

/// `POST /v1/mobile/credentials/{id}/unlock`: a locked credential gets a new PIN.
pub(super) async fn unlock(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ResetBody>,
) -> Result<Response, Problem> {
    reset(&i, &holder, ip, &id, ProofPurpose::Unlock, &b).await
}

/// `POST /v1/mobile/credentials/{id}/pin-reset`: an active credential whose PIN the holder
/// forgot gets a new one.
pub(super) async fn pin_reset(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ResetBody>,
) -> Result<Response, Problem> {
    reset(&i, &holder, ip, &id, ProofPurpose::Reset, &b).await
}

async fn reset(
    i: &Instance,
    holder: &Holder,
    ip: ClientIp,
    id: &str,
    purpose: ProofPurpose,
    b: &ResetBody,
) -> Result<Response, Problem> {
    let new = pin(&b.new_pin)?;
    pin_set_attempt(i, ip, holder, id).await?;
    let actor = format!("phone:{}", holder.phone);
    let proven = ProvenPin { proof_id: &b.proof_id, code: b.code.as_deref(), pin: &new };
    i.custody.reset_pin(id, &holder.phone, purpose, proven, &actor).await.map_err(errors::custody)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of a claim.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    pub(crate) payload: String,
}

pub(super) async fn claim(
    State(i): State<Instance>,
    holder: Holder,
    JsonBody(b): JsonBody<ClaimBody>,
) -> Result<Response, Problem> {
    let claimed = i.signing.claim(&holder.phone, &b.payload).await.map_err(errors::signing)?;
    Ok(Json(claimed).into_response())
}

/// Body of an approval.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    credential_id: String,
    pub(crate) pin: String,
    #[serde(default)]
    seal_id: Option<String>,
}

pub(super) async fn approve(
    State(i): State<Instance>,
    holder: Holder,
    ip: ClientIp,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ApproveBody>,
) -> Result<Response, Problem> {
    let pin = pin(&b.pin)?;
    pin_attempt(&i, ip, &holder, &b.credential_id).await?;
    i.signing
        .approve(&holder.phone, &id, &b.credential_id, &pin, b.seal_id.as_deref())
        .await
        .map_err(errors::signing)?;
    Ok(Json(serde_json::json!({ "state": "signed" })).into_response())
}

pub(super) async fn refuse(
    State(i): State<Instance>,
    holder: Holder,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    i.signing.refuse(&holder.phone, &id).await.map_err(errors::signing)?;
    Ok(Json(serde_json::json!({ "state": "refused" })).into_response())
}
