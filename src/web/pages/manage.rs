//! Order management: find the orders of a credit code or ID number after an identity check
//! (an SMS code to a phone on file, or the legal representative's bank card), then details
//! and invoices on each order's own page. The query session only reads: to continue an open
//! order, its verified agent gets a code and the browser gets the order's new token.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use reqwest::Method;

use maud::{html, Markup};

use super::order::state_key;
use super::steps::id_type_select;
use super::{flow_title, redirect, respond, trouble, urlencode};
use crate::web::flash::Flashed;
use crate::web::forms::message;
use crate::web::html::{form, input, page, yuan, FormState};
use crate::web::security::Ctx;
use crate::web::Web;

/// What the page after a redirect shows: carried in the flash cookie ([`crate::web::flash`]),
/// never in the URL (`flow` alone comes from the query string).
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    /// A refusal or notice to show.
    #[serde(default)]
    pub(super) e: Option<String>,
    /// The identifier typed, shown again.
    #[serde(default)]
    pub(super) subject: Option<String>,
    /// The document type chosen for a person's number (`resident-id`, `passport`, ...), shown
    /// again.
    #[serde(default)]
    pub(super) id_type: Option<String>,
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
    /// The identity fallback whose form to show open ([`FALLBACKS`]).
    #[serde(default)]
    pub(super) method: Option<String>,
}

pub(in crate::web) async fn orders(State(web): State<Web>, ctx: Ctx, Flashed(flash): Flashed<Flash>) -> Response {
    let l = ctx.lang;
    let mut found = None;
    if let Some(token) = ctx.cookie("ccq") {
        if let Ok(answer) = web.daemon.queried_orders(token).await {
            if answer.ok() {
                found = Some(list(&ctx, &answer.body, flash.resume.as_deref()));
            }
        }
    }
    let challenge = challenge(&web).await;
    let body = html! {
        @if let Some(found) = found { (found) }
        h2 { (l.t("Find your orders")) }
        (identity_forms(&ctx, &flash, "/orders/query", l.t("Show my orders"), challenge.as_ref()))
    };
    respond(StatusCode::OK, page(&ctx, l.t("Order management"), body, None))
}

/// The identity fallbacks of handbook §4.3, each a form `query-{method}`: the legal
/// representative by their phone on file (F14) or bank card (F15), a person by a real-name
/// phone (F9) or bank card (F10). Each asks for the random code, sends the SMS code, then
/// opens the session with it.
pub(super) const FALLBACKS: [&str; 4] = ["rep-phone", "rep-card", "person-phone", "person-card"];

/// A random code from the daemon for this page's fallback forms (one per page: one form is
/// sent). None when the daemon does not answer; the forms then say to reload.
pub(super) async fn challenge(web: &Web) -> Option<serde_json::Value> {
    let answer = web.daemon.ra(Method::POST, "/v1/ra/queries/challenge", None, Some(&serde_json::json!({}))).await;
    answer.ok().filter(|a| a.ok()).map(|a| a.body)
}

/// The §4.3 identity check as forms posting to `action` (`…/code` sends the code): the
/// credit code or ID number with the phone of an agent on file or of the legal
/// representative and its SMS code; below, the fallbacks ([`FALLBACKS`]) to `…/fallback`.
pub(super) fn identity_forms(
    ctx: &Ctx,
    flash: &Flash,
    action: &str,
    submit: &str,
    challenge: Option<&serde_json::Value>,
) -> Markup {
    let l = ctx.lang;
    let mut s = FormState { message: flash.e.clone(), ..FormState::default() };
    s.values.insert("subject".into(), flash.subject.clone().unwrap_or_default());
    s.values.insert("phone".into(), flash.phone.clone().unwrap_or_default());
    s.values.insert("id_type".into(), flash.id_type.clone().unwrap_or_else(|| "resident-id".into()));
    if flash.sent.is_some() && s.message.is_none() {
        s.message = Some(l.t("A code was sent if the phone is on file.").to_string());
    }
    let who = html! {
        // A person's document (handbook C6): the number is read by its type's rule.
        (id_type_select(ctx, &s, "id_type"))
        (input(&s, l.t("Credit code or ID number"), "subject", "text", true))
        (input(&s, l.t("The phone of an agent on file, or the legal representative's"), "phone", "tel", true))
    };
    let with_code = html! { (who) (input(&s, l.t("SMS code"), "code", "text", true)) };
    let open = flash.method.as_deref();
    html! {
        (s.banner())
        (form(ctx, &format!("{action}/code"), "query-code", who.clone(), l.t("Send code")))
        (form(ctx, action, "query", with_code, submit))
        details #fallback-rep open[open.is_some_and(|m| m.starts_with("rep-"))] {
            summary { (l.t("The agent cannot receive codes: check the legal representative")) }
            (fallback_form(ctx, &s, action, "rep-phone", challenge, submit))
            (fallback_form(ctx, &s, action, "rep-card", challenge, submit))
        }
        details #fallback-person open[open.is_some_and(|m| m.starts_with("person-"))] {
            summary { (l.t("Personal certificates: the phone on file changed")) }
            (fallback_form(ctx, &s, action, "person-phone", challenge, submit))
            (fallback_form(ctx, &s, action, "person-card", challenge, submit))
        }
    }
}

