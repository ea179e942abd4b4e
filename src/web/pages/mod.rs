//! One file per group of pages.

pub(super) mod apply;
pub(super) mod confirm;
pub(super) mod home;
pub(super) mod letter;
pub(super) mod manage;
pub(super) mod order;
pub(super) mod seals;
pub(super) mod services;
pub(super) mod steps;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use maud::html;

use super::html::page;
use super::security::Ctx;
use super::Web;

/// The token that opens an order in this browser: its own cookie, else the order-query
/// session's.
pub(super) fn token_for(ctx: &Ctx, order: &str) -> Option<String> {
    ctx.cookie(&format!("cco_{order}")).or(ctx.cookie("ccq")).map(str::to_string)
}

/// 303 to `to`, setting cookies.
pub(super) fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Percent-encodes a query value.
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page with a status.
pub(super) fn respond(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

/// A page that says something went wrong, and where to go.
pub(super) fn trouble(ctx: &Ctx, status: StatusCode, message: &str) -> Response {
    let body = html! { p.alert role="alert" { (message) } p { a href=(ctx.url("/")) { "←" } } };
    respond(status, page(ctx, ctx.lang.t("Something went wrong; try again."), body, None))
}

/// A POST whose CSRF field does not match this browser's token (another site's form, or a
/// page from before the cookie): the refusal to answer with, if so.
pub(super) fn forged(ctx: &Ctx, values: &std::collections::HashMap<String, String>) -> Option<Response> {
    let ok = ctx.csrf_ok(values.get("csrf").map_or("", String::as_str));
    (!ok).then(|| trouble(ctx, StatusCode::FORBIDDEN, ctx.lang.t("The page expired; please submit again.")))
}

/// The channel of this request's pages, as the daemon describes it.
pub(super) async fn channel(web: &Web, ctx: &Ctx) -> Result<Value, String> {
    web.channels.get(&web.daemon, &ctx.site.channel).await
}

/// The flows in the order the home page lists them, with their titles.
pub(super) const FLOWS: [(&str, &str); 8] = [
    ("org-new", "New organisation certificate"),
    ("personal-new", "New personal certificate"),
    ("renewal", "Renewal"),
    ("change", "Information change"),
    ("revocation", "Revocation"),
    ("reissue", "Re-issue"),
    ("unlock", "PIN unlock"),
    ("seal", "Seal add or change"),
];

/// A flow's title key.
pub(super) fn flow_title(flow: &str) -> &'static str {
    FLOWS.iter().find(|(f, _)| *f == flow).map_or("Order", |(_, t)| t)
}
