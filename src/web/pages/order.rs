//! One order: its step indicator and the form of its next step, or where it stands; and the
//! actions on it (codes, the legal representative's signing link, uploads, cancel, offline,
//! PDFs).

use std::collections::HashMap;

use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use reqwest::Method;
use serde_json::Value;

use super::steps::{order_path, step_form};
use super::{channel, flow_title, redirect, token_for, trouble, urlencode};
use crate::web::flash::Flashed;
use crate::web::forms::{checkboxes, message, refusal, to_json};
use crate::web::html::{form, page, steps, yuan, FormState};
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// What the page shows after a redirect, from the flash cookie ([`crate::web::flash`]); the
/// URL carries only `poll` (the face check's meta refresh).
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    #[serde(default)]
    m: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    poll: Option<String>,
}

/// The order as the daemon shows it to its applicant, and the token that opened it.
pub(super) async fn load(web: &Web, ctx: &Ctx, id: &str) -> Result<(Value, String), Response> {
    let token = token_for(ctx, id).ok_or_else(|| trouble(ctx, StatusCode::NOT_FOUND, "404"))?;
    let path = format!("/v1/ra/orders/{}", crate::web::client::segment(id).map_err(|_| not_found(ctx))?);
    let answer = web
        .daemon
        .ra(Method::GET, &path, Some(&token), None)
        .await
        .map_err(|e| trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
    if !answer.ok() {
        return Err(trouble(ctx, StatusCode::NOT_FOUND, &message(ctx.lang, &answer)));
    }
    Ok((answer.body, token))
}

fn not_found(ctx: &Ctx) -> Response {
    trouble(ctx, StatusCode::NOT_FOUND, "404")
}

/// An order of another served channel opened under this one: the same page under its own
/// channel, so the phone and links are that channel's.
pub(super) fn elsewhere(web: &Web, ctx: &Ctx, view: &Value, rest: &str) -> Option<Response> {
    let channel = view["channel"].as_str()?;
    if channel == ctx.site.channel || !web.config.serves(channel) {
        return None;
    }
    let base = if channel == web.config.channel { String::new() } else { format!("/c/{channel}") };
    Some(redirect(&format!("{base}{}{rest}", order_path(view)), &[]))
}

pub(in crate::web) async fn show(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Flashed(flash): Flashed<Flash>,
) -> Response {
    let (mut view, token) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(moved) = elsewhere(&web, &ctx, &view, "") {
        return moved;
    }
    // A face check completes on the phone: each refresh asks the provider again.
    let next = view["next_step"].as_str().unwrap_or_default().to_string();
    if flash.poll.is_some() && (next == "subject-check" || next == "agent-check") {
        let path = format!("{}/steps/{next}", api_path(&view));
        if let Ok(a) = web.daemon.ra(Method::POST, &path, Some(&token), Some(&serde_json::json!({}))).await {
            if a.ok() {
                view = a.body;
            }
        }
    }
    let mut state = FormState::default();
    if let Some(serial) = flash.serial {
        state.values.insert("serial".into(), serial);
    }
    // The materials step then says where the link went and how the page goes on.
    if flash.m.as_deref() == Some("link-sent") {
        state.values.insert(super::steps::LINK_SENT.into(), "1".into());
    }
    state.message = flash.e.or_else(|| flash.m.and_then(|m| notice(ctx.lang, &m)));
    render(&web, &ctx, &view, state, StatusCode::OK).await
}

/// The daemon's path of an order.
pub(super) fn api_path(view: &Value) -> String {
    format!("/v1/ra{}", order_path(view))
}

fn notice(lang: Lang, m: &str) -> Option<String> {
    match m {
        "sent" => Some(lang.t("The code was sent.").to_string()),
        "address-changed" => Some(lang.t("The delivery address was changed.").to_string()),
        "uploaded" => Some(lang.t("Uploaded").to_string()),
        _ => None,
    }
}

async fn render(web: &Web, ctx: &Ctx, view: &Value, state: FormState, status: StatusCode) -> Response {
    let l = ctx.lang;
    let id = view["id"].as_str().unwrap_or_default();
    let flow = view["flow"].as_str().unwrap_or_default();
    let order_state = view["state"].as_str().unwrap_or_default();
    let mut refresh = None;
    let mut current = html! {};
    if matches!(order_state, "open" | "offline") {
        let channel = channel(web, ctx).await.unwrap_or(Value::Null);
        if let Some(step) = view["next_step"].as_str() {
            let (markup, r) = step_form(ctx, view, &channel, step, &state);
            current = markup;
            refresh = r;
        }
    }
    let body = html! {
        (header(ctx, view))
        (state.banner())
        @if super::confirm::due(view) {
            p { a #to-confirm href=(ctx.url(&format!("{}/confirm", order_path(view)))) { (l.t("Check what you entered")) } }
        }
        @if order_state == "open" {
            (current)
            @if view["check_failures"].as_u64().unwrap_or(0) > 0 { (offline_path(ctx, view)) }
        } @else {
            // An offline order's online steps (agent, product, payment), then the form.
            (current)
            (status_text(ctx, flow, view))
        }
        // Handbook F4: once nothing is entered any more, what was entered, read-only and
        // masked as on the confirmation.
        @if !matches!(order_state, "open" | "offline") {
            div #details {
                h2 { (l.t("Application details")) }
                @for step in super::confirm::entered(view) { (super::confirm::section(ctx, view, step, false)) }
            }
        }
        @if view["invoice_no"].is_string() {
            p { a #invoice href=(ctx.url(&format!("{}/invoice.pdf", order_path(view)))) { (l.t("Download the invoice")) } }
            (form(ctx, &format!("{}/invoice/reissue", order_path(view)), "reissue-invoice", html! {}, l.t("Send the invoice again")))
        }
        @if let Some(address) = view["summary"]["product"]["delivery_address"].as_str() {
            @if matches!(order_state, "open" | "offline" | "review") {
                (form(ctx, &format!("{}/address", order_path(view)), "address", html! {
                    label { (l.t("Delivery address")) input type="text" name="address" value=(address) required; }
                }, l.t("Change the delivery address")))
            } @else {
                p #delivery-address { (l.t("Delivery address")) ": " (address) }
            }
        }
        @if matches!(order_state, "open" | "offline" | "review") {
            (form(ctx, &format!("{}/cancel", order_path(view)), "cancel", html! {}, l.t("Cancel the order")))
        }
    };
    let title = format!("{} · {}", l.t(flow_title(flow)), id);
    (status, axum::response::Html(page(ctx, &title, body, refresh))).into_response()
}

/// The order's number, state and amount, its steps, and (once known) the subject it is about,
/// read-only: a seal or certificate order acts on the certificate's subject, which no step
/// may change.
pub(super) fn header(ctx: &Ctx, view: &Value) -> Markup {
    let l = ctx.lang;
    let order_state = view["state"].as_str().unwrap_or_default();
    let list: Vec<(String, bool)> = view["steps"]
        .as_array()
        .map(|a| a.iter().map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["done"] == true)).collect())
        .unwrap_or_default();
    let next = view["next_step"].as_str();
    html! {
        dl.order {
            dt { (l.t("Order")) } dd #order-id { (view["id"].as_str().unwrap_or_default()) }
            dt { (l.t("State")) } dd #order-state data-state=(order_state) { (l.t(state_key(order_state))) }
            dt { (l.t("Amount")) } dd { (yuan(view["amount_fen"].as_i64().unwrap_or(0))) }
        }
        (steps(l, &list, next))
        (super::confirm::subject(ctx, view))
    }
}

