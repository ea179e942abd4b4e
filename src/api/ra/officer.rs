//! The officers' side: the review queue with data and materials, decisions, offline papers,
//! order search, channels.
//!
//! Personal data goes only to those who need it (review L10): a reviewer reading one order
//! ([`show`]) sees it whole, and that read is audited (`order.identity_read`) before it is
//! served; every list (queue, search), every operator's and auditor's read, and the answers
//! to decisions are masked ([`OrderData::masked`]). Materials go to reviewers only, as
//! downloads that a browser will not render in the back office's origin, each read audited
//! (`order.material_read`).

use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::problem;
use crate::api::admin::{actor, rfc3339};
use crate::api::problem::{JsonBody, Params, Problem};
use crate::daemon::Instance;
use crate::ra::mask_identifier;
use crate::ra::validate::mask;
use crate::ra::OrderData;
use crate::roles::{Caller, Role};
use crate::store::{OrderQuery, OrderRecord};

/// How much of an order's personal data an answer shows.
#[derive(Clone, Copy)]
enum Reveal {
    /// Everything entered: a reviewer's read of one order, audited.
    Whole,
    /// ID numbers, phones, cards, accounts and e-mail masked: lists, operators, auditors.
    Masked,
}

/// An order as officers see it: everything entered (whole or masked), and its materials.
/// An order whose data cannot be read is an error (logged with its id).
async fn full(instance: &Instance, o: &OrderRecord, reveal: Reveal) -> Result<serde_json::Value, Problem> {
    let data = OrderData::of(o).map_err(problem)?;
    shown(instance, o, reveal, Some(data)).await
}

/// An order in a list (queue, search), masked. One whose data cannot be read (logged by
/// [`OrderData::of`]) is listed with `data: null`, so one bad row does not hide the others.
async fn listed(instance: &Instance, o: &OrderRecord) -> Result<serde_json::Value, Problem> {
    shown(instance, o, Reveal::Masked, OrderData::of(o).ok()).await
}

async fn shown(
    instance: &Instance,
    o: &OrderRecord,
    reveal: Reveal,
    data: Option<OrderData>,
) -> Result<serde_json::Value, Problem> {
    let materials = instance.store.materials(&o.id).await.map_err(|e| Problem::internal(&e))?;
    let (data, subject_key, agent_phone) = match reveal {
        Reveal::Whole => (data, o.subject_key.clone(), o.agent_phone.clone()),
        Reveal::Masked => (
            data.as_ref().map(OrderData::masked),
            o.subject_key.as_deref().map(mask_identifier),
            o.agent_phone.as_deref().map(mask),
        ),
    };
    Ok(serde_json::json!({
        "id": o.id, "channel": o.channel, "flow": o.flow, "state": o.state, "subject_key": subject_key,
        "agent_phone": agent_phone, "serial": o.serial, "approval_id": o.approval_id, "amount_fen": o.amount_fen,
        "paid_at": o.paid_at.and_then(rfc3339), "refunded_at": o.refunded_at.and_then(rfc3339), "invoice_no": o.invoice_no,
        "submitted_at": o.submitted_at.and_then(rfc3339), "decided_at": o.decided_at.and_then(rfc3339),
        "decided_by": o.decided_by, "reason": o.reason, "created_at": rfc3339(o.created_at),
        "data": data,
        "materials": materials.iter().map(|m| serde_json::json!({
            "kind": m.kind, "sha256": m.sha256, "size": m.size, "content_type": m.content_type,
            "href": format!("/v1/orders/{}/materials/{}", o.id, m.sha256),
        })).collect::<Vec<_>>(),
    }))
}

/// The order, or 404.
pub(crate) async fn load(instance: &Instance, id: &str) -> Result<OrderRecord, Problem> {
    instance
        .store
        .order(id)
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::not_found("no such order"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueParams {
    #[serde(default = "fifty")]
    limit: i64,
}

fn fifty() -> i64 {
    50
}

pub(crate) async fn queue(
    State(instance): State<Instance>,
    Params(p): Params<QueueParams>,
) -> Result<Response, Problem> {
    let orders = instance.ra.queue(p.limit).await.map_err(problem)?;
    let mut items = Vec::with_capacity(orders.len());
    for o in &orders {
        items.push(listed(&instance, o).await?);
    }
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default = "fifty")]
    limit: i64,
}

pub(crate) async fn search(
    State(instance): State<Instance>,
    Params(p): Params<SearchParams>,
) -> Result<Response, Problem> {
    if !(1..=500).contains(&p.limit) {
        return Err(Problem::bad_request("limit: 1 to 500"));
    }
    let before = match &p.before {
        Some(id) => Some(load(&instance, id).await.map(|o| (o.created_at, o.id))?),
        None => None,
    };
    let q = OrderQuery {
        state: p.state,
        flow: p.flow,
        channel: p.channel,
        subject_key: p.subject,
        agent_phone: None,
        before,
        limit: p.limit,
    };
    let orders = instance.store.orders(&q).await.map_err(|e| Problem::internal(&e))?;
    let next = (orders.len() as i64 == p.limit).then(|| orders.last().map(|o| o.id.clone())).flatten();
    let mut items = Vec::with_capacity(orders.len());
    for o in &orders {
        items.push(listed(&instance, o).await?);
    }
    Ok(Json(serde_json::json!({ "items": items, "next_before": next })).into_response())
}

