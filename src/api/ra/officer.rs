//! The officers' side: the review queue with data and materials, decisions, offline papers,
//! order search, channels.

use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::problem;
use crate::api::admin::{actor, rfc3339};
use crate::api::problem::{JsonBody, Params, Problem};
use crate::daemon::Instance;
use crate::ra::OrderData;
use crate::roles::Caller;
use crate::store::{OrderQuery, OrderRecord};

/// An order as officers see it: everything entered, unmasked, and its materials.
async fn full(instance: &Instance, o: &OrderRecord) -> Result<serde_json::Value, Problem> {
    let materials = instance.store.materials(&o.id).await.map_err(|e| Problem::internal(&e))?;
    let data = OrderData::of(o);
    Ok(serde_json::json!({
        "id": o.id, "channel": o.channel, "flow": o.flow, "state": o.state, "subject_key": o.subject_key,
        "agent_phone": o.agent_phone, "serial": o.serial, "approval_id": o.approval_id, "amount_fen": o.amount_fen,
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

async fn load(instance: &Instance, id: &str) -> Result<OrderRecord, Problem> {
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
        items.push(full(&instance, o).await?);
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
        items.push(full(&instance, o).await?);
    }
    Ok(Json(serde_json::json!({ "items": items, "next_before": next })).into_response())
}

pub(crate) async fn show(State(instance): State<Instance>, Path(id): Path<String>) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    Ok(Json(full(&instance, &order).await?).into_response())
}

pub(crate) async fn material(
    State(instance): State<Instance>,
    Path((id, sha)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (content_type, bytes) = instance
        .store
        .material_bytes(&id, &sha)
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::not_found("no such material on this order"))?;
    Ok(([(header::CONTENT_TYPE, content_type), (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into())], bytes)
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    approve: bool,
    #[serde(default)]
    pub(crate) reason: String,
}

pub(crate) async fn decide(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    let reason: String = body.reason.chars().filter(|c| !c.is_control()).take(500).collect();
    let order = instance.ra.decide(order, &actor(&caller), body.approve, &reason).await.map_err(problem)?;
    Ok(Json(full(&instance, &order).await?).into_response())
}

pub(crate) async fn papers(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    let order = instance.ra.papers_received(order, &actor(&caller)).await.map_err(problem)?;
    Ok(Json(full(&instance, &order).await?).into_response())
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
    Ok(Json(full(&instance, &order).await?).into_response())
}
