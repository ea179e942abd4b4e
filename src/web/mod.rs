//! The web front (`cloudca web --config web.toml`): the pages an applicant walks through. A
//! separate, unprivileged process: no CA key, no database; everything it does is a call to
//! the daemon's RA API over mutual TLS with the web-front certificate ([`client`]).
//!
//! ```text
//!   browser ──HTTP(S)──▶ pages (home, apply, certificates, orders, seals, help)
//!                          │ forms → JSON steps; 422 field errors → inline messages
//!                          ▼
//!                   client::Daemon ──mTLS──▶ daemon admin listener (/v1/ra/...)
//!                                  ──TLS───▶ daemon api listener (/v1/mobile/..., seal pages)
//! ```
//!
//! State lives in the browser: each order's token in an HttpOnly cookie `cco_<order>`, an
//! order-query session in `ccq`, the seal pages' app session in `ccm`, the CSRF token in
//! `cc_csrf`. The process keeps nothing but the served channels' descriptions for a few seconds
//! ([`site`]), so several can run behind a load balancer. Pages are [`maud`] templates
//! ([`html`]): every value is escaped on the way in.

mod captcha;
pub mod client;
pub mod config;
mod flash;
mod forms;
pub mod html;
pub mod i18n;
mod pages;
pub mod security;
pub mod site;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use client::Daemon;
use config::WebConfig;

/// What every page handler needs.
#[derive(Clone)]
pub struct Web {
    /// The daemon client.
    pub daemon: Daemon,
    /// The configuration.
    pub config: Arc<WebConfig>,
    /// The served channels' descriptions, briefly kept.
    pub channels: Arc<site::Channels>,
}

/// The pages, for every served channel: [`site::select`] takes the channel out of the URL
/// before the page routes see it.
pub fn router(web: Web) -> Router {
    let tls = web.config.tls_cert.is_some();
    let lang = i18n::Lang::parse(&web.config.language);
    let limit = web.config.max_upload_bytes + 64 * 1024;
    Router::new()
        .fallback_service(page_routes(web.clone()))
        .layer(axum::middleware::from_fn_with_state(web, site::select))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(security::headers))
        .layer(axum::middleware::from_fn(security::browser))
        .layer(axum::Extension(security::OverTls(tls)))
        .layer(axum::Extension(security::DefaultLang(lang)))
}

/// The page routes of one channel.
fn page_routes(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::home::home))
        .route("/help", get(pages::home::help))
        .route("/about", get(pages::home::about))
        .route("/lang/{code}", get(pages::home::language))
        .route("/static/app.css", get(pages::home::stylesheet))
        .route("/apply/{flow}", get(pages::apply::start).post(pages::apply::create))
        .route("/orders", get(pages::manage::orders))
        .route("/orders/query/code", post(pages::manage::query_code))
        .route("/orders/query", post(pages::manage::query))
        .route("/orders/query/fallback", post(pages::manage::query_fallback))
        .route("/certificates", get(pages::services::show))
        .route("/certificates/query/{flow}/code", post(pages::services::query_code))
        .route("/certificates/query/{flow}", post(pages::services::query))
        .route("/certificates/query/{flow}/fallback", post(pages::services::query_fallback))
        .route("/certificates/{serial}/{flow}", post(pages::services::start))
        .route("/orders/{id}/resume/code", post(pages::manage::resume_code))
        .route("/orders/{id}/resume", post(pages::manage::resume))
        .route("/orders/{id}", get(pages::order::show))
        .route("/orders/{id}/confirm", get(pages::confirm::show))
        .route("/orders/{id}/edit/{step}", get(pages::confirm::edit))
        .route("/orders/{id}/steps/{step}", post(pages::order::step))
        .route("/orders/{id}/code/{purpose}", post(pages::order::code))
        .route("/orders/{id}/materials", post(pages::order::upload))
        .route("/orders/{id}/cancel", post(pages::order::cancel))
        .route("/orders/{id}/offline", post(pages::order::offline))
        .route("/orders/{id}/invoice/reissue", post(pages::order::reissue_invoice))
        .route("/orders/{id}/form.pdf", get(pages::order::form_pdf))
        .route("/orders/{id}/invoice.pdf", get(pages::order::invoice_pdf))
        .route("/orders/{id}/authorization-letter.pdf", get(pages::order::letter_pdf))
        .route("/orders/{id}/address", post(pages::order::address))
        .route("/letter/{link}", get(pages::letter::show).post(pages::letter::sign))
        .route("/letter/{link}/pdf", get(pages::letter::pdf))
        .route("/letter/{link}/code", post(pages::letter::code))
        .route("/seals", get(pages::seals::show))
        .route("/seals/login/code", post(pages::seals::login_code))
        .route("/seals/login", post(pages::seals::login))
        .route("/seals/code", post(pages::seals::admin_code))
        .route("/seals/{credit_code}/members", post(pages::seals::member))
        .route("/seals/{credit_code}/members/remove", post(pages::seals::remove_member))
        .route("/seals/{credit_code}/seals/{seal_id}/users", post(pages::seals::seal_user))
        .route("/seals/handover/accept", post(pages::seals::accept_hand_over))
        .route("/seals/{credit_code}/handover", post(pages::seals::hand_over))
        .route_layer(axum::middleware::from_fn(security::plain_paths))
        .fallback(pages::home::not_found)
        .with_state(web)
}

