//! What the web front calls for applicants (web-front role). Every order route needs the
//! order's token in `x-order-token` (given when the order is created); without it the order
//! does not exist. An order-query session's token (`x-query-token` on the query routes, or in
//! `x-order-token` on `GET` of an order and its invoice) only reads; a lost order token is
//! replaced through `/v1/ra/queries/orders/{id}/resume` with a code to the order's verified
//! agent.
//!
//! Rate limits (`[limits]`): every change to an order counts against `ra_writes_per_order`
//! once its token has been checked (so nobody without it can use up an order's budget); new
//! orders, SMS codes and secret guesses count per browser address as the web front forwards
//! it (`api::throttle`); codes per phone and code guesses per phone are `Mobile`'s.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::problem;
use crate::api::problem::{JsonBody, Problem};
use crate::api::throttle::{self, ClientIp};
use crate::daemon::Instance;
use crate::ra::flow::Step;
use crate::ra::{Access, CodePurpose, Ra, RaError};
use crate::roles::Caller;
use crate::store::OrderRecord;

fn token(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// An order of a channel the calling web front does not serve does not exist for it, whatever
/// token comes with it (review L1: the channel comes from the authenticated client).
pub(super) fn served(caller: &Caller, order: OrderRecord) -> Result<OrderRecord, Problem> {
    if caller.serves_channel(&order.channel) {
        Ok(order)
    } else {
        Err(problem(RaError::NotFound))
    }
}

async fn order(ra: &Ra, caller: &Caller, id: &str, headers: &HeaderMap) -> Result<OrderRecord, Problem> {
    served(caller, ra.authorized(id, &token(headers, "x-order-token")).await.map_err(problem)?)
}

/// The order, for a change: its token checked, then one of its `ra_writes_per_order`.
async fn writable(instance: &Instance, caller: &Caller, id: &str, headers: &HeaderMap) -> Result<OrderRecord, Problem> {
    let order = order(&instance.ra, caller, id, headers).await?;
    throttle::check(instance, &instance.limits.ra_writes_per_order, &order.id, String::new).await?;
    Ok(order)
}

/// The order for reading: its own token or a query session covering it.
async fn readable(ra: &Ra, caller: &Caller, id: &str, headers: &HeaderMap) -> Result<(OrderRecord, Access), Problem> {
    let (order, access) = ra.readable(id, &token(headers, "x-order-token")).await.map_err(problem)?;
    Ok((served(caller, order)?, access))
}

/// The channel an order query is confined to (review L1): the body may name one of the
/// channels the calling web front serves, never widen past them. A web front confined to one
/// channel gets that one when the body names none; one serving several must name one.
fn query_channel(caller: &Caller, asked: Option<&str>) -> Result<Option<String>, Problem> {
    let asked = asked.map(str::trim);
    match (asked, caller.channels.as_slice()) {
        (asked, []) => Ok(asked.map(String::from)),
        (Some(c), _) if caller.serves_channel(c) => Ok(Some(c.to_string())),
        (None, [only]) => Ok(Some(only.clone())),
        _ => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "channel: one of the channels this web front serves")),
    }
}

async fn view(ra: &Ra, order: &OrderRecord) -> Result<Response, Problem> {
    Ok(Json(ra.view(order).await.map_err(problem)?).into_response())
}

pub(crate) async fn channels(State(instance): State<Instance>) -> Response {
    let channels = instance.ra.channels();
    let items: Vec<_> = channels.values().map(|c| c.as_ref()).collect();
    Json(serde_json::json!({ "items": items })).into_response()
}

pub(crate) async fn channel(State(instance): State<Instance>, Path(name): Path<String>) -> Result<Response, Problem> {
    let channel = instance.ra.channels().get(&name).cloned().ok_or_else(|| Problem::not_found("no such channel"))?;
    Ok(Json(channel.as_ref()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    pub(crate) channel: String,
    pub(crate) flow: String,
}

pub(crate) async fn create(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    ip: ClientIp,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, Problem> {
    if !caller.serves_channel(&body.channel) {
        return Err(problem(RaError::BadRequest(format!("channel: no channel named {:?}", body.channel))));
    }
    throttle::check_ip(&instance, &instance.limits.ra_orders_per_ip, ip).await?;
    let (order, token) = instance.ra.create(&body.channel, &body.flow).await.map_err(problem)?;
    let view = instance.ra.view(&order).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "token": token, "order": view }))).into_response())
}

pub(crate) async fn show(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (order, access) = readable(&instance.ra, &caller, &id, &headers).await?;
    Ok(Json(instance.ra.view_as(&order, access).await.map_err(problem)?).into_response())
}

