//! The accept loop and graceful connection serving shared by the hand-served listeners (the
//! daemon's TLS listeners, the web front over HTTPS): each connection on its own task; at
//! shutdown, stop accepting, let every connection finish the request in flight, close, and
//! return once all have (callers bound that wait).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Accepts until `shutdown`, handing each connection to `connection` with its own shutdown
/// receiver; returns when the listener is closed and every connection task has ended.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    mut shutdown: broadcast::Receiver<()>,
    connection: F,
) where
    F: Fn(TcpStream, SocketAddr, broadcast::Receiver<()>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Every connection task holds a sender; `recv` yields `None` once the last is gone.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let (open, served) = (open.clone(), connection(stream, peer, shutdown.resubscribe()));
        tokio::spawn(async move {
            served.await;
            drop(open);
        });
    }
    drop((listener, open));
    let _ = all_closed.recv().await;
}

/// Serves HTTP/1.1 on one connection until it ends or, once `stop` fires, until the request
/// in flight (if any) is answered; then it closes instead of keeping alive.
pub async fn http1<I, S, B>(io: I, service: S, mut stop: broadcast::Receiver<()>) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let served = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        ended = served.as_mut() => ended,
        _ = stop.recv() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    }
}
