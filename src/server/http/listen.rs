//! The accept loop of the HTTP server, in place of `axum::serve`, which has no header timeout
//! and no connection cap: slow sockets that never finish their headers (authentication runs
//! after them) could hold every file descriptor and lock real clients out.
//!
//! - At most [`Limits::max_connections`] connections are open at once; the next waits in the
//!   kernel's accept queue until one closes.
//! - A connection must deliver a request's headers within [`Limits::header_timeout`], and an
//!   idle kept-alive connection is closed after the same time (hyper starts the header timer
//!   again as soon as a response is sent).
//! - Every accepted socket gets `TCP_NODELAY`: without it the last chunk of a streamed answer
//!   waits for the client's delayed ACK (about 40 ms per call on a kept-alive connection).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections open at once, at most (fewer when the descriptor limit is low).
/// Each session bound to an agent keeps a stream open besides its requests' connections.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send a request's headers, and to start the next one on a kept-alive
/// connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `MESH_HTTP_HEADER_TIMEOUT_MS` overrides [`HEADER_TIMEOUT`] (tests).
const ENV_HEADER_TIMEOUT: &str = "MESH_HTTP_HEADER_TIMEOUT_MS";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Limits {
    /// The defaults, with the connection cap kept under half the process's descriptor limit
    /// (the rest is for the store, event streams and the like).
    pub fn for_this_process() -> Self {
        let header_timeout = std::env::var(ENV_HEADER_TIMEOUT)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(HEADER_TIMEOUT, Duration::from_millis);
        Self { max_connections: MAX_CONNECTIONS.min(descriptor_limit() / 2).max(1), header_timeout }
    }
}

/// The soft limit on open file descriptors.
fn descriptor_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        MAX_CONNECTIONS * 2
    }
}

/// Serve `app` on `listener` until `stop` is cancelled, then wait for open connections to end.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(limits.header_timeout));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection =
            graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    graceful.shutdown().await;
}
