//! What a page says after a redirect (a refusal, "code sent") and what the person typed, shown
//! again: carried in a short-lived HttpOnly cookie `ccf`, never in the URL (attacker review,
//! Low: a proxy log or the browser history kept ID numbers, phones and messages from query
//! strings). The next page reads it once; [`clear`] deletes it with that page's answer. The
//! web front keeps nothing, so several can still serve one browser.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use base64::Engine;
use serde::de::DeserializeOwned;

use super::security::Ctx;

/// The cookie's name.
pub const COOKIE: &str = "ccf";

/// How long a flash waits for its page (a redirect is followed at once).
const SECONDS: i64 = 120;

/// The most a flash value keeps (a cookie holds about 4 KiB).
const MAX_VALUE: usize = 600;

/// A page's flash: the URL's own query (only harmless words: `flow`) with the cookie's values
/// over it, as `T` (every field an optional string).
pub struct Flashed<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequestParts<S> for Flashed<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut values: BTreeMap<String, String> =
            axum::extract::Query::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
        let ctx = Ctx::from_request_parts(parts, state).await.unwrap_or_else(|never| match never {});
        values.extend(read(ctx.cookie(COOKIE).unwrap_or_default()));
        let value = serde_json::to_value(values).unwrap_or_default();
        Ok(Flashed(serde_json::from_value(value).unwrap_or_default()))
    }
}

/// The cookie's values (nothing when it is missing or not ours).
fn read(cookie: &str) -> BTreeMap<String, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The `Set-Cookie` that carries `values` to the next page.
pub fn cookie(ctx: &Ctx, values: &[(&str, &str)]) -> String {
    let map: BTreeMap<&str, String> =
        values.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.chars().take(MAX_VALUE).collect())).collect();
    let json = serde_json::to_vec(&map).unwrap_or_default();
    ctx.set_cookie(COOKIE, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json), SECONDS)
}

/// After a page that was shown with a flash: deletes it, unless this answer sets a new one.
pub fn clear(had: bool, tls: bool, response: &mut Response) {
    let sets_one = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with(&format!("{COOKIE}="))));
    if had && !sets_one {
        let secure = if tls { "; Secure" } else { "" };
        let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
        if let Ok(v) = HeaderValue::from_str(&gone) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_reads_back_what_was_set_and_nothing_from_a_foreign_cookie() {
        let ctx = Ctx {
            cookies: Default::default(),
            lang: crate::web::i18n::Lang::Zh,
            csrf: String::new(),
            tls: false,
            site: Default::default(),
        };
        let set = cookie(&ctx, &[("subject", "110101199003074338"), ("e", "验证码错误"), ("phone", "")]);
        let value = set.trim_start_matches("ccf=").split(';').next().unwrap();
        let back = read(value);
        assert_eq!(back.get("subject").map(String::as_str), Some("110101199003074338"));
        assert_eq!(back.get("e").map(String::as_str), Some("验证码错误"));
        assert!(!back.contains_key("phone"));
        assert!(read("not base64 !").is_empty());
    }
}
