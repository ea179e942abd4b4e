//! Who the client of a TLS connection (`admin`, `api`) is, decided again before every request.
//!
//! The certificate is fixed for the life of a connection, but what it may do is not: an
//! operator revokes it, an operator disables the relying platform it belongs to, a SIGHUP
//! reloads `roles.toml`. So the connection only remembers the certificate (fingerprint and
//! subject, checked at the handshake); before each request the caller is built afresh:
//! - the role from the current `roles.toml` (`mtls` does this when it hands the request on);
//! - the revoked set: a revoked certificate has no role and no platform, and on the `api`
//!   listener it is refused (403) whatever the route (`admin`'s `authorize` refuses it there,
//!   with its own audit);
//! - the relying-platform registry: an active registration gives the platform name (and the
//!   `relying-platform` role when `roles.toml` gives none); a disabled or removed one gives
//!   nothing.
//!
//! Both come from caches younger than `listeners.identity_cache_seconds`, so a keep-alive
//! connection does not query the database at every request: the platform answers per
//! certificate ([`crate::platforms::PlatformCache`]), the revoked set as a whole (re-read
//! inline when the background refresh has not confirmed it for that long). If the database
//! cannot answer, the request gets 503: never the stale answer beyond the cache time.
//!
//! Two audit events are rate-bounded here, through the operators' [`SecurityEvents`], one entry
//! per key per minute carrying the count of the others (`coalesced`):
//! - `operator.login`, per (listener, certificate): a client opening thousands of connections
//!   writes one entry a minute. The first of each minute must be written or the connection is
//!   served nothing (503); the others are served, counted, and reported by the next entry.
//! - `access.denied` for every 403 of the `api` listener, per (listener, caller, route), with
//!   the reason (the problem's title); a write that fails is logged and the 403 stands.
//!
//! [`SecurityEvents`]: crate::security_events::SecurityEvents

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::daemon::Instance;
use crate::roles::{Caller, Role, Roles};
use crate::store::StoreError;

/// The `api` listener's name: its 403s are audited here.
const API: &str = "api";

/// The largest 403 body read back for its title (problem documents are a few hundred bytes).
const MAX_REFUSAL_BODY: usize = 16 * 1024;

/// The caller a request starts from: the connection's certificate with the role the current
/// `roles.toml` gives it, and no platform (the [`check`] layer looks that up). A request that
/// somehow missed the layer would thus have no platform: fail closed.
pub(crate) fn presented(connection: &Caller, roles: &Roles) -> Caller {
    let mut caller = Caller { role: None, platform: None, channels: Vec::new(), ..connection.clone() };
    roles.grant(&mut caller);
    caller
}

/// The per-request check; the state names the listener. Added to the `admin` and `api` routers
/// inside `observe` (so its answers have a request id and are counted).
pub(crate) async fn check(
    State((instance, listener)): State<(Instance, &'static str)>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let route = format!("{method} {route}");
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let mut revoked = false;
    let caller = match request.extensions().get::<Caller>().cloned() {
        Some(presented) => match current(&instance, presented).await {
            Ok((caller, is_revoked)) => {
                revoked = is_revoked;
                request.extensions_mut().insert(caller.clone());
                Some(caller)
            }
            Err(e) => {
                return Problem::unavailable(&format!("cannot check the client certificate: {e}")).into_response()
            }
        },
        None => None,
    };
    if listener != API {
        return next.run(request).await;
    }
    let (response, reason) = if revoked {
        let refused = Problem::new(StatusCode::FORBIDDEN, "your certificate may not do this").into_response();
        (refused, "certificate revoked".to_string())
    } else {
        let response = next.run(request).await;
        if response.status() != StatusCode::FORBIDDEN {
            return response;
        }
        title(response).await
    };
    let who = Who { listener, caller: caller.as_ref(), peer: peer.map(|ip| ip.to_string()) };
    denied(&instance, &who, &route, &reason).await;
    response
}

/// The caller as of now, and whether its certificate is revoked.
async fn current(instance: &Instance, mut caller: Caller) -> Result<(Caller, bool), StoreError> {
    let max_age = Duration::from_secs(instance.config.listeners.identity_cache_seconds);
    let operators = &instance.operators;
    if !operators.revoked.fresh_within(max_age) {
        operators.revoked.refresh(&instance.store).await?;
    }
    if operators.revoked.contains(&caller.fingerprint) {
        caller.role = None;
        caller.platform = None;
        return Ok((caller, true));
    }
    if let Some(platform) = operators.platforms.lookup(&instance.store, &caller.fingerprint, max_age).await? {
        caller.role = caller.role.or(Some(Role::RelyingPlatform));
        caller.platform = Some(platform);
    }
    Ok((caller, false))
}

/// Identifies a new connection's certificate and records the `operator.login` event, once per
/// (listener, certificate) per minute. Err: the first login of a minute could not be recorded
/// (or the registry not read), and the connection must be served nothing.
pub(crate) async fn login(
    instance: &Instance,
    listener: &'static str,
    presented: Caller,
) -> Result<Caller, StoreError> {
    let (caller, _) = current(instance, presented).await?;
    let detail = serde_json::json!({
        "listener": listener, "role": caller.role.map(Role::name), "subject": caller.subject, "platform": caller.platform,
    });
    let key = format!("{listener}|{}", caller.fingerprint);
    // `read`: the entry must be on record before anything is served; the coalesced ones are
    // counted and carried by the next entry.
    instance.operators.events.read("operator.login", &super::admin::actor(&caller), &key, None, detail).await?;
    Ok(caller)
}

/// Who was refused: the certificate if there was one, else the client's address.
struct Who<'a> {
    listener: &'static str,
    caller: Option<&'a Caller>,
    peer: Option<String>,
}

/// Records an `api` 403 (`access.denied`), once per (listener, caller, route) per minute.
async fn denied(instance: &Instance, who: &Who<'_>, route: &str, reason: &str) {
    let address = who.peer.as_deref().unwrap_or("unknown");
    let (actor, client) = match who.caller {
        Some(c) => (super::admin::actor(c), c.fingerprint.clone()),
        None => (format!("client:{address}"), format!("address:{address}")),
    };
    let detail = serde_json::json!({
        "listener": who.listener,
        "route": route,
        "reason": reason,
        "fingerprint": who.caller.map(|c| &c.fingerprint),
        "subject": who.caller.map(|c| &c.subject),
        "platform": who.caller.and_then(|c| c.platform.as_ref()),
        "role": who.caller.and_then(|c| c.role.map(Role::name)),
    });
    let key = format!("{}|{client}|{route}", who.listener);
    instance.operators.events.refused("access.denied", &actor, &key, None, detail).await;
}

/// The problem title of a refusal (its reason), and the response rebuilt unchanged.
async fn title(response: Response) -> (Response, String) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_REFUSAL_BODY).await.unwrap_or_default();
    let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "forbidden".to_string());
    (Response::from_parts(parts, Body::from(bytes)), reason)
}
