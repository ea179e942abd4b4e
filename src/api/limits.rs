//! Request-size limits (security review M1). Before authentication a body may hold only a
//! few KiB (`listeners.pre_auth_body_bytes`, see [`super::accept::BodyLimit`]): anonymous
//! requests on `api` (no client certificate, no bearer token) and everything on `public`.
//! Authenticated requests get [`MAX_BODY_BYTES`], the material-upload route
//! [`MAX_UPLOAD_BYTES`]. The body is read with its limit before any handler or the
//! authorisation layer runs; once the limit is crossed (or `Content-Length` says it will be)
//! the answer is 413 with `Connection: close` at once, never after draining megabytes, and the
//! connection is drained only briefly after closing (`accept`'s lingering close) so the client
//! reads the 413 instead of a reset.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::accept::{BodyLimit, CloseAfterAnswer};
use super::problem::Problem;

/// Largest request body of an authenticated caller (CSRs and certificates fit many times over).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest upload of an applicant's material (the RA checks its own, lower, configured limit).
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Largest body of a platform opening a signing session: the base64 of the largest PDF
/// `custody.max_pdf_bytes` may allow, plus the JSON around it. The configured limit is checked
/// on the decoded PDF.
pub const MAX_DOCUMENT_BODY_BYTES: usize = crate::config::MAX_PDF_BYTES / 3 * 4 + 64 * 1024;

/// Used when a request did not come through `accept` (tests that call a router directly).
const DEFAULT_PRE_AUTH: usize = 8 * 1024;

/// Whether the request carries credentials: a client certificate the TLS layer identified,
/// or a bearer token (checked later by its handler; an invalid one still gets at most
/// [`MAX_BODY_BYTES`]).
fn authenticated(parts: &axum::http::request::Parts) -> bool {
    parts.extensions.get::<crate::roles::Caller>().is_some()
        || parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
}

/// The body limit of a request.
fn limit(parts: &axum::http::request::Parts) -> usize {
    if !authenticated(parts) {
        return parts.extensions.get::<BodyLimit>().map_or(DEFAULT_PRE_AUTH, |l| l.0);
    }
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    let upload = parts.method == axum::http::Method::PUT
        && matches!(segments.as_slice(), ["", "v1", "ra", "orders", _, "materials", _]);
    // Only a certificate the rules make a relying platform may send a document-sized body
    // (attacker review M1: any certificate under the client CA, the web front's included, could
    // make the listener buffer tens of megabytes before its authorisation was looked at).
    let platform = parts
        .extensions
        .get::<crate::roles::Caller>()
        .is_some_and(|c| c.role == Some(crate::roles::Role::RelyingPlatform));
    let document = parts.method == axum::http::Method::POST
        && platform
        && matches!(
            segments.as_slice(),
            ["", "v1", "signing", "sessions"] | ["", "csc", "v2", "signatures", "signDoc"]
        );
    if document {
        MAX_DOCUMENT_BODY_BYTES
    } else if upload {
        MAX_UPLOAD_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Reads the body up to its limit and passes the request on with the body in memory; 413
/// (and close) as soon as the limit is crossed.
pub async fn buffer_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let max = limit(&parts);
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(&parts, max);
    }
    match axum::body::to_bytes(body, max).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        // Over the limit, or the client went away.
        Err(_) => too_large(&parts, max),
    }
}

/// 413 with `Connection: close`; the rest of the body is never read (beyond the brief drain).
fn too_large(parts: &axum::http::request::Parts, max: usize) -> Response {
    if let Some(connection) = parts.extensions.get::<CloseAfterAnswer>() {
        connection.close();
    }
    let mut response =
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {max} bytes")).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Refuses a request target with a NUL character (`%00`, the only way one can arrive) before a
/// handler sees it: no identifier or filter holds one, and PostgreSQL cannot even compare text
/// with it, so both backends answer the same 400 instead of a 404 on one and a database error
/// on the other.
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or("", |pq| pq.as_str());
    if target.contains("%00") {
        return Problem::bad_request("the request target contains a NUL character (%00)").into_response();
    }
    next.run(request).await
}

/// The answer for paths no route matches: a problem document, like every other error.
pub async fn not_found() -> Response {
    Problem::not_found("no such endpoint").into_response()
}
