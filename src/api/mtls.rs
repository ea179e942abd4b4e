//! The TLS accept loop of the `admin` and `api` listeners: handshake with the current
//! (reloadable) configuration, count failures by reason, identify the client certificate when
//! the connection opens (roles, then the relying-platform registry) and record the login
//! (coalesced per minute), and serve the router with the certificate and the peer's address
//! attached to every request; `api::identity` decides again before each request what that
//! certificate may do.

use std::sync::Arc;

use axum::response::IntoResponse;
use axum::Router;

use super::problem::Problem;
use super::tls::Reloadable;
use crate::daemon::Instance;
use crate::roles::{Caller, Roles};

/// What a TLS listener serves and how it identifies clients.
#[derive(Clone)]
pub struct TlsListener {
    /// `admin` or `api` (metric label and log field).
    pub name: &'static str,
    /// Server configuration, swapped on reload.
    pub tls: Arc<Reloadable>,
    /// Role rules from `roles.toml`.
    pub roles: crate::policies::Swappable<Roles>,
    /// The routes.
    pub router: Router,
    /// Store and clock for identification and the login audit.
    pub instance: Instance,
}

/// Accepts connections until shutdown; each is served on its own task. At shutdown it stops
/// accepting, asks every open connection to finish the request in flight and close, and
/// returns once they all have (the daemon bounds that wait).
pub async fn serve(
    listener: tokio::net::TcpListener,
    guard: super::accept::Guard,
    config: TlsListener,
    shutdown: tokio::sync::broadcast::Receiver<()>,
) {
    super::accept::serve(listener, guard, shutdown, move |stream, session| connection(config.clone(), stream, session))
        .await;
}

async fn connection(config: TlsListener, stream: tokio::net::TcpStream, session: super::accept::Session) {
    let peer = session.peer;
    let acceptor = tokio_rustls::TlsAcceptor::from(config.tls.current());
    let handshake = session.handshake(acceptor.accept(stream)).await;
    let tls = match handshake.unwrap_or_else(|| Err(std::io::ErrorKind::TimedOut.into())) {
        Ok(tls) => tls,
        Err(e) => {
            let reason = super::tls::failure_reason(&e);
            tracing::info!(listener = config.name, %peer, reason, error = %e, "TLS handshake failed");
            crate::metrics::get().tls_handshake_failures.with_label_values(&[config.name, reason]).inc();
            return;
        }
    };
    let chain = tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
    let caller = match chain.as_deref() {
        Some(chain @ [_, ..]) => match identify(&config, chain).await {
            Ok(caller) => Some(caller),
            Err(e) => {
                tracing::error!(listener = config.name, error = %e, "cannot record the login; answering 503");
                refuse_unrecorded(tls, &e).await;
                return;
            }
        },
        _ => None,
    };
    // The certificate goes with every request with the role roles.toml gives it and no
    // platform: `api::identity` checks it against the revoked set and the platform registry
    // before the route runs. `accept` adds the client's address.
    let mut base = axum::http::Extensions::new();
    if let Some(caller) = caller {
        base.insert(super::identity::presented(&caller, &config.roles.current()));
    }
    super::accept::http1(tls, session, config.router.clone(), base).await;
}

/// A caller whose login could not be audited (the database is away) is served nothing: every
/// request on the connection (one, as keep-alive is off) gets a 503 with `Retry-After`, so the
/// client knows to come back instead of seeing a dropped connection.
async fn refuse_unrecorded(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    cause: &crate::store::StoreError,
) {
    let answer = Arc::new(cause.to_string());
    let service = hyper::service::service_fn(move |_request: hyper::Request<hyper::body::Incoming>| {
        let answer = answer.clone();
        async move { Ok::<_, std::convert::Infallible>(Problem::unavailable(&answer).into_response()) }
    });
    let io = hyper_util::rt::TokioIo::new(tls);
    let served = hyper::server::conn::http1::Builder::new().keep_alive(false).serve_connection(io, service);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), served).await;
}

/// Who the certificate is, and the `operator.login` audit event, once per (listener,
/// certificate) per minute (`api::identity::login`): nothing is served if the first of a
/// minute cannot be written.
async fn identify(
    config: &TlsListener,
    chain: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<Caller, crate::store::StoreError> {
    let issuer = config.tls.issuer_spki_sha256(chain);
    let presented = crate::roles::identify(chain[0].as_ref(), issuer, &config.roles.current());
    super::identity::login(&config.instance, config.name, presented).await
}
