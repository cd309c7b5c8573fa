//! The HTTP/1 accept loop, with the connection limits `axum::serve` does not offer: a cap on
//! open connections and a deadline for a request's headers. Without them, a client sending one
//! header byte every half second held its connection for as long as it liked, and a thousand
//! idle unauthenticated connections all stayed open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The peer address of a request's connection, as a request extension (the audit trail's
/// "from where").
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Limits on the connections of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once (`OPENCLAW_MAX_CONNECTIONS`); one more is closed as soon
    /// as it is accepted. SSE clients count: size it for them.
    pub max_connections: usize,
    /// Deadline for a request's headers, counted from the first byte of the request (or from
    /// the connection's start), and for an idle keep-alive connection's next request
    /// (`OPENCLAW_HEADER_TIMEOUT_SECS`).
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits up
/// to `grace` for open connections (a streaming response ends when its handler sees the
/// shutdown token).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        // Answers go out as soon as they are written: a response is one write, and waiting
        // for the client's ACK of the previous one (Nagle) only adds latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // The peer's address, for the audit trail.
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(PeerAddr(peer))));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close in time; abandoning them");
    }
    Ok(())
}
