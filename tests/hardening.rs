//! Regressions from the adversarial run of issue 13, each failing on the code before its fix:
//! doubles that came back one ulp off, a URL taken for a file path, a heartbeat of 1e-300 s, a
//! duplicate Host header, and HTTP answers that waited for the client's delayed ACK.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, temp_db, HttpServer, KeepAlive, Mcp, RawServer};
use mesh_mcp::store::sqlite::SqliteStore;
use mesh_mcp::store::{EventKind, Store, SystemClock};
use serde_json::json;

/// Doubles spread over many magnitudes, from a fixed xorshift sequence of bit patterns.
fn awkward_doubles(n: usize) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Exponents from about 1e-30 to 1e30, random mantissas, both signs.
        let bits = (state & 0x800F_FFFF_FFFF_FFFF) | ((923 + (state >> 52) % 200) << 52);
        let x = f64::from_bits(bits);
        if x.is_finite() {
            out.push(x);
        }
    }
    out
}

#[test]
fn a_message_of_doubles_comes_back_bit_identical() {
    let (_dir, db) = temp_db();
    let mut s = RawServer::spawn(db.to_str().unwrap());
    s.ok("swarm_init", json!({"topology": "mesh", "swarmId": "f", "heartbeatInterval": 600, "messageTimeout": 3600}));
    let a = s.ok("agent_spawn", json!({"type": "coder", "name": "a"}));
    let b = s.ok("agent_spawn", json!({"type": "coder", "name": "b"}));
    let sent = awkward_doubles(400);
    // Written by hand: `{:?}` prints the shortest text that parses back to the same bits.
    let numbers = sent.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
    let args = json!({"action": "send", "from": "a", "to": "b", "message": "NUMBERS", "agentToken": a["agentToken"]});
    let line = s.line("tools/call", json!({"name": "daa_communication", "arguments": args}));
    let line = line.replace("\"NUMBERS\"", &format!("{{\"x\":[{numbers}]}}"));
    let resp = s.round_trip(&line);
    assert!(resp["result"]["isError"] != true, "{resp}");
    let got = s.ok("daa_communication", json!({"action": "receive", "agentId": "b", "agentToken": b["agentToken"]}));
    let back: Vec<f64> = got["messages"][0]["message"]["x"]
        .as_array()
        .unwrap_or_else(|| panic!("{got}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let changed = sent.iter().zip(&back).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!((back.len(), changed), (sent.len(), 0), "doubles altered in a stored message");
}

#[test]
fn a_database_url_is_refused_not_created_as_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |db: &str| Command::new(bin()).current_dir(dir.path()).args(["--db", db, "call", "swarm_status"]).output();
    let out = run("redis://127.0.0.1:6379").unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown database scheme `redis://`"), "{stderr}");
    // An etcd cluster that does not answer is said so (port 9 is discard: nothing listens).
    let out = run("etcd://127.0.0.1:9/mesh").unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no etcd member answered"), "{stderr}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "it created something");
}

