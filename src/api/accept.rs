//! The one hardened serving path of every listener (public, metrics, api, admin, the web
//! front), so a flood meets the same bounds everywhere (security review M1):
//!
//! - connections per listener and per client address are capped ([`Guard`]); over a cap the
//!   connection is closed at once and counted (`cloudca_connections_refused_total`);
//! - a PROXY protocol header is read first where configured, only from a trusted proxy
//!   ([`super::proxy_header`]), and names the client for everything below;
//! - a TLS handshake and a request head must finish within `header_read_timeout_seconds` (a
//!   new connection must start its request in that time too), a keep-alive connection with no
//!   request under way is closed after `idle_timeout_seconds`, reading the body plus the
//!   handler is bounded by `request_timeout_seconds` (408, then close), and a connection is
//!   closed after its request in flight once `max_connection_seconds` old. Hyper's own
//!   `header_read_timeout` also runs while a keep-alive connection idles, so the phases are
//!   timed here instead: [`Watched`] sees bytes arrive, the service sees heads complete and
//!   responses end, and one watchdog per connection closes it when its phase runs out;
//! - every request carries the resolved client address as `ConnectInfo<SocketAddr>`
//!   ([`super::client_addr`]) and the listener's pre-authentication body limit ([`BodyLimit`]).
//!
//! At shutdown: stop accepting, let every connection finish the request in flight, close, and
//! return once all have (callers bound that wait).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::client_addr::TrustedProxies;
use super::problem::Problem;

/// The bounds of one listener (from `[listeners]`, or the web front's `[listener]`).
#[derive(Debug, Clone)]
pub struct Bounds {
    /// TLS handshake, and a request head from its first byte (or from the connection's start).
    pub header_read: Duration,
    /// A keep-alive connection with no request under way.
    pub idle: Duration,
    /// Body read plus handler.
    pub request: Duration,
    /// Age after which the connection closes after the request in flight.
    pub lifetime: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Concurrent connections per client address (IPv6 by /64).
    pub max_per_client: usize,
    /// Largest body before authentication.
    pub pre_auth_body: usize,
    /// Whose `X-Forwarded-For` and PROXY headers are believed.
    pub trusted: TrustedProxies,
    /// Whether every connection must start with a PROXY protocol header.
    pub proxy_protocol: bool,
}

impl Bounds {
    /// The daemon's bounds for listener `name`.
    pub fn daemon(config: &crate::config::ListenersConfig, name: &str) -> Bounds {
        Bounds {
            header_read: Duration::from_secs(config.header_read_timeout_seconds),
            idle: Duration::from_secs(config.idle_timeout_seconds),
            request: Duration::from_secs(config.request_timeout_seconds),
            lifetime: Duration::from_secs(config.max_connection_seconds),
            max_connections: config.max_connections,
            max_per_client: config.max_connections_per_client,
            pre_auth_body: config.pre_auth_body_bytes,
            trusted: TrustedProxies::new(&config.trusted_proxies),
            proxy_protocol: config.proxy_protocol(name),
        }
    }
}

/// The pre-authentication body limit of the listener a request came in on (read by
/// `api::limits::buffer_body`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// One listener's bounds and connection counts.
#[derive(Clone)]
pub struct Guard {
    name: &'static str,
    bounds: Arc<Bounds>,
    total: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Guard {
    /// A listener called `name` (metric label) with `bounds`.
    pub fn new(name: &'static str, bounds: Bounds) -> Guard {
        let total = Arc::new(Semaphore::new(bounds.max_connections));
        Guard { name, bounds: Arc::new(bounds), total, per_client: Arc::default() }
    }

    fn refused(&self, reason: &'static str, peer: SocketAddr) {
        tracing::debug!(listener = self.name, %peer, reason, "connection refused");
        crate::metrics::get().connections_refused.with_label_values(&[self.name, reason]).inc();
    }

    fn timed_out(&self, phase: &'static str) {
        crate::metrics::get().connections_timed_out.with_label_values(&[self.name, phase]).inc();
    }

    /// One more connection from `ip`, or None when it already has its share.
    fn admit_client(&self, ip: IpAddr) -> Option<ClientSlot> {
        let key = super::throttle::normalize(ip);
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(key).or_insert(0);
        if *count >= self.bounds.max_per_client {
            return None;
        }
        *count += 1;
        Some(ClientSlot { key, map: self.per_client.clone() })
    }
}

/// A client's connection counted in [`Guard::per_client`]; given back on drop.
struct ClientSlot {
    key: IpAddr,
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// An admitted connection: the client's address (the PROXY header's, else the TCP peer's),
/// the shutdown signal, and the listener it belongs to.
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// Fires at shutdown.
    pub stop: broadcast::Receiver<()>,
    guard: Guard,
}

impl Session {
    /// Runs a TLS handshake (or any set-up) under the header timeout; None when it ran out
    /// (counted as phase `handshake`).
    pub async fn handshake<T>(&self, setup: impl Future<Output = T>) -> Option<T> {
        match tokio::time::timeout(self.guard.bounds.header_read, setup).await {
            Ok(done) => Some(done),
            Err(_) => {
                self.guard.timed_out("handshake");
                None
            }
        }
    }

