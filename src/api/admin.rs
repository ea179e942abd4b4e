//! The back office over mutual TLS. Every route names the roles it allows; anything else is
//! 403 with an audit event. Errors are RFC 9457 problem JSON with the detail in the log only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::roles::{Caller, Role, Roles};
use crate::daemon::Instance;
use crate::status::{Revocation, RevocationReason, StatusError};
use crate::store::AuditRecord;

/// An RFC 9457 problem.
pub struct Problem {
    status: StatusCode,
    title: &'static str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "type": "about:blank", "title": self.title, "status": self.status.as_u16() });
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/problem+json")], body.to_string())
            .into_response()
    }
}

fn problem(status: StatusCode, title: &'static str) -> Problem {
    Problem { status, title }
}

/// One admin route and the roles it allows. The table is the single place that says who may
/// do what; the authorisation layer and the role-by-route test both read it.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path as routed (`{serial}` for parameters).
    pub path: &'static str,
    /// Roles allowed; every other role (and no role) gets 403.
    pub roles: &'static [Role],
}

const EVERY_ROLE: &[Role] = &[Role::Reviewer, Role::Operator, Role::Auditor, Role::WebFront, Role::RelyingPlatform];

/// Every admin route.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/v1/whoami", roles: EVERY_ROLE },
    Route { method: "GET", path: "/v1/certificates/{serial}", roles: &[Role::Operator, Role::Reviewer, Role::Auditor] },
    Route { method: "POST", path: "/v1/certificates/{serial}/revoke", roles: &[Role::Operator] },
    Route { method: "GET", path: "/v1/audit/verify", roles: &[Role::Auditor] },
    Route { method: "GET", path: "/v1/hsm", roles: &[Role::Operator, Role::Auditor] },
];

/// Routes of the admin listener, behind the authorisation layer.
pub fn router(instance: Instance) -> Router {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/certificates/{serial}", get(certificate))
        .route("/v1/certificates/{serial}/revoke", post(revoke))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/hsm", get(hsm_status))
        .route_layer(axum::middleware::from_fn_with_state(instance.clone(), authorize))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(instance)
}

/// Deny by default: the caller's role must be one the route's entry in [`ROUTES`] names;
/// otherwise 403, audited. A route missing from the table is refused to everyone.
async fn authorize(
    State(instance): State<Instance>,
    matched: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let caller = request.extensions().get::<Caller>().cloned();
    let method = request.method().as_str().to_string();
    let allowed =
        ROUTES.iter().find(|r| r.method == method && r.path == matched.as_str()).map(|r| r.roles).unwrap_or(&[]);
    let route = format!("{method} {}", matched.as_str());
    match caller {
        Some(caller) if caller.role.is_some_and(|r| allowed.contains(&r)) => next.run(request).await,
        Some(caller) => match deny(&instance, &caller, &route).await {
            Ok(()) => problem(StatusCode::FORBIDDEN, "your role may not do this").into_response(),
            Err(p) => p.into_response(),
        },
        None => problem(StatusCode::UNAUTHORIZED, "no client certificate").into_response(),
    }
}

