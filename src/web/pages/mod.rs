//! One file per group of pages.

pub(super) mod apply;
pub(super) mod home;
pub(super) mod manage;
pub(super) mod order;
pub(super) mod seals;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::html::{esc, page};
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
pub(super) fn html(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

/// A page that says something went wrong, and where to go.
pub(super) fn trouble(ctx: &Ctx, status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"alert\" role=\"alert\">{}</p><p><a href=\"/\">←</a></p>", esc(message));
    html(status, page(ctx, ctx.lang.t("Something went wrong; try again."), &body, None))
}

/// A POST whose CSRF field does not match this browser's token (another site's form, or a
/// page from before the cookie): the refusal to answer with, if so.
pub(super) fn forged(ctx: &Ctx, values: &std::collections::HashMap<String, String>) -> Option<Response> {
    let ok = ctx.csrf_ok(values.get("csrf").map_or("", String::as_str));
    (!ok).then(|| trouble(ctx, StatusCode::FORBIDDEN, ctx.lang.t("The page expired; please submit again.")))
}

/// The channel these pages serve, as the daemon describes it.
pub(super) async fn channel(web: &Web) -> Result<Value, String> {
    let path = format!("/v1/ra/channels/{}", web.config.channel);
    let answer = web.daemon.ra(reqwest::Method::GET, &path, None, None).await.map_err(|e| e.to_string())?;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(answer.title())
    }
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
