//! MCP over HTTP: `mesh-mcp serve --http ADDR`.
//!
//! - `/mcp`: streamable HTTP, served by rmcp's [`StreamableHttpService`] with in-memory sessions.
//! - `/sse` + `/message`: the older HTTP+SSE transport of protocol 2024-11-05 ([`sse`]).
//! - `/events`: a server-sent event per batch of store changes, for live views ([`events`]).
//! - `/metrics`: Prometheus text exposition of this process's metrics ([`metrics`]).
//! - `/`, `/api/`: the live dashboard and the JSON it reads ([`crate::dashboard`]);
//!   `mesh-mcp dashboard` serves these two and `/events` alone ([`serve_dashboard`]).
//!
//! Every route sits behind one [`security`] guard (Host/Origin checks against DNS rebinding, and
//! the bearer token when one is set). The server refuses a non-loopback address without a token,
//! and on SIGTERM/SIGINT it stops accepting, ends every session and returns.
//!
//! Nothing here writes to stdout. The one line for humans and tests,
//! `mesh-mcp: listening on http://ADDR`, goes to stderr.

pub mod attendance;
pub mod events;
mod listen;
pub mod metrics;
mod priming;
pub mod security;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::MeshServer;
use crate::dashboard;
use crate::mesh::Engine;

/// Largest request body accepted. Well above the tools' own limits (1 MiB memory values), so an
/// oversized value reaches the tool and gets its "too large" error instead of a transport error.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Interval of SSE keep-alive comments, so that proxies do not cut idle streams.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long shutdown waits for open connections to finish before returning anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct HttpOptions {
    pub bind: SocketAddr,
    pub auth_token: Option<String>,
    /// Host names accepted besides the loopback names, e.g. a reverse proxy's.
    pub allowed_hosts: Vec<String>,
    /// Streamable MCP sessions kept open at once.
    pub max_sessions: usize,
}

impl HttpOptions {
    /// Hosts the guard accepts besides loopback: the operator's, plus the bound address itself
    /// when it is a specific IP (a client that dials the IP directly is not being rebound).
    fn extra_hosts(&self) -> Vec<String> {
        let mut hosts = self.allowed_hosts.clone();
        let ip = self.bind.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            hosts.push(ip.to_string());
        }
        hosts
    }

    /// Refuse settings that would expose the mesh: any caller reaching the port can act as any
    /// agent whose token it learns, and create or destroy swarms.
    fn check_exposure(&self) -> anyhow::Result<()> {
        if self.auth_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            anyhow::bail!("the auth token is empty; pass a non-empty --auth-token or MESH_MCP_AUTH_TOKEN");
        }
        if !self.bind.ip().is_loopback() && self.auth_token.is_none() {
            anyhow::bail!(
                "refusing to serve HTTP on {}, which is not a loopback address, without a bearer token: \
                 set --auth-token or MESH_MCP_AUTH_TOKEN, or bind 127.0.0.1",
                self.bind
            );
        }
        Ok(())
    }
}

/// The whole HTTP application. Cancelling `ct` ends every MCP session, streamable or legacy.
/// Sessions bound to agents hold their presence while their clients are there.
pub fn app(server: MeshServer, opts: &HttpOptions, ct: CancellationToken) -> Router {
    let server = server.for_http();
    let extra_hosts = opts.extra_hosts();
    let guard = security::Guard::new(&extra_hosts, opts.auth_token.as_deref());
    let engine = server.engine().clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let attendance = server.presence().attendance().expect("an HTTP server's presence watches attendance");
    let guarded = Router::new()
        .nest_service("/mcp", streamable(server.clone(), &extra_hosts, ct.child_token(), sessions.clone()))
        .layer(axum::middleware::from_fn_with_state(attendance, attendance::track))
        .layer(axum::middleware::from_fn(session_delete_is_no_content))
        .layer(axum::middleware::from_fn(priming::only_for_new_clients))
        .layer(axum::middleware::from_fn_with_state((sessions, opts.max_sessions), cap_sessions))
        .merge(events::routes(engine.clone(), ct.clone(), SSE_KEEP_ALIVE))
        .merge(metrics::routes(engine.clone()))
        .merge(dashboard::api_routes(engine))
        .merge(sse::routes(server, ct, SSE_KEEP_ALIVE))
        // For the extractors of /message; rmcp enforces its own limit on /mcp (set below).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard.clone(), security::guard));
    guarded.merge(page(guard))
}

/// The dashboard alone: its page, its JSON and `/events`, no MCP.
pub fn dashboard_app(engine: Engine, opts: &HttpOptions, ct: CancellationToken) -> Router {
    let guard = security::Guard::new(&opts.extra_hosts(), opts.auth_token.as_deref());
    Router::new()
        .merge(events::routes(engine.clone(), ct, SSE_KEEP_ALIVE))
        .merge(dashboard::api_routes(engine))
        .layer(axum::middleware::from_fn_with_state(guard.clone(), security::guard))
        .merge(page(guard))
}

