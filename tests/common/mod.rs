//! Shared helpers for the end-to-end tests: spawn the real `mesh-mcp` binary and talk MCP to it,
//! either with rmcp's client or with a raw JSON-RPC line client that checks every stdout line.
#![allow(dead_code)]

mod etcd;
mod http_server;
mod keepalive;
mod rpc;
pub mod team;
mod wait;

#[allow(unused_imports)]
pub use etcd::EtcdCluster;
#[allow(unused_imports)] // each test crate uses its own part of these
pub use http_server::{wait_exit, HttpServer};
#[allow(unused_imports)]
pub use keepalive::KeepAlive;
#[allow(unused_imports)]
pub use rpc::{tool_result, RawServer, METRICS_FLUSH};
#[allow(unused_imports)]
pub use wait::{eventually, poll, wait_until, POLL_INTERVAL, WAIT};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mesh-mcp")
}

/// A fresh directory with a database path in it.
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("mesh.db");
    (dir, db)
}

/// An MCP session with a `mesh-mcp serve` child over stdio, through rmcp's client.
pub struct Mcp {
    pub client: RunningService<RoleClient, ()>,
    /// The HTTP server process, when the session is over HTTP.
    server: Option<HttpServer>,
}

/// Which transport an end-to-end test speaks.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Stdio,
    Http,
}

impl Mcp {
    pub async fn stdio(db: &str) -> Mcp {
        Self::stdio_with(db, &[]).await
    }

    /// A stdio session with extra global arguments, e.g. `["--embedding-model", dir]`.
    pub async fn stdio_with(db: &str, extra: &[&str]) -> Mcp {
        let mut cmd = tokio::process::Command::new(bin());
        cmd.args(["serve", "--db", db]).args(extra).env(METRICS_FLUSH.0, METRICS_FLUSH.1);
        let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().expect("spawn mesh-mcp");
        let client = ().serve(transport).await.expect("MCP initialize");
        Mcp { client, server: None }
    }

    pub async fn http(db: &str) -> Mcp {
        let server = HttpServer::on_db(db);
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(server.url("/mcp"));
        let client = ().serve(transport).await.expect("MCP initialize over HTTP");
        Mcp { client, server: Some(server) }
    }

    pub async fn connect(transport: Transport, db: &str) -> Mcp {
        match transport {
            Transport::Stdio => Self::stdio(db).await,
            Transport::Http => Self::http(db).await,
        }
    }

    /// Call a tool; returns whether it was a tool error, and its JSON body.
    pub async fn call(&self, tool: &str, args: Value) -> (bool, Value) {
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        let result = self.client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
        decode(&result)
    }

    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let (is_error, body) = self.call(tool, args.clone()).await;
        assert!(!is_error, "{tool} {args} failed: {body}");
        body
    }

    /// Call a tool that must fail; returns the error's code.
    pub async fn err(&self, tool: &str, args: Value) -> String {
        let (is_error, body) = self.call(tool, args.clone()).await;
        assert!(is_error, "{tool} {args} should have failed but returned {body}");
        body["error"]["code"].as_str().unwrap_or_else(|| panic!("error body without code: {body}")).to_string()
    }

    pub async fn close(self) {
        let _ = self.client.cancel().await;
        drop(self.server);
    }
}

pub fn decode(result: &CallToolResult) -> (bool, Value) {
    let text = match result.content.first() {
        Some(ContentBlock::Text(t)) => t.text.clone(),
        other => panic!("expected one text block, got {other:?}"),
    };
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("result text is not JSON ({e}): {text}"));
    let is_error = result.is_error.unwrap_or(false);
    if !is_error {
        assert_eq!(result.structured_content.as_ref(), Some(&body), "structuredContent is the result's body");
    }
    (is_error, body)
}

/// Run `mesh-mcp call` and return (exit code, stdout JSON).
pub fn cli(db: &Path, args: &[&str]) -> (i32, Value) {
    cli_with(db, args, &[], b"")
}

/// [`cli`] with environment variables (an empty value removes the variable) and bytes on stdin.
pub fn cli_with(db: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (i32, Value) {
    use std::io::Write;
    let mut cmd = Command::new(bin());
    cmd.arg("--db").arg(db).arg("call").args(args);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in env {
        match *value {
            "" => cmd.env_remove(name),
            value => cmd.env(name, value),
        };
    }
    let mut child = cmd.spawn().expect("run mesh-mcp call");
    child.stdin.take().expect("piped stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("wait for mesh-mcp call");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("call {args:?}: stdout is not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), value)
}

/// Whether `actual` contains `expected`: objects by subset, arrays by equal length and
/// element-wise subset, scalars by equality (numbers compared as f64).
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        (Value::Array(a), Value::Array(e)) => a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev)),
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        (a, e) => a == e,
    }
}

/// Where the real sentence-embedding model (all-MiniLM-L6-v2) lies, from
/// `MESH_TEST_EMBEDDING_MODEL`, which `bash scripts/test.sh` fetches and sets. Without it the
/// real-model tests fail, saying so: they never pass by not running.
pub fn embedding_model() -> PathBuf {
    match std::env::var_os("MESH_TEST_EMBEDDING_MODEL") {
        Some(dir) if Path::new(&dir).join("model.safetensors").is_file() => PathBuf::from(dir),
        Some(dir) => missing(&format!(
            "the embedding model: MESH_TEST_EMBEDDING_MODEL={} holds no model.safetensors",
            Path::new(&dir).display()
        )),
        None => missing("the embedding model: MESH_TEST_EMBEDDING_MODEL is not set"),
    }
}

/// Where `tests/thirdparty/setup.sh` installs the third-party tools (Node 22, playwright-core,
/// the Python venv): `$MESH_MCP_CI_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp-ci`, as
/// `tests/thirdparty/lib.sh` has it.
pub fn thirdparty_cache() -> PathBuf {
    std::env::var_os("MESH_MCP_CI_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
        base.join("mesh-mcp-ci")
    })
}

/// Fail a test that needs something this machine lacks, naming it and how to get it.
pub fn missing(what: &str) -> ! {
    panic!(
        "this test needs {what}. `bash scripts/test.sh` installs everything the tests need and runs \
         them all (or run `bash scripts/test.sh --install` once, then export what it prints)"
    )
}
