//! Failure detection, failover, recovery and circuit breakers through the real binary, with
//! short timeouts and real time. The tests wait for each effect (a failover, a half-open
//! breaker) by polling for it, so a loaded machine makes them slower, not flaky; the figures
//! themselves go in BENCHMARKS.md.

mod common;

use std::path::Path;

use common::{cli, eventually, temp_db, wait_until, Mcp};
use serde_json::{json, Value};

struct Swarm {
    mcp: Mcp,
    tokens: Vec<(String, String)>,
    ids: Vec<(String, String)>,
}

impl Swarm {
    async fn start(db: &str, topology: &str, settings: Value, names: &[&str]) -> Swarm {
        let mcp = Mcp::stdio(db).await;
        let mut init = json!({"topology": topology, "swarmId": "ft", "maxAgents": 20});
        init.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
        mcp.ok("swarm_init", init).await;
        let (mut tokens, mut ids) = (Vec::new(), Vec::new());
        for name in names {
            let kind = if *name == "lead" { "coordinator" } else { "coder" };
            let a = mcp.ok("agent_spawn", json!({"type": kind, "name": name})).await;
            tokens.push((name.to_string(), a["agentToken"].as_str().unwrap().to_string()));
            ids.push((name.to_string(), a["agentId"].as_str().unwrap().to_string()));
        }
        Swarm { mcp, tokens, ids }
    }
    fn token(&self, name: &str) -> &str {
        &self.tokens.iter().find(|(n, _)| n == name).unwrap().1
    }
    fn id(&self, name: &str) -> &str {
        &self.ids.iter().find(|(n, _)| n == name).unwrap().1
    }
    async fn heartbeat(&self, name: &str) -> Value {
        self.mcp
            .ok(
                "daa_fault_tolerance",
                json!({"strategy": "heartbeat", "agentId": name, "agentToken": self.token(name)}),
            )
            .await
    }
    async fn agent(&self, name: &str) -> Value {
        let list = self.mcp.ok("agent_list", json!({})).await;
        list["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap().clone()
    }
    async fn monitor(&self, name: &str) -> Value {
        self.mcp.ok("daa_fault_tolerance", json!({"agentId": name})).await["agents"][0].clone()
    }
}

#[tokio::test]
async fn a_silent_agent_is_failed_over_within_ttl_plus_one_interval_and_recovers_with_a_sync() {
    let (_dir, db) = temp_db();
    // Heartbeats every second expected; a lease of 2 s.
    let s = Swarm::start(
        db.to_str().unwrap(),
        "ring",
        json!({"heartbeatInterval": 1, "messageTimeout": 2}),
        &["lead", "a", "b", "c"],
    )
    .await;
    for name in ["lead", "a", "b", "c"] {
        s.heartbeat(name).await;
    }
    // While c is still live, lead leaves it a message; c never reads it before going silent.
    s.mcp
        .ok("daa_communication", json!({"from": "lead", "to": "c", "message": {"n": 1}, "agentToken": s.token("lead")}))
        .await;
    // The others keep calling; c stays silent. Nobody asks the fault tool anything: the server's
    // own sweep must fail c over (its status turns failed when its lease runs out; the failover
    // then drops its links).
    let c = eventually("c to be failed over", async || {
        for name in ["lead", "a", "b"] {
            s.heartbeat(name).await;
        }
        let c = s.agent("c").await;
        if c["status"] == "failed" && c["links"].as_array().is_some_and(Vec::is_empty) {
            Ok(c)
        } else {
            Err(c)
        }
    })
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert!(c["links"].as_array().unwrap().is_empty(), "failover dropped c's links: {c}");
    let status = s.mcp.ok("swarm_status", json!({})).await;
    assert_eq!(status["agents"]["failed"], 1);
    assert_eq!(status["partitions"], 1, "ring lead-a-b-c minus c is the path lead-a-b: {status}");
    assert!(
        status["alerts"].as_array().unwrap().iter().any(|a| a["metric"] == "nodeFailureRate"),
        "1 of 4 failed > 0.2: {status}"
    );

    let m = s.monitor("c").await;
    let failure = &m["failure"];
    assert_eq!(failure["cause"], "lease_expired", "{m}");
    let detection = failure["detectionMs"].as_i64().unwrap();
    assert!((2_000..=3_000).contains(&detection), "detected within TTL (2 s) + one interval (1 s): {detection} ms");
    assert_eq!(failure["linksDropped"].as_array().unwrap().len(), 2);

    // A failed agent cannot act until it recovers, and nothing is changed by the refusal.
    let refused =
        s.mcp.err("daa_communication", json!({"action": "receive", "agentId": "c", "agentToken": s.token("c")})).await;
    assert_eq!(refused, "agent_failed");
    // Messages to it are refused too (no live route), counting against its breaker.
    assert_eq!(
        s.mcp
            .err("daa_communication", json!({"from": "a", "to": "c", "message": {"n": 2}, "agentToken": s.token("a")}))
            .await,
        "no_route"
    );

    // Another agent's token does not bring c back.
    assert_eq!(
        s.mcp
            .err("daa_fault_tolerance", json!({"strategy": "recover", "agentId": "c", "agentToken": s.token("a")}))
            .await,
        "unauthorized"
    );
    let back = s
        .mcp
        .ok("daa_fault_tolerance", json!({"strategy": "recover", "agentId": "c", "agentToken": s.token("c")}))
        .await;
    let r = &back["recovery"];
    assert_eq!(r["transitions"], json!(["failed→recovering", "recovering→active"]));
    assert_eq!(r["sync"]["mailbox"]["pending"], 1, "the unacknowledged message waited for it: {r}");
    assert_eq!(r["sync"]["topology"]["linksDropped"].as_array().unwrap().len(), 2);
    assert!(r["sync"]["sinceRevision"].as_i64().unwrap() > 0);
    assert_eq!(r["links"].as_array().unwrap().len(), 2, "rewired into the ring: {r}");
    assert_eq!(back["agents"][0]["status"], "active");
    let got =
        s.mcp.ok("daa_communication", json!({"action": "receive", "agentId": "c", "agentToken": s.token("c")})).await;
    assert_eq!(got["messages"][0]["message"]["n"], 1);
    let m = s.monitor("c").await;
    assert_eq!((m["failures"].as_u64(), m["recoveries"].as_u64()), (Some(1), Some(1)), "{m}");
    // Recovering a live agent is refused.
    assert_eq!(
        s.mcp
            .err("daa_fault_tolerance", json!({"strategy": "recover", "agentId": "c", "agentToken": s.token("c")}))
            .await,
        "conflict"
    );
    s.mcp.close().await;
}

#[tokio::test]
async fn a_majority_of_live_peers_fails_an_agent_and_a_minority_only_degrades_it() {
    let (_dir, db) = temp_db();
    let s = Swarm::start(
        db.to_str().unwrap(),
        "mesh",
        json!({"heartbeatInterval": 60, "messageTimeout": 600}),
        &["lead", "a", "b", "c", "x"],
    )
    .await;
    for name in ["lead", "a", "b", "c", "x"] {
        s.heartbeat(name).await;
    }
    let report = |by: &'static str| json!({"strategy": "report_unreachable", "agentId": "x", "reporterId": by, "agentToken": s.token(by)});
    // Impersonation: a report with another agent's token is refused and records nothing.
    assert_eq!(
        s.mcp
            .err(
                "daa_fault_tolerance",
                json!({"strategy": "report_unreachable", "agentId": "x", "reporterId": "a", "agentToken": s.token("b")})
            )
            .await,
        "unauthorized"
    );
    assert_eq!(s.monitor("x").await["status"], "active");

    let first = s.mcp.ok("daa_fault_tolerance", report("lead")).await;
    assert_eq!(first["report"]["needed"], 3, "a majority of x's 4 live peers: {first}");
    assert_eq!(first["report"]["confirmed"], false);
    let m = s.monitor("x").await;
    assert_eq!(m["status"], "degraded", "{m}");
    assert!(m["degradedReasons"][0].as_str().unwrap().contains("reported unreachable"), "{m}");
    // A repeated report from the same peer does not count twice.
    assert_eq!(
        s.mcp.ok("daa_fault_tolerance", report("lead")).await["report"]["reporters"].as_array().unwrap().len(),
        1
    );
    s.mcp.ok("daa_fault_tolerance", report("a")).await;
    let third = s.mcp.ok("daa_fault_tolerance", report("b")).await;
    assert_eq!(third["report"]["confirmed"], true, "{third}");
    assert_eq!(third["failedOver"][0]["cause"], "peer_quorum");
    assert_eq!(s.agent("x").await["status"], "failed");
    let failover = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "failover_recovery", "agentId": "x"})).await;
    assert_eq!(failover["failover"]["cause"], "peer_quorum");
    // x's own call is refused: its lease was revoked.
    assert_eq!(
        s.mcp
            .err("daa_communication", json!({"from": "x", "to": "a", "message": {}, "agentToken": s.token("x")}))
            .await,
        "agent_failed"
    );
    let diag = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "diagnose"})).await;
    let critical: Vec<_> =
        diag["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "critical").collect();
    assert_eq!(critical.len(), 1, "{diag}");
    assert_eq!(critical[0]["agentId"], s.id("x"));
    assert_eq!(diag["figures"]["nodeFailureRate"], 0.2);
    s.mcp.close().await;
}