    /// The listener's name.
    pub fn listener(&self) -> &'static str {
        self.guard.name
    }
}

/// Accepts until `shutdown`, admitting each connection under the listener's caps and handing
/// it to `connection`; returns when the listener is closed and every connection has ended.
pub async fn serve<F, Fut>(listener: TcpListener, guard: Guard, mut shutdown: broadcast::Receiver<()>, connection: F)
where
    F: Fn(TcpStream, Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connection = Arc::new(connection);
    // Every connection task holds a sender; `recv` yields `None` once the last is gone.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = guard.name, error = %e, "accept failed");
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let Ok(permit) = guard.total.clone().try_acquire_owned() else {
            guard.refused("max_connections", peer);
            continue;
        };
        let (open, guard, connection) = (open.clone(), guard.clone(), connection.clone());
        let stop = shutdown.resubscribe();
        tokio::spawn(async move {
            admit(stream, peer, guard, stop, permit, connection).await;
            drop(open);
        });
    }
    drop((listener, open));
    let _ = all_closed.recv().await;
}

/// The per-connection part of admission: PROXY header, per-client cap, then serving.
async fn admit<F, Fut>(
    mut stream: TcpStream,
    peer: SocketAddr,
    guard: Guard,
    stop: broadcast::Receiver<()>,
    _permit: OwnedSemaphorePermit,
    connection: Arc<F>,
) where
    F: Fn(TcpStream, Session) -> Fut,
    Fut: Future<Output = ()>,
{
    let gauge = crate::metrics::get().connections_open.with_label_values(&[guard.name]);
    gauge.inc();
    let _open = scopeguard(move || gauge.dec());
    let client = if guard.bounds.proxy_protocol {
        if !guard.bounds.trusted.contains(peer.ip()) {
            return guard.refused("untrusted_proxy", peer);
        }
        match tokio::time::timeout(guard.bounds.header_read, super::proxy_header::read(&mut stream)).await {
            Ok(Ok(named)) => named.unwrap_or(peer),
            Ok(Err(e)) => {
                tracing::info!(listener = guard.name, %peer, error = %e, "PROXY protocol header refused");
                return guard.refused("proxy_header", peer);
            }
            Err(_) => return guard.timed_out("header"),
        }
    } else {
        peer
    };
    let Some(_slot) = guard.admit_client(client.ip()) else {
        return guard.refused("max_connections_per_client", client);
    };
    connection(stream, Session { peer: client, stop, guard }).await;
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guarded<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guarded<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guarded(Some(f))
}

