//! `daa_consensus` through the real binary: quorum, bft and pbft at several sizes with Byzantine
//! voters, impersonation, expiry, the read-only rule, leader election with fencing, a restart in
//! the middle of a proposal, and bad input.

mod common;

use common::{eventually, temp_db, EtcdCluster, Mcp};
use serde_json::{json, Value};

/// An agent as the tests drive it.
#[derive(Clone)]
struct Agent {
    name: String,
    id: String,
    token: String,
}

/// A swarm of `n` agents named `a0..`, with extra swarm_init settings.
async fn swarm(mcp: &Mcp, swarm_id: &str, n: usize, settings: Value) -> Vec<Agent> {
    let mut init = json!({"topology": if n > 10 { "star" } else { "mesh" }, "swarmId": swarm_id, "maxAgents": n});
    init.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    mcp.ok("swarm_init", init).await;
    let mut agents = Vec::new();
    for i in 0..n {
        let a = mcp.ok("agent_spawn", json!({"type": "coder", "name": format!("a{i}"), "swarmId": swarm_id})).await;
        agents.push(Agent {
            name: format!("a{i}"),
            id: a["agentId"].as_str().unwrap().into(),
            token: a["agentToken"].as_str().unwrap().into(),
        });
    }
    agents
}

async fn vote(mcp: &Mcp, who: &Agent, proposal: &str, value: &str) -> Value {
    mcp.ok(
        "daa_consensus",
        json!({"action": "vote", "proposalId": proposal, "vote": value, "agentId": who.id, "agentToken": who.token}),
    )
    .await
}

async fn status(mcp: &Mcp, swarm: &str, proposal: &str) -> Value {
    mcp.ok("daa_consensus", json!({"action": "status", "swarmId": swarm, "proposalId": proposal})).await
}

async fn receive(mcp: &Mcp, who: &Agent) -> Vec<Value> {
    let got = mcp
        .ok("daa_communication", json!({"action": "receive", "agentId": who.id, "agentToken": who.token, "limit": 100}))
        .await;
    got["messages"].as_array().unwrap().clone()
}

/// Keep the `live` agents calling until `n` agents of `swarm` show as failed: the others went
/// silent and their liveness leases run out.
async fn until_failed(mcp: &Mcp, swarm: &str, live: &[&Agent], n: usize) {
    eventually(&format!("{n} agents of {swarm} to fail"), async || {
        for r in live {
            receive(mcp, r).await;
        }
        let failed = mcp.ok("agent_list", json!({"swarmId": swarm, "status": "failed"})).await;
        if failed["count"] == n {
            Ok(())
        } else {
            Err(failed)
        }
    })
    .await
}

