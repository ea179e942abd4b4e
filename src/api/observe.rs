//! Per-request bookkeeping for every listener: a request id (in the response's `x-request-id`
//! and on every log line of the request, through a tracing span) and the
//! `cloudca_http_requests_total{listener,route,status}` counter. Routes are counted as routed
//! (`/ocsp/{ca}`), never with their values, so the label set stays small.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use tracing::Instrument;

/// The middleware; the state names the listener.
pub async fn observe(State(listener): State<&'static str>, request: Request, next: Next) -> Response {
    let mut id = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id);
    let id = hex::encode(id);
    let route =
        request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, listener, route = %route);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    crate::metrics::get().http_requests.with_label_values(&[listener, &route, response.status().as_str()]).inc();
    response
}

/// Adds the middleware to a router for a listener.
pub fn layer(router: axum::Router, listener: &'static str) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(listener, observe))
}
