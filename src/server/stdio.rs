//! MCP over stdio: JSON-RPC lines on stdin/stdout. Nothing else may touch stdout here; logs go to
//! stderr. The server returns when stdin closes or on SIGTERM/SIGINT.
//!
//! Lines are framed here rather than by rmcp's codec, which drops a line it cannot read without
//! a word: [`super::frames`] answers those as JSON-RPC 2.0 says, and hands the rest to rmcp.
//! rmcp's messages and those answers share one writer, a whole line at a time.

use std::sync::Arc;

use futures::StreamExt;
use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::io::StdioWriter;
use rmcp::ServiceExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio_util::codec::{AnyDelimiterCodec, FramedRead};

use super::frames::{classify, Frame};
use super::MeshServer;

type Out = Arc<Mutex<StdioWriter>>;

pub async fn serve(server: MeshServer) -> anyhow::Result<()> {
    tracing::debug!("serving MCP on stdio");
    let (reader, writer) = rmcp::transport::io::stdio_pipes();
    let out: Out = Arc::new(Mutex::new(writer));
    let sink = futures::sink::unfold(out.clone(), |out, message: ServerJsonRpcMessage| async move {
        let mut line = serde_json::to_vec(&message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        write_line(&out, &line).await?;
        Ok::<_, std::io::Error>(out)
    });
    let lines = FramedRead::new(reader, AnyDelimiterCodec::new(b"\n".to_vec(), Vec::new()));
    let messages = lines
        .take_while(|line| {
            if let Err(e) = line {
                tracing::warn!(error = %e, "reading stdin failed; ending the session");
            }
            futures::future::ready(line.is_ok())
        })
        .filter_map(move |line| {
            let out = out.clone();
            async move {
                match classify(&line.ok()?) {
                    Frame::Message(message) => Some(*message),
                    Frame::Reply(reply) => {
                        tracing::debug!(%reply, "answered a frame that is not a readable JSON-RPC message");
                        if let Err(e) = write_line(&out, format!("{reply}\n").as_bytes()).await {
                            tracing::warn!(error = %e, "writing an error answer failed");
                        }
                        None
                    }
                    Frame::Ignore => None,
                }
            }
        });
    let running = server.serve((Box::pin(sink), Box::pin(messages))).await?;
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

async fn write_line(out: &Out, line: &[u8]) -> std::io::Result<()> {
    let mut out = out.lock().await;
    out.write_all(line).await?;
    out.flush().await
}
