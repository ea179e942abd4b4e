//! The public listener: what relying parties fetch over plain HTTP (no TLS: RFC 5280 and
//! RFC 5019 expect http:// for CRLs and OCSP).
//!
//! - `GET /ca/{name}.crt`: CA certificates (caIssuers), `application/pkix-cert`.
//! - `GET /crl/{name}.crl` (or `{name}-{partition}.crl`): CRLs, `application/pkix-crl`, at
//!   exactly the URL written in the certificates' CDP.
//! - `POST /ocsp/{name}` with `application/ocsp-request`, and `GET /ocsp/{name}/{base64}`:
//!   OCSP, RFC 6960 with the RFC 5019 caching headers.
//! - `POST /tsa` with `application/timestamp-query`: the RFC 3161 timestamp authority
//!   (`crate::tsa`), answering `application/timestamp-reply`. Every granted query costs an HSM
//!   signature, so it is limited per address (`limits.tsa_per_ip`, on by default) and signs
//!   only through the TSA's own share of the pool (`hsm.tsa_concurrency`): beyond it, 503 with
//!   `Retry-After`.
//!
//! OCSP is the hot path (measured against a bare-hyper ceiling). A per-address limit
//! (`limits.ocsp_per_ip`) is off by default; off, the limit's layer does not exist, so it
//! costs nothing (the client address is attached by `accept` on every listener). On, each OCSP request costs one keyed hash
//! and one map lookup under a sharded lock, and a refusal is a 429 problem (not audited).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use time::OffsetDateTime;

use super::problem::Problem;
use crate::daemon::Instance;
use crate::ratelimit::Limits;
use crate::status::ocsp::response::{self, ErrorStatus};
use crate::status::ocsp::Answer;

/// Largest OCSP request accepted (16 certificates and a nonce fit in well under 4 KiB).
const MAX_OCSP_REQUEST: usize = 8 * 1024;

/// Largest timestamp query accepted: a SHA-512 imprint, a 32-octet nonce and a policy take
/// under 150 bytes, and extensions are refused anyway.
pub const MAX_TSA_QUERY: usize = 1024;

/// The reply media type, exactly (RFC 3161 §3.4; pyHanko compares it without parameters).
const TIMESTAMP_REPLY: &str = "application/timestamp-reply";

/// The public listener's OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi/public.json");

/// (method, path) of every route, for the OpenAPI drift test (`{*request}` is `{request}` there).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/ca/{file}"),
    ("GET", "/crl/{file}"),
    ("POST", "/ocsp/{ca}"),
    ("GET", "/ocsp/{ca}/{*request}"),
    ("POST", "/tsa"),
    ("GET", "/openapi.json"),
];

/// Routes of the public listener, with the lean request counter (see `observe::count_only`).
pub fn router(instance: Instance) -> Router {
    let mut ocsp =
        Router::new().route("/ocsp/{ca}", axum::routing::post(ocsp_post)).route("/ocsp/{ca}/{*request}", get(ocsp_get));
    let limits = instance.limits.clone();
    if limits.ocsp_per_ip.enabled() {
        ocsp = ocsp.route_layer(axum::middleware::from_fn_with_state(limits.clone(), ocsp_limit));
    }
    let mut tsa = Router::new().route("/tsa", axum::routing::post(tsa_post));
    if limits.tsa_per_ip.enabled() {
        tsa = tsa.route_layer(axum::middleware::from_fn_with_state(limits.clone(), tsa_limit));
    }
    Router::new()
        .route("/ca/{file}", get(ca_certificate))
        .route("/crl/{file}", get(crl))
        .merge(ocsp)
        .merge(tsa)
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .layer(axum::middleware::from_fn_with_state("public", super::observe::count_only))
        .layer(axum::middleware::from_fn(super::limits::buffer_body))
        .layer(DefaultBodyLimit::max(MAX_OCSP_REQUEST))
        .with_state(instance)
}

/// Serves the public listener until `shutdown` fires, on the hardened path every listener
/// shares (`accept`: connection caps, timeouts, the client address as `ConnectInfo`).
pub fn spawn(
    listener: tokio::net::TcpListener,
    instance: Instance,
    shutdown: tokio::sync::broadcast::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let guard = crate::daemon::guard(&instance, "public");
    tokio::spawn(super::accept::serve_plain(listener, guard, router(instance), shutdown))
}

/// The per-address OCSP limit (only layered when configured).
async fn ocsp_limit(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        static UNWIRED: std::sync::Once = std::sync::Once::new();
        UNWIRED.call_once(|| {
            tracing::error!("limits.ocsp_per_ip is set but the public listener gives no peer addresses: not limited");
        });
        return next.run(request).await;
    };
    match limits.ocsp_per_ip.check(&super::throttle::normalize(peer.ip())) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // Read the (small, bounded) body first: closing with unread bytes can reset the
            // connection before the client reads the answer.
            let _ = axum::body::to_bytes(request.into_body(), MAX_OCSP_REQUEST).await;
            super::throttle::refused(&refusal).into_response()
        }
    }
}

/// The per-address timestamp limit (on by default).
async fn tsa_limit(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        // Only a router called without `accept` (a unit test) has no peer; every listener
        // attaches one.
        return next.run(request).await;
    };
    match limits.tsa_per_ip.check(&super::throttle::normalize(peer.ip())) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::info!(limit = refusal.limit, retry_after = refusal.retry_after(), "rate limited");
            super::throttle::refused(&refusal).into_response()
        }
    }
}

