//! Path reservations (issue 19), through the real binary: two agents in two bound stdio sessions
//! reserve, clash both ways between globs and files, share, release and see each other's
//! reservations; a killed holder's reservations vanish with its lease and are recorded; bad
//! input changes nothing. The git guard is in `tests/guard.rs`.

mod common;

use common::team::team;
use common::{cli, temp_db, wait_until, RawServer};
use serde_json::{json, Value};

/// The token `mesh-mcp call agent_spawn` kept for agent `name` of swarm `team`.
fn token_of(db: &std::path::Path, name: &str) -> String {
    let path = db.parent().unwrap().join(format!("agents/team/{name}.token"));
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn session(db: &std::path::Path, name: &str) -> RawServer {
    let token = token_of(db, name);
    RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())])
}

fn refused(server: &mut RawServer, args: Value) -> String {
    let (is_error, body) = server.call("reservations", args.clone());
    assert!(is_error, "{args} was not refused: {body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

fn live(db: &std::path::Path) -> Vec<Value> {
    let (code, list) = cli(db, &["reservations", "list", "--swarmId=team"]);
    assert_eq!(code, 0, "{list}");
    list["reservations"].as_array().unwrap().clone()
}

fn read(server: &mut RawServer, uri: &str) -> Value {
    let resp = server.request("resources/read", json!({"uri": uri}));
    let text = resp["result"]["contents"][0]["text"].as_str().unwrap_or_else(|| panic!("{uri}: {resp}"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn two_sessions_clash_both_ways_share_and_release_exactly_what_they_hold() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let (mut a, mut b) = (session(&db, "a"), session(&db, "b"));
    let store = json!({"action": "reserve", "paths": ["src/store/**"], "reason": "WAL rework", "ttlSecs": 1800});
    let held = a.ok("reservations", store);
    assert_eq!(held["reserved"][0]["path"], "src/store/**");
    a.ok("reservations", json!({"action": "reserve", "paths": ["docs/guide.md"]}));

    // A file under a's glob, and a glob over a's file: refused both ways, naming holder, reason, expiry.
    let why = refused(&mut b, json!({"action": "reserve", "paths": ["src/store/sqlite.rs"]}));
    assert!(why.contains("held by `a`") && why.contains("WAL rework") && why.contains("expiring"), "{why}");
    let why = refused(&mut b, json!({"action": "reserve", "paths": ["docs/**", "tests/x.rs"]}));
    assert!(why.contains("docs/guide.md"), "{why}");
    assert_eq!(live(&db).len(), 2, "a refused reserve stores nothing, not even its other paths");

    // Shared coexists with shared, not with exclusive.
    a.ok("reservations", json!({"action": "reserve", "paths": ["Cargo.toml"], "mode": "shared"}));
    b.ok("reservations", json!({"action": "reserve", "paths": ["Cargo.toml"], "mode": "shared"}));
    let why = refused(&mut b, json!({"action": "reserve", "paths": ["*.toml"], "mode": "exclusive"}));
    assert!(why.contains("Cargo.toml"), "{why}");

    // check changes nothing and leaves one's own out.
    let check =
        b.ok("reservations", json!({"action": "check", "paths": ["src/store/wal.rs", "README.md", "Cargo.toml"]}));
    let clashes: Vec<_> = check["conflicts"].as_array().unwrap().iter().map(|c| c["held"]["path"].clone()).collect();
    assert_eq!(clashes, [json!("src/store/**"), json!("Cargo.toml")], "{check}");
    assert_eq!(check["conflicts"][1]["held"]["agentName"], "a");

    // A retried reserve with its idempotency key returns the first result.
    let first = b.ok("reservations", json!({"action": "reserve", "paths": ["tests/**"], "idempotencyKey": "k1"}));
    let again = b.ok("reservations", json!({"action": "reserve", "paths": ["tests/**"], "idempotencyKey": "k1"}));
    assert_eq!(again["replayed"], true);
    assert_eq!(again["reserved"][0]["reservationId"], first["reserved"][0]["reservationId"]);

    // Release names exactly what it released, and refuses (releasing nothing) what is not held.
    let why = refused(&mut b, json!({"action": "release", "paths": ["tests/**", "src/store/**"]}));
    assert!(why.contains("does not hold src/store/**") && why.contains("nothing was released"), "{why}");
    let released = b.ok("reservations", json!({"action": "release", "paths": ["tests/**"]}));
    assert_eq!(released["released"].as_array().unwrap().len(), 1, "{released}");
    assert_eq!(released["released"][0]["path"], "tests/**");

    // Each session sees its own in mesh://self; the swarm's resource lists everyone's.
    let me = read(&mut a, "mesh://self");
    assert_eq!(me["reservationsTotal"], 3, "{me}");
    let all = read(&mut b, "mesh://swarm/team/reservations");
    assert_eq!(all["reservations"].as_array().unwrap().len(), 4, "{all}");
    let history = b.ok("reservations", json!({"action": "history"}));
    assert_eq!(history["ended"][0]["cause"], "released", "{history}");
}

#[test]
fn a_killed_holders_reservations_vanish_with_its_lease_and_their_end_is_recorded() {
    let (_dir, db) = temp_db();
    team(&db, "2");
    let (mut a, mut b) = (session(&db, "a"), session(&db, "b"));
    a.ok("reservations", json!({"action": "reserve", "paths": ["src/**"], "reason": "refactor"}));
    refused(&mut b, json!({"action": "reserve", "paths": ["src/lib.rs"]}));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // Within the message timeout (2 s): b's own session keeps sweeping, so the failover records it.
    wait_until("the killed holder's reservation to vanish", || match live(&db).len() {
        0 => Ok(()),
        n => Err(format!("{n} live")),
    });
    b.ok("reservations", json!({"action": "reserve", "paths": ["src/lib.rs"]}));
    wait_until("the end to be recorded as holder_failed", || {
        let history = b.ok("reservations", json!({"action": "history"}));
        let causes: Vec<Value> = history["ended"].as_array().unwrap().iter().map(|e| e["cause"].clone()).collect();
        if causes.contains(&json!("holder_failed")) {
            Ok(())
        } else {
            Err(history.to_string())
        }
    });
}

#[test]
fn force_release_waits_for_expiry_and_tells_the_holder() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let (mut a, mut b) = (session(&db, "a"), session(&db, "b"));
    let held = a.ok("reservations", json!({"action": "reserve", "paths": ["Cargo.lock"], "ttlSecs": 1}));
    let id = held["reserved"][0]["reservationId"].as_str().unwrap().to_string();
    let force = json!({"action": "force_release", "reservationIds": [id]});
    let first = refused(&mut b, force.clone());
    assert!(first.contains("is held by `a`, which is live"), "{first}");
    // Polled, not slept: refused while the reservation lasts, done once it expired.
    let released = wait_until("the reservation to expire", || match b.call("reservations", force.clone()) {
        (false, body) => Ok(body),
        (true, body) => Err(body.to_string()),
    });
    assert_eq!(released["released"][0]["reservationId"], json!(id));
    let inbox = a.ok("daa_communication", json!({"action": "receive"}));
    let notice = &inbox["messages"][0]["message"];
    assert_eq!(notice["event"], "reservations_force_released", "{inbox}");
    assert_eq!(notice["by"], "b");
    let history = b.ok("reservations", json!({"action": "history"}));
    assert_eq!((&history["ended"][0]["cause"], &history["ended"][0]["by"]), (&json!("forced"), &json!("b")));
}

#[test]
fn bad_patterns_and_ttls_are_clear_errors_and_store_nothing() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let mut a = session(&db, "a");
    let cases = [
        (json!({"paths": ["/etc/passwd"]}), "absolute"),
        (json!({"paths": ["src/../../x"]}), "`..`"),
        (json!({"paths": [""]}), "empty pattern"),
        (json!({"paths": []}), "at least one"),
        (json!({"paths": ["a//b"]}), "empty segment"),
        (json!({"paths": ["src"], "ttlSecs": 0}), "ttlSecs"),
        (json!({"paths": ["src"], "ttlSecs": 3.0e8}), "ttlSecs"),
        (json!({"paths": ["src"], "mode": "sometimes"}), "mode"),
        (json!({"paths": ["src"], "reason": "x".repeat(300)}), "reason"),
        (json!({"paths": ["src"], "ttlSecs": "soon"}), "ttlSecs"),
    ];
    for (mut args, why) in cases {
        args["action"] = json!("reserve");
        let (is_error, body) = a.call("reservations", args.clone());
        assert!(is_error, "{args}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{args}: {message}");
    }
    assert!(live(&db).is_empty());
    let (is_error, body) = a.call("reservations", json!({"action": "release", "reservationIds": ["resv-nope"]}));
    assert!(is_error && body["error"]["message"].as_str().unwrap().contains("resv-nope"), "{body}");
}
