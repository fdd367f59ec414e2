//! MCP over HTTP (placeholder until the HTTP transport lands).

use super::MeshServer;

pub struct HttpOptions {
    pub bind: std::net::SocketAddr,
    pub auth_token: Option<String>,
    pub allowed_hosts: Vec<String>,
}

pub async fn serve(_server: MeshServer, _opts: HttpOptions) -> anyhow::Result<()> {
    anyhow::bail!("HTTP transport not built yet")
}