fn names(agents: &[Agent]) -> Value {
    Value::from(agents.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
}

/// Byzantine voters first (equivocating or voting wrongly), then honest approvals until decided.
async fn run_with_byzantine(mcp: &Mcp, agents: &[Agent], proposal: &str, byzantine: usize, equivocate: bool) -> Value {
    for b in &agents[..byzantine] {
        if equivocate {
            vote(mcp, b, proposal, "approve").await;
            let out = vote(mcp, b, proposal, "reject").await;
            assert_eq!(out["effect"], "equivocated", "{out}");
        } else {
            vote(mcp, b, proposal, "reject").await;
        }
    }
    let mut last = Value::Null;
    for honest in &agents[byzantine..] {
        last = vote(mcp, honest, proposal, "approve").await;
        if last["proposal"]["status"] != "open" {
            break;
        }
    }
    last["proposal"].clone()
}

#[tokio::test]
async fn quorum_decides_at_4_7_and_100_voters_with_up_to_f_byzantine_voters() {
    let mcp = Mcp::stdio(":memory:").await;
    for n in [4usize, 7, 100] {
        let sid = format!("q{n}");
        let agents = swarm(&mcp, &sid, n, json!({})).await;
        let f = (n - 1) / 3;
        for byzantine in [0, f] {
            for equivocate in [false, true] {
                let p = mcp.ok("daa_consensus", json!({"swarmId": sid, "agents": "all", "proposal": {"n": n, "b": byzantine, "eq": equivocate}, "threshold": 0.6})).await;
                let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
                // The rounds run in order: wrong voters (the first f agents) before equivocators (the
                // last f), so no voter of a round was flagged Byzantine by an earlier one.
                let mut order = agents.clone();
                order.rotate_left(if equivocate { n - byzantine } else { 0 });
                assert!(p["proposal"]["tally"]["byzantine"].as_array().unwrap().is_empty());
                let decided = run_with_byzantine(&mcp, &order, &pid, byzantine, equivocate).await;
                assert_eq!(
                    decided["status"], "approved",
                    "n={n} byzantine={byzantine} equivocate={equivocate}: {decided}"
                );
                if equivocate {
                    assert!(decided["tally"]["byzantine"].as_array().unwrap().len() >= byzantine, "{decided}");
                }
            }
        }
        // A decision of 100 voters carries their votes: the log pages within the reply budget.
        let (mut seqs, mut cursor) = (Vec::new(), None);
        loop {
            let mut args = json!({"action": "list", "swarmId": sid, "limit": 10});
            if let Some(c) = &cursor {
                args["cursor"] = json!(c);
            }
            let list = mcp.ok("daa_consensus", args).await;
            assert!(list["open"].as_array().unwrap().is_empty());
            seqs.extend(list["decisions"].as_array().unwrap().iter().map(|d| d["sequence"].as_i64().unwrap()));
            match list["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seqs.len(), 4, "{seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first, strictly: {seqs:?}");
    }
    mcp.close().await;
}

#[tokio::test]
async fn quorum_rejects_as_soon_as_approval_is_impossible_and_expires_at_its_timeout() {
    let mcp = Mcp::stdio(":memory:").await;
    let agents = swarm(&mcp, "rx", 4, json!({})).await;
    let p = mcp.ok("daa_consensus", json!({"agents": names(&agents), "proposal": "ship it"})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap();
    assert_eq!(p["proposal"]["tally"]["needed"], 3);
    assert_eq!(vote(&mcp, &agents[0], pid, "reject").await["proposal"]["status"], "open");
    let out = vote(&mcp, &agents[1], pid, "reject").await;
    assert_eq!(out["proposal"]["status"], "rejected", "{out}");
    assert!(out["proposal"]["reason"].as_str().unwrap().contains("impossible"), "{out}");
    assert_eq!(mcp.err("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": agents[2].id, "agentToken": agents[2].token})).await, "conflict");

    let p = mcp.ok("daa_consensus", json!({"agents": "all", "proposal": "wait", "timeoutSecs": 0.5})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap();
    vote(&mcp, &agents[0], pid, "approve").await;
    let s = eventually("the proposal to expire at its timeout", async || {
        let s = status(&mcp, "rx", pid).await;
        if s["proposal"]["status"] == "open" {
            Err(s)
        } else {
            Ok(s)
        }
    })
    .await;
    assert_eq!(s["proposal"]["status"], "expired", "{s}");
    assert_eq!(s["reconciled"]["expired"][0]["proposalId"], pid, "{s}");
    let list = mcp.ok("daa_consensus", json!({"action": "list"})).await;
    assert_eq!(list["decisions"][0]["outcome"], "expired");
    assert_eq!(list["decisions"][0]["sequence"], 2);
    mcp.close().await;
}

#[tokio::test]
async fn bft_is_refused_below_four_voters_and_decides_with_f_byzantine_voters() {
    let mcp = Mcp::stdio(":memory:").await;
    let three = swarm(&mcp, "b3", 3, json!({})).await;
    let (is_error, body) = mcp
        .call("daa_consensus", json!({"swarmId": "b3", "agents": names(&three), "proposal": "x", "protocol": "bft"}))
        .await;
    assert!(is_error);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bft needs at least 4 voters to tolerate one fault (n=3 gives f=0)"),
        "{body}"
    );
    for n in [4usize, 7] {
        let sid = format!("b{n}");
        let agents = swarm(&mcp, &sid, n, json!({})).await;
        let f = (n - 1) / 3;
        // f voters vote wrongly: the honest 2f+1 still decide.
        let p = mcp
            .ok("daa_consensus", json!({"swarmId": sid, "agents": "all", "proposal": "wrong", "protocol": "bft"}))
            .await;
        assert_eq!(p["proposal"]["tally"]["needed"], 2 * f + 1);
        let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
        let decided = run_with_byzantine(&mcp, &agents, &pid, f, false).await;
        assert_eq!(decided["status"], "approved", "{decided}");
        assert_eq!(decided["tally"]["approvals"], 2 * f + 1);
        // f voters equivocate: discarded, and the honest ones still reach 2f+1.
        let p = mcp
            .ok("daa_consensus", json!({"swarmId": sid, "agents": "all", "proposal": "equivocate", "protocol": "bft"}))
            .await;
        let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
        let decided = run_with_byzantine(&mcp, &agents, &pid, f, true).await;
        assert_eq!(decided["status"], "approved", "{decided}");
        assert_eq!(decided["tally"]["byzantine"].as_array().unwrap().len(), f);
        // A flagged agent can no longer vote anywhere in the swarm.
        let p = mcp
            .ok("daa_consensus", json!({"swarmId": sid, "agents": "all", "proposal": "after", "protocol": "bft"}))
            .await;
        let pid = p["proposal"]["proposalId"].as_str().unwrap();
        assert_eq!(mcp.err("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": agents[0].id, "agentToken": agents[0].token})).await, "conflict");
    }
    mcp.close().await;
}

#[tokio::test]
async fn pbft_runs_pre_prepare_prepare_commit_with_phase_messages_in_mailboxes() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "pb", 4, json!({})).await;
    let p = mcp
        .ok("daa_consensus", json!({"protocol": "pbft", "agents": "all", "proposal": {"op": "deploy"}, "agentId": a[0].id, "agentToken": a[0].token}))
        .await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    assert_eq!(p["proposal"]["pbft"]["primary"], a[0].id);
    assert_eq!(p["proposal"]["pbft"]["view"], 0);
    let inbox = receive(&mcp, &a[1]).await;
    assert_eq!(inbox[0]["type"], "consensus_request");
    assert_eq!(inbox[0]["message"]["phase"], "pre-prepare");
    assert_eq!(inbox[0]["message"]["sequence"], p["proposal"]["pbft"]["sequence"]);
    // A commit before the proposal is prepared is refused.
    let early = json!({"action": "vote", "phase": "commit", "vote": "approve", "proposalId": pid, "agentId": a[1].id, "agentToken": a[1].token});
    assert_eq!(mcp.err("daa_consensus", early).await, "conflict");
    for r in &a[1..3] {
        let out = vote(&mcp, r, &pid, "approve").await;
        assert_eq!(out["phase"], "prepare");
    }
    for (i, r) in a[..3].iter().enumerate() {
        let out = vote(&mcp, r, &pid, "approve").await;
        assert_eq!(out["phase"], "commit");
        let want = if i == 2 { "approved" } else { "open" };
        assert_eq!(out["proposal"]["status"], want, "{out}");
    }
    let phases: Vec<String> =
        receive(&mcp, &a[3]).await.iter().map(|m| m["message"]["phase"].as_str().unwrap().to_string()).collect();
    assert_eq!(phases, ["pre-prepare", "prepare", "prepare", "commit", "commit", "commit"]);
    mcp.close().await;
}