/// Serves HTTP/1.1 on one connection under the listener's timeouts until it ends, times out,
/// reaches its lifetime or `stop` fires (then after the request in flight). `base` is added
/// to every request's extensions (the TLS listeners' identified caller).
pub async fn http1<I>(io: I, session: Session, router: Router, base: axum::http::Extensions)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Session { peer, mut stop, guard } = session;
    let bounds = guard.bounds.clone();
    let state = Arc::new(ConnState::new());
    let io = hyper_util::rt::TokioIo::new(Watched { inner: Some(io), state: state.clone() });
    let service = {
        let (state, bounds, guard) = (state.clone(), bounds.clone(), guard.clone());
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let busy = state.busy();
            let client = super::client_addr::resolve(&bounds.trusted, peer, request.headers());
            let extensions = request.extensions_mut();
            extensions.insert(axum::extract::ConnectInfo(client));
            extensions.insert(BodyLimit(bounds.pre_auth_body));
            extensions.insert(CloseAfterAnswer(state.clone()));
            extensions.extend(base.clone());
            let mut router = router.clone();
            let (limit, guard, state) = (bounds.request, guard.clone(), state.clone());
            async move {
                let answered = tokio::time::timeout(limit, tower_service::Service::call(&mut router, request)).await;
                let response = match answered {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        guard.timed_out("request");
                        CloseAfterAnswer(state).close();
                        let problem = Problem::new(StatusCode::REQUEST_TIMEOUT, "the request took too long");
                        let mut response = problem.into_response();
                        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                        response
                    }
                };
                Ok::<_, Infallible>(response.map(|body| Tracked { inner: body, _busy: busy }))
            }
        })
    };
    let served = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(served);
    let end_of_life = state.opened + bounds.lifetime;
    let mut closing = false;
    loop {
        let (deadline, phase) = state.deadline(&bounds);
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(listener = guard.name, %peer, error = %e, "connection ended");
                }
                return;
            }
            _ = state.changed.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {
                if state.deadline(&bounds).0 <= Instant::now() {
                    tracing::debug!(listener = guard.name, %peer, phase, "connection timed out");
                    guard.timed_out(phase);
                    return;
                }
            }
            _ = stop.recv(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(end_of_life), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is: waiting for or reading a head, answering, or idle between requests
/// (each since when).
#[derive(Debug, Clone, Copy)]
enum Phase {
    Head(Instant),
    Busy(Instant),
    Idle(Instant),
}

/// What the watchdog, the IO wrapper and the service share about one connection.
struct ConnState {
    opened: Instant,
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the phase changes (its deadline moves).
    changed: tokio::sync::Notify,
    /// Set when an answer was given with the request body unread (413, 408): the socket is
    /// then drained briefly after closing, so the client reads the answer instead of a reset.
    linger: AtomicBool,
}

impl ConnState {
    fn new() -> ConnState {
        let now = Instant::now();
        // A new connection must start (and finish) its first head within the header timeout.
        ConnState {
            opened: now,
            phase: Mutex::new(Phase::Head(now)),
            changed: tokio::sync::Notify::new(),
            linger: AtomicBool::new(false),
        }
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        let next = f(*phase);
        if std::mem::discriminant(&next) != std::mem::discriminant(&*phase) {
            self.changed.notify_one();
        }
        *phase = next;
    }

    /// Bytes arrived: an idle connection has started a head.
    fn bytes_in(&self) {
        self.set(|p| if let Phase::Idle(_) = p { Phase::Head(Instant::now()) } else { p });
    }

    /// A head is complete and being answered; idle again when the guard (carried by the
    /// response body) is dropped.
    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.set(|_| Phase::Busy(Instant::now()));
        BusyGuard(self.clone())
    }

    /// When the current phase runs out, and its name.
    fn deadline(&self, bounds: &Bounds) -> (Instant, &'static str) {
        match *self.phase.lock().unwrap_or_else(|p| p.into_inner()) {
            Phase::Head(since) => (since + bounds.header_read, "header"),
            Phase::Idle(since) => (since + bounds.idle, "idle"),
            // The handler is bounded by the request timeout (408); what remains bounds a client
            // that does not read its answer.
            Phase::Busy(since) => (since + bounds.request + bounds.header_read, "request"),
        }
    }
}

struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.set(|_| Phase::Idle(Instant::now()));
    }
}

/// In a request's extensions: lets a layer that answers without reading the whole body
/// (`api::limits`) ask for the brief drain after close.
#[derive(Clone)]
pub struct CloseAfterAnswer(Arc<ConnState>);

impl CloseAfterAnswer {
    /// Drain (bounded) after the connection closes. The answer itself must carry
    /// `Connection: close`.
    pub fn close(&self) {
        self.0.linger.store(true, Ordering::Relaxed);
    }
}

/// How long, and how much, a connection closed with an unread body is drained. Enough for a
/// client still sending an upload a little over the largest limit (a few MiB takes
/// milliseconds) to finish writing and read its 413, instead of a reset that loses it; never
/// more than 2 s per connection, and the connection caps bound how many drain at once.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 2 * super::limits::MAX_UPLOAD_BYTES as u64;

/// The connection's stream, telling the state when bytes arrive.
struct Watched<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<S>,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(Ok(())) };
        let polled = Pin::new(inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_in();
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Watched<S> {
    fn drop(&mut self) {
        if !self.state.linger.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(stream), Ok(runtime)) = (self.inner.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(lingering_close(stream));
        }
    }
}

/// Sends our FIN, then reads and discards what the client still sends (at most
/// [`LINGER_BYTES`] for [`LINGER`]) before closing, so the client's kernel delivers our
/// answer before any reset.
async fn lingering_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        let _ = stream.shutdown().await;
        let _ = tokio::io::copy(&mut (&mut stream).take(LINGER_BYTES), &mut tokio::io::sink()).await;
    })
    .await;
}

/// A response body that marks the connection idle once hyper has finished with it.
pub struct Tracked<B> {
    inner: B,
    _busy: BusyGuard,
}

impl<B: hyper::body::Body<Data = Bytes> + Unpin> hyper::body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` over plain HTTP on `listener` (the public and metrics listeners, the web
/// front without TLS) until `shutdown`.
pub async fn serve_plain(listener: TcpListener, guard: Guard, router: Router, shutdown: broadcast::Receiver<()>) {
    serve(listener, guard, shutdown, move |stream, session| {
        let router = router.clone();
        async move {
            let _ = stream.set_nodelay(true);
            http1(stream, session, router, axum::http::Extensions::new()).await
        }
    })
    .await;
}
