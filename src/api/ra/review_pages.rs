//! The reviewers' pages: the review queue, one order with its data and materials, and the
//! decision and offline-papers forms, as HTML on the admin listener (issue 17 point 8).
//!
//! Why here and not on the web front: a reviewer's decision approves certificates, so it must
//! come from the reviewer's own client certificate over mutual TLS, audited under that
//! certificate, never from a process that holds a key able to decide for anyone. The pages are
//! the same routes' JSON ([`super::officer`]) drawn as HTML, with the same rules: the whole
//! order only to reviewers and only after its read is audited; materials read one by one,
//! audited.
//!
//! A browser presents its client certificate to any page that asks, so a certificate is
//! ambient authority like a cookie: every form post must come from these pages themselves.
//! [`same_origin`] refuses a post without an `Origin` naming this listener (or with a
//! `Sec-Fetch-Site` other than `same-origin`), and the refusal is audited (coalesced); the admin
//! listener's guard (`api::admin`) also refuses a page loaded cross-site. The pages
//! carry no script and a CSP that allows none, cannot be framed, and are never cached.
//!
//! Materials are shown inline only when they are images (PNG, JPEG: sniffed at upload), drawn
//! by `<img>`, which decodes an image and nothing else, and served with `nosniff` and a sandbox
//! CSP so opening one directly renders no markup either. PDFs are downloads, as in the API.

use axum::extract::{Extension, Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::officer::load;
use super::problem;
use crate::api::admin::actor;
use crate::api::problem::Problem;
use crate::daemon::Instance;
use crate::ra::OrderData;
use crate::roles::Caller;
use crate::store::{OrderRecord, SealRecord};

/// The CSP of every page: no script, no style from elsewhere, images only from here, forms
/// post only here, never framed.
const PAGE_CSP: &str =
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A small inline style sheet: the pages must be legible without any other request.
const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}\
td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}img{max-width:40em;border:1px solid #888}\
form{margin:1em 0}textarea{width:40em;height:4em}.state{font-weight:bold}";

/// `GET /review`: the orders waiting for a decision, oldest first, masked (a list shows no
/// one's ID number), each linking to its page.
pub(crate) async fn queue(State(instance): State<Instance>) -> Result<Response, Problem> {
    let orders = instance.ra.queue(200).await.map_err(problem)?;
    let offline = offline_orders(&instance).await?;
    let body = html! {
        h1 { "审核队列 · Review queue" }
        @if orders.is_empty() { p #empty { "没有待审核的订单 · Nothing waits for review." } }
        @else { (order_table(&orders, "queue")) }
        h2 { "等待纸质材料 · Waiting for papers (offline)" }
        @if offline.is_empty() { p { "无 · None." } } @else { (order_table(&offline, "offline")) }
    };
    Ok(page("审核队列 · Review queue", body))
}

async fn offline_orders(instance: &Instance) -> Result<Vec<OrderRecord>, Problem> {
    let q = crate::store::OrderQuery {
        state: Some("offline".into()),
        flow: None,
        channel: None,
        subject_key: None,
        agent_phone: None,
        before: None,
        limit: 200,
    };
    instance.store.orders(&q).await.map_err(|e| Problem::internal(&e))
}

/// What a list shows for an order whose data cannot be read (logged by [`OrderData::of`]).
const UNREADABLE: &str = "（数据无法读取 · data cannot be read）";

fn order_table(orders: &[OrderRecord], id: &str) -> Markup {
    html! {
        table id=(id) {
            tr { th { "订单 · Order" } th { "业务 · Flow" } th { "渠道 · Channel" } th { "主体 · Subject" } th { "提交 · Submitted" } }
            @for o in orders {
                tr {
                    td { a.order href={ "/review/orders/" (o.id) } { (o.id) } }
                    td { (o.flow) }
                    td { (o.channel) }
                    td { (OrderData::of(o).map_or_else(|_| UNREADABLE.to_string(), |d| subject_name(&d))) }
                    td { (o.submitted_at.and_then(crate::api::admin::rfc3339).unwrap_or_default()) }
                }
            }
        }
    }
}

/// `GET /review/orders/{id}`: the whole order, read (and audited, before anything is shown)
/// under the reviewer's certificate; its materials; the forms its state allows.
pub(crate) async fn order(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    instance
        .ra
        .audit_read(&actor(&caller), &order, "order.identity_read", serde_json::json!({ "page": true }))
        .await
        .map_err(problem)?;
    let materials = instance.store.materials(&order.id).await.map_err(|e| Problem::internal(&e))?;
    let entered = OrderData::of(&order).map_err(problem)?;
    let changed = changed_seal(&instance, &order).await?;
    let data = serde_json::to_value(&entered).map_err(|e| Problem::internal(&e))?;
    let mut rows = Vec::new();
    flatten("", &data, &mut rows);
    let base = format!("/review/orders/{}", order.id);
    let body = html! {
        h1 { "订单 · Order " (order.id) }
        p { a href="/review" { "← 审核队列 · Review queue" } }
        table #summary {
            tr { th { "状态 · State" } td.state #state { (order.state) } }
            tr { th { "业务 · Flow" } td { (order.flow) } }
            tr { th { "渠道 · Channel" } td { (order.channel) } }
            tr { th { "主体 · Subject" } td { (order.subject_key.clone().unwrap_or_default()) } }
            tr { th { "经办人手机 · Agent phone" } td { (order.agent_phone.clone().unwrap_or_default()) } }
            tr { th { "证书 · Certificate" } td { (order.serial.clone().unwrap_or_default()) } }
            tr { th { "金额 · Amount (fen)" } td { (order.amount_fen) } }
            @if let Some(reason) = &order.reason { tr { th { "理由 · Reason" } td #reason { (reason) } } }
        }
        @if let Some(at) = entered.address_changed_in_review_at {
            p.alert #changed-in-review data-at=(at) {
                "申请人在审核期间修改了收货地址，请核对 · The applicant changed the delivery address during the review: check it again."
            }
        }
        h2 { "申请信息 · Data entered" }
        table #data { @for (k, v) in &rows { tr { th { (k) } td { (v) } } } }
        h2 { "材料 · Materials" }
        @if materials.is_empty() { p { "无 · None." } }
        @for m in &materials {
            @let href = format!("{base}/materials/{}", m.sha256);
            div.material data-kind=(m.kind) {
                h3 { (m.kind) " (" (m.content_type) ", " (m.size) " bytes)" }
                @if is_image(&m.content_type) { img src=(href) alt=(m.kind); }
                @else { a.download href={ "/v1/orders/" (order.id) "/materials/" (m.sha256) } { "下载 · Download" } }
            }
        }
        @if let Some(seal) = &changed {
            h2 { "变更前的印章 · The seal being changed" }
            div.material #changed-seal data-seal=(seal.id) {
                h3 { (seal.name) }
                img src={ (base) "/changed-seal" } alt=(seal.name);
            }
        }
        @if order.state == "review" {
            h2 { "决定 · Decision" }
            form #decision method="post" action={ (base) "/decision" } {
                label { "理由 · Reason " textarea name="reason" {} }
                p {
                    button name="decision" value="approve" type="submit" { "批准 · Approve" }
                    " "
                    button name="decision" value="reject" type="submit" { "驳回 · Reject" }
                }
            }
        }
        @if order.state == "offline" {
            h2 { "纸质材料 · Papers" }
            form #papers method="post" action={ (base) "/papers" } {
                label { "申请表校验码 · Form code on the papers " input type="text" name="form_code" required; }
                button type="submit" { "已收到纸质材料 · Papers received" }
            }
        }
    };
    Ok(page(&format!("订单 · Order {}", order.id), body))
}

