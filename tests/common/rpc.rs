//! The raw JSON-RPC line client the end-to-end tests and the stdio benches share: a `mesh-mcp
//! serve` child, one request line written, stdout read on the calling thread up to the matching
//! response. Every stdout line is checked to be a JSON-RPC 2.0 message. No MCP SDK and no reader
//! thread, so what a bench times is the server and the pipe. Benches include this file with
//! `#[path = "../tests/common/rpc.rs"]` (a bench is its own crate), so it uses nothing else from
//! `tests/common`.

// Each test crate and bench uses only part of the client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Servers under test write their metrics sample only at shutdown, so that a periodic sample never
/// lands between two reads of the store revision a test compares; a test may override it.
pub const METRICS_FLUSH: (&str, &str) = ("MESH_METRICS_FLUSH_SECS", "0");

/// How long a read waits for the server's next line, and `finish` for it to exit.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub struct RawServer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Every line read from stdout so far.
    pub stdout_lines: Vec<String>,
    last_id: i64,
}

impl RawServer {
    /// The binary cargo built for this test or bench, on `db`, with metrics written only at shutdown.
    pub fn spawn(db: &str) -> RawServer {
        Self::spawn_with(db, &[])
    }

    /// [`RawServer::spawn`] with extra environment variables.
    pub fn spawn_with(db: &str, env: &[(&str, &str)]) -> RawServer {
        let mut vars = vec![METRICS_FLUSH];
        vars.extend_from_slice(env);
        Self::launch(env!("CARGO_BIN_EXE_mesh-mcp"), db, &vars)
    }

    /// `bin serve --db db` with `env`, initialized.
    pub fn launch(bin: &str, db: &str, env: &[(&str, &str)]) -> RawServer {
        Self::launch_as(bin, db, env, "raw")
    }

    /// [`RawServer::launch`], initialized by a client that calls itself `client`.
    pub fn launch_as(bin: &str, db: &str, env: &[(&str, &str)], client: &str) -> RawServer {
        let mut child = Command::new(bin)
            .args(["serve", "--db", db])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut server = RawServer { child, stdin, stdout, stdout_lines: Vec::new(), last_id: 0 };
        let init = server.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": client, "version": "0"}}),
        );
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        server.send_line(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
        server
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        // One write of the whole line: ChildStdin is unbuffered.
        stdin.write_all(format!("{}\n", line.trim_end_matches('\n')).as_bytes()).unwrap();
    }

    /// Read the next stdout line, checking that it is a JSON-RPC message.
    pub fn read(&mut self) -> Value {
        if self.stdout.buffer().is_empty() {
            assert!(readable_within(&self.stdout, READ_TIMEOUT), "the server wrote nothing for {READ_TIMEOUT:?}");
        }
        let mut line = String::new();
        assert!(self.stdout.read_line(&mut line).unwrap() > 0, "the server closed stdout");
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

    /// The next request as a line, built ahead so that a bench can start its clock after
    /// formatting. Send it with [`RawServer::round_trip`] before building another.
    pub fn line(&mut self, method: &str, params: Value) -> String {
        self.last_id += 1;
        json!({"jsonrpc": "2.0", "id": self.last_id, "method": method, "params": params}).to_string()
    }

    /// Write a line from [`RawServer::line`] and read stdout up to its response.
    pub fn round_trip(&mut self, line: &str) -> Value {
        self.send_line(line);
        self.read_response(&json!(self.last_id))
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let line = self.line(method, params);
        self.round_trip(&line)
    }

    /// tools/call; returns (isError, body).
    pub fn call(&mut self, tool: &str, args: Value) -> (bool, Value) {
        let resp = self.request("tools/call", json!({"name": tool, "arguments": args}));
        tool_result(tool, &resp)
    }

    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let (is_error, body) = self.call(tool, args.clone());
        assert!(!is_error, "{tool} {args} failed: {body}");
        body
    }

    /// A tool call that must succeed, timed from just before its line is written to just after
    /// its response is read.
    pub fn timed(&mut self, tool: &str, args: Value) -> (Duration, Value) {
        let line = self.line("tools/call", json!({"name": tool, "arguments": args}));
        let start = Instant::now();
        let resp = self.round_trip(&line);
        let took = start.elapsed();
        let (is_error, body) = tool_result(tool, &resp);
        assert!(!is_error, "{tool} failed: {body}");
        (took, body)
    }

    /// Close stdin and wait for the server to exit (it exits on EOF), checking what it still
    /// wrote.
    pub fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + READ_TIMEOUT;
        while readable_within(&self.stdout, deadline.saturating_duration_since(Instant::now())) {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                // EOF: the server closed stdout on its way out.
                return self.child.wait().unwrap();
            }
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "stdout line is not JSON-RPC 2.0: {line}");
        }
        panic!("server did not exit on stdin EOF within {READ_TIMEOUT:?}");
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The (isError, body) of a tools/call response whose one text block is JSON.
pub fn tool_result(tool: &str, resp: &Value) -> (bool, Value) {
    let result = resp.get("result").unwrap_or_else(|| panic!("{tool}: JSON-RPC error {resp}"));
    let text = result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content: {resp}"));
    let body = serde_json::from_str(text).unwrap_or_else(|e| panic!("{tool}: tool text is not JSON ({e}): {text}"));
    (result["isError"].as_bool().unwrap_or(false), body)
}

/// Whether the pipe has data (or EOF) within `timeout`: a read that blocks for ever would hang
/// the test run instead of failing it.
fn readable_within(stdout: &BufReader<ChildStdout>, timeout: Duration) -> bool {
    let mut fd = libc::pollfd { fd: stdout.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        let error = std::io::Error::last_os_error();
        match ready {
            -1 if error.kind() == std::io::ErrorKind::Interrupted => continue,
            -1 => panic!("poll on the server's stdout: {error}"),
            n => return n > 0,
        }
    }
}
