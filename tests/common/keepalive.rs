//! A bare HTTP/1.1 MCP client on one kept-alive TCP connection, shared by tests and the HTTP
//! bench (which includes this file by path, so it uses nothing else from `tests/common`). It
//! writes each request whole and reads each answer to its end (the last chunk of a chunked body)
//! before it sends the next, as a careful client does; that is the pattern a server without
//! TCP_NODELAY stalls on, waiting for the client's delayed ACK.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

pub struct KeepAlive {
    tcp: TcpStream,
    host: String,
    session: Option<String>,
    next_id: i64,
    /// Extra headers sent with every request (e.g. `Mesh-Agent-Token`).
    headers: String,
}

impl KeepAlive {
    /// Connect to `127.0.0.1:port` and initialize an MCP session on it.
    pub fn connect(port: &str) -> KeepAlive {
        Self::connect_with(port, &[]).unwrap_or_else(|e| panic!("initialize: {e}"))
    }

    /// [`Self::connect`] with extra headers on every request; the `initialize` answer on failure.
    pub fn connect_with(port: &str, headers: &[(&str, &str)]) -> Result<KeepAlive, String> {
        let tcp = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let headers = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let mut client = KeepAlive { tcp, host: format!("127.0.0.1:{port}"), session: None, next_id: 0, headers };
        let (head, body) = client.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "keepalive", "version": "0"}}}));
        if body.contains("\"error\"") {
            return Err(body);
        }
        client.session = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("mcp-session-id:").map(|_| l[15..].trim().to_string()));
        assert!(client.session.is_some(), "no session id in {head}");
        client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        Ok(client)
    }

    /// Open the session's server-to-client stream (`GET /mcp`) on a connection of its own, which
    /// stays open while the returned stream is held.
    pub fn listen(&self) -> TcpStream {
        let mut tcp = TcpStream::connect(&self.host).expect("connect");
        let session = self.session.as_deref().expect("a session");
        let request = format!(
            "GET /mcp HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\n{}\r\n",
            self.host, self.headers
        );
        tcp.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).expect("the stream's status line");
        assert!(head.starts_with(b"HTTP/1.1 200"), "GET /mcp: {}", String::from_utf8_lossy(&head));
        tcp
    }

    /// One JSON-RPC request; its response.
    pub fn rpc(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let (_, body) = self.post(&json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}));
        let data = body.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).find(|d| !d.is_empty());
        let text = data.unwrap_or(body.trim());
        serde_json::from_str(text).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {body}"))
    }

    /// One tools/call that must succeed; the tool's JSON body.
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        let response = self.request(tool, args);
        let text = response["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{response}"));
        assert!(response["result"]["isError"] != true, "{tool}: {text}");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{tool}: body is not JSON ({e}): {text}"))
    }

    /// One tools/call; the JSON-RPC response.
    pub fn request(&mut self, tool: &str, args: Value) -> Value {
        self.rpc("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// End the session (DELETE /mcp), on a new connection: the server may have closed this one
    /// after its idle timeout.
    pub fn close(mut self) {
        let session = self.session.clone().expect("a session");
        self.tcp = TcpStream::connect(&self.host).expect("connect");
        let request = format!("DELETE /mcp HTTP/1.1\r\nHost: {}\r\nMcp-Session-Id: {session}\r\n\r\n", self.host);
        self.tcp.write_all(request.as_bytes()).unwrap();
        let (head, _) = self.read_answer();
        assert!(head.starts_with("HTTP/1.1 2"), "DELETE /mcp: {head}");
    }

    /// POST one message to /mcp; the answer's head and its (de-chunked) body.
    fn post(&mut self, message: &Value) -> (String, String) {
        let body = message.to_string();
        let session = self.session.as_ref().map(|s| format!("Mcp-Session-Id: {s}\r\n")).unwrap_or_default();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{session}{}Content-Length: {}\r\n\r\n{body}",
            self.host,
            self.headers,
            body.len()
        );
        self.tcp.write_all(request.as_bytes()).unwrap();
        self.read_answer()
    }

    fn read_answer(&mut self) -> (String, String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(done) = complete(&buf) {
                return done;
            }
            let n = self.tcp.read(&mut chunk).expect("read the answer");
            assert!(n > 0, "the server closed the connection: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The head and body of a whole answer in `buf`, or `None` while more is to come.
fn complete(buf: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower.lines().find_map(|l| l.strip_prefix("content-length:")) {
        let len: usize = len.trim().parse().ok()?;
        return (rest.len() >= len).then(|| (head.to_string(), rest[..len].to_string()));
    }
    if lower.contains("transfer-encoding: chunked") {
        return dechunk(rest).map(|body| (head.to_string(), body));
    }
    // No body (e.g. 202 Accepted).
    Some((head.to_string(), String::new()))
}

/// A chunked body once its last (empty) chunk has arrived.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return after.starts_with("\r\n").then_some(body);
        }
        if after.len() < size + 2 {
            return None;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}