/// `GET /review/orders/{id}/materials/{sha256}`: an image material inline, for the `<img>` on
/// the order's page; any other kind is the API's download. Audited per read like the API's.
pub(crate) async fn material(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path((id, sha)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (order, kind, content_type, bytes) = super::officer::read_material(&instance, &caller, &id, &sha).await?;
    if !is_image(&content_type) {
        return Ok(super::officer::as_download(&order, &kind, content_type, bytes));
    }
    Ok(inline_image(content_type, bytes))
}

/// `GET /review/orders/{id}/changed-seal`: the current image of the seal a 变章 order changes,
/// shown beside the new one so the reviewer compares them (handbook §5.1). Only a seal of the
/// order's own organisation; 404 otherwise.
pub(crate) async fn changed_seal_image(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order = load(&instance, &id).await?;
    let seal = changed_seal(&instance, &order).await?;
    let seal = seal.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "this order changes no seal"))?;
    // Audited like a material's read: a seal's image is what the organisation signs with.
    let detail = serde_json::json!({ "seal": seal.id });
    instance.ra.audit_read(&actor(&caller), &order, "order.seal_image_read", detail).await.map_err(problem)?;
    Ok(inline_image("image/png".into(), seal.png))
}

/// The seal a 变章 order changes, while it is still a seal of the organisation whose
/// certificate the order is about.
async fn changed_seal(instance: &Instance, order: &OrderRecord) -> Result<Option<SealRecord>, Problem> {
    let data = OrderData::of(order).map_err(problem)?;
    let chosen = data.product.as_ref().and_then(|p| p.seal_change.clone());
    let (Some(id), Some(certificate)) = (chosen, data.certificate.as_ref()) else { return Ok(None) };
    let seal = instance.store.seal(&id).await.map_err(|e| Problem::internal(&e))?;
    Ok(seal.filter(|s| s.credit_code == certificate.identifier))
}