#[tokio::test]
async fn the_circuit_breaker_opens_after_the_threshold_and_half_opens_for_one_probe() {
    let (_dir, db) = temp_db();
    let s = Swarm::start(
        db.to_str().unwrap(),
        "mesh",
        json!({"heartbeatInterval": 60, "messageTimeout": 600, "circuitBreakerThreshold": 2, "recoveryTimeout": 1}),
        &["lead", "a", "b", "c", "d"],
    )
    .await;
    for name in ["lead", "a", "b", "c", "d"] {
        s.heartbeat(name).await;
    }
    let report = |by: &'static str| json!({"strategy": "report_unreachable", "agentId": "d", "reporterId": by, "agentToken": s.token(by)});
    s.mcp.ok("daa_fault_tolerance", report("lead")).await;
    let breaker = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "circuit_breaker", "agentId": "d"})).await
        ["breaker"]
        .clone();
    assert_eq!(
        (breaker["state"].as_str(), breaker["consecutiveFailures"].as_u64()),
        (Some("closed"), Some(1)),
        "{breaker}"
    );
    s.mcp.ok("daa_fault_tolerance", report("a")).await;
    let breaker = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "circuit_breaker", "agentId": "d"})).await
        ["breaker"]
        .clone();
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert_eq!(breaker["trips"], 1);
    let send = json!({"from": "b", "to": "d", "message": {"probe": true}, "agentToken": s.token("b")});
    assert_eq!(s.mcp.err("daa_communication", send.clone()).await, "circuit_open");
    // A broadcast skips d and says why, reaching the others.
    let all = s
        .mcp
        .ok("daa_communication", json!({"from": "b", "to": "all", "message": {}, "agentToken": s.token("b")}))
        .await;
    assert_eq!(all["delivered"].as_array().unwrap().len(), 3);
    assert!(all["skipped"][0]["reason"].as_str().unwrap().contains("circuit breaker"), "{all}");
    // The recovery timeout (1 s) runs out.
    let breaker = eventually("the breaker to half-open", async || {
        let breaker = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "circuit_breaker", "agentId": "d"})).await
            ["breaker"]
            .clone();
        if breaker["state"] == "open" {
            Err(breaker)
        } else {
            Ok(breaker)
        }
    })
    .await;
    assert_eq!(breaker["state"], "half_open");
    // The probe goes through and closes the breaker.
    s.mcp.ok("daa_communication", send.clone()).await;
    let breaker = s.mcp.ok("daa_fault_tolerance", json!({"strategy": "circuit_breaker", "agentId": "d"})).await
        ["breaker"]
        .clone();
    assert_eq!(
        (breaker["state"].as_str(), breaker["consecutiveFailures"].as_u64()),
        (Some("closed"), Some(0)),
        "{breaker}"
    );
    s.mcp.close().await;
}

