//! `mesh-mcp serve`: MCP on stdio, or on HTTP (with the dashboard) with `--http`.

use super::Global;
use crate::config;
use crate::server::{self, binding::Binding, http::HttpOptions, MeshServer};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Serve streamable HTTP at /mcp (and legacy SSE at /sse + /message) on this address
    /// (`--http` alone: 127.0.0.1:7070, loopback only).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7070")]
    pub http: Option<SocketAddr>,
    /// Bearer token HTTP clients must present; required when binding a non-loopback address.
    #[arg(long, env = config::ENV_AUTH_TOKEN, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Extra Host names to accept (besides loopback names), e.g. for a reverse proxy.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// Streamable-HTTP MCP sessions kept open at once; a new one beyond them gets 503.
    #[arg(long, env = config::ENV_MAX_SESSIONS, default_value_t = config::MAX_HTTP_SESSIONS)]
    pub max_sessions: usize,
    /// Run the server on a multi-threaded runtime (default: one thread; see BENCHMARKS.md).
    #[arg(long)]
    pub multi_thread: bool,
    /// The tools to offer: `all`, `core` (swarm, agents, messages, memory, tasks, votes) or a
    /// comma list of tool names, which may include `core`.
    #[arg(long, env = config::ENV_TOOLS, default_value = "all", value_parser = server::profile::Profile::parse)]
    pub tools: server::profile::Profile,
}

pub fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs { http, auth_token, allow_hosts, max_sessions, multi_thread, tools } = args;
    // HTTP serves many sessions at once: it always gets the multi-threaded runtime.
    super::run_server(global, multi_thread || http.is_some(), |engine| async move {
        let binding = Binding::from_env(&engine).await?;
        let server = MeshServer::new(engine.clone()).with_profile(tools);
        match http {
            None => {
                let Some(binding) = binding else { return server::stdio::serve(server).await };
                let bound = server.bind(binding)?;
                tracing::info!(agent = %bound.name, swarm = %bound.swarm_id, "this session acts as its bound agent");
                let served = server::stdio::serve(server.clone()).await;
                server.close().await;
                served
            }
            Some(_) if binding.is_some() => anyhow::bail!(
                "{} binds a stdio session to its agent; an HTTP session binds with the Mesh-Agent-Token header \
                 (or agent_spawn with join)",
                config::ENV_AGENT_TOKEN
            ),
            Some(bind) => {
                let opts = HttpOptions { bind, auth_token, allowed_hosts: allow_hosts, max_sessions };
                server::http::serve(server, opts).await
            }
        }
    })
}