/// `POST /tsa`: the media type and size are checked here, the query by `crate::tsa`. Replies
/// are TimeStampResp whatever the outcome; a refused query is 200 `rejection` (RFC 3161 §2.4.2,
/// as OCSP errors are OCSP responses), a busy or unset TSA 503.
async fn tsa_post(State(instance): State<Instance>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/timestamp-query") {
        return Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/timestamp-query")
            .into_response();
    }
    if body.len() > MAX_TSA_QUERY {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a timestamp query is at most {MAX_TSA_QUERY} bytes"),
        )
        .into_response();
    }
    let reply = instance.tsa.answer(&body).await;
    let status = match reply.outcome {
        crate::tsa::Outcome::Granted | crate::tsa::Outcome::Rejected(_) => StatusCode::OK,
        crate::tsa::Outcome::Busy | crate::tsa::Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response =
        (status, [(header::CONTENT_TYPE, TIMESTAMP_REPLY), (header::CACHE_CONTROL, "no-store")], reply.der)
            .into_response();
    if reply.outcome == crate::tsa::Outcome::Busy {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn ca_certificate(State(instance): State<Instance>, Path(file): Path<String>) -> Response {
    // Only CAs are published here: never the OCSP responder, audit or operator CA entries.
    let authority = file.strip_suffix(".crt").and_then(|name| instance.issuance.hierarchy.get(name).ok());
    match authority.filter(|a| a.record.role == "root" || a.record.role == "issuing") {
        Some(a) => ([(header::CONTENT_TYPE, "application/pkix-cert")], a.record.certificate.clone()).into_response(),
        None => Problem::not_found("no such CA certificate").into_response(),
    }
}

async fn crl(State(instance): State<Instance>, Path(file): Path<String>, request: HeaderMap) -> Response {
    let Some((issuer, shard)) = instance.status.crl_for_file(&file) else {
        return Problem::not_found("no such CRL").into_response();
    };
    match instance.status.crl(&issuer, shard).await {
        Ok(crl) => {
            let max_age = (crl.next_update - OffsetDateTime::now_utc()).whole_seconds().clamp(0, 3600);
            // A CRL number never repeats for a partition, so it identifies the content.
            let etag = format!("\"{issuer}-{shard}-{}\"", crl.number);
            let headers = [
                (header::CACHE_CONTROL, format!("public, max-age={max_age}, no-transform")),
                (header::LAST_MODIFIED, http_date(crl.this_update)),
                (header::EXPIRES, http_date(crl.next_update)),
                (header::ETAG, etag.clone()),
            ];
            if request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
            (headers, [(header::CONTENT_TYPE, "application/pkix-crl")], crl.der.clone()).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, issuer = %issuer, "no CRL to serve");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no CRL published yet; try again shortly").into_response()
        }
    }
}

async fn ocsp_post(State(instance): State<Instance>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/ocsp-request") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/ocsp-request\n")
            .into_response();
    }
    ocsp(&instance, &body, &headers).await
}

async fn ocsp_get(
    State(instance): State<Instance>,
    Path((_, request)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match decode_get(&request) {
        Ok(der) => ocsp(&instance, &der, &headers).await,
        Err(GetError::Malformed) => ocsp_error(ErrorStatus::MalformedRequest),
        Err(GetError::TooLong) => StatusCode::URI_TOO_LONG.into_response(),
    }
}

/// Why a GET-form OCSP request (the path's tail) was refused before parsing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetError {
    /// Not standard base64: answered as an OCSP `malformedRequest`.
    Malformed,
    /// Decodes to more than [`MAX_OCSP_REQUEST`]: answered 414.
    TooLong,
}

/// The DER of a GET-form OCSP request, from the already percent-decoded path tail: trailing
/// newlines dropped, standard base64, at most [`MAX_OCSP_REQUEST`] bytes. Shared with the
/// `ocsp_get` fuzz target so it fuzzes exactly what the handler runs.
pub(crate) fn decode_get(request: &str) -> Result<Vec<u8>, GetError> {
    // Axum has already percent-decoded the path; some clients also leave '+' and '/' raw.
    let der = base64::engine::general_purpose::STANDARD
        .decode(request.trim_end_matches('\n').as_bytes())
        .map_err(|_| GetError::Malformed)?;
    if der.len() > MAX_OCSP_REQUEST {
        return Err(GetError::TooLong);
    }
    Ok(der)
}

async fn ocsp(instance: &Instance, der: &[u8], headers: &HeaderMap) -> Response {
    match instance.status.answer(der).await {
        Answer::Cached(c) => {
            if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == c.etag.as_bytes()) {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let max_age = (c.next_update - now).max(0);
            let at = |t: i64| http_date(OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH));
            let mut response = c.der.clone().into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
            insert(h, header::CACHE_CONTROL, format!("max-age={max_age}, public, no-transform, must-revalidate"));
            insert(h, header::LAST_MODIFIED, at(c.this_update));
            insert(h, header::EXPIRES, at(c.next_update));
            insert(h, header::ETAG, c.etag.clone());
            response
        }
        Answer::Fresh(der) => {
            ([(header::CONTENT_TYPE, "application/ocsp-response"), (header::CACHE_CONTROL, "no-cache, no-store")], der)
                .into_response()
        }
        Answer::Error(status) => ocsp_error(status),
    }
}

/// Error statuses are OCSP responses too (HTTP 200, RFC 6960 §4.2.1, RFC 5019 §5).
fn ocsp_error(status: ErrorStatus) -> Response {
    (
        [(header::CONTENT_TYPE, "application/ocsp-response"), (header::CACHE_CONTROL, "no-cache")],
        response::error(status),
    )
        .into_response()
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(t: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