/// One order: whole to a reviewer, after auditing the read (who, which order); masked to
/// operators and auditors, who do not decide on orders and need no one's ID number.
pub(crate) async fn show(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    if caller.role != Some(Role::Reviewer) {
        return Ok(Json(full(&instance, &order, Reveal::Masked).await?).into_response());
    }
    instance
        .ra
        .audit_read(&actor(&caller), &order, "order.identity_read", serde_json::json!({}))
        .await
        .map_err(problem)?;
    Ok(Json(full(&instance, &order, Reveal::Whole).await?).into_response())
}

/// A material's bytes, to reviewers only, after auditing the read (who, which order, which
/// material). Uploads are sniffed as PDF, PNG or JPEG, but a file can be two formats at once
/// (an HTML polyglot, a PDF with scripts): so it is served as an attachment under a sandbox
/// CSP with `nosniff`, never rendered as a page of the admin origin.
pub(crate) async fn material(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path((id, sha)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (order, kind, content_type, bytes) = read_material(&instance, &caller, &id, &sha).await?;
    Ok(as_download(&order, &kind, content_type, bytes))
}

/// One material of an order, its read audited first: the order, the material's kind, its
/// content type and bytes. The review pages read materials through here too.
pub(crate) async fn read_material(
    instance: &Instance,
    caller: &Caller,
    id: &str,
    sha: &str,
) -> Result<(OrderRecord, String, String, Vec<u8>), Problem> {
    let missing = || Problem::not_found("no such material on this order");
    let order = load(instance, id).await?;
    let materials = instance.store.materials(&order.id).await.map_err(|e| Problem::internal(&e))?;
    let kind = materials.iter().find(|m| m.sha256 == sha).map(|m| m.kind.clone()).ok_or_else(missing)?;
    let detail = serde_json::json!({ "kind": kind, "sha256": sha });
    instance.ra.audit_read(&actor(caller), &order, "order.material_read", detail).await.map_err(problem)?;
    let (content_type, bytes) =
        instance.store.material_bytes(&order.id, sha).await.map_err(|e| Problem::internal(&e))?.ok_or_else(missing)?;
    Ok((order, kind, content_type, bytes))
}

/// A material as an attachment under a sandbox CSP with `nosniff`: never rendered as a page
/// of the admin origin.
pub(crate) fn as_download(order: &OrderRecord, kind: &str, content_type: String, bytes: Vec<u8>) -> Response {
    let extension = match content_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        _ => "bin",
    };
    // `kind` is one of `MATERIAL_KINDS` and the order id is ours: nothing to quote.
    let disposition = format!("attachment; filename=\"{}-{kind}.{extension}\"", order.id);
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".into()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    approve: bool,
    #[serde(default)]
    pub(crate) reason: String,
}

/// Decides an order in review. The answer is masked: the decision is audited on its own, and
/// the data it was made on was read (and audited) through [`show`].
pub(crate) async fn decide(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    let reason: String = body.reason.chars().filter(|c| !c.is_control()).take(500).collect();
    let order = instance.ra.decide(order, &actor(&caller), body.approve, &reason).await.map_err(problem)?;
    Ok(Json(full(&instance, &order, Reveal::Masked).await?).into_response())
}

/// `POST /v1/orders/{id}/papers`: the code printed on the papers received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PapersBody {
    form_code: String,
}

/// The papers of an offline order arrived: it joins the review queue (masked answer).
pub(crate) async fn papers(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PapersBody>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    let order = instance.ra.papers_received(order, &actor(&caller), &body.form_code).await.map_err(problem)?;
    Ok(Json(full(&instance, &order, Reveal::Masked).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfficerCancelBody {
    reason: String,
}

/// An officer cancels an order not yet decided (an abandoned application holding its
/// subject's open order, an abusive one: review M6), with a reason; a payment is refunded.
pub(crate) async fn cancel(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OfficerCancelBody>,
) -> Result<Response, Problem> {
    let reason: String = body.reason.chars().filter(|c| !c.is_control()).take(500).collect();
    if reason.trim().is_empty() {
        return Err(Problem::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "reason: say why the order is cancelled",
        ));
    }
    let order = load(&instance, &id).await?;
    let order = instance.ra.cancel(order, &actor(&caller), reason.trim()).await.map_err(problem)?;
    Ok(Json(full(&instance, &order, Reveal::Masked).await?).into_response())
}