#[tokio::test]
async fn pbft_changes_view_when_the_primary_goes_silent_and_the_new_primary_completes() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "vc", 4, json!({"heartbeatInterval": 0.5, "messageTimeout": 1.5})).await;
    let p = mcp
        .ok("daa_consensus", json!({"protocol": "pbft", "proposal": "x", "agentId": a[0].id, "agentToken": a[0].token}))
        .await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    vote(&mcp, &a[1], &pid, "approve").await;
    // The primary goes silent; the replicas keep calling until the view changes.
    let s = eventually("a view change", async || {
        for r in &a[1..] {
            receive(&mcp, r).await;
        }
        let s = status(&mcp, "vc", &pid).await;
        if s["proposal"]["pbft"]["view"] == 0 {
            Err(s)
        } else {
            Ok(s)
        }
    })
    .await;
    assert_eq!(s["proposal"]["pbft"]["view"], 1, "{s}");
    assert_eq!(s["proposal"]["pbft"]["primary"], a[1].id);
    // The view change was made by the server's reconcile sweep or by this call's reconcile.
    assert_eq!(s["proposal"]["pbft"]["viewChanges"][0]["toView"], 1, "{s}");
    // Prepares of view 0 do not count in view 1; the new primary re-sends pre-prepare.
    assert_eq!(s["proposal"]["pbft"]["prepares"], 0);
    assert_eq!(vote(&mcp, &a[1], &pid, "approve").await["phase"], "pre-prepare");
    for r in &a[2..] {
        assert_eq!(vote(&mcp, r, &pid, "approve").await["phase"], "prepare");
    }
    let mut last = Value::Null;
    for r in &a[1..] {
        last = vote(&mcp, r, &pid, "approve").await;
    }
    assert_eq!(last["proposal"]["status"], "approved", "{last}");
    assert_eq!(last["proposal"]["tally"]["effectiveVoters"], 3);
    mcp.close().await;
}