/// One fallback's form: who (as the method needs), the random code, "send code", the SMS
/// code and the submit button. Identifiers are typed again for the second press; nothing
/// typed is kept but the subject and phone.
fn fallback_form(
    ctx: &Ctx,
    s: &FormState,
    action: &str,
    method: &str,
    challenge: Option<&serde_json::Value>,
    submit: &str,
) -> Markup {
    let l = ctx.lang;
    let (legend, card, name, id_number) = match method {
        "rep-phone" => (l.t("The legal representative's phone"), false, false, true),
        "rep-card" => (l.t("The legal representative's bank card"), true, true, true),
        "person-phone" => (l.t("Your phone, checked under your real name"), false, true, false),
        _ => (l.t("Your bank card"), true, true, false),
    };
    let subject = if id_number { l.t("Credit code") } else { l.t("ID number") };
    let phone = if card { l.t("The phone the bank has for the card") } else { l.t("Phone") };
    let inner = html! {
        fieldset {
            legend { (legend) }
            input type="hidden" name="method" value=(method);
            // A person's own document: another than the resident ID is checked by bank card.
            @if !id_number { (id_type_select(ctx, s, "id_type")) }
            (input(s, subject, "subject", "text", true))
            @if name { (input(&FormState::default(), l.t("Name"), "name", "text", true)) }
            @if id_number {
                (input(&FormState::default(), l.t("The legal representative's ID number"), "id_number", "text", true))
            }
            @if card { (input(&FormState::default(), l.t("Bank card number"), "card", "text", true)) }
            (input(s, phone, "phone", "tel", true))
            @match challenge.and_then(|c| Some((c["challenge"].as_str()?, crate::web::captcha::data_url(c["code"].as_str()?)?))) {
                Some((id, picture)) => {
                    input type="hidden" name="challenge" value=(id);
                    label.captcha {
                        (l.t("Random code"))
                        img.captcha src=(picture) alt=(l.t("Random code picture"));
                        input type="text" name="answer" autocomplete="off";
                    }
                }
                None => { p.alert { (l.t("Something went wrong; try again.")) } }
            }
            button type="submit" name="step" value="send" formnovalidate { (l.t("Send code")) }
            (input(&FormState::default(), l.t("SMS code"), "code", "text", false))
        }
    };
    form(ctx, &format!("{action}/fallback"), &format!("query-{method}"), inner, submit)
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
    send_query_code(&web, &ctx, &v, "/orders").await
}

pub(in crate::web) async fn query(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    open_query(&web, &ctx, &v, "/orders", "/orders").await
}

/// `POST /orders/query/fallback`: an identity fallback ([`fallback`]).
pub(in crate::web) async fn query_fallback(
    State(web): State<Web>,
    ctx: Ctx,
    Form(v): Form<HashMap<String, String>>,
) -> Response {
    fallback(&web, &ctx, &v, "/orders", "/orders").await
}