#[tokio::test]
async fn a_heartbeat_too_short_to_measure_is_refused() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    for tiny in [1e-300, 0.001] {
        let (is_error, body) = mcp.call("swarm_init", json!({"topology": "mesh", "heartbeatInterval": tiny})).await;
        assert!(is_error, "heartbeatInterval {tiny} was accepted: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    }
    mcp.ok("swarm_init", json!({"topology": "mesh", "heartbeatInterval": 0.01})).await;
    mcp.close().await;
}

/// One raw HTTP/1.1 request, the status line of its answer.
fn raw_status(port: &str, request: &str) -> String {
    let mut tcp = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}

#[test]
fn two_host_headers_are_a_bad_request() {
    let server = HttpServer::start(&[]);
    let port = server.port();
    let one = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    assert!(raw_status(port, &one).contains(" 200 "), "the control request must pass");
    let two =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert!(raw_status(port, &two).contains(" 400 "), "{}", raw_status(port, &two));
}

/// Without TCP_NODELAY every streamed answer on a kept-alive connection waits out the client's
/// delayed ACK (about 40 ms on Linux), so even the fastest of 20 calls takes that long. The
/// fastest call with it set is a few ms; noise only makes calls slower, so the bound below can
/// fail only on the old code or a machine stalled for all 20 calls. Speed itself is measured by
/// `cargo bench --bench keepalive`.
#[test]
fn kept_alive_http_calls_do_not_wait_for_a_delayed_ack() {
    let server = HttpServer::start(&[]);
    let mut client = KeepAlive::connect(server.port());
    let init = client.call("swarm_init", json!({"topology": "star", "swarmId": "n"}));
    assert_eq!(init["swarmId"], "n", "{init}");
    let mut fastest = Duration::MAX;
    for _ in 0..20 {
        let start = Instant::now();
        let answer = client.call("swarm_status", json!({"swarmId": "n"}));
        fastest = fastest.min(start.elapsed());
        assert_eq!(answer["swarmId"], "n", "{answer}");
    }
    assert!(fastest < Duration::from_millis(30), "the fastest of 20 kept-alive calls took {fastest:?}");
}

/// Every malformed frame gets an answer (the client would otherwise wait forever), and the
/// server goes on serving.
#[test]
fn malformed_frames_get_json_rpc_errors_not_silence() {
    let (_dir, db) = temp_db();
    let mut s = RawServer::spawn(db.to_str().unwrap());
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":5,"method":"ping","params":{{"x":{}1{}}}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let corpus: [(&str, i64, serde_json::Value); 9] = [
        ("{this is not json", -32700, json!(null)),
        (r#"{"jsonrpc":"2.0","id":1,"method":"ping""#, -32700, json!(null)),
        (r#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":NaN}}"#, -32700, json!(null)),
        (r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"x":"\ud800"}}"#, -32700, json!(null)),
        (&deep, -32700, json!(null)),
        (r#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#, -32600, json!(null)),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, -32600, json!(null)),
        (r#"{"jsonrpc":"2.0","id":"x","method":42}"#, -32600, json!("x")),
        (r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5}}"#, -32602, json!(9)),
    ];
    for (line, code, id) in corpus {
        s.send_line(line);
        let answer = s.read();
        assert_eq!((answer["error"]["code"].as_i64(), &answer["id"]), (Some(code), &id), "{line:.80}: {answer}");
    }
    let pong = s.request("ping", json!({}));
    assert!(pong.get("result").is_some(), "the server still answers: {pong}");
}

/// The leases table of a database file, counted directly.
fn lease_rows(db: &std::path::Path) -> i64 {
    db_number(db, "SELECT COUNT(*) FROM leases")
}

#[tokio::test]
async fn a_refused_agent_spawn_leaves_no_lease_row() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "full", "maxAgents": 1})).await;
    mcp.ok("agent_spawn", json!({"type": "coder", "name": "only"})).await;
    let before = lease_rows(&db);
    for name in ["second", "only"] {
        let (is_error, body) = mcp.call("agent_spawn", json!({"type": "coder", "name": name})).await;
        assert!(is_error && body["error"]["code"] == "conflict", "{body}");
    }
    assert_eq!(lease_rows(&db), before, "refused spawns committed lease rows");
    mcp.close().await;
}