#[tokio::test]
async fn failures_and_recoveries_survive_a_restart() {
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let s = Swarm::start(db, "star", json!({"heartbeatInterval": 0.2, "messageTimeout": 1}), &["lead", "a"]).await;
    s.heartbeat("lead").await;
    s.heartbeat("a").await;
    let token_a = s.token("a").to_string();
    s.mcp.close().await;
    // Both agents go silent while no server runs (another process, which runs no sweep, sees
    // their leases run out); the next server fails them over on its own.
    wait_until("both leases to run out", || {
        let (code, list) = cli(Path::new(db), &["agent_list", r#"{"status": "failed"}"#]);
        if code == 0 && list["count"] == 2 {
            Ok(())
        } else {
            Err(list)
        }
    });
    let mcp = Mcp::stdio(db).await;
    let failed = mcp.ok("agent_list", json!({"status": "failed"})).await;
    assert_eq!(failed["count"], 2, "{failed}");
    let back =
        mcp.ok("daa_fault_tolerance", json!({"strategy": "heartbeat", "agentId": "a", "agentToken": token_a})).await;
    assert_eq!(
        back["recovery"]["transitions"][1], "recovering→active",
        "a heartbeat from a failed agent recovers it: {back}"
    );
    assert_eq!(back["recovery"]["failure"]["cause"], "lease_expired");
    mcp.close().await;
}

#[tokio::test]
async fn bad_fault_tolerance_input_is_refused_and_changes_nothing() {
    let (_dir, db) = temp_db();
    let s = Swarm::start(db.to_str().unwrap(), "mesh", json!({}), &["lead", "a"]).await;
    let before = s.mcp.ok("swarm_status", json!({})).await["revision"].clone();
    assert_eq!(
        s.mcp
            .err("daa_fault_tolerance", json!({"strategy": "heartbeat", "agentId": "nobody", "agentToken": "x"}))
            .await,
        "not_found"
    );
    assert_eq!(
        s.mcp.err("daa_fault_tolerance", json!({"strategy": "heartbeat", "agentId": "a"})).await,
        "unauthorized"
    );
    assert_eq!(s.mcp.err("daa_fault_tolerance", json!({"strategy": "circuit_breaker"})).await, "invalid_argument");
    assert_eq!(
        s.mcp.err("daa_fault_tolerance", json!({"strategy": "explode", "agentId": "a"})).await,
        "invalid_argument"
    );
    assert_eq!(
        s.mcp
            .err(
                "daa_fault_tolerance",
                json!({"strategy": "report_unreachable", "agentId": "a", "reporterId": "a", "agentToken": s.token("a")})
            )
            .await,
        "invalid_argument"
    );
    assert_eq!(
        s.mcp.err("daa_fault_tolerance", json!({"strategy": "report_unreachable", "agentId": "a"})).await,
        "invalid_argument"
    );
    assert_eq!(s.mcp.ok("swarm_status", json!({})).await["revision"], before);
    s.mcp.close().await;
}

#[tokio::test]
async fn a_silent_leader_is_failed_over_the_quorum_shrinks_a_candidate_leads_and_the_leader_returns_synced() {
    let (_dir, db) = temp_db();
    let s = Swarm::start(
        db.to_str().unwrap(),
        "mesh",
        json!({"heartbeatInterval": 1, "messageTimeout": 2}),
        &["lead", "a", "b", "c", "d"],
    )
    .await;
    let elect = |name: &str| json!({"action": "elect", "agentId": name, "agentToken": s.token(name), "swarmId": "ft"});
    assert_eq!(s.mcp.ok("daa_consensus", elect("lead")).await["leader"]["term"], 1);
    assert_eq!(s.mcp.ok("daa_consensus", elect("a")).await["elected"], false, "a stands as a candidate");
    let p = s
        .mcp
        .ok("daa_consensus", json!({"agents": "all", "proposal": "ship v2", "threshold": 0.75, "swarmId": "ft"}))
        .await;
    assert_eq!(p["proposal"]["tally"]["needed"], 4, "ceil(0.75 × 5): {p}");
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    let vote = |name: &str| json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": name, "agentToken": s.token(name)});
    s.mcp.ok("daa_consensus", vote("a")).await;
    s.mcp.ok("daa_consensus", vote("b")).await;
    // lead goes silent; the others keep calling. Only the server's sweep acts on the failure.
    let (status, leader) = eventually("a to take over from the failed leader", async || {
        for name in ["a", "b", "c", "d"] {
            s.heartbeat(name).await;
        }
        let leader = s.mcp.ok("daa_consensus", json!({"action": "leader", "swarmId": "ft"})).await;
        let status = s.mcp.ok("daa_consensus", json!({"action": "status", "proposalId": pid})).await;
        if leader["leader"]["name"] == "a" && status["proposal"]["tally"]["effectiveVoters"] == 4 {
            Ok((status, leader))
        } else {
            Err(json!({"leader": leader, "status": status}))
        }
    })
    .await;
    let tally = &status["proposal"]["tally"];
    assert_eq!(
        (tally["effectiveVoters"].as_u64(), tally["needed"].as_u64()),
        (Some(4), Some(3)),
        "the quorum shrank: {status}"
    );
    assert_eq!(status["proposal"]["status"], "open");
    assert_eq!(
        (leader["leader"]["name"].as_str(), leader["leader"]["term"].as_u64()),
        (Some("a"), Some(2)),
        "{leader}"
    );
    let m = s.monitor("lead").await;
    assert!(m["failure"]["detectionMs"].as_i64().unwrap() <= 3_000, "within TTL + one interval: {m}");
    // c's vote now decides it: 3 of the 4 live voters.
    let decided = s.mcp.ok("daa_consensus", vote("c")).await;
    assert_eq!(decided["proposal"]["status"], "approved", "{decided}");
    // The old leader comes back: refused until it recovers, then synced with what it missed.
    assert_eq!(
        s.mcp
            .err(
                "daa_consensus",
                json!({"proposal": "mine", "agentId": "lead", "agentToken": s.token("lead"), "term": 1})
            )
            .await,
        "agent_failed"
    );
    let back = s
        .mcp
        .ok("daa_fault_tolerance", json!({"strategy": "recover", "agentId": "lead", "agentToken": s.token("lead")}))
        .await;
    let sync = &back["recovery"]["sync"];
    assert_eq!(sync["decisionsMissed"], 1, "{sync}");
    assert_eq!(sync["decisions"][0]["proposalId"], pid.as_str());
    assert!(!back["recovery"]["links"].as_array().unwrap().is_empty());
    // Its stale term is fenced off now that it is live again.
    assert_eq!(
        s.mcp
            .err(
                "daa_consensus",
                json!({"proposal": "mine", "agentId": "lead", "agentToken": s.token("lead"), "term": 1})
            )
            .await,
        "stale_term"
    );
    s.mcp.close().await;
}
