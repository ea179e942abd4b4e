//! The back office over mutual TLS. [`ROUTES`] is the single table of what exists and who may
//! call it: the router is built from it, the authorisation layer reads it, the role-by-route
//! test walks it and the OpenAPI drift test compares it with `openapi/admin.json`. Anything
//! not in the table is 404; a role not listed for a route is 403 with an audit event.

pub(crate) mod approvals;
mod audit;
pub(crate) mod certificates;
pub(crate) mod operators;
mod platforms;
pub(crate) mod seals;
mod status;

use axum::extract::{Extension, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};

use super::problem::Problem;
use crate::api::ra::{applicant, letter, officer, review_pages};
use crate::daemon::Instance;
use crate::roles::{Caller, Role};
use crate::store::AuditRecord;

/// One admin route: method, path as routed, the roles allowed, and its handler.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path as routed (`{serial}` for parameters).
    pub path: &'static str,
    /// Roles allowed; every other role (and no role) gets 403.
    pub roles: &'static [Role],
    /// Builds the handler.
    pub handler: fn() -> MethodRouter<Instance>,
}

const EVERY_ROLE: &[Role] = &Role::ALL;
const READERS: &[Role] = &[Role::Operator, Role::Reviewer, Role::Auditor];
const OPERATOR: &[Role] = &[Role::Operator];
const AUDITOR: &[Role] = &[Role::Auditor];
const OPERATOR_AUDITOR: &[Role] = &[Role::Operator, Role::Auditor];
const WEB_FRONT: &[Role] = &[Role::WebFront];
const REVIEWER: &[Role] = &[Role::Reviewer];