/// The reply byte budget (16 KiB of listed items): lists of big values stop early, say so and
/// carry on from a cursor; a mailbox of big messages hands out a part and the rest after an ack.
/// One item bigger than the budget comes alone.
#[tokio::test]
async fn big_lists_are_cut_at_the_byte_budget_with_a_way_on() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    for i in 0..6 {
        // Two values bigger than the budget, the others a third of it.
        let value = "v".repeat(if i % 3 == 0 { 900 * 1024 } else { 5 * 1024 });
        let args = json!({"action": "store", "key": format!("k{i}"), "value": value, "namespace": "big"});
        mcp.ok("memory_usage", args).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut args = json!({"action": "list", "namespace": "big", "limit": 100});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = mcp.ok("memory_usage", args).await;
        let entries = page["entries"].as_array().unwrap();
        let single = entries.len() == 1 && page["entries"][0]["value"].as_str().unwrap().len() > 16 * 1024;
        assert!(single || page.to_string().len() <= 17 * 1024, "a page of {} bytes", page.to_string().len());
        assert!(!entries.is_empty(), "a cut page still makes progress");
        seen.extend(entries.iter().map(|e| e["key"].as_str().unwrap().to_string()));
        cursor = page["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            assert!(page.get("truncated").is_none(), "the last page is whole: {}", page["truncated"]);
            break;
        }
        assert_eq!(page["truncated"], true, "a page cut before the limit says so");
    }
    assert_eq!(seen, ["k0", "k1", "k2", "k3", "k4", "k5"]);

    mcp.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "mail", "heartbeatInterval": 600, "messageTimeout": 3600}),
    )
    .await;
    let a = mcp.ok("agent_spawn", json!({"type": "coder", "name": "a"})).await;
    let b = mcp.ok("agent_spawn", json!({"type": "coder", "name": "b"})).await;
    let blob = "m".repeat(6 * 1024);
    for _ in 0..12 {
        let args = json!({"from": "a", "to": "b", "message": {"blob": blob}, "agentToken": a["agentToken"]});
        mcp.ok("daa_communication", args).await;
    }
    let receive = json!({"action": "receive", "agentId": "b", "agentToken": b["agentToken"], "limit": 50});
    let mut received = 0;
    for page in 0.. {
        let got = mcp.ok("daa_communication", receive.clone()).await;
        let messages = got["messages"].as_array().unwrap();
        if messages.is_empty() {
            break;
        }
        if page == 0 {
            assert_eq!(got["truncated"], true, "{} messages at once", messages.len());
        }
        assert!(got.to_string().len() <= 17 * 1024, "a page of {} bytes", got.to_string().len());
        received += messages.len();
        assert_eq!(got["remaining"], 12 - received, "the rest wait in the mailbox");
        let ids: Vec<_> = messages.iter().map(|m| m["messageId"].clone()).collect();
        let ack = json!({"action": "ack", "agentId": "b", "agentToken": b["agentToken"], "messageIds": ids});
        mcp.ok("daa_communication", ack).await;
    }
    assert_eq!(received, 12, "every message, a page at a time");
    mcp.close().await;
}