/// An image for an `<img>` of these pages: never sniffed, sandboxed, not cached, same origin.
fn inline_image(content_type: String, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, "inline".into()),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".into()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (header::CACHE_CONTROL, "no-store".into()),
            (header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin".into()),
        ],
        bytes,
    )
        .into_response()
}

/// The papers form's field: the code printed on the form received.
#[derive(Deserialize)]
pub(crate) struct PapersForm {
    form_code: String,
}

/// The decision form's fields.
#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    decision: String,
    #[serde(default)]
    reason: String,
}

/// `POST /review/orders/{id}/decision`: approve or reject, from this listener's own page only;
/// a rejection needs a reason. Back to the order's page, which shows the outcome.
pub(crate) async fn decide(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, Problem> {
    same_origin(&instance, &caller, &headers, &id).await?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(Problem::bad_request("decision: approve or reject")),
    };
    let reason: String = form.reason.chars().filter(|c| !c.is_control()).take(500).collect();
    if !approve && reason.trim().is_empty() {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "reason: say why the order is rejected"));
    }
    let order = load(&instance, &id).await?;
    let order = instance.ra.decide(order, &actor(&caller), approve, reason.trim()).await.map_err(problem)?;
    Ok(Redirect::to(&format!("/review/orders/{}", order.id)).into_response())
}

/// `POST /review/orders/{id}/papers`: an offline order's papers arrived; it joins the queue.
pub(crate) async fn papers(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PapersForm>,
) -> Result<Response, Problem> {
    same_origin(&instance, &caller, &headers, &id).await?;
    let order = load(&instance, &id).await?;
    let order = instance.ra.papers_received(order, &actor(&caller), &form.form_code).await.map_err(problem)?;
    Ok(Redirect::to(&format!("/review/orders/{}", order.id)).into_response())
}

/// A form post must come from these pages: `Origin` must be this listener's own
/// (`https://` + `Host`) and `Sec-Fetch-Site`, when sent, `same-origin`. Anything else (another
/// site's form, a post with no `Origin` at all) is refused and audited: the certificate in the
/// browser would otherwise decide for whoever made it post.
async fn same_origin(instance: &Instance, caller: &Caller, headers: &HeaderMap, id: &str) -> Result<(), Problem> {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = value(header::HOST).map(|host| format!("https://{host}"));
    let origin = value(header::ORIGIN);
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let same = origin.is_some() && origin == expected.as_deref() && fetch_site.is_none_or(|s| s == "same-origin");
    if same {
        return Ok(());
    }
    let detail = serde_json::json!({ "order": id, "origin": origin, "sec_fetch_site": fetch_site });
    instance.ra.refused_cross_site(&actor(caller), detail).await;
    Err(Problem::new(StatusCode::FORBIDDEN, "this form may only be sent from the review pages themselves"))
}

/// The company's or the person's name: names are not masked in lists.
fn subject_name(data: &OrderData) -> String {
    let company = data.company.as_ref().map(|c| c.name.clone());
    company.or_else(|| data.person.as_ref().map(|p| p.name.clone())).unwrap_or_default()
}

fn is_image(content_type: &str) -> bool {
    matches!(content_type, "image/png" | "image/jpeg")
}

/// `a.b.c = value` rows of the order's data, sorted by key.
fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&key(k), v, rows)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| flatten(&key(&i.to_string()), v, rows)),
        Value::Null => {}
        Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

/// A whole page with the headers every review page carries.
fn page(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="zh" {
            head {
                meta charset="utf-8";
                title { (title) " · cloudca review" }
                style { (STYLE) }
            }
            body { (body) }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
            // Not `no-referrer`: under it Chromium sends `Origin: null` with the page's own form posts.
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        ],
        markup.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_data_becomes_dotted_rows_without_nulls() {
        let v = serde_json::json!({ "company": { "name": "<b>A</b>", "n": 3 }, "x": null, "l": ["p"] });
        let mut rows = Vec::new();
        flatten("", &v, &mut rows);
        assert_eq!(
            rows,
            vec![
                ("company.n".to_string(), "3".to_string()),
                ("company.name".to_string(), "<b>A</b>".to_string()),
                ("l.0".to_string(), "p".to_string()),
            ]
        );
    }
}
