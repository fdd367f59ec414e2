//! The manual's debug switches through the real binary: with `MESH_LOG_LEVEL=debug` or
//! `MESH_DEBUG=true` a stdio server writes debug lines to stderr while every stdout line stays
//! JSON-RPC, and `MESH_LOG_FORMAT=json` makes each stderr line a JSON object.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use common::{bin, temp_db};
use serde_json::{json, Value};

/// Serve on stdio with `env`, make a few calls (one of them a tool error, which logs at debug),
/// close stdin, and return (stdout lines, stderr lines) once the server has exited.
fn session(env: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let (_dir, db) = temp_db();
    let mut child = Command::new(bin())
        .args(["serve", "--db"])
        .arg(&db)
        .env_remove("RUST_LOG")
        .env_remove("MESH_LOG_LEVEL")
        .env_remove("MESH_DEBUG")
        .env_remove("MESH_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mesh-mcp serve");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });

    let mut lines = Vec::new();
    let mut exchange = |msg: Value, answers: usize, lines: &mut Vec<String>| {
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
        for _ in 0..answers {
            lines.push(stdout.next().expect("a response line").unwrap());
        }
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "log-test", "version": "0"}}});
    exchange(init, 1, &mut lines);
    exchange(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), 0, &mut lines);
    exchange(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "swarm_status", "arguments": {"swarmId": "none"}}}),
        1,
        &mut lines,
    );
    exchange(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}), 1, &mut lines);
    // Client mistakes: an unknown tool (a JSON-RPC error) and a bad argument (a tool error).
    exchange(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}}),
        1,
        &mut lines,
    );
    exchange(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "swarm_init", "arguments": {"topology": 7}}}),
        1,
        &mut lines,
    );
    drop(stdin);
    lines.extend(stdout.map(Result::unwrap));
    assert!(child.wait().unwrap().success(), "the server exits cleanly on EOF");
    let stderr = stderr_reader.join().unwrap();
    (lines, stderr.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

fn assert_stdout_is_json_rpc(stdout: &[String]) {
    assert!(stdout.len() >= 3, "{stdout:?}");
    for line in stdout {
        let msg: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(msg["jsonrpc"], "2.0", "stdout line is not JSON-RPC: {line}");
    }
}

#[test]
fn mesh_log_level_debug_logs_to_stderr_and_keeps_stdout_pure() {
    let (stdout, stderr) = session(&[("MESH_LOG_LEVEL", "debug")]);
    assert_stdout_is_json_rpc(&stdout);
    assert!(stderr.iter().any(|l| l.contains("DEBUG") && l.contains("tool error")), "stderr: {stderr:#?}");
}

#[test]
fn mesh_debug_turns_on_debug_lines() {
    let (stdout, stderr) = session(&[("MESH_DEBUG", "true")]);
    assert_stdout_is_json_rpc(&stdout);
    assert!(stderr.iter().any(|l| l.contains("DEBUG") && l.contains("mesh_mcp")), "stderr: {stderr:#?}");
}

#[test]
fn the_default_is_quiet() {
    let (stdout, stderr) = session(&[]);
    assert_stdout_is_json_rpc(&stdout);
    // Client mistakes are the client's business: nothing on stderr, which some clients show.
    assert!(stderr.is_empty(), "stderr: {stderr:#?}");
}

#[test]
fn json_log_lines_parse_as_json() {
    let (stdout, stderr) = session(&[("MESH_DEBUG", "true"), ("MESH_LOG_FORMAT", "json")]);
    assert_stdout_is_json_rpc(&stdout);
    assert!(!stderr.is_empty(), "debug logging wrote nothing");
    let mut levels = Vec::new();
    for line in &stderr {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        levels.push(entry["level"].as_str().unwrap_or_else(|| panic!("no level: {line}")).to_string());
        assert!(entry["fields"].is_object(), "{line}");
    }
    assert!(levels.iter().any(|l| l == "DEBUG"), "{levels:?}");
}
