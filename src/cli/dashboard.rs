//! `mesh-mcp dashboard`: the live dashboard alone (its page, its JSON and `/events`; no MCP).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::Global;
use crate::config;
use crate::server::http::{self, HttpOptions};

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Address to serve on (loopback only unless --auth-token is set).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7071")]
    pub http: SocketAddr,
    /// Bearer token the page must present (open it as `http://ADDR/#token=TOKEN`); required
    /// when binding a non-loopback address.
    #[arg(long, env = config::ENV_AUTH_TOKEN, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Extra Host names to accept (besides loopback names), e.g. for a reverse proxy.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
}

/// Like any server on the store, the dashboard runs the engine's background work: failover
/// follows a lease's end even with no client, and what it does is in the metrics series.
pub fn run(global: &Global, args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let opts = HttpOptions {
        bind: args.http,
        auth_token: args.auth_token,
        allowed_hosts: args.allow_hosts,
        max_sessions: config::MAX_HTTP_SESSIONS,
    };
    super::run_server(global, false, |engine| http::serve_dashboard(engine, opts))
}
