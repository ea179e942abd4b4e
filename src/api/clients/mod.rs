//! The `api` listener (TLS, client certificates optional): the mobile app (bearer tokens from
//! SMS login, [`mobile`]), relying platforms (registered client certificates, [`platform`]),
//! and payment providers' webhooks with the sandbox providers' pages ([`payments`]). The
//! webhook and the sandbox pages are rate-limited per client address
//! (`limits.callbacks_per_ip`); the other limits sit in the handlers.

mod csc;
mod errors;
pub(crate) mod mobile;
pub(crate) mod orgs;
mod payments;
mod platform;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::throttle::{self, Pick};
use crate::daemon::{Instance, Readiness};

/// The api listener's OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../../openapi/api.json");

/// (method, path) of every route, for the OpenAPI drift test.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/v1/health"),
    ("POST", "/v1/mobile/sms"),
    ("POST", "/v1/mobile/login"),
    ("POST", "/v1/mobile/logout"),
    ("GET", "/v1/mobile/credentials"),
    ("POST", "/v1/mobile/credentials"),
    ("POST", "/v1/mobile/credentials/{id}/pin"),
    ("POST", "/v1/mobile/credentials/{id}/unlock"),
    ("POST", "/v1/mobile/credentials/{id}/pin-reset"),
    ("POST", "/v1/mobile/proofs"),
    ("GET", "/v1/mobile/proofs/{id}"),
    ("POST", "/v1/mobile/sessions/claim"),
    ("POST", "/v1/mobile/sessions/{id}/approve"),
    ("POST", "/v1/mobile/sessions/{id}/refuse"),
    ("GET", "/v1/mobile/orgs"),
    ("POST", "/v1/mobile/orgs/{credit_code}/members"),
    ("POST", "/v1/mobile/orgs/{credit_code}/members/remove"),
    ("POST", "/v1/mobile/orgs/{credit_code}/handover"),
    ("POST", "/v1/mobile/orgs/{credit_code}/handover/accept"),
    ("POST", "/v1/mobile/orgs/{credit_code}/seal-requests"),
    ("POST", "/v1/mobile/orgs/{credit_code}/seals/{seal_id}/users"),
    ("POST", "/v1/signing/sessions"),
    ("GET", "/v1/signing/sessions/{id}"),
    ("POST", "/v1/payments/webhook"),
    ("GET", "/sandbox/pay/{ref}"),
    ("POST", "/sandbox/pay/{ref}"),
    ("POST", "/sandbox/pay/{ref}/close"),
    ("GET", "/sandbox/face/{id}"),
    ("POST", "/sandbox/face/{id}"),
];

/// Every route of the api listener: [`ROUTES`] and the CSC API's ([`csc::ROUTES`]).
pub fn routes() -> Vec<(&'static str, &'static str)> {
    ROUTES.iter().chain(csc::ROUTES).copied().collect()
}

/// Routes of the api listener.
pub fn router(instance: Instance) -> Router {
    let callbacks: Pick = |limits| &limits.callbacks_per_ip;
    let mut providers = Router::new().route("/v1/payments/webhook", post(payments::webhook));
    // The pages that stand in for the payer and the person taking a face check: a sandbox
    // instance only, or anyone could mark an order paid or pass a face check (review H4).
    if instance.config.providers.mode == crate::config::ProvidersMode::Sandbox {
        providers = providers
            .route("/sandbox/pay/{ref}", get(payments::pay_page).post(payments::pay))
            .route("/sandbox/pay/{ref}/close", post(payments::close))
            .route("/sandbox/face/{id}", get(payments::face_page).post(payments::face));
    }
    let providers =
        providers.route_layer(axum::middleware::from_fn_with_state((instance.clone(), callbacks), throttle::per_ip));
    Router::new()
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/v1/health", get(health))
        .route("/v1/mobile/sms", post(mobile::send_code))
        .route("/v1/mobile/login", post(mobile::login))
        .route("/v1/mobile/logout", post(mobile::logout))
        .route("/v1/mobile/credentials", get(mobile::credentials).post(mobile::enroll))
        .route("/v1/mobile/credentials/{id}/pin", post(mobile::change_pin))
        .route("/v1/mobile/credentials/{id}/unlock", post(mobile::unlock))
        .route("/v1/mobile/credentials/{id}/pin-reset", post(mobile::pin_reset))
        .route("/v1/mobile/proofs", post(mobile::start_proof))
        .route("/v1/mobile/proofs/{id}", get(mobile::proof))
        .route("/v1/mobile/sessions/claim", post(mobile::claim))
        .route("/v1/mobile/sessions/{id}/approve", post(mobile::approve))
        .route("/v1/mobile/sessions/{id}/refuse", post(mobile::refuse))
        .route("/v1/mobile/orgs", get(orgs::list))
        .route("/v1/mobile/orgs/{credit_code}/members", post(orgs::set_member))
        .route("/v1/mobile/orgs/{credit_code}/members/remove", post(orgs::remove_member))
        .route("/v1/mobile/orgs/{credit_code}/handover", post(orgs::hand_over))
        .route("/v1/mobile/orgs/{credit_code}/handover/accept", post(orgs::accept_hand_over))
        .route("/v1/mobile/orgs/{credit_code}/seal-requests", post(orgs::request_seal))
        .route("/v1/mobile/orgs/{credit_code}/seals/{seal_id}/users", post(orgs::set_seal_user))
        .route(
            "/v1/signing/sessions",
            // The body was read whole within its limit already (`limits::buffer_body`); the JSON
            // extractor's own 2 MiB default would cut a PDF short.
            post(platform::open).layer(axum::extract::DefaultBodyLimit::max(super::limits::MAX_DOCUMENT_BODY_BYTES)),
        )
        .route("/v1/signing/sessions/{id}", get(platform::poll))
        .merge(providers)
        .merge(csc::router())
        .fallback(super::limits::not_found)
        .layer(axum::middleware::from_fn_with_state((instance.clone(), "api"), super::identity::check))
        .layer(axum::middleware::from_fn(super::limits::refuse_nul))
        .layer(axum::middleware::from_fn(super::limits::buffer_body))
        .with_state(instance)
}

async fn health(State(instance): State<Instance>) -> Response {
    let status = match instance.readiness().await {
        Readiness::Ready => "ready",
        Readiness::Degraded(_) => "degraded",
        Readiness::NotReady(_) => "not ready",
    };
    Json(serde_json::json!({ "status": status })).into_response()
}

/// Login errors as problems, for other listeners that check SMS codes (the RA).
pub(crate) fn login_problem(e: crate::mobile::LoginError) -> super::problem::Problem {
    errors::login(e)
}
