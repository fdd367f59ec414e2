//! Measured metrics end to end: counts go up by exactly what a test did, whichever process did
//! it (MCP server, CLI, a server that has exited), `performance_report` says when there is no
//! data and refuses bad input, and `swarm_monitor` reports progress and stops when cancelled.

mod common;

use std::time::Duration;

use common::{cli, eventually, temp_db, wait_until, Mcp, RawServer};
use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, ClientRequest, ProgressNotificationParam, Request,
};
use rmcp::service::{NotificationContext, PeerRequestOptions};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn tool<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["tools"].as_array()?.iter().find(|t| t["tool"] == name)
}

async fn spawn(mcp: &Mcp, name: &str) -> String {
    let a = mcp.ok("agent_spawn", json!({"type": "coder", "name": name})).await;
    a["agentToken"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn counts_go_up_by_exactly_what_the_test_did() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    let none = mcp.ok("performance_report", json!({"timeframe": "1h"})).await;
    assert_eq!(none["hasData"], false, "{none}");
    assert!(none["note"].as_str().unwrap().contains("no data"), "{none}");
    assert!(none["toolCalls"]["latency"].get("p50Ms").is_none(), "no latency without calls: {none}");

    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "m"})).await;
    let ta = spawn(&mcp, "a").await;
    let tb = spawn(&mcp, "b").await;
    assert_eq!(mcp.err("agent_spawn", json!({"type": "coder", "name": "bad name!"})).await, "invalid_argument");
    mcp.ok("daa_communication", json!({"from": "a", "to": "b", "message": {"n": 1}, "agentToken": ta})).await;
    mcp.ok("daa_communication", json!({"from": "a", "to": "b", "message": {"n": 2}, "agentToken": ta})).await;
    let got = mcp.ok("daa_communication", json!({"action": "receive", "agentId": "b", "agentToken": tb})).await;
    // A second receive hands the same two out again: redeliveries, not new deliveries.
    mcp.ok("daa_communication", json!({"action": "receive", "agentId": "b", "agentToken": tb})).await;
    let first = got["messages"][0]["messageId"].as_str().unwrap();
    mcp.ok("daa_communication", json!({"action": "ack", "agentId": "b", "agentToken": tb, "messageIds": [first]}))
        .await;

    let r = mcp.ok("performance_report", json!({"timeframe": "1h", "format": "detailed"})).await;
    // The earlier report counts as one call; this one is not counted in itself.
    assert_eq!(r["hasData"], true, "{r}");
    assert!(r.get("note").is_none(), "{r}");
    assert_eq!(r["toolCalls"]["calls"], 10, "{r}");
    assert_eq!(r["toolCalls"]["errors"], 1, "{r}");
    assert_eq!(r["toolCalls"]["errorRate"], 0.1, "{r}");
    let spawns = tool(&r, "agent_spawn").unwrap();
    assert_eq!((spawns["calls"].as_u64(), spawns["errors"].as_u64()), (Some(3), Some(1)), "{r}");
    assert_eq!(tool(&r, "daa_communication").unwrap()["calls"], 5, "{r}");
    assert_eq!(tool(&r, "swarm_init").unwrap()["calls"], 1, "{r}");
    assert_eq!(tool(&r, "performance_report").unwrap()["calls"], 1, "{r}");
    let p50 = r["toolCalls"]["latency"]["p50Ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= r["toolCalls"]["latency"]["p99Ms"].as_f64().unwrap(), "{r}");
    let m = &r["messages"];
    assert_eq!(
        (m["sent"].as_u64(), m["delivered"].as_u64(), m["acknowledged"].as_u64()),
        (Some(2), Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(m["pendingNow"], 1, "{r}");
    assert!(m["deliveryLatency"]["p50Ms"].as_f64().is_some(), "{r}");
    assert!(r["store"]["writes"].as_u64().unwrap() >= 7, "every successful write tool commits: {r}");
    assert!(r["store"]["reads"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["processCount"], 1, "{r}");
    let me = &r["processes"][0];
    assert_eq!(me["toolCalls"], 10, "{r}");
    assert!(me["rssBytes"].as_u64().unwrap() > 0, "{r}");

    let md = mcp.ok("performance_report", json!({"format": "markdown"})).await;
    let text = md["markdown"].as_str().unwrap();
    assert!(text.contains("| tool calls (errors) | 11 (1) |"), "{text}");
    assert!(text.contains("| messages sent / delivered / acknowledged | 2 / 2 / 1 |"), "{text}");
    let summary = mcp.ok("performance_report", json!({})).await;
    assert!(summary.get("tools").is_none() && summary.get("processes").is_none(), "summary stays short: {summary}");
    mcp.close().await;
}

#[tokio::test]
async fn consensus_and_task_figures_come_from_state() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "c"})).await;
    let ta = spawn(&mcp, "a").await;
    let tb = spawn(&mcp, "b").await;
    let p = mcp
        .ok("daa_consensus", json!({"action": "propose", "agentId": "a", "agentToken": ta, "proposal": {"x": 1}}))
        .await;
    let id = p["proposal"]["proposalId"].as_str().unwrap_or_else(|| panic!("{p}")).to_string();
    for (agent, token) in [("a", &ta), ("b", &tb)] {
        mcp.ok(
            "daa_consensus",
            json!({"action": "vote", "proposalId": id, "agentId": agent, "agentToken": token, "vote": "approve"}),
        )
        .await;
    }
    mcp.ok("daa_consensus", json!({"action": "propose", "agentId": "a", "agentToken": ta, "proposal": {"x": 2}})).await;
    mcp.ok("task_orchestrate", json!({"task": "build", "swarmId": "c"})).await;
    let r = mcp.ok("performance_report", json!({"timeframe": "24h"})).await;
    let c = &r["consensus"];
    assert_eq!(
        (c["proposals"].as_u64(), c["decisions"].as_u64(), c["approved"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(c["agreementRate"], 1.0, "{r}");
    assert_eq!(c["openNow"], 1, "{r}");
    assert!(c["decisionLatencyP50Ms"].as_i64().unwrap() >= 0, "{r}");
    assert_eq!(r["tasks"]["created"], 1, "{r}");
    let by_state: u64 = r["tasks"]["byStateNow"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_state, 1, "{r}");
    mcp.close().await;
}

#[tokio::test]
async fn every_process_on_one_database_contributes() {
    let (_dir, db) = temp_db();
    // A server that exits writes its last sample at shutdown.
    let mut first = RawServer::spawn(db.to_str().unwrap());
    let owner = first.ok("swarm_init", json!({"topology": "mesh", "swarmId": "shared"}))["ownerToken"].clone();
    first.ok("agent_spawn", json!({"type": "coder", "name": "a"}));
    assert!(first.finish().success());
    // Each CLI call writes its sample before it exits.
    let owner = format!("--ownerToken={}", owner.as_str().unwrap());
    assert_eq!(cli(&db, &["agent_spawn", "--type", "coder", "--name", "b", &owner]).0, 0);
    assert_eq!(cli(&db, &["swarm_status", "--swarmId", "shared"]).0, 0);
    let second = Mcp::stdio(db.to_str().unwrap()).await;
    second.ok("agent_list", json!({})).await;
    let r = second.ok("performance_report", json!({"timeframe": "1h", "format": "json"})).await;
    assert_eq!(r["processCount"], 4, "the exited server, two CLI calls and this server: {r}");
    assert_eq!(r["toolCalls"]["calls"], 5, "{r}");
    assert_eq!(tool(&r, "agent_spawn").unwrap()["calls"], 2, "{r}");
    for name in ["swarm_init", "swarm_status", "agent_list"] {
        assert_eq!(tool(&r, name).unwrap()["calls"], 1, "{name}: {r}");
    }
    // The CLI reads the same series.
    let (code, from_cli) = cli(&db, &["performance_report", "1h"]);
    assert_eq!(code, 0);
    // The running server's two calls are not written yet (its sample is due in 10 s); this CLI
    // process counts itself, with nothing recorded before its report.
    assert_eq!(from_cli["toolCalls"]["calls"], 4, "{from_cli}");
    assert_eq!(from_cli["processCount"], 4, "{from_cli}");
    second.close().await;
}

#[tokio::test]
async fn bad_input_is_refused() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "b"})).await;
    for (tool, args) in [
        ("performance_report", json!({"timeframe": "2h"})),
        ("performance_report", json!({"format": "xml"})),
        ("performance_report", json!({"window": "1h"})),
        ("swarm_monitor", json!({"duration": 300.5})),
        ("swarm_monitor", json!({"interval": 0.05, "duration": 1})),
        ("swarm_monitor", json!({"interval": 2, "duration": 1})),
        ("swarm_monitor", json!({"metrics": ["latency"]})),
        ("swarm_monitor", json!({"metrics": []})),
    ] {
        assert_eq!(mcp.err(tool, args.clone()).await, "invalid_argument", "{tool} {args}");
    }
    assert_eq!(
        mcp.err("swarm_monitor", json!({"swarmId": "nope", "duration": 0.1, "interval": 0.1})).await,
        "not_found"
    );
    mcp.close().await;
}

