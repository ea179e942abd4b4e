//! Order management: find the orders of a credit code or ID number after an identity check
//! (an SMS code to a phone on file, or the legal representative's bank card), then details
//! and invoices on each order's own page. The query session only reads: to continue an open
//! order, its verified agent gets a code and the browser gets the order's new token.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use reqwest::Method;

use maud::{html, Markup};

use super::order::state_key;
use super::{flow_title, redirect, respond, trouble, urlencode};
use crate::web::forms::message;
use crate::web::html::{form, input, page, yuan, FormState};
use crate::web::security::Ctx;
use crate::web::Web;

#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    /// A refusal to show.
    #[serde(default)]
    pub(super) e: Option<String>,
    /// The identifier typed, shown again.
    #[serde(default)]
    pub(super) subject: Option<String>,
    /// The phone typed, shown again.
    #[serde(default)]
    pub(super) phone: Option<String>,
    /// A code was just sent.
    #[serde(default)]
    pub(super) sent: Option<String>,
    /// The order whose resume code was just sent.
    #[serde(default)]
    pub(super) resume: Option<String>,
    /// The certificate service being started (certificate pages only).
    #[serde(default)]
    pub(super) flow: Option<String>,
}

pub(in crate::web) async fn orders(State(web): State<Web>, ctx: Ctx, Query(flash): Query<Flash>) -> Response {
    let l = ctx.lang;
    let mut found = None;
    if let Some(token) = ctx.cookie("ccq") {
        if let Ok(answer) = web.daemon.queried_orders(token).await {
            if answer.ok() {
                found = Some(list(&ctx, &answer.body, flash.resume.as_deref()));
            }
        }
    }
    let body = html! {
        @if let Some(found) = found { (found) }
        h2 { (l.t("Find your orders")) }
        (identity_forms(&ctx, &flash, "/orders/query", l.t("Show my orders")))
    };
    respond(StatusCode::OK, page(&ctx, l.t("Order management"), body, None))
}

/// The §4.3 identity check as forms posting to `action` (`…/code` sends the code): the
/// credit code or ID number with the phone of an agent on file or of the legal
/// representative and its SMS code, or the legal representative's bank card.
pub(super) fn identity_forms(ctx: &Ctx, flash: &Flash, action: &str, submit: &str) -> Markup {
    let l = ctx.lang;
    let mut s = FormState { message: flash.e.clone(), ..FormState::default() };
    s.values.insert("subject".into(), flash.subject.clone().unwrap_or_default());
    s.values.insert("phone".into(), flash.phone.clone().unwrap_or_default());
    if flash.sent.is_some() && s.message.is_none() {
        s.message = Some(l.t("A code was sent if the phone is on file.").to_string());
    }
    let who = html! {
        (input(&s, l.t("Credit code or ID number"), "subject", "text", true))
        (input(&s, l.t("The phone of an agent on file, or the legal representative's"), "phone", "tel", true))
    };
    let with_code = html! { (who) (input(&s, l.t("SMS code"), "code", "text", true)) };
    let card = html! {
        (who)
        (input(&s, l.t("Name"), "name", "text", true))
        (input(&s, l.t("ID number"), "id_number", "text", true))
        (input(&s, l.t("Bank card number"), "card", "text", true))
        (input(&s, l.t("SMS code to the legal representative (second step)"), "code", "text", false))
    };
    html! {
        (s.banner())
        (form(ctx, &format!("{action}/code"), "query-code", who.clone(), l.t("Send code")))
        (form(ctx, action, "query", with_code, submit))
        details {
            summary { (l.t("Or check the legal representative's bank card")) }
            (form(ctx, action, "query-card", card, submit))
        }
    }
}

fn list(ctx: &Ctx, body: &serde_json::Value, resume: Option<&str>) -> Markup {
    let l = ctx.lang;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return html! { p { (l.t("No orders.")) } };
    }
    html! {
        h2 { (l.t("Your orders")) }
        table.orders #order-list { tbody {
            @for o in &items {
                @let id = o["id"].as_str().unwrap_or_default();
                @let state = o["state"].as_str().unwrap_or_default();
                tr data-order=(id) data-state=(state) {
                    td { (id) }
                    td { (l.t(flow_title(o["flow"].as_str().unwrap_or_default()))) }
                    td { (l.t(state_key(state))) }
                    td { (yuan(o["amount_fen"].as_i64().unwrap_or(0))) }
                    td {
                        a href=(ctx.url(&format!("/orders/{}", urlencode(id)))) { (l.t("Details")) }
                        @if matches!(state, "open" | "offline") { (continue_forms(ctx, id, resume)) }
                    }
                }
            }
        } }
    }
}

pub(in crate::web) async fn query_code(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    send_query_code(&web, &ctx, &v, "/orders?").await
}

pub(in crate::web) async fn query(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    open_query(&web, &ctx, &v, "/orders?", "/orders").await
}