pub(crate) async fn step(
    State(instance): State<Instance>,
    Path((id, step)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let step = Step::parse(&step).ok_or_else(|| Problem::not_found("no such step"))?;
    let order = writable(&instance, &caller, &id, &headers).await?;
    let order = instance.ra.step(order, step, body).await.map_err(problem)?;
    view(&instance.ra, &order).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeBody {
    #[serde(default)]
    pub(crate) serial: Option<String>,
}

pub(crate) async fn code(
    State(instance): State<Instance>,
    Path((id, purpose)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ip: ClientIp,
    JsonBody(body): JsonBody<CodeBody>,
) -> Result<Response, Problem> {
    let purpose: CodePurpose = serde_json::from_value(serde_json::Value::String(purpose))
        .map_err(|_| Problem::not_found("no such code purpose (certificate, signature, authorization, legal-rep)"))?;
    let order = writable(&instance, &caller, &id, &headers).await?;
    throttle::check_ip(&instance, &instance.limits.sms_per_ip, ip).await?;
    instance.ra.send_code(&order, purpose, body.serial.as_deref()).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent": true }))).into_response())
}

pub(crate) async fn upload(
    State(instance): State<Instance>,
    Path((id, kind)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let order = writable(&instance, &caller, &id, &headers).await?;
    instance.ra.upload(&order, &kind, &bytes).await.map_err(problem)?;
    let order = instance.ra.authorized(&id, &token(&headers, "x-order-token")).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(instance.ra.view(&order).await.map_err(problem)?)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

pub(crate) async fn cancel(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CancelBody>,
) -> Result<Response, Problem> {
    let order = writable(&instance, &caller, &id, &headers).await?;
    let reason = body.reason.unwrap_or_else(|| "cancelled by the applicant".into());
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(200).collect();
    let order = instance.ra.cancel(order, "applicant", &reason).await.map_err(problem)?;
    view(&instance.ra, &order).await
}

pub(crate) async fn offline(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = writable(&instance, &caller, &id, &headers).await?;
    let order = instance.ra.go_offline(order).await.map_err(problem)?;
    view(&instance.ra, &order).await
}

pub(super) fn pdf(bytes: Vec<u8>, name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    ([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response()
}

pub(crate) async fn form(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = order(&instance.ra, &caller, &id, &headers).await?;
    Ok(pdf(instance.ra.form(&order).map_err(problem)?, &format!("{id}-form.pdf")))
}

/// The legal representative's authorisation letter (scope and period) to print, stamp and
/// upload as `authorization-letter`.
pub(crate) async fn authorization_letter(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = order(&instance.ra, &caller, &id, &headers).await?;
    let bytes = instance.ra.authorisation_letter(&order).await.map_err(problem)?;
    Ok(pdf(bytes, &format!("{id}-authorization-letter.pdf")))
}

pub(crate) async fn invoice(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (order, _) = readable(&instance.ra, &caller, &id, &headers).await?;
    let bytes = instance
        .ra
        .invoice(&order)
        .await
        .map_err(problem)?
        .ok_or_else(|| Problem::not_found("no invoice has been issued for this order"))?;
    Ok(pdf(bytes, &format!("{id}-invoice.pdf")))
}

pub(crate) async fn reissue_invoice(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = writable(&instance, &caller, &id, &headers).await?;
    let order = instance.ra.reissue_invoice(order).await.map_err(problem)?;
    view(&instance.ra, &order).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddressBody {
    pub(crate) address: String,
}

pub(crate) async fn address(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AddressBody>,
) -> Result<Response, Problem> {
    let order = writable(&instance, &caller, &id, &headers).await?;
    let order = instance.ra.change_address(order, &body.address).await.map_err(problem)?;
    view(&instance.ra, &order).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryCodeBody {
    pub(crate) subject: String,
    /// The document type of a person's number in `subject` (handbook C6; default the
    /// resident ID): the RA forms and checks `{type}:{number}` ([`crate::ra::typed_subject`]).
    #[serde(default)]
    pub(crate) id_type: crate::ca::identifiers::IdType,
    pub(crate) phone: String,
}

pub(crate) async fn query_code(
    State(instance): State<Instance>,
    ip: ClientIp,
    JsonBody(body): JsonBody<QueryCodeBody>,
) -> Result<Response, Problem> {
    throttle::check_ip(&instance, &instance.limits.sms_per_ip, ip).await?;
    let subject = crate::ra::typed_subject(body.id_type, &body.subject);
    instance.ra.query_code(&subject, &body.phone).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent_if_on_file": true }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    pub(crate) subject: String,
    /// The document type of the person's number, in `subject` and in `id_number` (handbook
    /// C6; default the resident ID). Leave it out with a credit code.
    #[serde(default)]
    pub(crate) id_type: crate::ca::identifiers::IdType,
    pub(crate) phone: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    pub(crate) id_number: Option<String>,
    #[serde(default)]
    card: Option<String>,
    /// The random code's reference (`POST /v1/ra/queries/challenge`), for a fallback's code.
    #[serde(default)]
    challenge: Option<String>,
    /// The random code as typed.
    #[serde(default)]
    answer: Option<String>,
    /// The channel the web front serves: the session shows that channel's orders only.
    #[serde(default)]
    pub(crate) channel: Option<String>,
}

/// Opens an order query: with the SMS code sent to a phone on file (`code`), or by the legal
/// representative's bank card in two calls (review H2): `card` without `code` runs the bank's
/// check and, if the details are the representative's on file, texts a code to their phone
/// (202, the same answer whatever happened); `card` with that `code` opens the session.
pub(crate) async fn open_query(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    ip: ClientIp,
    JsonBody(b): JsonBody<QueryBody>,
) -> Result<Response, Problem> {
    let channel = query_channel(&caller, b.channel.as_deref())?;
    let limits = &instance.limits;
    throttle::check_ip(&instance, &limits.attempts_per_ip, ip).await?;
    // An identity fallback (handbook §4.3) names the person checked: their ID number.
    let subject = crate::ra::typed_subject(b.id_type, &b.subject);
    let id_number = b.id_number.as_deref().map(|n| crate::ra::typed_subject(b.id_type, n));
    let check = id_number.as_deref().map(|id_number| crate::ra::PersonCheck {
        name: b.name.as_deref().unwrap_or_default(),
        id_number,
        card: b.card.as_deref(),
        phone: &b.phone,
    });
    let session = match (&b.code, check) {
        (Some(code), None) => instance.ra.open_query(&subject, &b.phone, code, channel.as_deref()).await,
        (None, Some(check)) => {
            // A paid provider check per try: counted per subject as well, the subject as the
            // RA reads it (a passport number without its spaces, upper case), so no other
            // spelling of one subject buys more tries (attacker review of C6 services).
            let counted = crate::ra::Ra::subject_key(&subject).map_err(problem)?;
            let key = ("subject", counted.as_str());
            throttle::check(&instance, &limits.attempts_per_credential, &key, || {
                format!("subject:{}", crate::ra::mask_identifier(&counted))
            })
            .await?;
            let (challenge, answer) =
                (b.challenge.as_deref().unwrap_or_default(), b.answer.as_deref().unwrap_or_default());
            instance.ra.query_fallback_code(&subject, &check, challenge, answer).await.map_err(problem)?;
            return Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent_if_on_file": true }))).into_response());
        }
        (Some(code), Some(check)) => instance.ra.open_query_fallback(&subject, &check, code, channel.as_deref()).await,
        (None, None) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give either the SMS code or the ID number checked by a fallback",
            ))
        }
    }
    .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// A random code for an identity fallback's form (the web front draws it; only its hash is
/// kept, and it answers once).
pub(crate) async fn query_challenge(State(instance): State<Instance>) -> Result<Response, Problem> {
    let challenge = instance.ra.challenge().await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(challenge)).into_response())
}

pub(crate) async fn query_orders(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let orders = instance.ra.query_orders(&token(&headers, "x-query-token")).await.map_err(problem)?;
    let mut items = Vec::with_capacity(orders.len());
    for o in orders.iter().filter(|o| caller.serves_channel(&o.channel)) {
        items.push(instance.ra.view_as(o, Access::Query).await.map_err(problem)?);
    }
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The query session's subject's certificates to pick a service for (handbook §4.3): the
/// legal representative sees all, an agent those they consent for. The serial goes, with the
/// session's token, into the certificate step of a new order.
pub(crate) async fn query_certificates(
    State(instance): State<Instance>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let items = instance.ra.subject_certificates(&token(&headers, "x-query-token")).await.map_err(problem)?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// Sends the order's verified agent a code to take the order up again (a lost order token).
pub(crate) async fn resume_code(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ip: ClientIp,
) -> Result<Response, Problem> {
    throttle::check_ip(&instance, &instance.limits.sms_per_ip, ip).await?;
    resumable_here(&instance.ra, &caller, &id, &headers).await?;
    instance.ra.resume_code(&id, &token(&headers, "x-query-token")).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sent": true }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeBody {
    code: String,
}

/// With the agent's code, a new token for the order (the old one stops working).
pub(crate) async fn resume(
    State(instance): State<Instance>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ip: ClientIp,
    JsonBody(body): JsonBody<ResumeBody>,
) -> Result<Response, Problem> {
    throttle::check_ip(&instance, &instance.limits.attempts_per_ip, ip).await?;
    let query = token(&headers, "x-query-token");
    resumable_here(&instance.ra, &caller, &id, &headers).await?;
    let (order, token) = instance.ra.resume(&id, &query, &body.code).await.map_err(problem)?;
    let view = instance.ra.view(&order).await.map_err(problem)?;
    Ok(Json(serde_json::json!({ "token": token, "order": view })).into_response())
}

/// A query session resumes only orders of a channel the calling web front serves (review L1).
async fn resumable_here(ra: &Ra, caller: &Caller, id: &str, headers: &HeaderMap) -> Result<(), Problem> {
    let (order, _) = ra.readable(id, &token(headers, "x-query-token")).await.map_err(problem)?;
    served(caller, order).map(|_| ())
}