#[tokio::test]
async fn pbft_checkpoint_garbage_collects_phase_records_after_k_decisions() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    let a = swarm(&mcp, "cp", 4, json!({})).await;
    let mut first = String::new();
    let mut checkpoint = Value::Null;
    for k in 0..10 {
        let p = mcp
            .ok(
                "daa_consensus",
                json!({"protocol": "pbft", "proposal": k, "agentId": a[0].id, "agentToken": a[0].token}),
            )
            .await;
        let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
        if k == 0 {
            first = pid.clone();
        }
        for r in &a[1..3] {
            vote(&mcp, r, &pid, "approve").await;
        }
        for r in &a[..3] {
            let out = vote(&mcp, r, &pid, "approve").await;
            if out.get("checkpoint").is_some() {
                checkpoint = out["checkpoint"].clone();
            }
        }
        if k == 8 {
            assert!(status(&mcp, "cp", &first).await["proposal"]["pbft"]["phaseRecords"].as_u64().unwrap() > 0);
        }
    }
    assert_eq!(checkpoint, 10);
    let s = status(&mcp, "cp", &first).await;
    assert_eq!(s["proposal"]["pbft"]["phaseRecords"], 0, "{s}");
    assert_eq!(s["proposal"]["pbft"]["collectedAtCheckpoint"], 10);
    // Really gone from the store, and the decision log keeps the votes.
    let (store, _clock) = mesh_mcp::store::open(db.to_str().unwrap(), Default::default()).unwrap();
    let kv = mesh_mcp::store::get(&*store, &format!("consensus/cp/proposal/{first}")).await.unwrap().unwrap();
    let record: Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(record["pbft"]["prepares"], json!({}));
    assert_eq!(record["pbft"]["commits"], json!({}));
    let list = mcp.ok("daa_consensus", json!({"action": "list", "limit": 10})).await;
    assert_eq!(list["decisions"][9]["proposalId"], first.as_str());
    assert_eq!(list["decisions"][9]["votes"].as_object().unwrap().len(), 3);
    mcp.close().await;
}

#[tokio::test]
async fn impersonated_and_non_voter_votes_are_refused_and_change_nothing() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "imp", 5, json!({})).await;
    let p = mcp.ok("daa_consensus", json!({"agents": names(&a[..4]), "proposal": "x"})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap();
    vote(&mcp, &a[0], pid, "approve").await;
    let before = status(&mcp, "imp", pid).await;
    let attempt = |agent: &Agent, token: Option<&str>| {
        let mut args = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": agent.id});
        if let Some(t) = token {
            args["agentToken"] = Value::from(t);
        }
        args
    };
    assert_eq!(mcp.err("daa_consensus", attempt(&a[1], None)).await, "unauthorized");
    assert_eq!(mcp.err("daa_consensus", attempt(&a[1], Some(&a[2].token))).await, "unauthorized");
    assert_eq!(mcp.err("daa_consensus", attempt(&a[4], Some(&a[4].token))).await, "unauthorized");
    let after = status(&mcp, "imp", pid).await;
    assert_eq!(before["revision"], after["revision"]);
    assert_eq!(before["proposal"]["tally"], after["proposal"]["tally"]);
    mcp.close().await;
}