/// Texts an order-query code to `subject`'s phone if it is on file (the answer is the same
/// either way), then back to `back` (a page path ending in `?` or `&`) with what was typed.
/// Shared by order management and the certificate services: both start with this check.
pub(super) async fn send_query_code(web: &Web, ctx: &Ctx, v: &HashMap<String, String>, back: &str) -> Response {
    if let Some(refused) = super::forged(ctx, v) {
        return refused;
    }
    let (subject, phone) = (v.get("subject").cloned().unwrap_or_default(), v.get("phone").cloned().unwrap_or_default());
    let body = serde_json::json!({ "subject": subject, "phone": phone });
    let back = ctx.url(&format!("{back}subject={}&phone={}", urlencode(&subject), urlencode(&phone)));
    match web.daemon.ra(Method::POST, "/v1/ra/queries/code", None, Some(&body)).await {
        Ok(a) if a.ok() => redirect(&format!("{back}&sent=1"), &[]),
        Ok(a) => redirect(&format!("{back}&e={}", urlencode(&message(ctx.lang, &a))), &[]),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Opens the order-query session (SMS code, or the legal representative's bank card) in this
/// channel, keeps its token in the `ccq` cookie and goes to `then`; on a refusal back to
/// `back` (as for [`send_query_code`]) with the message.
pub(super) async fn open_query(web: &Web, ctx: &Ctx, v: &HashMap<String, String>, back: &str, then: &str) -> Response {
    if let Some(refused) = super::forged(ctx, v) {
        return refused;
    }
    let get = |k: &str| v.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    // The channel of these pages: the session then finds this channel's orders only, and
    // picks certificates for this channel's orders only.
    let mut body = serde_json::json!({
        "subject": get("subject").unwrap_or_default(),
        "phone": get("phone").unwrap_or_default(),
        "channel": ctx.site.channel,
    });
    for key in ["code", "name", "id_number", "card"] {
        if let Some(value) = get(key) {
            body[key] = serde_json::Value::String(value);
        }
    }
    let back = ctx.url(&format!(
        "{back}subject={}&phone={}",
        urlencode(&get("subject").unwrap_or_default()),
        urlencode(&get("phone").unwrap_or_default())
    ));
    match web.daemon.ra(Method::POST, "/v1/ra/queries", None, Some(&body)).await {
        // The bank card's first step: the daemon checked the card and, for the legal
        // representative on file, texted a code; the session opens with the card and that code.
        Ok(a) if a.ok() && a.body["token"].as_str().is_none() => {
            let sent = ctx.lang.t("Code sent to the legal representative's phone on file: enter it with the card.");
            redirect(&format!("{back}&e={}", urlencode(sent)), &[])
        }
        Ok(a) if a.ok() => {
            let token = a.body["token"].as_str().unwrap_or_default();
            redirect(&ctx.url(then), &[ctx.set_cookie("ccq", token, 30 * 60)])
        }
        Ok(a) => redirect(&format!("{back}&e={}", urlencode(&message(ctx.lang, &a))), &[]),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Continuing an open order from a query: a code to the order's verified agent, then the code.
fn continue_forms(ctx: &Ctx, id: &str, resume: Option<&str>) -> Markup {
    let l = ctx.lang;
    let path = format!("/orders/{}", urlencode(id));
    html! {
        (form(ctx, &format!("{path}/resume/code"), &format!("resume-code-{id}"), html! {}, l.t("Continue")))
        @if resume == Some(id) {
            (form(ctx, &format!("{path}/resume"), &format!("resume-{id}"),
                input(&FormState::default(), l.t("SMS code"), "code", "text", true), l.t("Continue")))
        }
    }
}

/// The query session and the daemon path of a resume call (`what`: `resume-code` or
/// `resume`), or the page to answer with instead (a forged form, no session, a bad id).
fn resume_call(
    ctx: &Ctx,
    form: &HashMap<String, String>,
    id: &str,
    what: &str,
) -> Result<(String, String), Box<Response>> {
    if let Some(refused) = super::forged(ctx, form) {
        return Err(Box::new(refused));
    }
    let Some(query) = ctx.cookie("ccq") else { return Err(Box::new(redirect(&ctx.url("/orders"), &[]))) };
    let id =
        crate::web::client::segment(id).map_err(|e| Box::new(trouble(ctx, StatusCode::BAD_REQUEST, &e.to_string())))?;
    Ok((query.to_string(), format!("/v1/ra/queries/orders/{id}/{what}")))
}

/// Texts the order's verified agent a code to continue it (from a query session).
pub(in crate::web) async fn resume_code(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let (query, path) = match resume_call(&ctx, &v, &id, "resume-code") {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    match web.daemon.with_query(&path, &query, &serde_json::json!({})).await {
        Ok(a) if a.ok() => redirect(&ctx.url(&format!("/orders?resume={}&sent=1", urlencode(&id))), &[]),
        Ok(a) => redirect(&ctx.url(&format!("/orders?e={}", urlencode(&message(ctx.lang, &a)))), &[]),
        Err(e) => trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// With the agent's code: the order's new token in this browser, and on to the order.
pub(in crate::web) async fn resume(
    State(web): State<Web>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    let (query, path) = match resume_call(&ctx, &v, &id, "resume") {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let code = v.get("code").map(|c| c.trim().to_string()).unwrap_or_default();
    match web.daemon.with_query(&path, &query, &serde_json::json!({ "code": code })).await {
        Ok(a) if a.ok() => {
            // The order number as the daemon gives it (not the path's), in the cookie's name.
            let (id, token) =
                (a.body["order"]["id"].as_str().unwrap_or_default(), a.body["token"].as_str().unwrap_or_default());
            let cookie = ctx.set_cookie(&format!("cco_{id}"), token, 30 * 86400);
            redirect(&ctx.url(&format!("/orders/{}", urlencode(id))), &[cookie])
        }
        Ok(a) => redirect(
            &ctx.url(&format!("/orders?resume={}&e={}", urlencode(&id), urlencode(&message(ctx.lang, &a)))),
            &[],
        ),
        Err(e) => trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
