//! Bad input through the real binary: each gets a clear error, the server stays up, and the
//! store is unchanged. Every stdout line along the way must be JSON-RPC (stdout hygiene), with
//! debug logging switched on so that a stray log line would show.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{bin, cli, temp_db, RawServer};
use serde_json::{json, Value};

fn setup(server: &mut RawServer) -> (String, String) {
    server.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "s", "maxAgents": 3, "heartbeatInterval": 60, "messageTimeout": 600}),
    );
    let a = server.ok("agent_spawn", json!({"type": "coder", "name": "a"}));
    server.ok("agent_spawn", json!({"type": "coder", "name": "b"}));
    (a["agentToken"].as_str().unwrap().to_string(), a["agentId"].as_str().unwrap().to_string())
}

fn error_code(server: &mut RawServer, tool: &str, args: Value) -> String {
    let (is_error, body) = server.call(tool, args.clone());
    assert!(is_error, "{tool} {args} should fail, got {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty());
    body["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let (_dir, db) = temp_db();
    let mut server =
        RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_DEBUG", "true"), ("MESH_LOG_LEVEL", "trace")]);
    let (token, _) = setup(&mut server);
    let before = server.ok("swarm_status", json!({}))["revision"].clone();

    // Malformed JSON-RPC: a parse error answer (or silence), never a crash.
    server.send_line("{this is not json");
    server.send_line(r#"{"jsonrpc":"2.0","id":"x","method":42}"#);
    let pong = server.request("ping", json!({}));
    assert!(pong.get("result").is_some(), "server still answers after garbage: {pong}");

    // Wrong types and unknown fields name the field.
    let (_, body) = server.call("swarm_init", json!({"topology": "mesh", "maxAgents": "lots"}));
    assert!(body["error"]["message"].as_str().unwrap().contains("maxAgents"), "{body}");
    assert_eq!(
        error_code(&mut server, "swarm_init", json!({"topology": "mesh", "maxAgents": "lots"})),
        "invalid_argument"
    );
    assert_eq!(error_code(&mut server, "agent_spawn", json!({"type": "coder", "colour": "red"})), "invalid_argument");
    assert_eq!(error_code(&mut server, "memory_usage", json!({"action": "explode"})), "invalid_argument");
    assert_eq!(error_code(&mut server, "agent_spawn", json!({"type": "bad name with spaces"})), "invalid_argument");

    // Unknown tools are a JSON-RPC error; unknown agents and swarms are tool errors.
    let resp = server.request("tools/call", json!({"name": "no_such_tool", "arguments": {}}));
    assert_eq!(resp["error"]["code"], -32602, "{resp}");
    assert_eq!(
        error_code(
            &mut server,
            "daa_communication",
            json!({"from": "ghost", "to": "a", "message": {}, "agentToken": token})
        ),
        "not_found"
    );
    assert_eq!(
        error_code(
            &mut server,
            "daa_communication",
            json!({"from": "a", "to": "ghost", "message": {}, "agentToken": token})
        ),
        "not_found"
    );
    assert_eq!(error_code(&mut server, "swarm_status", json!({"swarmId": "nope"})), "not_found");

    // A wrong or missing token.
    assert_eq!(
        error_code(
            &mut server,
            "daa_communication",
            json!({"from": "a", "to": "b", "message": {}, "agentToken": "mesh_wrong"})
        ),
        "unauthorized"
    );
    assert_eq!(
        error_code(&mut server, "daa_communication", json!({"from": "a", "to": "b", "message": {}})),
        "unauthorized"
    );
    assert_eq!(
        error_code(&mut server, "daa_communication", json!({"action": "receive", "agentId": "b", "agentToken": token})),
        "unauthorized"
    );

    // A 10 MB value and an oversized message.
    let big = "x".repeat(10 * 1024 * 1024);
    assert_eq!(
        error_code(&mut server, "memory_usage", json!({"action": "store", "key": "big", "value": big})),
        "too_large"
    );
    let big_message = json!({"blob": "y".repeat(300 * 1024)});
    assert_eq!(
        error_code(
            &mut server,
            "daa_communication",
            json!({"from": "a", "to": "b", "message": big_message, "agentToken": token})
        ),
        "too_large"
    );

    // Deeply nested JSON: refused by the parser, not by a stack overflow.
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":777,"method":"tools/call","params":{{"name":"memory_usage","arguments":{{"action":"store","key":"deep","value":"v","extra":{}1{}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    server.send_line(&deep);
    let pong = server.request("ping", json!({}));
    assert!(pong.get("result").is_some(), "server still answers after deep nesting: {pong}");

    // A full swarm and a duplicate name.
    server.ok("agent_spawn", json!({"type": "coder", "name": "c"}));
    let after_c = server.ok("swarm_status", json!({}))["revision"].clone();
    assert_eq!(error_code(&mut server, "agent_spawn", json!({"type": "coder", "name": "d"})), "conflict");
    assert_eq!(error_code(&mut server, "swarm_init", json!({"topology": "ring", "swarmId": "s"})), "conflict");

    // Nothing the failures touched changed: the store revision is where the last success left it.
    let after = server.ok("swarm_status", json!({}))["revision"].clone();
    assert_eq!(after, after_c, "a failed call wrote to the store");
    assert_eq!(before.as_i64().unwrap() + 1, after_c.as_i64().unwrap());
    let retrieved = server.ok("memory_usage", json!({"action": "retrieve", "key": "big"}));
    assert_eq!(retrieved["found"], false);
    let list = server.ok("agent_list", json!({}));
    assert_eq!(list["agents"].as_array().unwrap().iter().find(|a| a["name"] == "b").unwrap()["pendingMessages"], 0);

    let status = server.finish();
    assert!(status.success(), "exit status on stdin EOF: {status}");
}

#[test]
fn every_tool_and_error_path_keeps_stdout_pure_json_rpc() {
    let (_dir, db) = temp_db();
    let mut server =
        RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_DEBUG", "true"), ("MESH_LOG_LEVEL", "trace")]);
    let (token, id) = setup(&mut server);
    let b = server.ok("agent_list", json!({}))["agents"].as_array().unwrap().iter().find(|a| a["name"] == "b").unwrap()
        ["agentId"]
        .clone();
    let calls: Vec<(&str, Value)> = vec![
        ("swarm_status", json!({})),
        ("agent_list", json!({"status": "initializing"})),
        ("daa_communication", json!({"from": id, "to": b, "message": {"k": 1}, "agentToken": token})),
        ("daa_communication", json!({"from": "a", "to": "all", "message": {"k": 2}, "agentToken": token})),
        ("daa_communication", json!({"action": "receive", "agentId": "a", "agentToken": token})),
        ("memory_usage", json!({"action": "store", "key": "k", "value": "v", "ttl": 60})),
        ("memory_usage", json!({"action": "retrieve", "key": "k"})),
        ("memory_usage", json!({"action": "list"})),
        ("memory_usage", json!({"action": "search", "query": "v"})),
        ("memory_usage", json!({"action": "delete", "key": "k"})),
        ("topology_optimize", json!({})),
        ("swarm_destroy", json!({"swarmId": "s"})),
        // Error paths.
        ("swarm_status", json!({})),
        ("swarm_init", json!({})),
        ("agent_spawn", json!({"type": 5})),
        ("memory_usage", json!({"action": "retrieve"})),
        ("daa_communication", json!({"action": "ack", "agentId": "a"})),
        ("topology_optimize", json!({"swarmId": "gone"})),
    ];
    for (tool, args) in calls {
        server.request("tools/call", json!({"name": tool, "arguments": args}));
    }
    server.request("tools/list", json!({}));
    server.request("resources/list", json!({}));
    server.request("prompts/list", json!({}));
    server.request("no/such/method", json!({}));
    assert!(server.stdout_lines.len() > 20);
    let status = server.finish();
    assert!(status.success());
}

#[test]
fn methods_of_undeclared_capabilities_are_not_answered_as_supported() {
    let (_dir, db) = temp_db();
    let mut server = RawServer::spawn(db.to_str().unwrap());
    for method in ["prompts/list", "logging/setLevel", "completion/complete"] {
        let resp = server.request(method, json!({}));
        assert_eq!(resp["error"]["code"], -32601, "{method}: {resp}");
    }
}

/// The key of the record the corruption test breaks, and a fragment of serde's decoding error:
/// storage internals that must stay in the log.
const CORRUPT_KEY: &str = "swarm/s/config";
const DECODER_TEXT: &str = "line 1 column";

/// A stored record the engine cannot decode reaches a client as the `corrupt` code and a
/// correlation id, never the key or the decoder's text; the log (stderr) has both, under that id.
#[test]
fn corrupt_record_reaches_the_client_as_a_code_and_a_ref_and_the_log_has_the_detail() {
    let (_dir, db) = temp_db();
    let (code, body) = cli(&db, &["swarm_init", "mesh", "--swarmId=s"]);
    assert_eq!(code, 0, "{body}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed =
        conn.execute("UPDATE kv SET value = ?1 WHERE key = ?2", (b"{not json".as_slice(), CORRUPT_KEY)).unwrap();
    assert_eq!(changed, 1, "the swarm record is stored under {CORRUPT_KEY}");
    drop(conn);

    // `mesh-mcp call`: the body on stdout, the log on stderr.
    let out = Command::new(bin()).arg("--db").arg(&db).args(["call", "swarm_status", "--swarmId=s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&out.stdout).expect("the error body is JSON");
    assert_hidden_with_ref(&body, &String::from_utf8_lossy(&out.stderr));

    // An MCP session over stdio: the tool result, then the log once the server has exited.
    let mut child = Command::new(bin())
        .args(["serve", "--db", db.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init =
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}});
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "swarm_status", "arguments": {"swarmId": "s"}}}),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let mut result = Value::Null;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let msg: Value = serde_json::from_str(&line.unwrap()).expect("stdout carries JSON-RPC only");
        if msg["id"] == 2 {
            result = msg["result"].clone();
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(result["isError"], true, "{result}");
    let body: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_hidden_with_ref(&body, &String::from_utf8_lossy(&out.stderr));
}

/// `body` names the code and a ref but no internals; `log` has a line with that ref and the key.
fn assert_hidden_with_ref(body: &Value, log: &str) {
    assert_eq!(body["error"]["code"], "corrupt", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains(CORRUPT_KEY) && !message.contains(DECODER_TEXT), "internals leaked: {message}");
    let (_, id) = message.rsplit_once("ref ").unwrap_or_else(|| panic!("no correlation id in {message:?}"));
    assert!(id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "not an id: {id:?}");
    let line = log.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("ref {id} is not in the log:\n{log}"));
    assert!(line.contains(CORRUPT_KEY) && line.contains(DECODER_TEXT), "the log line lacks the detail: {line}");
}
