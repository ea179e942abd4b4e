//! 法定代表人授权委托书 (handbook §2, coverage B30/B31): the page the legal representative
//! opens from the link texted to their own phone. It shows the letter read-only (who
//! authorises whom, for what and until when), offers its PDF, texts a code to that same phone
//! and signs the letter with it. The agent never sees or types this code.
//!
//! The link (`/letter/{order}.{secret}`) is the only credential: no order token, no cookie but
//! the CSRF one. An unknown, expired or altered link is the site's not-found page.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use reqwest::Method;
use serde_json::Value;

use super::{redirect, respond, trouble};
use crate::web::client::{segment, Answer, Unreachable};
use crate::web::flash::Flashed;
use crate::web::forms::message;
use crate::web::html::{form, page, FormState};
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// What the letter page shows after a redirect (from the flash cookie).
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::web) struct Flash {
    #[serde(default)]
    m: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// The longest link the pages pass on (an order id, a dot and a base64url secret).
const MAX_LINK: usize = 200;

/// Whether `link` can be a letter link at all: `<order id>.<base64url secret>`. Anything else
/// is not found without asking the daemon.
fn plausible(link: &str) -> bool {
    let ok_chars = link.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let parts = link.rsplit_once('.');
    ok_chars && link.len() <= MAX_LINK && parts.is_some_and(|(order, secret)| !order.is_empty() && !secret.is_empty())
}

/// The daemon's path of a letter (`/v1/ra/letters/{link}{rest}`).
fn api(link: &str, rest: &str) -> Result<String, Unreachable> {
    Ok(format!("/v1/ra/letters/{}{rest}", segment(link)?))
}

/// The page's own path.
fn own(link: &str) -> String {
    format!("/letter/{link}")
}

async fn not_found(ctx: Ctx) -> Response {
    super::home::not_found(ctx).await
}

/// `GET /letter/{link}`.
pub(in crate::web) async fn show(
    State(web): State<Web>,
    ctx: Ctx,
    Path(link): Path<String>,
    Flashed(flash): Flashed<Flash>,
) -> Response {
    if !plausible(&link) {
        return not_found(ctx).await;
    }
    let answer = match ask(&web, &link, Method::GET, "", None).await {
        Ok(a) => a,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if answer.status == StatusCode::NOT_FOUND {
        return not_found(ctx).await;
    }
    if !answer.ok() {
        return trouble(&ctx, StatusCode::BAD_GATEWAY, &message(ctx.lang, &answer));
    }
    let letter = answer.body;
    // A letter of another served channel: its own pages, so the phone shown is that channel's.
    if let Some(channel) = letter["channel"].as_str() {
        if channel != ctx.site.channel && web.config.serves(channel) {
            let base = if channel == web.config.channel { String::new() } else { format!("/c/{channel}") };
            return redirect(&format!("{base}{}", own(&link)), &[]);
        }
    }
    let state =
        FormState { message: flash.e.or_else(|| flash.m.and_then(|m| notice(ctx.lang, &m))), ..FormState::default() };
    let l = ctx.lang;
    let body = html! {
        (state.banner())
        (letter_text(ctx.lang, &letter))
        (details(ctx.lang, &letter))
        p { a #letter-pdf href=(ctx.url(&format!("{}/pdf", own(&link)))) { (l.t("Download the letter (PDF)")) } }
        @if let Some(at) = letter["signed_at"].as_i64() {
            section.signed #signed {
                p #signed-at { strong { (l.t("Signed")) } " · " (time(at)) }
                p.note { (l.t("The agent's application continues; you may close this page.")) }
            }
        } @else {
            (sign_forms(&ctx, &link, &letter))
        }
    };
    respond(StatusCode::OK, page(&ctx, l.t("Authorisation letter"), body, None))
}

/// The letter's sentence: who authorises whom, for what.
fn letter_text(l: Lang, letter: &Value) -> Markup {
    let company = text(&letter["company"]["name"]);
    let rep = text(&letter["legal_rep"]);
    let agent = text(&letter["agent"]["name"]);
    let business = business(l, letter["business"].as_str().unwrap_or_default());
    html! {
        p #letter-text {
            @match l {
                Lang::Zh => {
                    "本人" strong { (rep) } "，系" strong { (company) } "的法定代表人，现授权" strong { (agent) }
                    "作为本单位经办人，代表本单位办理云证书" (business) "业务。"
                }
                Lang::En => {
                    "I, " strong { (rep) } ", legal representative of " strong { (company) } ", authorise "
                    strong { (agent) } " as the organisation's agent to apply for its cloud certificate (" (business) ")."
                }
            }
        }
    }
}

/// The letter's data, read-only.
fn details(l: Lang, letter: &Value) -> Markup {
    let product = letter["product"].as_str().map_or_else(|| "—".to_string(), str::to_string);
    html! {
        dl.order #letter {
            dt { (l.t("Company name")) } dd #letter-company { (text(&letter["company"]["name"])) }
            dt { (l.t("Unified social credit code")) } dd #letter-credit-code { (text(&letter["company"]["credit_code"])) }
            dt { (l.t("Legal representative")) } dd #letter-legal-rep { (text(&letter["legal_rep"])) }
            dt { (l.t("Agent")) } dd #letter-agent { (text(&letter["agent"]["name"])) }
            dt { (l.t("Agent's ID number")) } dd #letter-agent-id { (text(&letter["agent"]["id_number"])) }
            dt { (l.t("Business")) } dd #letter-business { (business(l, letter["business"].as_str().unwrap_or_default())) }
            dt { (l.t("Product")) } dd #letter-product { (product) }
            dt { (l.t("Authorised until")) } dd #letter-period { (date(letter["period_until"].as_i64())) }
            dt { (l.t("Order")) } dd #letter-order { (text(&letter["order"])) }
            dt { (l.t("The code goes to")) } dd #letter-phone { (text(&letter["phone"])) }
        }
    }
}

