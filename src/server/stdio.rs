//! MCP over stdio: JSON-RPC lines on stdin/stdout. Nothing else may touch stdout here; logs go to
//! stderr. The server returns when stdin closes or on SIGTERM/SIGINT.

use rmcp::ServiceExt;

use super::MeshServer;

pub async fn serve(server: MeshServer) -> anyhow::Result<()> {
    tracing::debug!("serving MCP on stdio");
    let transport = rmcp::transport::io::stdio_pipes();
    let running = server.serve(transport).await?;
    let cancel = running.cancellation_token();
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        tracing::info!("signal received; shutting down");
        cancel.cancel();
    });
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}
