//! Request-size limits that never cut a connection short. The whole body (up to
//! [`MAX_BODY_BYTES`]) is read before any handler or the authorisation layer runs, so an early
//! answer (403, 404, 413) never leaves unread bytes behind: closing a socket with unread data
//! makes the kernel send a reset that can destroy the answer before the client reads it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;

/// Largest request body the TLS listeners accept (CSRs and certificates fit many times over).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest upload of an applicant's material (the RA checks its own, lower, configured limit).
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_BYTES: usize = 5 * 1024 * 1024;

/// The body limit of a request: uploads of materials get the larger one.
fn limit(parts: &axum::http::request::Parts) -> usize {
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    let upload = parts.method == axum::http::Method::PUT
        && matches!(segments.as_slice(), ["", "v1", "ra", "orders", _, "materials", _]);
    if upload {
        MAX_UPLOAD_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Reads the body (bounded), answers 413 for oversized ones, and passes the rest on with the
/// body in memory.
pub async fn buffer_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let max = limit(&parts);
    match axum::body::to_bytes(body, DRAIN_BYTES).await {
        Ok(bytes) if bytes.len() <= max => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(_) => too_large(max),
        Err(_) => {
            // Larger than we are willing to drain, or the client went away: answer and close.
            let mut response = too_large(max);
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

fn too_large(max: usize) -> Response {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {max} bytes")).into_response()
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