/// The two forms of an unsigned letter: the code to the legal representative's phone, and the
/// signature with it.
fn sign_forms(ctx: &Ctx, link: &str, letter: &Value) -> Markup {
    let l = ctx.lang;
    html! {
        section #letter-forms {
            p.note {
                (l.t("Read the letter. To sign it, get a code on your phone and enter it below.")) " "
                (l.t("This link works until")) " " (time(letter["expires_at"].as_i64().unwrap_or_default()))
            }
            (form(ctx, &format!("{}/code", own(link)), "letter-code", html! {}, l.t("Send the code to my phone")))
            (form(ctx, &own(link), "letter-sign", html! {
                label {
                    (l.t("SMS code"))
                    input type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                        maxlength="6" pattern="[0-9]{6}" required;
                }
            }, l.t("Sign the letter")))
        }
    }
}

fn notice(l: Lang, m: &str) -> Option<String> {
    match m {
        "sent" => Some(l.t("The code was sent.").to_string()),
        _ => None,
    }
}

/// A value shown as text ("—" when missing).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "—".to_string(),
    }
}

/// The business in the page's language: the daemon names it in both (`新办 / new certificate`).
fn business(l: Lang, both: &str) -> String {
    match (both.split_once(" / "), l) {
        (Some((zh, _)), Lang::Zh) => zh.trim().to_string(),
        (Some((_, en)), Lang::En) => en.trim().to_string(),
        (None, _) => both.to_string(),
    }
}

/// Beijing time (UTC+8): the legal representative's clock.
fn local(unix: i64) -> Option<time::OffsetDateTime> {
    let offset = time::UtcOffset::from_hms(8, 0, 0).ok()?;
    Some(time::OffsetDateTime::from_unix_timestamp(unix).ok()?.to_offset(offset))
}

fn date(unix: Option<i64>) -> String {
    unix.and_then(local).map_or_else(|| "—".to_string(), |t| t.date().to_string())
}

fn time(unix: i64) -> String {
    local(unix).map_or_else(String::new, |t| format!("{} {:02}:{:02} (UTC+8)", t.date(), t.hour(), t.minute()))
}

async fn ask(web: &Web, link: &str, method: Method, rest: &str, body: Option<&Value>) -> Result<Answer, Unreachable> {
    web.daemon.ra(method, &api(link, rest)?, None, body).await
}