/// A client that forwards progress notifications to a channel.
#[derive(Clone)]
struct ProgressClient(mpsc::UnboundedSender<ProgressNotificationParam>);

impl ClientHandler for ProgressClient {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send(params);
    }
}

/// How often the cancelled monitor below samples.
const MONITOR_INTERVAL: Duration = Duration::from_millis(200);

#[tokio::test]
async fn swarm_monitor_reports_progress_and_stops_when_cancelled() {
    let (_dir, db) = temp_db();
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.args(["serve", "--db", db.to_str().unwrap()]);
    let (transport, _) =
        rmcp::transport::TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn().unwrap();
    let (tx, mut progress) = mpsc::unbounded_channel();
    let client = ProgressClient(tx).serve(transport).await.expect("MCP initialize");
    let call = |name: &str, args: Value| {
        let params = CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().unwrap().clone());
        ClientRequest::CallToolRequest(Request::new(params))
    };
    let peer = client.peer().clone();
    peer.send_request(call("swarm_init", json!({"topology": "mesh", "swarmId": "w"}))).await.unwrap();
    peer.send_request(call("agent_spawn", json!({"type": "coder"}))).await.unwrap();

    // The longest run allowed; it must end long before that once cancelled.
    let handle = peer
        .send_cancellable_request(
            call("swarm_monitor", json!({"interval": MONITOR_INTERVAL.as_secs_f64(), "duration": 300})),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let p = tokio::time::timeout(Duration::from_secs(60), progress.recv())
            .await
            .expect("progress within a minute")
            .unwrap();
        assert_eq!(p.progress_token, handle.progress_token);
        seen.push(p);
    }
    assert_eq!(seen.iter().map(|p| p.progress).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
    assert_eq!(seen[0].total, Some(1501.0));
    assert!(seen[0].message.as_deref().unwrap().contains("1 agents"), "{:?}", seen[0].message);

    peer.notify_cancelled(CancelledNotificationParam::new(Some(handle.id.clone()), Some("test is done".into())))
        .await
        .unwrap();
    // The monitor's call is counted when it returns: it has returned once the report shows it.
    let report = async || {
        let result = peer.send_request(call("performance_report", json!({"format": "json"}))).await.unwrap();
        let rmcp::model::ServerResult::CallToolResult(result) = result else { panic!("unexpected {result:?}") };
        common::decode(&result).1
    };
    eventually("swarm_monitor to return after cancellation", async || {
        let report = report().await;
        if tool(&report, "swarm_monitor").is_some_and(|t| t["calls"] == 1) {
            Ok(())
        } else {
            Err(report)
        }
    })
    .await;
    // What it sent before returning came down the pipe ahead of that report; one more round trip
    // lets the client hand all of it over.
    report().await;
    let before = std::iter::from_fn(|| progress.try_recv().ok()).count();
    // No more samples after it stopped: none within three of its intervals.
    let late = tokio::time::timeout(3 * MONITOR_INTERVAL, progress.recv()).await;
    assert!(late.is_err(), "progress went on after the stop (had {before} more): {late:?}");
    client.cancel().await.unwrap();
}

#[test]
fn a_running_server_writes_its_sample_on_the_timer() {
    let (_dir, db) = temp_db();
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_METRICS_FLUSH_SECS", "0.2")]);
    server.ok("swarm_init", json!({"topology": "mesh", "swarmId": "t"}));
    server.ok("agent_spawn", json!({"type": "coder"}));
    // The server keeps running; another process sees its calls once a sample is written.
    let r = wait_until("a sample from the running server", || {
        let (code, r) = cli(&db, &["performance_report", "1h", "json"]);
        assert_eq!(code, 0, "{r}");
        if tool(&r, "agent_spawn").is_some_and(|t| t["calls"] == 1) {
            Ok(r)
        } else {
            Err(r)
        }
    });
    // (Earlier rounds of the wait were CLI processes of their own, counted too.)
    assert_eq!(tool(&r, "swarm_init").unwrap()["calls"], 1, "{r}");
    assert!(server.finish().success());
}
