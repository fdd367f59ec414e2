//! The raw JSON-RPC line client the stdio benches share: the release binary as a child, one
//! request line written, stdout read up to the matching id. No MCP SDK, so what is timed is the
//! server. Included by `#[path]` (a bench is its own crate).

// Each bench uses only part of the client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Client {
    pub fn spawn(bin: &str, db: &str) -> Self {
        let mut child = Command::new(bin)
            .args(["serve", "--db", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mesh-mcp");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut c = Client { child, stdin, stdout, next_id: 1 };
        c.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}));
        c.stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").unwrap();
        c
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let line = self.line(method, params);
        self.round_trip(&line)
    }

    /// The next request as a line, built ahead so a bench can start its clock after formatting.
    /// Send it with [`Client::round_trip`] before building another.
    pub fn line(&mut self, method: &str, params: Value) -> String {
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).to_string() + "\n"
    }

    /// Write a line from [`Client::line`] and read stdout up to its response.
    pub fn round_trip(&mut self, line: &str) -> Value {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let mut buf = String::new();
        loop {
            buf.clear();
            assert!(self.stdout.read_line(&mut buf).unwrap() > 0, "server closed stdout");
            let msg: Value = serde_json::from_str(&buf).expect("stdout line is JSON");
            if msg["id"] == self.next_id {
                return msg;
            }
        }
    }

    /// A tool call that must succeed; returns its latency and body.
    pub fn call(&mut self, tool: &str, args: Value) -> (Duration, Value) {
        let start = Instant::now();
        let resp = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let took = start.elapsed();
        let result = &resp["result"];
        let body: Value = serde_json::from_str(result["content"][0]["text"].as_str().expect("text content")).unwrap();
        assert!(!result["isError"].as_bool().unwrap_or(false), "{tool} failed: {body}");
        (took, body)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