/// Texts an order-query code to `subject`'s phone if it is on file (the answer is the same
/// either way), then back to the page `back` (its path, without identifiers) with what was
/// typed in the flash cookie. Shared by order management and the certificate services: both
/// start with this check.
pub(super) async fn send_query_code(web: &Web, ctx: &Ctx, v: &HashMap<String, String>, back: &str) -> Response {
    if let Some(refused) = super::forged(ctx, v) {
        return refused;
    }
    let (subject, phone) = (v.get("subject").cloned().unwrap_or_default(), v.get("phone").cloned().unwrap_or_default());
    let id_type = typed_id_type(v);
    let body = serde_json::json!({ "subject": subject, "id_type": id_type, "phone": phone });
    let typed = [("subject", subject.as_str()), ("id_type", id_type), ("phone", phone.as_str())];
    match web.daemon.ra(Method::POST, "/v1/ra/queries/code", None, Some(&body)).await {
        Ok(a) if a.ok() => flash_to(ctx, back, &[&typed[..], &[("sent", "1")]].concat()),
        Ok(a) => flash_to(ctx, back, &[&typed[..], &[("e", message(ctx.lang, &a).as_str())]].concat()),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// The document type chosen with a person's number (`id_type`): one of [`IdType`]'s names,
/// else the resident ID (a credit code goes with it; the daemon reads the number by it).
///
/// [`IdType`]: crate::ca::identifiers::IdType
fn typed_id_type(v: &HashMap<String, String>) -> &'static str {
    let chosen = v.get("id_type").map(|t| t.trim()).unwrap_or_default();
    crate::ca::identifiers::IdType::parse(chosen).unwrap_or_default().name()
}

/// 303 to this channel's page `path` with `values` in the flash cookie.
pub(super) fn flash_to(ctx: &Ctx, path: &str, values: &[(&str, &str)]) -> Response {
    redirect(&ctx.url(path), &[crate::web::flash::cookie(ctx, values)])
}

/// Opens the order-query session with the SMS code in this channel, keeps its token in the
/// `ccq` cookie and goes to `then`; on a refusal back to `back` (as for [`send_query_code`]).
pub(super) async fn open_query(web: &Web, ctx: &Ctx, v: &HashMap<String, String>, back: &str, then: &str) -> Response {
    if let Some(refused) = super::forged(ctx, v) {
        return refused;
    }
    let get = |k: &str| v.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    // The channel of these pages: the session then finds this channel's orders only, and
    // picks certificates for this channel's orders only.
    let id_type = typed_id_type(v);
    let body = serde_json::json!({
        "subject": get("subject"), "id_type": id_type, "phone": get("phone"), "code": get("code"),
        "channel": ctx.site.channel,
    });
    let (subject, phone) = (get("subject"), get("phone"));
    let typed = [("subject", subject.as_str()), ("id_type", id_type), ("phone", phone.as_str())];
    match web.daemon.ra(Method::POST, "/v1/ra/queries", None, Some(&body)).await {
        Ok(a) if a.ok() => {
            let token = a.body["token"].as_str().unwrap_or_default();
            redirect(&ctx.url(then), &[ctx.set_cookie("ccq", token, 30 * 60)])
        }
        Ok(a) => flash_to(ctx, back, &[&typed[..], &[("e", message(ctx.lang, &a).as_str())]].concat()),
        Err(e) => trouble(ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// An identity fallback's form ([`fallback_form`]): "send code" (`step=send`) checks the random
/// code and the person and texts a code (the same answer whatever happened); the submit
/// button opens the session with that code, as [`open_query`] does.
pub(super) async fn fallback(web: &Web, ctx: &Ctx, v: &HashMap<String, String>, back: &str, then: &str) -> Response {
    if let Some(refused) = super::forged(ctx, v) {
        return refused;
    }
    let get = |k: &str| v.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let Some(method) = FALLBACKS.into_iter().find(|m| *m == get("method")) else {
        return trouble(ctx, StatusCode::BAD_REQUEST, ctx.lang.t("Something went wrong; try again."));
    };
    // A person checks for their own ID number: it is the subject, of the type chosen (the
    // legal representative's forms ask for a credit code, so no type).
    let person = method.starts_with("person-");
    let id_number = if person { get("subject") } else { get("id_number") };
    let id_type = if person { typed_id_type(v) } else { "resident-id" };
    let mut body = serde_json::json!({
        "subject": get("subject"), "id_type": id_type, "phone": get("phone"), "id_number": id_number,
        "channel": ctx.site.channel,
    });
    for key in ["name", "card"].into_iter().filter(|k| !get(k).is_empty()) {
        body[key] = serde_json::Value::String(get(key));
    }
    let sending = get("step") == "send";
    if sending {
        body["challenge"] = serde_json::Value::String(get("challenge"));
        body["answer"] = serde_json::Value::String(get("answer"));
    } else {
        body["code"] = serde_json::Value::String(get("code"));
    }
    let (subject, phone) = (get("subject"), get("phone"));
    let typed = [("subject", subject.as_str()), ("id_type", id_type), ("phone", phone.as_str()), ("method", method)];
    let l = ctx.lang;
    match web.daemon.ra(Method::POST, "/v1/ra/queries", None, Some(&body)).await {
        Ok(a) if a.ok() && sending => {
            let sent = l.t("If the details are right, a code was texted: enter it, with the details again.");
            flash_to(ctx, back, &[&typed[..], &[("e", sent)]].concat())
        }
        Ok(a) if a.ok() => {
            let token = a.body["token"].as_str().unwrap_or_default();
            redirect(&ctx.url(then), &[ctx.set_cookie("ccq", token, 30 * 60)])
        }
        Ok(a) => {
            let random_code_wrong = a.body["errors"][0]["code"] == "random_code.wrong";
            let e = if random_code_wrong {
                l.t("The random code was wrong; type the new one.").to_string()
            } else {
                message(l, &a)
            };
            flash_to(ctx, back, &[&typed[..], &[("e", e.as_str())]].concat())
        }
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
        Ok(a) if a.ok() => flash_to(&ctx, "/orders", &[("resume", id.as_str()), ("sent", "1")]),
        Ok(a) => flash_to(&ctx, "/orders", &[("e", message(ctx.lang, &a).as_str())]),
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
        Ok(a) => flash_to(&ctx, "/orders", &[("resume", id.as_str()), ("e", message(ctx.lang, &a).as_str())]),
        Err(e) => trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
