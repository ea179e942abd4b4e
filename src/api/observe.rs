//! Per-request bookkeeping for every listener: a request id (in the response's `x-request-id`
//! and on every log line of the request, through a tracing span) and the
//! `cloudca_http_requests_total{listener,route,status}` counter. Routes are counted as routed
//! (`/ocsp/{ca}`), never with their values, so the label set stays small.
//!
//! This runs on the OCSP hot path, so it is kept cheap: ids are a per-process random prefix
//! plus a counter (unique without a random draw per request), the span is only built when its
//! level is enabled, and counters are looked up once per (route, status) and then cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::IntCounter;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<u32> = OnceLock::new();
/// listener → route → status → counter. Nested so a lookup borrows the route (`&str`) and
/// allocates nothing on the hot path.
type Counters = HashMap<&'static str, HashMap<String, HashMap<u16, IntCounter>>>;
static COUNTERS: OnceLock<RwLock<Counters>> = OnceLock::new();

fn request_id() -> String {
    let prefix = *PREFIX.get_or_init(rand::random);
    format!("{prefix:08x}{:08x}", NEXT_ID.fetch_add(1, Ordering::Relaxed) as u32)
}

fn count(listener: &'static str, route: &str, status: u16) {
    let counters = COUNTERS.get_or_init(Default::default);
    {
        let known = counters.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = known.get(listener).and_then(|r| r.get(route)).and_then(|s| s.get(&status)) {
            c.inc();
            return;
        }
    }
    let status_text = status.to_string();
    let counter = crate::metrics::get().http_requests.with_label_values(&[listener, route, &status_text]);
    counter.inc();
    let mut counters = counters.write().unwrap_or_else(|p| p.into_inner());
    counters.entry(listener).or_default().entry(route.to_string()).or_default().insert(status, counter);
}

/// The middleware; the state names the listener.
pub async fn observe(State(listener): State<&'static str>, request: Request, next: Next) -> Response {
    let id = request_id();
    // MatchedPath is an Arc<str>: cloning it is a reference count, not a copy.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let mut response = if tracing::enabled!(tracing::Level::INFO) {
        let span = tracing::info_span!("request", request_id = %id, listener, route);
        next.run(request).instrument(span).await
    } else {
        next.run(request).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    count(listener, route, response.status().as_u16());
    response
}

/// The counting half only, for the public listener: OCSP is its hot path and is measured
/// against a bare-hyper ceiling, so it gets the counter (a read lock and an atomic add) but no
/// request id or span.
pub async fn count_only(State(listener): State<&'static str>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    count(listener, route.as_ref().map_or("unmatched", MatchedPath::as_str), response.status().as_u16());
    response
}

/// Adds the middleware to a router for a listener.
pub fn layer(router: axum::Router, listener: &'static str) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(listener, observe))
}
