//! `mesh-mcp simulate` through the real binary: each protocol's JSON report, determinism by seed,
//! and clear failures for bad arguments.

use std::process::{Command, Output};

use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh-mcp")).arg("simulate").args(args).output().expect("run mesh-mcp")
}

/// Run with `--json`, expect success, and parse the report.
fn report(args: &[&str]) -> Value {
    let out = simulate(&[args, &["--json"]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The report without its wall-clock time, which is the one thing a seed does not fix.
fn without_wall_time(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("wall_ms");
    v
}

fn verdict<'a>(r: &'a Value, property: &str) -> &'a Value {
    r["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["property"] == property)
        .unwrap_or_else(|| panic!("no {property} in {r}"))
}

#[test]
fn simulate_pbft_with_byzantine_replicas_agrees_and_decides_after_heal() {
    let r = report(&[
        "--protocol",
        "pbft",
        "--nodes",
        "7",
        "--faulty",
        "2",
        "--drop",
        "0.1",
        "--partition",
        "0-2|3-6@0..500",
        "--gst",
        "1000",
        "--seed",
        "4",
    ]);
    assert_eq!(r["protocol"], "pbft");
    assert_eq!(r["faulty_ids"].as_array().unwrap().len(), 2);
    assert_eq!(verdict(&r, "agreement")["ok"], true);
    assert_eq!(verdict(&r, "commit certificate")["ok"], true);
    assert_eq!(verdict(&r, "progress")["ok"], true);
    assert_eq!(r["decisions"], 20);
    assert!(r["all_decisions_ms"].as_u64().unwrap() >= 500);
    assert!(r["messages_per_decision"].as_f64().unwrap() > 0.0);
}

#[test]
fn simulate_election_with_crashing_agents_keeps_one_leader_per_term_and_fences_old_ones() {
    let r = report(&["--protocol", "election", "--nodes", "5", "--faulty", "2", "--drop", "0.05", "--seed", "9"]);
    assert_eq!(verdict(&r, "one leader per term")["ok"], true);
    assert_eq!(verdict(&r, "fenced writes only by the current leader")["ok"], true);
    assert_eq!(verdict(&r, "progress")["ok"], true);
    assert_eq!(r["decisions"], 20);
}

#[test]
fn simulate_gossip_converges_and_reports_rounds() {
    let r = report(&["--protocol", "gossip", "--nodes", "500", "--faulty", "20", "--seed", "2"]);
    assert_eq!(verdict(&r, "convergence")["ok"], true);
    assert_eq!(r["decisions"], 480, "every live node converged");
    let rounds = r["rounds"].as_u64().unwrap();
    assert!((2..=20).contains(&rounds), "{rounds} rounds");
}

#[test]
fn simulate_is_deterministic_by_seed() {
    for protocol in ["pbft", "election", "gossip"] {
        let args = ["--protocol", protocol, "--nodes", "7", "--faulty", "1", "--drop", "0.2", "--seed", "11"];
        let a = without_wall_time(report(&args));
        let b = without_wall_time(report(&args));
        assert_eq!(a, b, "{protocol}: same seed, different reports");
        let mut other = args;
        other[9] = "12";
        let c = without_wall_time(report(&other));
        assert_ne!(a, c, "{protocol}: seeds 11 and 12 gave the same report");
    }
}

#[test]
fn simulate_prints_a_table_by_default() {
    let out = simulate(&["--protocol", "election", "--nodes", "3"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("PASS safety   one leader per term"), "{table}");
    assert!(table.contains("messages per decision"));
}

#[test]
fn simulate_rejects_bad_arguments_with_a_clear_message() {
    let cases: [(&[&str], &str); 6] = [
        (&["--protocol", "election", "--nodes", "0"], "--nodes must be at least 1"),
        (&["--protocol", "pbft", "--nodes", "6", "--faulty", "2"], "n >= 3f + 1"),
        (&["--protocol", "election", "--nodes", "4", "--faulty", "2"], "live majority"),
        (&["--protocol", "raft"], "invalid value 'raft'"),
        (&["--protocol", "gossip", "--nodes", "4", "--partition", "0-9|2"], "bad --partition"),
        (&["--protocol", "paxos"], "invalid value 'paxos'"),
    ];
    for (args, message) in cases {
        let out = simulate(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
    }
}