/// A number from a database file, queried directly.
fn db_number(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// Receiving counts deliveries in a record of a few bytes per message: fetching the same big
/// messages again and again must not copy them into the change log each time.
#[tokio::test]
async fn receiving_again_and_again_does_not_copy_messages_into_the_log() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    let settings = json!({"topology": "mesh", "swarmId": "inbox", "heartbeatInterval": 600, "messageTimeout": 3600});
    mcp.ok("swarm_init", settings).await;
    let a = mcp.ok("agent_spawn", json!({"type": "coder", "name": "a"})).await;
    let b = mcp.ok("agent_spawn", json!({"type": "coder", "name": "b"})).await;
    let blob = "m".repeat(6 * 1024);
    for _ in 0..20 {
        let args = json!({"from": "a", "to": "b", "message": {"blob": blob}, "agentToken": a["agentToken"]});
        mcp.ok("daa_communication", args).await;
    }
    let log_bytes = "SELECT log_bytes FROM meta";
    let before = db_number(&db, log_bytes);
    let receive = json!({"action": "receive", "agentId": "b", "agentToken": b["agentToken"], "limit": 20});
    let mut last = json!(null);
    for _ in 0..25 {
        last = mcp.ok("daa_communication", receive.clone()).await;
    }
    let messages = last["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "two of these fill the 16 KiB reply budget");
    assert!(messages.iter().all(|m| m["deliveries"] == 25), "every receive counted: {}", messages[0]["deliveries"]);
    let grown = db_number(&db, log_bytes) - before;
    let handed_out = 25 * 2 * blob.len() as i64;
    assert!(grown * 20 < handed_out, "the log grew {grown} bytes for {handed_out} bytes handed out");

    let ids: Vec<_> = messages.iter().map(|m| m["messageId"].clone()).collect();
    let ack = json!({"action": "ack", "agentId": "b", "agentToken": b["agentToken"], "messageIds": ids});
    mcp.ok("daa_communication", ack).await;
    let records = "SELECT COUNT(*) FROM kv WHERE key LIKE 'dlv/%'";
    assert_eq!(db_number(&db, records), 0, "an ack removes the delivery records too");
    mcp.close().await;
}

/// One argv word is capped at 128 KiB by the kernel; values past it come from a file or stdin.
#[test]
fn the_cli_takes_values_from_a_file_or_stdin() {
    let (dir, db) = temp_db();
    let big = "x".repeat(300 * 1024);
    let file = dir.path().join("value.txt");
    std::fs::write(&file, &big).unwrap();
    let at_file = format!("@{}", file.display());
    let (code, body) = common::cli(&db, &["memory_usage", "store", "from-file", &at_file, "--namespace=n"]);
    assert_eq!(code, 0, "{body}");
    let (code, body) =
        common::cli_with(&db, &["memory_usage", "store", "from-stdin", "-", "--namespace=n"], &[], big.as_bytes());
    assert_eq!(code, 0, "{body}");
    let (code, body) = common::cli(&db, &["memory_usage", "store", "literal", "@@handle", "--namespace=n"]);
    assert_eq!(code, 0, "{body}");
    for (key, want) in [("from-file", big.as_str()), ("from-stdin", big.as_str()), ("literal", "@handle")] {
        let (_, got) = common::cli(&db, &["memory_usage", "retrieve", key, "--namespace=n"]);
        assert!(got["entry"]["value"] == want, "{key}: {} bytes", got["entry"]["value"].as_str().unwrap_or("").len());
    }
    let out = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["call", "memory_usage", "store", "k", "@/no/such/file", "--namespace=n"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unreadable file is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read `/no/such/file`"));
}

/// `mesh-mcp call` that records no metrics, so the store revision moves only for tool writes.
fn quiet(db: &std::path::Path, args: &[&str]) -> (i32, serde_json::Value) {
    common::cli_with(db, args, &[("MESH_METRICS", "off")], b"")
}

/// A call refused for its arguments writes nothing: before the fix, `daa_consensus` and
/// `daa_fault_tolerance` ran their reconcile pass (failing an expired agent, a durable write)
/// and only then found an argument missing. Through the CLI, so no sweeper runs beside it.
#[test]
fn calls_with_bad_arguments_change_nothing_even_with_a_reconcile_due() {
    let (_dir, db) = temp_db();
    let init = ["swarm_init", "mesh", "--swarmId=r", "--heartbeatInterval=0.05", "--messageTimeout=0.1"];
    assert_eq!(quiet(&db, &init).0, 0);
    assert_eq!(quiet(&db, &["agent_spawn", "coder", "--name=a"]).0, 0);
    // The agent's lease runs out: a reconcile pass now has a failure to write.
    common::wait_until("the agent's lease to run out", || {
        let (_, list) = quiet(&db, &["agent_list"]);
        if list["agents"][0]["status"] == "failed" {
            Ok(())
        } else {
            Err(list["agents"][0]["status"].to_string())
        }
    });
    let revision = || quiet(&db, &["swarm_status"]).1["revision"].as_i64().unwrap();
    let before = revision();
    let refused: [&[&str]; 4] = [
        &["daa_consensus", "--action=vote"],
        &["daa_consensus", "--action=status"],
        &["daa_fault_tolerance", "--strategy=report_unreachable", "--agentId=a"],
        &["daa_fault_tolerance", "--strategy=circuit_breaker", "--agentId=ghost"],
    ];
    for args in refused {
        let (code, body) = quiet(&db, args);
        assert_eq!(code, 1, "{args:?}: {body}");
    }
    // Any call that reads the change log may reap the agent's expired lease first (the
    // deletion of its keys, the store's housekeeping, which no call asked for); a refused call
    // must have written nothing else.
    let store = SqliteStore::open(&db, std::sync::Arc::new(SystemClock)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (events, _) = runtime.block_on(store.changes("", before)).unwrap();
    let written: Vec<_> = events.iter().filter(|e| e.kind != EventKind::Delete).map(|e| &e.kv.key).collect();
    assert!(written.is_empty(), "a refused call wrote to the store: {written:?}");
    // The same pass does write when the arguments are good: the check above could fail.
    assert_eq!(quiet(&db, &["daa_fault_tolerance", "--strategy=heartbeat_monitor"]).0, 0);
    let (events, _) = runtime.block_on(store.changes("", before)).unwrap();
    assert!(
        events.iter().any(|e| e.kind == EventKind::Put),
        "the reconcile pass had nothing to write; the test proves nothing"
    );
}

/// `serve` on `db` with stdin closed: (exit code, stderr).
fn serve_once(db: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(bin()).arg("serve").arg("--db").arg(db).stdin(std::process::Stdio::null()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Bytes damaged in the middle of the file were found only by whichever call first read that
/// page; a server now refuses to start on them and says where to look.
#[test]
fn a_server_refuses_to_start_on_a_damaged_file() {
    let (_dir, db) = temp_db();
    let mut s = RawServer::spawn(db.to_str().unwrap());
    for i in 0..300 {
        let value = format!("{i:04}").repeat(500);
        s.ok("memory_usage", json!({"action": "store", "key": format!("k{i:04}"), "value": value, "namespace": "n"}));
    }
    assert!(s.finish().success());
    // With stdin closed the intact server ends at once (no initialize), but not for damage.
    let (_, stderr) = serve_once(&db);
    assert!(!stderr.contains("damaged"), "the intact file was refused: {stderr}");

    let mut bytes = std::fs::read(&db).unwrap();
    let middle = (bytes.len() / 2) / 4096 * 4096;
    bytes[middle..middle + 4096].fill(0x5A);
    std::fs::write(&db, bytes).unwrap();
    let (code, stderr) = serve_once(&db);
    assert!(matches!(code, Some(c) if c != 0), "{stderr}");
    assert!(stderr.contains("is damaged") && stderr.contains("doctor"), "{stderr}");
}

/// A heartbeat that raced a `swarm_destroy` used to survive it and be adopted by the next swarm
/// of the same id (20 of 60 rounds in the adversarial run). The race itself is timing; its
/// leftover is planted here as the race leaves it, a heartbeat key of an agent that is gone.
#[test]
fn a_recreated_swarm_does_not_adopt_keys_left_by_a_race_with_its_destroy() {
    let (_dir, db) = temp_db();
    assert_eq!(common::cli(&db, &["swarm_init", "mesh", "--swarmId=again"]).0, 0);
    assert_eq!(common::cli(&db, &["swarm_destroy", "--swarmId=again"]).0, 0);
    let orphan = "swarm/again/hb/agent-from-before";
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (?1, X'7B7D', 1, 1, 1, 0)",
            [orphan],
        )
        .unwrap();
    }
    assert_eq!(common::cli(&db, &["swarm_init", "mesh", "--swarmId=again"]).0, 0);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM kv WHERE key = ?1", [orphan], |r| r.get(0)).unwrap();
    assert_eq!(left, 0, "the new swarm adopted a key of the destroyed one");
}

/// At most 16 `swarm_monitor` calls run at once in a process (each holds a task for up to
/// 300 s); the next is refused as `busy` at once instead of piling up.
#[tokio::test]
async fn concurrent_swarm_monitors_are_capped() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    mcp.ok("swarm_init", json!({"topology": "star", "swarmId": "watched"})).await;
    let calls = (0..17).map(|_| mcp.call("swarm_monitor", json!({"duration": 3, "interval": 1})));
    let results = futures::future::join_all(calls).await;
    let busy: Vec<_> = results.iter().filter(|(is_error, _)| *is_error).map(|(_, body)| body.clone()).collect();
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert_eq!(busy[0]["error"]["code"], "busy", "{busy:?}");
    // Once they end, a monitor runs again.
    mcp.ok("swarm_monitor", json!({"duration": 0.1, "interval": 0.1})).await;
    mcp.close().await;
}

/// At most 64 `/events` streams stay open; the next gets 503, and a closed one frees its place.
#[tokio::test]
async fn event_streams_are_capped_and_a_closed_one_frees_its_place() {
    let (_dir, db) = temp_db();
    let server = HttpServer::on_db(db.to_str().unwrap());
    let client = reqwest::Client::new();
    let open = || client.get(server.url("/events")).send();
    let mut streams = Vec::new();
    for _ in 0..64 {
        let response = open().await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    assert_eq!(open().await.unwrap().status(), 503, "the 65th stream must be refused");
    drop(streams.pop());
    // The server notices the closed stream when it next writes to it: a commit makes it write.
    let mut i = 0;
    common::eventually("a place to free up", || {
        i += 1;
        let db = db.clone();
        let client = client.clone();
        let url = server.url("/events");
        async move {
            common::cli(&db, &["memory_usage", "store", &format!("poke{i}"), "x", "--namespace=poke"]);
            let response = client.get(url).send().await.map_err(|e| e.to_string())?;
            if response.status() == 200 {
                Ok(response)
            } else {
                Err(response.status().to_string())
            }
        }
    })
    .await;
}

/// The id of a request line built by [`RawServer::line`].
fn id_of(line: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].clone()
}

fn agent_status(status: &serde_json::Value, name: &str) -> String {
    let agents = status["agentHealth"].as_array().unwrap_or_else(|| panic!("{status}"));
    let agent = agents.iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("no {name}: {status}"));
    agent["status"].as_str().unwrap().to_string()
}

/// Another process holds the write lock (as an open `sqlite3` shell would) for twice the
/// message timeout: the server still answers pings and reads while its own write waits, nobody
/// is failed for the stall, `swarm_status` says the store is stalled, and the write lands after.
#[test]
fn a_locked_store_stops_neither_reads_nor_liveness() {
    let (_dir, db) = temp_db();
    let mut s = RawServer::spawn(db.to_str().unwrap());
    s.ok("swarm_init", json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 0.5, "messageTimeout": 2}));
    s.ok("agent_spawn", json!({"type": "coder", "name": "a"}));

    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = s.line(
        "tools/call",
        json!({"name": "memory_usage", "arguments": {"action": "store", "key": "k", "value": "v"}}),
    );
    s.send_line(&write);
    // The ping is answered first, while the lock is still held (`read` gives up after 60 s).
    let ping = s.line("ping", json!({}));
    s.send_line(&ping);
    let first = s.read();
    assert_eq!(first["id"], id_of(&ping), "the ping waited for the write: {first}");
    // Reads go on while the stall outlasts the 2 s message timeout, which would have run the
    // agent's lease out.
    let during = common::wait_until("a stall longer than the message timeout", || {
        let status = s.ok("swarm_status", json!({}));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        match status["storeStalledSinceMs"].as_i64() {
            Some(since) if now - since > 3_000 => Ok(status),
            _ => Err(status.to_string()),
        }
    });
    assert_ne!(agent_status(&during, "a"), "failed", "{during}");
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);

    let written = s.read_response(&id_of(&write));
    assert!(written["result"]["isError"] != true, "{written}");
    let after = s.ok("swarm_status", json!({}));
    assert_ne!(agent_status(&after, "a"), "failed", "the stall failed the agent: {after}");
    assert!(after.get("storeStalledSinceMs").is_none(), "{after}");
    let got = s.ok("memory_usage", json!({"action": "retrieve", "key": "k"}));
    assert_eq!(got["entry"]["value"], "v", "{got}");
}