#[tokio::test]
async fn a_swarm_without_a_live_majority_is_read_only_until_the_majority_returns() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "ro", 5, json!({"heartbeatInterval": 0.3, "messageTimeout": 1.0})).await;
    let p = mcp.ok("daa_consensus", json!({"agents": "all", "proposal": "x", "threshold": 0.6})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    until_failed(&mcp, "ro", &[&a[0], &a[1]], 3).await;
    let (is_error, body) = mcp.call("daa_consensus", json!({"agents": "all", "proposal": "y"})).await;
    assert!(is_error);
    assert_eq!(body["error"]["code"], "read_only");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("read-only: no majority (2 of 5 agents live)"),
        "{body}"
    );
    let (is_error, body) = mcp.call("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a[0].id, "agentToken": a[0].token})).await;
    assert!(is_error, "{body}");
    assert_eq!(body["error"]["code"], "read_only");
    // The failed voters left the open proposal's quorum, and status says so.
    let s = status(&mcp, "ro", &pid).await;
    assert_eq!(s["proposal"]["tally"]["effectiveVoters"], 2, "{s}");
    // A failed agent's own calls are refused until it recovers with its token.
    let (is_error, body) = mcp.call("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a[2].id, "agentToken": a[2].token})).await;
    assert!(is_error && body["error"]["code"] == "agent_failed", "{body}");
    // The majority returns.
    for r in &a[2..] {
        mcp.ok("daa_fault_tolerance", json!({"strategy": "recover", "agentId": r.id, "agentToken": r.token})).await;
    }
    let out = vote(&mcp, &a[0], &pid, "approve").await;
    assert_eq!(out["proposal"]["tally"]["effectiveVoters"], 5);
    mcp.ok("daa_consensus", json!({"agents": "all", "proposal": "y"})).await;
    mcp.close().await;
}

#[tokio::test]
async fn leader_lease_is_renewed_replaced_when_it_runs_out_and_fences_the_stale_term() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "le", 4, json!({})).await;
    let elect = |who: &Agent| json!({"action": "elect", "agentId": who.id, "agentToken": who.token, "leaseSecs": 1});
    let out = mcp.ok("daa_consensus", elect(&a[0])).await;
    assert_eq!((out["elected"].clone(), out["leader"]["term"].clone()), (json!(true), json!(1)), "{out}");
    let out = mcp.ok("daa_consensus", elect(&a[0])).await;
    assert_eq!(
        (out["elected"].clone(), out["leader"]["term"].clone()),
        (json!(true), json!(1)),
        "renewal keeps the term: {out}"
    );
    let out = mcp.ok("daa_consensus", elect(&a[1])).await;
    assert_eq!(out["elected"], false);
    assert_eq!(out["leader"]["agentId"], a[0].id);
    let leader = mcp.ok("daa_consensus", json!({"action": "leader", "swarmId": "le"})).await;
    assert_eq!(leader["leader"]["term"], 1);
    assert!(leader["leader"]["remainingMs"].as_i64().unwrap() > 0);
    // The leader's fenced write at its term goes through.
    mcp.ok("daa_consensus", json!({"proposal": "fenced", "agentId": a[0].id, "agentToken": a[0].token, "term": 1}))
        .await;
    // It stops renewing; the lease runs out and the standing candidate takes term 2.
    let leader = eventually("the standing candidate to take over", async || {
        let leader = mcp.ok("daa_consensus", json!({"action": "leader", "swarmId": "le"})).await;
        if leader["leader"]["agentId"] == a[1].id {
            Ok(leader)
        } else {
            Err(leader)
        }
    })
    .await;
    assert_eq!(leader["leader"]["agentId"], a[1].id, "{leader}");
    assert_eq!(leader["leader"]["term"], 2);
    let (is_error, body) = mcp
        .call("daa_consensus", json!({"proposal": "stale", "agentId": a[0].id, "agentToken": a[0].token, "term": 1}))
        .await;
    assert!(is_error);
    assert_eq!(body["error"]["code"], "stale_term");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("stale term 1: the current term is 2 (leader `a1`)"),
        "{body}"
    );
    // The promoted candidate was told in its mailbox.
    assert!(receive(&mcp, &a[1]).await.iter().any(|m| m["message"]["event"] == "leader" && m["message"]["term"] == 2));
    mcp.close().await;
}

#[tokio::test]
async fn a_proposal_survives_a_server_restart_mid_vote_and_is_logged_once() {
    let (_dir, db) = temp_db();
    proposal_across_a_restart(db.to_str().unwrap()).await;
}

/// The same on an etcd cluster: the vote records and the decision log live in etcd.
#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_survives_a_server_restart_mid_vote_on_etcd() {
    let cluster = EtcdCluster::start(1);
    proposal_across_a_restart(&cluster.url(&[0], "votes")).await;
}