fn offline_path(ctx: &Ctx, view: &Value) -> Markup {
    let l = ctx.lang;
    let path = order_path(view);
    html! {
        section.offline #offline-path {
            p {
                (l.t("The identity check failed.")) " "
                (l.t("Correct the data above, or apply offline: print the form, sign and stamp it, and mail it with the papers."))
            }
            p { a #print-form href=(ctx.url(&format!("{path}/form.pdf"))) { (l.t("Print the application form")) } }
            (form(ctx, &format!("{path}/offline"), "go-offline", html! {}, l.t("Apply offline")))
        }
    }
}

/// The order states, as keys of the page texts.
pub(in crate::web) const STATES: [&str; 7] =
    ["open", "offline", "review", "approved", "completed", "rejected", "cancelled"];

/// A state's text key ("open" for anything unknown).
pub(super) fn state_key(state: &str) -> &'static str {
    STATES.into_iter().find(|s| *s == state).unwrap_or("open")
}

fn status_text(ctx: &Ctx, flow: &str, view: &Value) -> Markup {
    let l = ctx.lang;
    let state = view["state"].as_str().unwrap_or_default();
    let issued = flow.ends_with("-new") || flow == "reissue";
    let done = l.t("Done. The approved certificate waits in the app: log in with the agent's phone, check your identity and set the certificate PIN.");
    html! {
        section.status {
            p {
                @match state {
                    "review" => {
                        (l.t("We are reviewing the application (3 to 5 working days). You will get an SMS and an e-mail."))
                    }
                    "offline" if view["next_step"].is_string() => {
                        (l.t("Offline: complete the steps above online first; the form then shows them."))
                    }
                    "offline" => {
                        (l.t("Mail the signed and stamped form with the papers; the review starts when they arrive.")) " "
                        a #print-form href=(ctx.url(&format!("{}/form.pdf", order_path(view)))) { (l.t("Print the application form")) }
                    }
                    "approved" => { (if issued { done } else { "" }) }
                    "rejected" | "cancelled" => { (l.t("Reason")) ": " (view["reason"].as_str().unwrap_or_default()) }
                    _ => {}
                }
            }
            @if let Some(serial) = view["serial"].as_str() {
                p { (l.t("Certificate serial number")) ": " span #serial { (serial) } }
            }
        }
    }
}

pub(in crate::web) async fn step(
    State(web): State<Web>,
    ctx: Ctx,
    Path((id, step)): Path<(String, String)>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let mut body = to_json(&values, checkboxes(&step));
    // The user agreement is agreed to where the method is chosen (handbook B3). The daemon
    // refuses the step without it and records the terms' digest; the box is checked here
    // first only to show the page again with the box named.
    if step == "verification" {
        if body["accept_agreement"] != true {
            return agreement_missing(&web, &ctx, &id, values).await;
        }
        if let Some(map) = body.as_object_mut() {
            map.remove("accept_agreement");
            map.insert("accept_terms".into(), Value::Bool(true));
        }
    }
    if step == "agent" && body["legal_rep_in_person"] == true {
        if let Some(map) = body.as_object_mut() {
            for k in ["name", "id_number", "phone"] {
                map.remove(k);
            }
        }
    }
    // A certificate chosen from the subject's list: the query session that listed it goes
    // with the choice (the daemon checks that it may pick this certificate for this order).
    if step == "certificate" {
        if let (Some(query), Some(map)) = (ctx.cookie("ccq"), body.as_object_mut()) {
            map.insert("query_token".into(), Value::String(query.to_string()));
        }
    }
    let path = format!("/v1/ra/orders/{id}/steps/{step}");
    let answer = match web.daemon.ra(Method::POST, &path, Some(&token), Some(&body)).await {
        Ok(a) => a,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if answer.ok() {
        // Everything is entered: the read-only confirmation before uploads and signature.
        let then = if super::confirm::EDITABLE.contains(&step.as_str()) && super::confirm::due(&answer.body) {
            "/confirm"
        } else {
            ""
        };
        return redirect(&ctx.url(&format!("{}{then}", order_path(&answer.body))), &[]);
    }
    let state = refusal(ctx.lang, values, &answer, &["person.", "agent."]);
    let (view, _) = match load(&web, &ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    // A correction of an earlier step that was refused: that step's form again, not the next.
    let mut response =
        if view["next_step"].as_str() != Some(step.as_str()) && super::confirm::EDITABLE.contains(&step.as_str()) {
            super::confirm::correcting(&web, &ctx, &view, &step, state, status).await
        } else {
            render(&web, &ctx, &view, state, status).await
        };
    // The daemon's rate limit, passed on to the browser with the page that explains it.
    if let Some(seconds) = answer.retry_after.filter(|_| status == StatusCode::TOO_MANY_REQUESTS) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

fn back(
    ctx: &Ctx,
    id: &str,
    answer: Result<crate::web::client::Answer, crate::web::client::Unreachable>,
    ok: &str,
    serial: Option<&str>,
) -> Response {
    let page = format!("/orders/{}", urlencode(id));
    let serial = ("serial", serial.unwrap_or_default());
    match answer {
        Ok(a) if a.ok() => super::manage::flash_to(ctx, &page, &[("m", ok), serial]),
        Ok(a) => super::manage::flash_to(ctx, &page, &[("e", message(ctx.lang, &a).as_str()), serial]),
        Err(e) => super::manage::flash_to(ctx, &page, &[("e", e.to_string().as_str())]),
    }
}

pub(in crate::web) async fn code(
    State(web): State<Web>,
    ctx: Ctx,
    Path((id, purpose)): Path<(String, String)>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let serial = values.get("serial").map(|s| s.trim().to_string());
    let body = serde_json::json!({ "serial": serial });
    let body = if serial.is_some() { body } else { serde_json::json!({}) };
    let answer =
        web.daemon.ra(Method::POST, &format!("/v1/ra/orders/{id}/codes/{purpose}"), Some(&token), Some(&body)).await;
    // The legal representative's authorisation texts them a link to the letter, not a code.
    let ok = if purpose == "authorization" { "link-sent" } else { "sent" };
    back(&ctx, &id, answer, ok, serial.as_deref())
}

pub(in crate::web) async fn upload(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let (mut csrf, mut kind, mut bytes) = (String::new(), String::new(), Vec::new());
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name().unwrap_or_default() {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "kind" => kind = field.text().await.unwrap_or_default(),
            "file" => bytes = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    let fields = HashMap::from([("csrf".to_string(), csrf)]);
    if let Some(refused) = super::forged(&ctx, &fields) {
        return refused;
    }
    let Some(token) = token_for(&ctx, &id) else { return trouble(&ctx, StatusCode::NOT_FOUND, "404") };
    let answer = web.daemon.upload(&id, &token, &kind, bytes).await;
    back(&ctx, &id, answer, "uploaded", None)
}

/// A form posting one RA action on the order; back to the order page with `flash` or the
/// refusal.
async fn action(
    web: &Web,
    ctx: &Ctx,
    id: &str,
    values: &HashMap<String, String>,
    (method, path): (Method, &str),
    body: Value,
    flash: &str,
) -> Response {
    if let Some(refused) = super::forged(ctx, values) {
        return refused;
    }
    let Some(token) = token_for(ctx, id) else { return trouble(ctx, StatusCode::NOT_FOUND, "404") };
    let answer = web.daemon.ra(method, &format!("/v1/ra/orders/{id}/{path}"), Some(&token), Some(&body)).await;
    back(ctx, id, answer, flash, None)
}

pub(in crate::web) async fn cancel(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, (Method::POST, "cancel"), serde_json::json!({}), "").await
}

pub(in crate::web) async fn offline(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, (Method::POST, "offline"), serde_json::json!({}), "").await
}

/// The verification step again, its agreement box named as not ticked; nothing is sent.
async fn agreement_missing(web: &Web, ctx: &Ctx, id: &str, values: HashMap<String, String>) -> Response {
    let (view, _) = match load(web, ctx, id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let message = ctx.lang.t("Tick the box to agree to the user agreement.").to_string();
    let errors = HashMap::from([("accept_agreement".to_string(), message)]);
    let state = FormState { values, errors, message: None };
    render(web, ctx, &view, state, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `POST /orders/{id}/address`: a USB key's delivery address changed until it ships (F7).
pub(in crate::web) async fn address(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let body = serde_json::json!({ "address": v.get("address").map(|a| a.trim()).unwrap_or_default() });
    action(&web, &ctx, &id, &v, (Method::PUT, "address"), body, "address-changed").await
}

pub(in crate::web) async fn reissue_invoice(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    action(&web, &ctx, &id, &v, (Method::POST, "invoice/reissue"), serde_json::json!({}), "sent").await
}

async fn pdf(web: &Web, ctx: &Ctx, id: &str, what: &str) -> Response {
    let Some(token) = token_for(ctx, id) else { return trouble(ctx, StatusCode::NOT_FOUND, "404") };
    match web.daemon.download(&format!("/v1/ra/orders/{id}/{what}"), Some(&token)).await {
        Ok((status, bytes)) if status.is_success() => {
            let disposition = format!("inline; filename=\"{id}-{what}.pdf\"");
            ([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
                .into_response()
        }
        Ok(_) => trouble(ctx, StatusCode::NOT_FOUND, "404"),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(in crate::web) async fn form_pdf(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    pdf(&web, &ctx, &id, "form").await
}

pub(in crate::web) async fn invoice_pdf(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    pdf(&web, &ctx, &id, "invoice").await
}

/// The authorisation letter to print, have stamped and signed, and upload (handbook B29).
pub(in crate::web) async fn letter_pdf(State(web): State<Web>, ctx: Ctx, Path(id): Path<String>) -> Response {
    pdf(&web, &ctx, &id, "authorization-letter").await
}