/// libfaketime, which shifts a process's wall clock and (with `FAKETIME_DONT_FAKE_MONOTONIC`)
/// leaves its boot clock alone, as a host with a wrong system clock would.
fn libfaketime() -> String {
    let path = std::env::var("MESH_MCP_LIBFAKETIME")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".to_string());
    if !std::path::Path::new(&path).exists() {
        common::missing(&format!("libfaketime at {path} (apt-get install faketime)"));
    }
    path
}

/// `mesh-mcp call` in a process whose wall clock is `offset` off (libfaketime syntax: +2h, -1h).
fn skewed_call(db: &std::path::Path, offset: &str, args: &[&str]) -> serde_json::Value {
    let lib = libfaketime();
    let env = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", offset), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let (code, out) = common::cli_with(db, args, &env, b"");
    assert_eq!(code, 0, "{args:?} at {offset}: {out}");
    out
}

/// Issue 13, item 3: processes whose wall clocks are hours or days off neither fail an agent
/// (a write 2 h ahead used to reap every lease, a renewal 1 h behind renewed into the past) nor
/// delete a 1-day TTL entry (a write 2 days ahead did): leases run on the host's boot clock.
#[test]
fn a_process_with_a_wrong_wall_clock_fails_nobody_and_expires_nothing() {
    let (_dir, db) = temp_db();
    let mut s = RawServer::spawn(db.to_str().unwrap());
    s.ok("swarm_init", json!({"topology": "mesh", "swarmId": "c", "heartbeatInterval": 60, "messageTimeout": 600}));
    let token = s.ok("agent_spawn", json!({"type": "coder", "name": "a"}))["agentToken"].as_str().unwrap().to_string();
    s.ok("memory_usage", json!({"action": "store", "key": "day", "value": "kept", "ttl": 86400}));

    skewed_call(&db, "+2h", &["memory_usage", "--action=store", "--key=ahead", "--value=v"]);
    let renewed = format!("--agentToken={token}");
    skewed_call(&db, "-1h", &["daa_fault_tolerance", "--strategy=heartbeat", "--agentId=a", &renewed]);
    skewed_call(&db, "+2d", &["memory_usage", "--action=store", "--key=later", "--value=v"]);

    let status = s.ok("swarm_status", json!({}));
    assert_eq!(agent_status(&status, "a"), "active", "a skewed process failed the agent: {status}");
    let day = s.ok("memory_usage", json!({"action": "retrieve", "key": "day"}));
    assert_eq!(day["found"], true, "a skewed process expired a 1-day entry: {day}");
    // And the skewed processes saw the same time as everyone: their entries are not in the future.
    let later = s.ok("memory_usage", json!({"action": "retrieve", "key": "later"}));
    let stored = later["entry"]["storedAtMs"].as_i64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((stored - now).abs() < 60_000, "stored at {stored}, now {now}: {later}");
}