/// Every admin route.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/openapi.json", roles: EVERY_ROLE, handler: || get(openapi) },
    Route { method: "GET", path: "/v1/whoami", roles: EVERY_ROLE, handler: || get(whoami) },
    Route { method: "GET", path: "/v1/certificates", roles: READERS, handler: || get(certificates::search) },
    Route { method: "POST", path: "/v1/certificates", roles: OPERATOR, handler: || post(certificates::issue) },
    Route { method: "GET", path: "/v1/certificates/{serial}", roles: READERS, handler: || get(certificates::show) },
    Route {
        method: "POST",
        path: "/v1/certificates/{serial}/revoke",
        roles: OPERATOR,
        handler: || post(certificates::revoke),
    },
    Route { method: "POST", path: "/v1/crl/rebuild", roles: OPERATOR, handler: || post(status::rebuild_crls) },
    Route { method: "GET", path: "/v1/hsm", roles: OPERATOR_AUDITOR, handler: || get(status::hsm) },
    Route { method: "GET", path: "/v1/readiness", roles: READERS, handler: || get(status::readiness) },
    Route { method: "GET", path: "/v1/audit", roles: AUDITOR, handler: || get(audit::query) },
    Route { method: "GET", path: "/v1/audit/verify", roles: AUDITOR, handler: || get(audit::verify) },
    Route { method: "POST", path: "/v1/relying-platforms", roles: OPERATOR, handler: || post(platforms::register) },
    Route { method: "GET", path: "/v1/relying-platforms", roles: READERS, handler: || get(platforms::list) },
    Route { method: "GET", path: "/v1/relying-platforms/{name}", roles: READERS, handler: || get(platforms::show) },
    Route {
        method: "POST",
        path: "/v1/relying-platforms/{name}/disable",
        roles: OPERATOR,
        handler: || post(platforms::disable),
    },
    Route { method: "POST", path: "/v1/operators", roles: OPERATOR, handler: || post(operators::issue) },
    Route { method: "GET", path: "/v1/operators", roles: OPERATOR_AUDITOR, handler: || get(operators::list) },
    Route {
        method: "POST",
        path: "/v1/approvals",
        // Never the web front: an approval made here skips every RA check (review C2); the RA
        // makes its own in process when it approves an order.
        roles: OPERATOR,
        handler: || post(approvals::create),
    },
    Route { method: "GET", path: "/v1/seal-requests", roles: READERS, handler: || get(seals::pending) },
    Route {
        method: "POST",
        path: "/v1/seal-requests/{id}/decision",
        roles: &[Role::Reviewer],
        handler: || post(seals::decide),
    },
    Route {
        method: "POST",
        path: "/v1/operators/{serial}/revoke",
        roles: OPERATOR,
        handler: || post(operators::revoke),
    },
    // The RA API the web front drives (each order also needs its x-order-token).
    Route { method: "GET", path: "/v1/ra/channels", roles: WEB_FRONT, handler: || get(applicant::channels) },
    Route { method: "GET", path: "/v1/ra/channels/{name}", roles: WEB_FRONT, handler: || get(applicant::channel) },
    Route { method: "POST", path: "/v1/ra/orders", roles: WEB_FRONT, handler: || post(applicant::create) },
    Route { method: "GET", path: "/v1/ra/orders/{id}", roles: WEB_FRONT, handler: || get(applicant::show) },
    Route {
        method: "POST",
        path: "/v1/ra/orders/{id}/steps/{step}",
        roles: WEB_FRONT,
        handler: || post(applicant::step),
    },
    Route {
        method: "POST",
        path: "/v1/ra/orders/{id}/codes/{purpose}",
        roles: WEB_FRONT,
        handler: || post(applicant::code),
    },
    Route {
        method: "PUT",
        path: "/v1/ra/orders/{id}/materials/{kind}",
        roles: WEB_FRONT,
        handler: || put(applicant::upload),
    },
    Route { method: "POST", path: "/v1/ra/orders/{id}/cancel", roles: WEB_FRONT, handler: || post(applicant::cancel) },
    Route {
        method: "POST",
        path: "/v1/ra/orders/{id}/offline",
        roles: WEB_FRONT,
        handler: || post(applicant::offline),
    },
    Route { method: "GET", path: "/v1/ra/orders/{id}/form", roles: WEB_FRONT, handler: || get(applicant::form) },
    Route {
        method: "GET",
        path: "/v1/ra/orders/{id}/authorization-letter",
        roles: WEB_FRONT,
        handler: || get(applicant::authorization_letter),
    },
    Route { method: "GET", path: "/v1/ra/letters/{link}", roles: WEB_FRONT, handler: || get(letter::show) },
    Route { method: "GET", path: "/v1/ra/letters/{link}/pdf", roles: WEB_FRONT, handler: || get(letter::pdf) },
    Route { method: "POST", path: "/v1/ra/letters/{link}/code", roles: WEB_FRONT, handler: || post(letter::code) },
    Route { method: "POST", path: "/v1/ra/letters/{link}/sign", roles: WEB_FRONT, handler: || post(letter::sign) },
    Route { method: "GET", path: "/v1/ra/orders/{id}/invoice", roles: WEB_FRONT, handler: || get(applicant::invoice) },
    Route {
        method: "POST",
        path: "/v1/ra/orders/{id}/invoice/reissue",
        roles: WEB_FRONT,
        handler: || post(applicant::reissue_invoice),
    },
    Route { method: "PUT", path: "/v1/ra/orders/{id}/address", roles: WEB_FRONT, handler: || put(applicant::address) },
    Route { method: "POST", path: "/v1/ra/queries/code", roles: WEB_FRONT, handler: || post(applicant::query_code) },
    Route {
        method: "POST",
        path: "/v1/ra/queries/challenge",
        roles: WEB_FRONT,
        handler: || post(applicant::query_challenge),
    },
    Route { method: "POST", path: "/v1/ra/queries", roles: WEB_FRONT, handler: || post(applicant::open_query) },
    Route { method: "GET", path: "/v1/ra/queries/orders", roles: WEB_FRONT, handler: || get(applicant::query_orders) },
    Route {
        method: "GET",
        path: "/v1/ra/queries/certificates",
        roles: WEB_FRONT,
        handler: || get(applicant::query_certificates),
    },
    Route {
        method: "POST",
        path: "/v1/ra/queries/orders/{id}/resume-code",
        roles: WEB_FRONT,
        handler: || post(applicant::resume_code),
    },
    Route {
        method: "POST",
        path: "/v1/ra/queries/orders/{id}/resume",
        roles: WEB_FRONT,
        handler: || post(applicant::resume),
    },
    // Officers.
    Route { method: "GET", path: "/v1/reviews", roles: REVIEWER, handler: || get(officer::queue) },
    Route { method: "GET", path: "/v1/orders", roles: READERS, handler: || get(officer::search) },
    Route { method: "GET", path: "/v1/orders/{id}", roles: READERS, handler: || get(officer::show) },
    Route {
        method: "GET",
        path: "/v1/orders/{id}/materials/{sha256}",
        roles: REVIEWER,
        handler: || get(officer::material),
    },
    Route { method: "POST", path: "/v1/orders/{id}/decision", roles: REVIEWER, handler: || post(officer::decide) },
    Route { method: "POST", path: "/v1/orders/{id}/papers", roles: REVIEWER, handler: || post(officer::papers) },
    Route { method: "POST", path: "/v1/orders/{id}/cancel", roles: REVIEWER, handler: || post(officer::cancel) },
    Route { method: "GET", path: "/review", roles: REVIEWER, handler: || get(review_pages::queue) },
    Route { method: "GET", path: "/review/orders/{id}", roles: REVIEWER, handler: || get(review_pages::order) },
    Route {
        method: "GET",
        path: "/review/orders/{id}/materials/{sha256}",
        roles: REVIEWER,
        handler: || get(review_pages::material),
    },
    Route {
        method: "GET",
        path: "/review/orders/{id}/changed-seal",
        roles: REVIEWER,
        handler: || get(review_pages::changed_seal_image),
    },
    Route {
        method: "POST",
        path: "/review/orders/{id}/decision",
        roles: REVIEWER,
        handler: || post(review_pages::decide),
    },
    Route {
        method: "POST",
        path: "/review/orders/{id}/papers",
        roles: REVIEWER,
        handler: || post(review_pages::papers),
    },
    Route { method: "GET", path: "/v1/channels", roles: READERS, handler: || get(applicant::channels) },
];

/// The admin API's OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../../openapi/admin.json");