/// Serves the pages until `shutdown` resolves (HTTPS when `tls_cert` is set); then stops
/// accepting, lets requests in flight finish within `drain_seconds`, and returns.
pub async fn serve(
    config: WebConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let daemon = Daemon::new(&config)?;
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.map_err(|e| format!("listen {}: {e}", config.listen))?;
    tracing::info!(listen = %config.listen, "web front serving");
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let drain = std::time::Duration::from_secs(config.drain_seconds);
    let guard = crate::api::accept::Guard::new("web", config.listener.bounds());
    let app = router(Web { daemon, config: Arc::new(config), channels: Arc::default() });
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let served: Served = match tls {
        None => Box::pin({
            let stopped = stop.subscribe();
            async move {
                crate::api::accept::serve_plain(listener, guard, app, stopped).await;
                Ok(())
            }
        }),
        Some(acceptor) => Box::pin(serve_tls(listener, guard, acceptor, app, stop.subscribe())),
    };
    drain_on(served, shutdown, &stop, drain).await
}

/// A listener being served, plain or HTTPS.
type Served = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Runs `served` until `shutdown`, then tells it to stop (`stop`) and waits at most `drain`
/// for the requests in flight; what is still running then is cut, so a stuck request cannot
/// hold a stop or a restart.
async fn drain_on(
    mut served: Served,
    shutdown: impl std::future::Future<Output = ()>,
    stop: &tokio::sync::broadcast::Sender<()>,
    drain: std::time::Duration,
) -> Result<(), String> {
    tokio::select! {
        ended = &mut served => return ended,
        _ = shutdown => {}
    }
    tracing::info!(drain_seconds = drain.as_secs(), "stopping: draining requests in flight");
    let _ = stop.send(());
    match tokio::time::timeout(drain, served).await {
        Ok(ended) => ended,
        Err(_) => {
            tracing::warn!(drain_seconds = drain.as_secs(), "requests still running at the drain bound were cut");
            Ok(())
        }
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    guard: crate::api::accept::Guard,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    stop: tokio::sync::broadcast::Receiver<()>,
) -> Result<(), String> {
    crate::api::accept::serve(listener, guard, stop, move |stream, session| {
        tls_connection(acceptor.clone(), stream, session, app.clone())
    })
    .await;
    Ok(())
}

/// One HTTPS connection, on the same bounded path as the daemon's listeners.
async fn tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    session: crate::api::accept::Session,
    app: Router,
) {
    let Some(Ok(tls)) = session.handshake(acceptor.accept(stream)).await else { return };
    crate::api::accept::http1(tls, session, app, axum::http::Extensions::new()).await;
}