/// Issue 13, item 5: more slow sockets than the server has descriptors for (each sends half a
/// request head and stops) no longer lock a real client out: connections are capped under the
/// descriptor limit and a head must arrive within the header timeout (1 s here).
#[test]
fn slow_sockets_beyond_the_cap_do_not_lock_out_a_real_client() {
    let server = HttpServer::start_with_fd_limit(&[("MESH_HTTP_HEADER_TIMEOUT_MS", "1000")], 128);
    let addr = format!("127.0.0.1:{}", server.port());
    let slow: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            let mut tcp = TcpStream::connect(&addr).ok()?;
            tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n").ok()?;
            Some(tcp)
        })
        .collect();
    assert!(slow.len() > 100, "only {} slow sockets connected", slow.len());
    // Served once the slow sockets' time is up (KeepAlive reads for up to 30 s).
    let mut client = KeepAlive::connect(server.port());
    let body = client.call("swarm_init", json!({"topology": "mesh", "swarmId": "served"}));
    assert_eq!(body["swarmId"], "served", "{body}");
    drop(slow);
}

/// Issue 13, item 5: streamable sessions are capped; at the cap a new one gets 503, and an
/// ended one frees its place.
#[test]
fn sessions_beyond_the_cap_are_refused_until_one_ends() {
    let server = HttpServer::start(&["--max-sessions", "16"]);
    let mut clients: Vec<KeepAlive> = (0..16).map(|_| KeepAlive::connect(server.port())).collect();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"0"}}}"#;
    let post = |addr: &str| {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        );
        tcp.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        answer
    };
    let addr = format!("127.0.0.1:{}", server.port());
    let refused = post(&addr);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    clients.pop().unwrap().close();
    let accepted = post(&addr);
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
}

