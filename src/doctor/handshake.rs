//! Whether a client can connect: start `mesh-mcp serve` on stdio with the same settings, as an
//! MCP client would, and do `initialize`, `notifications/initialized` and `tools/list` with raw
//! JSON-RPC lines, checking on the way that every stdout line is JSON-RPC (logs on stdout would
//! break real clients).

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use super::{Check, Settings};
use crate::store::Durability;

/// How long the whole handshake may take: a cold start on a loaded machine included.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The protocol version doctor asks for (one every client with `initialize` speaks).
const PROTOCOL_VERSION: &str = "2025-06-18";

pub async fn check(settings: &Settings) -> Check {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(settings)).await {
        Ok(Ok(detail)) => Check::ok("client.connect", detail),
        Ok(Err(why)) => Check::fail("client.connect", why),
        Err(_) => Check::fail("client.connect", format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
    }
}

async fn handshake(settings: &Settings) -> Result<String, String> {
    let mut cmd = Command::new(&settings.binary);
    cmd.arg("serve").arg("--db").arg(&settings.db);
    cmd.arg("--durability").arg(if settings.durability == Durability::Power { "power" } else { "process" });
    cmd.arg("--device").arg(settings.compute.device.to_string());
    if let Some(dir) = &settings.compute.embedding_model {
        cmd.arg("--embedding-model").arg(dir);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {} serve: {e}", settings.binary.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = child.stderr.take().expect("piped");

    let result = async {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "mesh-mcp-doctor", "version": env!("CARGO_PKG_VERSION")}}});
        send(&mut stdin, &init).await?;
        let init = response(&mut lines, 1).await?;
        send(&mut stdin, &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        send(&mut stdin, &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await?;
        let tools = response(&mut lines, 2).await?;
        let count = tools["tools"].as_array().map_or(0, Vec::len);
        let server = &init["serverInfo"];
        Ok(format!(
            "serve on stdio: initialize ({} {}, protocol {}) and tools/list ({count} tools)",
            server["name"].as_str().unwrap_or("?"),
            server["version"].as_str().unwrap_or("?"),
            init["protocolVersion"].as_str().unwrap_or("?"),
        ))
    }
    .await;
    drop(stdin); // EOF: the server ends its session and exits
    match result {
        Ok(detail) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Ok(detail)
        }
        Err(why) => {
            let _ = child.start_kill();
            let mut last = String::new();
            let mut err_lines = BufReader::new(stderr).lines();
            while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(2), err_lines.next_line()).await {
                last = line;
            }
            Err(if last.is_empty() { why } else { format!("{why} (server stderr: {last})") })
        }
    }
}

async fn send(stdin: &mut tokio::process::ChildStdin, msg: &Value) -> Result<(), String> {
    let line = msg.to_string() + "\n";
    stdin.write_all(line.as_bytes()).await.map_err(|e| format!("the server closed its stdin: {e}"))?;
    stdin.flush().await.map_err(|e| format!("the server closed its stdin: {e}"))
}

/// Read stdout lines until the response with `id`; every line must be a JSON-RPC message.
async fn response(lines: &mut Lines<BufReader<ChildStdout>>, id: i64) -> Result<Value, String> {
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Err("the server exited before answering".into()),
            Err(e) => return Err(format!("reading the server's stdout: {e}")),
        };
        let msg: Value =
            serde_json::from_str(&line).map_err(|_| format!("stdout carried a line that is not JSON: {line:.120}"))?;
        if msg["jsonrpc"] != "2.0" {
            return Err(format!("stdout carried a line that is not JSON-RPC 2.0: {line:.120}"));
        }
        if msg["id"] == json!(id) {
            if let Some(error) = msg.get("error") {
                return Err(format!("request {id} failed: {error}"));
            }
            return Ok(msg["result"].clone());
        }
    }
}