/// `GET /letter/{link}/pdf`: the letter (the signed one once signed), as a download.
pub(in crate::web) async fn pdf(State(web): State<Web>, ctx: Ctx, Path(link): Path<String>) -> Response {
    if !plausible(&link) {
        return not_found(ctx).await;
    }
    let path = match api(&link, "/pdf") {
        Ok(p) => p,
        Err(_) => return not_found(ctx).await,
    };
    match web.daemon.download(&path, None).await {
        Ok((status, bytes)) if status.is_success() && bytes.starts_with(b"%PDF") => {
            let order: String = link
                .rsplit_once('.')
                .map_or("", |(order, _)| order)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let disposition = format!("attachment; filename=\"{order}-authorization-letter.pdf\"");
            ([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
                .into_response()
        }
        Ok((status, _)) if status == StatusCode::NOT_FOUND => not_found(ctx).await,
        Ok(_) => trouble(&ctx, StatusCode::BAD_GATEWAY, ctx.lang.t("Something went wrong; try again.")),
        Err(e) => trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /letter/{link}/code`: a code to the legal representative's phone.
pub(in crate::web) async fn code(
    State(web): State<Web>,
    ctx: Ctx,
    Path(link): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    if !plausible(&link) {
        return not_found(ctx).await;
    }
    let answer = ask(&web, &link, Method::POST, "/code", Some(&serde_json::json!({}))).await;
    back(ctx, &link, answer, "sent", false).await
}

/// `POST /letter/{link}`: signs the letter with the code.
pub(in crate::web) async fn sign(
    State(web): State<Web>,
    ctx: Ctx,
    Path(link): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::forged(&ctx, &values) {
        return refused;
    }
    if !plausible(&link) {
        return not_found(ctx).await;
    }
    let code = values.get("code").map(|c| c.trim().to_string()).unwrap_or_default();
    let answer = ask(&web, &link, Method::POST, "/sign", Some(&serde_json::json!({ "code": code }))).await;
    back(ctx, &link, answer, "", true).await
}

/// Back to the letter page with `ok` or the refusal in the flash cookie; a link the daemon
/// does not know (any more) is not found.
async fn back(ctx: Ctx, link: &str, answer: Result<Answer, Unreachable>, ok: &str, signing: bool) -> Response {
    let page = own(link);
    match answer {
        Ok(a) if a.ok() => super::manage::flash_to(&ctx, &page, &[("m", ok)]),
        Ok(a) if a.status == StatusCode::NOT_FOUND => not_found(ctx).await,
        Ok(a) => super::manage::flash_to(&ctx, &page, &[("e", refused(ctx.lang, &a, signing).as_str())]),
        Err(e) => trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// A refusal in the page language: a wrong code or a signed letter in words of the page, in
/// English the problem's detail when it has one.
fn refused(l: Lang, a: &Answer, signing: bool) -> String {
    let detail = a.body["detail"].as_str().filter(|d| !d.is_empty());
    match (l, a.status.as_u16()) {
        (_, 429) => message(l, a),
        (Lang::Zh, 409) => l.t("The letter is already signed, or the application moved on.").to_string(),
        (Lang::Zh, 400..=499) if signing => l.t("The code is wrong or expired; get a new one.").to_string(),
        (Lang::En, 400..=499) if detail.is_some() => detail.unwrap_or_default().to_string(),
        _ => message(l, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_link_shaped_like_one_is_passed_on() {
        assert!(plausible("RA20261207-ABCDEFGH.q1w2e3-_r4"));
        for bad in ["", "RA1", ".secret", "RA1.", "RA1/../x.y", "RA1.a b", "RA1.a%2F", &"a.".repeat(101)] {
            assert!(!plausible(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_business_is_shown_in_the_page_language() {
        assert_eq!(business(Lang::Zh, "新办 / new certificate"), "新办");
        assert_eq!(business(Lang::En, "新办 / new certificate"), "new certificate");
        assert_eq!(business(Lang::En, "other"), "other");
        assert_eq!(time(0), "1970-01-01 08:00 (UTC+8)");
    }
}