/// Issue 13, item 11: a database this process may only read (here: files 0444 in a 0555
/// directory, read by `nobody` when the test runs as root) is read, and writes are refused with
/// `read_only`; it used to fail every call.
#[test]
fn a_read_only_database_is_read_and_refuses_writes() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (dir, db) = temp_db();
    assert_eq!(common::cli(&db, &["swarm_init", "mesh", "--swarmId=ro"]).0, 0);
    let mode =
        |path: &std::path::Path, m: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            mode(&path, 0o444);
        }
    }
    mode(dir.path(), 0o555);
    let call = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.arg("--db").arg(&db).arg("call").args(args).env("MESH_LOG_LEVEL", "error");
        // SAFETY: getuid/setgid/setuid are async-signal-safe and touch only the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::getuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0) {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), body)
    };
    let (code, status) = call(&["swarm_status"]);
    assert_eq!((code, status["swarmId"].as_str()), (Some(0), Some("ro")), "{status}");
    let (code, refused) = call(&["memory_usage", "--action=store", "--key=k", "--value=v"]);
    assert_eq!((code, refused["error"]["code"].as_str()), (Some(1), Some("read_only")), "{refused}");
    mode(dir.path(), 0o755);
}

/// A tmpfs of a given size mounted on a fresh directory: a file system that really fills up.
/// Mounting needs root, which the test suite has (CI runs as root); it fails loudly otherwise.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mounting a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// On a full disk, writes are refused as such (`disk_full`, not an internal error), and deletes
/// still go through: they use space kept in reserve beside the database.
#[test]
fn deletes_work_on_a_full_disk() {
    let disk = Tmpfs::mount("8m");
    let db = disk.0.path().join("mesh.db");
    let (_values, value) = temp_db();
    std::fs::write(&value, "v".repeat(256 * 1024)).unwrap();
    let value_arg = format!("@{}", value.display());
    let mut stored = 0;
    let refusal = loop {
        let key = format!("k{stored}");
        let (code, out) = quiet(&db, &["memory_usage", "store", &key, &value_arg, "--namespace=n"]);
        if code != 0 {
            break out;
        }
        stored += 1;
        assert!(stored < 64, "8 MiB never filled up");
    };
    assert_eq!(refusal["error"]["code"], "disk_full", "{refusal}");
    assert!(stored > 0, "the first store already failed: {refusal}");
    for key in ["k0", "k1"] {
        let (code, out) = quiet(&db, &["memory_usage", "delete", key, "--namespace=n"]);
        assert_eq!((code, &out["found"]), (0, &json!(true)), "deleting {key} on a full disk: {out}");
    }
    let (code, out) = quiet(&db, &["memory_usage", "retrieve", "k2", "--namespace=n"]);
    assert_eq!((code, out["found"].clone()), (0, json!(true)), "the rest is intact: {out}");
}
