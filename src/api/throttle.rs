//! Rate limits at the listeners ([`crate::ratelimit`]): which client address a per-address limit
//! counts, and how a refusal is answered: 429, `Retry-After`, a problem document, the
//! `cloudca_rate_limited_total{limit}` counter (kept by the limiter), and for the limits that
//! guard secrets or SMS an audit event at the first refusal.
//!
//! The client address is the TCP peer, an IPv6 peer by its /64 (one subscriber's allocation,
//! so rotating addresses inside it gains nothing). The web front is a proxy: from a caller with
//! the web-front role the browser's address comes in `x-forwarded-for`, which the web front
//! always sets itself; a web-front request without it is not limited per address (its peer is
//! the web front, shared by every applicant), only per phone, order or credential.

use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::daemon::Instance;
use crate::ratelimit::{Limiter, Limits, Refusal};
use crate::roles::{Caller, Role};

/// The header through which the web front passes on the browser's address.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address per-address limits count; `None` for a proxy that named nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientIp, Infallible> {
        Ok(ClientIp::of(parts))
    }
}

impl ClientIp {
    /// The address of a request (see the module docs).
    pub fn of(parts: &Parts) -> ClientIp {
        let web_front = parts.extensions.get::<Caller>().is_some_and(|c| c.role == Some(Role::WebFront));
        if web_front {
            let forwarded = parts.headers.get(FORWARDED_FOR).and_then(|v| v.to_str().ok());
            // The web front sends one address; a list would be another proxy's: take the
            // nearest (last) entry, which is the one the web front itself saw.
            let ip = forwarded.and_then(|v| v.rsplit(',').next()).and_then(|v| v.trim().parse::<IpAddr>().ok());
            return ClientIp(ip.map(normalize));
        }
        ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| normalize(c.0.ip())))
    }
}

/// IPv4 (also when mapped into IPv6) as is; IPv6 by its /64.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a refused client is told: what it did too often, and when to try again.
pub fn refused(refusal: &Refusal) -> Problem {
    let what = match refusal.limit {
        "sms_per_ip" => "too many codes asked for from this address",
        "sms_per_phone" => "too many codes sent to this phone",
        "attempts_per_credential" | "attempts_per_ip" => "too many attempts",
        "signing_sessions_per_platform" => "too many signing sessions opened",
        "ra_writes_per_order" => "too many changes to this order",
        "ra_orders_per_ip" => "too many new orders from this address",
        "ocsp_per_ip" => "too many OCSP requests from this address",
        "tsa_per_ip" => "too many timestamp requests from this address",
        "pdf_sessions_per_platform" => "too many PDF signing sessions opened",
        _ => "too many requests",
    };
    let seconds = refusal.retry_after();
    Problem::too_many(format!("{what}; try again in {seconds} s"), seconds)
}

/// Whether a limit guards a secret or SMS, so that its first refusal is audited.
fn audited(limit: &str) -> bool {
    limit.starts_with("sms_") || limit.starts_with("attempts_")
}

/// Spends one request of `key` on `limiter`, or answers 429 (auditing the first refusal of
/// an SMS or attempt limit as `actor`).
pub async fn check(
    instance: &Instance,
    limiter: &Limiter,
    key: &(impl Hash + ?Sized),
    actor: impl FnOnce() -> String,
) -> Result<(), Problem> {
    match limiter.check(key) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            if audited(refusal.limit) {
                instance.mobile.audit_refusal(&refusal, &actor()).await;
            }
            tracing::info!(limit = refusal.limit, retry_after = refusal.retry_after(), "rate limited");
            Err(refused(&refusal))
        }
    }
}

/// [`check`] keyed by the client address; a request without one is not limited.
pub async fn check_ip(instance: &Instance, limiter: &Limiter, ip: ClientIp) -> Result<(), Problem> {
    match ip.0 {
        Some(address) => check(instance, limiter, &address, || format!("ip:{address}")).await,
        None => Ok(()),
    }
}

/// Which of the daemon's limits a [`per_ip`] layer applies.
pub type Pick = fn(&Limits) -> &Limiter;

/// Middleware: every request through it spends one of the picked limit per client address.
/// It runs after the body has been read whole (`limits::buffer_body`), so a 429 never leaves
/// unread bytes behind.
pub async fn per_ip(State((instance, pick)): State<(Instance, Pick)>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let ip = ClientIp::of(&parts);
    if let Err(refused) = check_ip(&instance, pick(&instance.limits), ip).await {
        return refused.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(normalize(a), normalize(b));
        assert_ne!(normalize(a), normalize(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(normalize(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    fn parts(caller: Option<Role>, forwarded: Option<&str>, peer: &str) -> Parts {
        let mut request = axum::http::Request::builder().uri("/");
        if let Some(f) = forwarded {
            request = request.header(FORWARDED_FOR, f);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(role) = caller {
            parts.extensions.insert(Caller { role: Some(role), ..Caller::default() });
        }
        parts
    }

    #[test]
    fn only_the_web_front_may_name_the_client() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(ClientIp::of(&parts(None, Some("203.0.113.9"), "198.51.100.1:5000")).0, ip("198.51.100.1"));
        let from_app = parts(Some(Role::RelyingPlatform), Some("203.0.113.9"), "198.51.100.1:5000");
        assert_eq!(ClientIp::of(&from_app).0, ip("198.51.100.1"));
        let from_web = parts(Some(Role::WebFront), Some("203.0.113.9"), "198.51.100.1:5000");
        assert_eq!(ClientIp::of(&from_web).0, ip("203.0.113.9"));
        assert_eq!(ClientIp::of(&parts(Some(Role::WebFront), None, "198.51.100.1:5000")).0, None);
    }
}