/// Routes of the admin listener, built from [`ROUTES`], behind the authorisation layer.
pub fn router(instance: Instance) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        router = router.route(route.path, (route.handler)());
    }
    router
        .route_layer(axum::middleware::from_fn(crate::api::limits::refuse_nul))
        .route_layer(axum::middleware::from_fn_with_state(instance.clone(), authorize))
        .route_layer(axum::middleware::from_fn_with_state(instance.clone(), refuse_cross_site))
        .fallback(crate::api::limits::not_found)
        .layer(axum::middleware::from_fn_with_state((instance.clone(), "admin"), crate::api::identity::check))
        .layer(axum::extract::DefaultBodyLimit::max(crate::api::limits::MAX_UPLOAD_BYTES))
        .layer(axum::middleware::from_fn(crate::api::limits::buffer_body))
        .with_state(instance)
}

/// Deny by default: the caller's role (as of this request: `api::identity`) must be one the
/// route's entry in [`ROUTES`] names, and its certificate must not have been revoked since the
/// connection opened; otherwise 403, audited (and the request fails if the audit write fails).
async fn authorize(State(instance): State<Instance>, matched: MatchedPath, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return Problem::new(StatusCode::UNAUTHORIZED, "no client certificate").into_response();
    };
    // HEAD is answered by the GET handler, so it needs what GET needs.
    let method = if request.method() == axum::http::Method::HEAD { "GET" } else { request.method().as_str() };
    let Some(entry) = ROUTES.iter().find(|r| r.method == method && r.path == matched.as_str()) else {
        // A method the path does not have: nothing runs, the router answers 405.
        return next.run(request).await;
    };
    let allowed = entry.roles;
    let route = format!("{method} {}", matched.as_str());
    if instance.operators.revoked.contains(&caller.fingerprint) {
        return deny(&instance, &caller, &route, "certificate revoked").await;
    }
    match caller.role {
        Some(role) if allowed.contains(&role) => next.run(request).await,
        _ => deny(&instance, &caller, &route, "role not allowed").await,
    }
}

/// A browser that holds a back-office certificate presents it to any page that asks: the
/// certificate is ambient authority, like a cookie. So a request that the browser itself marks
/// as made by another site is refused before anything runs: any write whose `Sec-Fetch-Site` is
/// not `same-origin` or whose `Origin` is not this listener, and a review page (`/review…`)
/// loaded cross-site (which would write a read of personal data under the reviewer's name).
/// Command-line and program clients send neither header and are not affected; the review
/// pages' own forms also require `Origin` (`api::ra::review_pages`). Audited, coalesced.
async fn refuse_cross_site(State(instance): State<Instance>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let write = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let page = request.uri().path().starts_with("/review");
    let site = value("sec-fetch-site");
    let own = value("host").map(|host| format!("https://{host}"));
    let origin_ok = value("origin").is_none_or(|o| Some(o) == own.as_deref());
    let refused = match (write, page) {
        (true, _) => !origin_ok || site.is_some_and(|s| s != "same-origin"),
        (false, true) => site.is_some_and(|s| s == "cross-site" || s == "same-site"),
        (false, false) => false,
    };
    if !refused {
        return next.run(request).await;
    }
    let detail = serde_json::json!({
        "route": format!("{} {}", request.method(), request.uri().path()),
        "origin": value("origin"), "sec_fetch_site": site,
    });
    let caller = request.extensions().get::<Caller>().map_or_else(|| "unknown".to_string(), actor);
    instance.ra.refused_cross_site(&caller, detail).await;
    Problem::new(StatusCode::FORBIDDEN, "a request another site made your browser send is refused").into_response()
}

/// Records a denial in the audit log and answers 403.
async fn deny(instance: &Instance, caller: &Caller, route: &str, why: &'static str) -> Response {
    let detail = serde_json::json!({ "route": route, "why": why, "role": caller.role.map(Role::name), "subject": caller.subject });
    let record = AuditRecord::new(instance.issuance.clock.as_ref(), "access.denied", &actor(caller), None, detail);
    if let Err(e) = instance.store.audit(&record).await {
        return Problem::unavailable(&format!("cannot audit a denial: {e}")).into_response();
    }
    tracing::warn!(target: "audit", route, why, fingerprint = %caller.fingerprint, "access denied");
    crate::metrics::get().access_denied.inc();
    Problem::new(StatusCode::FORBIDDEN, "your certificate may not do this").into_response()
}

/// The audit actor for a caller: role and certificate fingerprint.
pub(crate) fn actor(caller: &Caller) -> String {
    format!("{}:{}", caller.role.map_or("none", Role::name), caller.fingerprint)
}

async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    Json(serde_json::json!({
        "fingerprint": caller.fingerprint, "subject": caller.subject, "role": caller.role.map(Role::name),
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A revocation reason from a request body.
pub(crate) fn reason(name: &str) -> Result<crate::status::RevocationReason, Problem> {
    name.parse().map_err(|_| Problem::bad_request("unknown revocation reason"))
}

/// RFC 3339 for unix seconds ("-" never appears in JSON: out-of-range times are null).
pub(crate) fn rfc3339(unix: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}
