//! What keeps the pages safe: security headers on every response, a CSRF token (double
//! submit: an HttpOnly SameSite=Strict cookie and a hidden field that must match), cookies
//! that are HttpOnly, SameSite and (over TLS) Secure.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::i18n::Lang;
pub use super::site::Site;

/// The Content-Security-Policy: everything from this origin only, no inline script, images
/// may be data: URLs (QR codes), never framed.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                       form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// What a request brings: its cookies, language and CSRF token.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Cookies by name.
    pub cookies: HashMap<String, String>,
    /// Page language.
    pub lang: Lang,
    /// This browser's CSRF token (new ones are set by [`headers`]).
    pub csrf: String,
    /// Whether the pages are served over TLS (cookies get `Secure`).
    pub tls: bool,
    /// The channel these pages are for ([`super::site::select`] put it on the request).
    pub site: Site,
}

impl Ctx {
    /// A path of this channel's pages: `/c/{channel}/orders` outside the default channel.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.site.base)
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Whether a submitted token matches this browser's (constant time).
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), submitted.as_bytes());
        a.len() == b.len() && !a.is_empty() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax (so the link from an SMS still carries
    /// it), Secure over TLS; `max_age` 0 deletes it.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }
}

fn parse_cookies(parts: &Parts) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for value in parts.headers.get_all(header::COOKIE) {
        for pair in value.to_str().unwrap_or_default().split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                map.insert(k.to_string(), v.to_string());
            }
        }
    }
    map
}

/// Marks a request as arriving over TLS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls(pub bool);

/// Default language, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct DefaultLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Ctx, Self::Rejection> {
        let cookies = parse_cookies(parts);
        let default = parts.extensions.get::<DefaultLang>().map_or(Lang::Zh, |d| d.0);
        let lang = cookies.get("lang").map_or(default, |l| Lang::parse(l));
        let csrf = parts.extensions.get::<NewCsrf>().map(|c| c.0.clone()).or_else(|| cookies.get("cc_csrf").cloned());
        let tls = parts.extensions.get::<OverTls>().is_some_and(|t| t.0);
        // Without the selection (never on the served path) the channel is empty: the daemon
        // knows no such channel, so nothing is shown or created for a guessed one.
        let site = parts.extensions.get::<Site>().cloned().unwrap_or_default();
        Ok(Ctx { cookies, lang, csrf: csrf.unwrap_or_default(), tls, site })
    }
}

#[derive(Debug, Clone)]
struct NewCsrf(String);

/// Serves the request with its browser's address in [`super::client::BROWSER`], so every call
/// to the daemon forwards it and the daemon's per-address rate limits count this browser, not
/// the web front. The address is the one `api::accept` resolved: the TCP peer's, or behind a
/// proxy in `listener.trusted_proxies` the client it names (none without `ConnectInfo`).
pub async fn browser(request: Request, next: Next) -> Response {
    match request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        Some(ip) => super::client::BROWSER.scope(ip, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// Refuses, with the not-found page, a path that is not plain: the pages put order ids, steps
/// and credit codes into the daemon's URLs, where a percent-encoded character (`%2F`, `%00`) or
/// a dot segment would aim the call at another endpoint than the page means. No page needs one.
pub async fn plain_paths(ctx: Ctx, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.contains('%') || path.split('/').any(|s| s == "." || s == "..") {
        return super::pages::home::not_found(ctx).await;
    }
    next.run(request).await
}

/// Adds the security headers, and a CSRF cookie to browsers that have none.
pub async fn headers(mut request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let cookies = parse_cookies(&parts);
    let has = cookies.get("cc_csrf").is_some_and(|v| v.len() == 43);
    let flashed = cookies.contains_key(super::flash::COOKIE);
    let tls = parts.extensions.get::<OverTls>().is_some_and(|t| t.0);
    let fresh = (!has).then(crate::ra::new_token);
    if let Some(token) = &fresh {
        parts.extensions.insert(NewCsrf(token.clone()));
    }
    request = Request::from_parts(parts, body);
    let mut response = next.run(request).await;
    super::flash::clear(flashed, tls, &mut response);
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    if let Some(token) = fresh {
        let secure = if tls { "; Secure" } else { "" };
        let cookie = format!("cc_csrf={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}