/// The dashboard's page behind the Host/Origin checks only (it holds no state).
fn page(guard: security::Guard) -> Router {
    dashboard::page_routes().layer(axum::middleware::from_fn_with_state(guard, security::guard_page))
}

/// rmcp answers a successful session DELETE with 202; clients (the Python SDK among them) expect
/// 200 or 204, and nothing is pending after a session ends, so say 204.
async fn session_delete_is_no_content(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_delete = request.method() == http::Method::DELETE;
    let mut response = next.run(request).await;
    if is_delete && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::NO_CONTENT;
    }
    response
}

/// At most `--max-sessions` streamable sessions: a request that would open
/// another (a POST without `Mcp-Session-Id`, from a client before protocol 2026-07-28, which is
/// served without sessions) gets 503 until one ends (DELETE, or rmcp's reap of an abandoned one
/// after 5 minutes idle).
async fn cap_sessions(
    axum::extract::State((sessions, limit)): axum::extract::State<(Arc<LocalSessionManager>, usize)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let stateless =
        request.headers().get("mcp-protocol-version").and_then(|v| v.to_str().ok()).is_some_and(|v| v >= "2026-07-28");
    let opens = request.method() == http::Method::POST
        && request.uri().path() == "/mcp"
        && !request.headers().contains_key("mcp-session-id")
        && !stateless;
    if opens && sessions.sessions.read().await.len() >= limit {
        tracing::warn!(limit, "refused a new MCP session: too many open");
        let busy = (http::StatusCode::SERVICE_UNAVAILABLE, [(http::header::RETRY_AFTER, "5")], "too many MCP sessions");
        return axum::response::IntoResponse::into_response(busy);
    }
    next.run(request).await
}

/// rmcp's streamable HTTP service, one `MeshServer` session handler per session.
fn streamable(
    server: MeshServer,
    extra_hosts: &[String],
    ct: CancellationToken,
    sessions: Arc<LocalSessionManager>,
) -> StreamableHttpService<MeshServer, LocalSessionManager> {
    let hosts = security::LOOPBACK_HOSTS.iter().map(|h| h.to_string()).chain(extra_hosts.iter().cloned());
    // Sessions stay on (legacy_session_mode): clients before 2026-07-28 and the conformance
    // suite's lifecycle scenarios expect Mcp-Session-Id. Requests negotiating 2026-07-28 are
    // served statelessly by rmcp regardless. Origin checks are left to the guard, which already
    // ran; rmcp's Host check repeats ours with the same list.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(ct);
    StreamableHttpService::new(move || Ok(server.session()), sessions, config)
}

/// Bind `opts.bind`, serve MCP and the dashboard until SIGTERM/SIGINT, then shut down gracefully.
/// The agents of sessions still open at shutdown go offline before it returns.
pub async fn serve(server: MeshServer, opts: HttpOptions) -> anyhow::Result<()> {
    let ct = CancellationToken::new();
    let server = server.for_http();
    let presence = server.presence().clone();
    let app = app(server, &opts, ct.clone());
    run(app, &opts, ct, "serving MCP over HTTP at /mcp, legacy SSE at /sse, the dashboard at /").await?;
    presence.drain(SHUTDOWN_GRACE).await;
    Ok(())
}

/// `mesh-mcp dashboard`: bind `opts.bind` and serve the dashboard alone, like [`serve`].
pub async fn serve_dashboard(engine: Engine, opts: HttpOptions) -> anyhow::Result<()> {
    let ct = CancellationToken::new();
    let app = dashboard_app(engine, &opts, ct.clone());
    run(app, &opts, ct, "serving the dashboard at /").await
}

async fn run(app: Router, opts: &HttpOptions, ct: CancellationToken, what: &'static str) -> anyhow::Result<()> {
    opts.check_exposure()?;
    let listener =
        tokio::net::TcpListener::bind(opts.bind).await.with_context(|| format!("cannot bind {}", opts.bind))?;
    let addr = listener.local_addr()?;

    // Poll the signal future once so its handlers are installed before the address is announced:
    // a SIGTERM sent right after the listening line must still shut down cleanly, not kill us.
    let mut signal = Box::pin(crate::shutdown::signal());
    let _ = futures::poll!(signal.as_mut());

    tracing::info!(%addr, auth = opts.auth_token.is_some(), "{what}");
    // The stable line tests and scripts read to find the port (the address may be port 0).
    eprintln!("mesh-mcp: listening on http://{addr}");

    tokio::spawn({
        let ct = ct.clone();
        async move {
            signal.await;
            tracing::info!("signal received; shutting down");
            // Stops accepting and ends the SSE streams, which would otherwise hold graceful
            // shutdown open forever.
            ct.cancel();
        }
    });
    let serving = listen::serve(listener, app, listen::Limits::for_this_process(), ct.clone());
    tokio::select! {
        () = serving => {},
        // A client that keeps a connection busy must not keep the process alive.
        _ = after_grace(ct) => tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown began; exiting anyway"),
    }
    Ok(())
}

async fn after_grace(ct: CancellationToken) {
    ct.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}
