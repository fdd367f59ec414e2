//! Shared helpers for the end-to-end tests: spawn the real `mesh-mcp` binary and talk MCP to it,
//! either with rmcp's client or with a raw JSON-RPC line client that checks every stdout line.
#![allow(dead_code)]

mod http_server;

#[allow(unused_imports)] // each test crate uses its own part of these
pub use http_server::{wait_exit, HttpServer, WAIT};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

/// Servers under test write their metrics sample only at shutdown, so that a periodic sample never
/// lands between two reads of the store revision a test compares; a test may override it.
pub const METRICS_FLUSH: (&str, &str) = ("MESH_METRICS_FLUSH_SECS", "0");

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
    (result.is_error.unwrap_or(false), body)
}

/// A `mesh-mcp serve` child spoken to with raw JSON-RPC lines. Every line it writes on stdout is
/// checked to be a JSON-RPC 2.0 message.
pub struct RawServer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub stdout_lines: Vec<String>,
    next_id: i64,
}

impl RawServer {
    pub fn spawn(db: &str) -> RawServer {
        Self::spawn_with(db, &[])
    }

    pub fn spawn_with(db: &str, env: &[(&str, &str)]) -> RawServer {
        let mut child = Command::new(bin())
            .args(["serve", "--db", db])
            .env(METRICS_FLUSH.0, METRICS_FLUSH.1)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mesh-mcp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = RawServer { child, stdin: Some(stdin), lines: rx, stdout_lines: Vec::new(), next_id: 1 };
        let init = server.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}),
        );
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        server.send_line(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
        server
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Read the next stdout line, checking that it is a JSON-RPC message.
    pub fn read(&mut self) -> Value {
        let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("the server answered within 30 s");
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(value["jsonrpc"], "2.0", "stdout line is not JSON-RPC 2.0: {line}");
        self.stdout_lines.push(line);
        value
    }

    /// Read until the response with this id, checking every line on the way.
    pub fn read_response(&mut self, id: &Value) -> Value {
        loop {
            let msg = self.read();
            if msg.get("id") == Some(id) && (msg.get("result").is_some() || msg.get("error").is_some()) {
                return msg;
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send_line(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string());
        self.read_response(&id)
    }

    /// tools/call; returns (isError, body).
    pub fn call(&mut self, tool: &str, args: Value) -> (bool, Value) {
        let resp = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let result = resp.get("result").unwrap_or_else(|| panic!("{tool}: JSON-RPC error {resp}"));
        let text = result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content: {resp}"));
        (result["isError"].as_bool().unwrap_or(false), serde_json::from_str(text).expect("tool text is JSON"))
    }

    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let (is_error, body) = self.call(tool, args.clone());
        assert!(!is_error, "{tool} {args} failed: {body}");
        body
    }

    /// Close stdin and wait for a clean exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.try_recv() {
                    let v: Value =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                    assert_eq!(v["jsonrpc"], "2.0");
                }
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit on stdin EOF");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `mesh-mcp call` and return (exit code, stdout JSON).
pub fn cli(db: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(bin()).arg("--db").arg(db).arg("call").args(args).output().expect("run mesh-mcp call");
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
/// `MESH_TEST_EMBEDDING_MODEL` (`.ci/run` fetches it and sets it). Outside CI a machine without
/// the model skips the real-model tests with a note on stderr; under CI (`CI` set) a missing
/// model fails the test, so those tests cannot pass by not running.
pub fn embedding_model() -> Option<PathBuf> {
    match std::env::var_os("MESH_TEST_EMBEDDING_MODEL") {
        Some(dir) if Path::new(&dir).join("model.safetensors").is_file() => Some(PathBuf::from(dir)),
        found => {
            let why = match found {
                Some(dir) => {
                    format!("MESH_TEST_EMBEDDING_MODEL={} holds no model.safetensors", Path::new(&dir).display())
                }
                None => "MESH_TEST_EMBEDDING_MODEL is not set".to_string(),
            };
            assert!(std::env::var_os("CI").is_none(), "the real-model tests must run in CI: {why}");
            eprintln!("skipping a real-model test: {why}");
            None
        }
    }
}