/// Records a denial in the audit log (the request fails if the audit write fails).
async fn deny(instance: &Instance, caller: &Caller, route: &str) -> Result<(), Problem> {
    let record = AuditRecord {
        at: instance.issuance.clock.now().unix_timestamp() * 1000,
        kind: "access.denied".into(),
        actor: caller.fingerprint.clone(),
        serial: None,
        detail: serde_json::json!({ "route": route, "role": caller.role.map(|r| format!("{r:?}")), "subject": caller.subject }).to_string(),
    };
    if let Err(e) = instance.store.audit(&record).await {
        tracing::error!(error = %e, "cannot audit a denial");
        return Err(problem(StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable"));
    }
    tracing::warn!(target: "audit", route, fingerprint = %caller.fingerprint, "access denied");
    crate::metrics::get().access_denied.inc();
    Ok(())
}

async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    Json(serde_json::json!({ "fingerprint": caller.fingerprint, "subject": caller.subject, "role": caller.role.map(|r| format!("{r:?}")) })).into_response()
}

async fn certificate(State(instance): State<Instance>, Path(serial): Path<String>) -> Result<Response, Problem> {
    let serial =
        crate::ca::serial::parse(&serial).ok_or(problem(StatusCode::BAD_REQUEST, "not a hexadecimal serial"))?;
    let record = instance
        .store
        .certificate(&serial)
        .await
        .map_err(|e| internal(&e))?
        .ok_or(problem(StatusCode::NOT_FOUND, "no certificate with that serial"))?;
    Ok(Json(serde_json::json!({
        "serial": record.serial, "status": record.status, "profile": record.profile, "issuer": record.issuer,
        "subject": record.subject, "not_before": record.not_before, "not_after": record.not_after,
        "pem": pem::encode(&pem::Pem::new("CERTIFICATE", record.der)),
    }))
    .into_response())
}

/// Body of a revocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

async fn revoke(
    State(instance): State<Instance>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) =
        body.map_err(|_| problem(StatusCode::BAD_REQUEST, "the body must be JSON: {\"reason\": \"keyCompromise\"}"))?;
    let reason: RevocationReason =
        body.reason.parse().map_err(|_| problem(StatusCode::BAD_REQUEST, "unknown revocation reason"))?;
    let actor = format!("operator:{}", caller.fingerprint);
    match instance.status.revoke(&serial, reason, None, &actor).await {
        Ok(Revocation::Revoked) => Ok(Json(serde_json::json!({ "outcome": "revoked" })).into_response()),
        Ok(Revocation::AlreadyRevoked { .. }) => {
            Ok(Json(serde_json::json!({ "outcome": "already revoked" })).into_response())
        }
        Err(StatusError::UnknownSerial(_)) => Err(problem(StatusCode::NOT_FOUND, "no certificate with that serial")),
        Err(StatusError::BadSerial(_)) => Err(problem(StatusCode::BAD_REQUEST, "not a hexadecimal serial")),
        Err(e) => Err(internal(&e)),
    }
}

async fn audit_verify(State(instance): State<Instance>) -> Result<Response, Problem> {
    match crate::audit::verify(&instance.store).await.map_err(|e| internal(&e))? {
        crate::audit::Verdict::Intact { entries, checkpoints } => {
            Ok(Json(serde_json::json!({ "intact": true, "entries": entries, "checkpoints": checkpoints }))
                .into_response())
        }
        crate::audit::Verdict::Broken(problem) => {
            Ok(Json(serde_json::json!({ "intact": false, "problem": problem })).into_response())
        }
    }
}

async fn hsm_status(State(instance): State<Instance>) -> Result<Response, Problem> {
    let ready = instance.hsm.readiness();
    Ok(Json(serde_json::json!({ "sessions": instance.hsm.size(), "ready": ready.is_ok(), "reason": ready.err() }))
        .into_response())
}

fn internal(e: &dyn std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "admin request failed");
    problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Accepts mutual-TLS connections, identifies each client once, and serves the router with the
/// caller attached to every request. A failed handshake is logged and dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    roles: Arc<Roles>,
    router: Router,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = shutdown.recv() => return,
        };
        let (acceptor, roles, router) = (acceptor.clone(), roles.clone(), router.clone());
        tokio::spawn(async move { connection(acceptor, stream, peer, roles, router).await });
    }
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    roles: Arc<Roles>,
    router: Router,
) {
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::info!(%peer, error = %e, "admin TLS handshake failed");
            crate::metrics::get().tls_handshake_failures.inc();
            return;
        }
    };
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()) else { return };
    let caller = super::roles::identify(&cert, &roles);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(caller.clone());
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let io = hyper_util::rt::TokioIo::new(tls);
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(%peer, error = %e, "admin connection ended");
    }
}