async fn proposal_across_a_restart(db: &str) {
    let mcp = Mcp::stdio(db).await;
    let a = swarm(&mcp, "rs", 4, json!({})).await;
    let p = mcp.ok("daa_consensus", json!({"agents": "all", "proposal": "durable"})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    vote(&mcp, &a[0], &pid, "approve").await;
    mcp.close().await;
    let mcp = Mcp::stdio(db).await;
    assert_eq!(status(&mcp, "rs", &pid).await["proposal"]["tally"]["approvals"], 1);
    vote(&mcp, &a[1], &pid, "approve").await;
    assert_eq!(vote(&mcp, &a[2], &pid, "approve").await["proposal"]["status"], "approved");
    let list = mcp.ok("daa_consensus", json!({"action": "list"})).await;
    let logged: Vec<&Value> =
        list["decisions"].as_array().unwrap().iter().filter(|d| d["proposalId"] == pid.as_str()).collect();
    assert_eq!(logged.len(), 1, "{list}");
    mcp.close().await;
}

#[tokio::test]
async fn bad_consensus_input_gets_clear_errors_and_changes_nothing() {
    let mcp = Mcp::stdio(":memory:").await;
    let a = swarm(&mcp, "bad", 4, json!({})).await;
    let before = mcp.ok("daa_consensus", json!({"action": "list"})).await["revision"].clone();
    let cases = [
        (json!({"action": "status", "proposalId": "prop-nope"}), "not_found"),
        (
            json!({"action": "vote", "proposalId": "prop-nope", "vote": "approve", "agentId": a[0].id, "agentToken": a[0].token}),
            "not_found",
        ),
        (
            json!({"action": "vote", "proposalId": "prop-nope", "vote": "maybe", "agentId": a[0].id, "agentToken": a[0].token}),
            "invalid_argument",
        ),
        (json!({"agents": ["a0", "ghost"], "proposal": "x"}), "not_found"),
        (json!({"agents": "some", "proposal": "x"}), "invalid_argument"),
        (json!({"agents": "all", "proposal": "x", "threshold": 0}), "invalid_argument"),
        (json!({"agents": "all", "proposal": "x", "threshold": 1.5}), "invalid_argument"),
        (json!({"agents": "all"}), "invalid_argument"),
        (json!({"agents": "all", "proposal": "x", "protocol": "pbft"}), "invalid_argument"),
        (json!({"action": "elect"}), "invalid_argument"),
    ];
    for (args, code) in cases {
        assert_eq!(mcp.err("daa_consensus", args.clone()).await, code, "{args}");
    }
    let after = mcp.ok("daa_consensus", json!({"action": "list"})).await;
    assert_eq!(after["revision"], before);
    assert!(after["open"].as_array().unwrap().is_empty() && after["decisions"].as_array().unwrap().is_empty());
    mcp.close().await;
}

#[tokio::test]
async fn a_partitioned_majority_keeps_deciding_while_the_minority_is_read_only() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "ring", "swarmId": "split", "maxAgents": 7, "heartbeatInterval": 0.3, "messageTimeout": 1.0})).await;
    let mut a = Vec::new();
    for i in 0..7 {
        let r = mcp.ok("agent_spawn", json!({"type": "coder", "name": format!("a{i}"), "swarmId": "split"})).await;
        a.push(Agent {
            name: format!("a{i}"),
            id: r["agentId"].as_str().unwrap().into(),
            token: r["agentToken"].as_str().unwrap().into(),
        });
    }
    let p = mcp.ok("daa_consensus", json!({"agents": "all", "proposal": "x", "threshold": 0.5})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    // a0 and a2 go silent: the ring splits into {a1} and {a3, a4, a5, a6}.
    until_failed(&mcp, "split", &[&a[1], &a[3], &a[4], &a[5], &a[6]], 2).await;
    let (is_error, body) = mcp.call("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a[1].id, "agentToken": a[1].token})).await;
    assert!(is_error, "{body}");
    assert_eq!(body["error"]["code"], "read_only");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("read-only: this agent's partition holds 1 of 7 agents"),
        "{body}"
    );
    for i in [3, 4] {
        vote(&mcp, &a[i], &pid, "approve").await;
    }
    // 5 effective voters (a0 and a2 failed) need ceil(0.5 × 5) = 3.
    let out = vote(&mcp, &a[5], &pid, "approve").await;
    assert_eq!(out["proposal"]["status"], "approved", "{out}");
    mcp.close().await;
}
