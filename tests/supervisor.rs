//! Supervisors (issue 16) end to end: `agent_spawn` with a runner profile asks for a worker,
//! `mesh-mcp supervise` starts it bound to its agent, restarts it per its policy, fails the agent
//! after too many failed starts, and only runs what the operator's profiles name. The worker is
//! `tests/data/worker/worker.py`, which speaks MCP to its own bound `mesh-mcp serve`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{bin, wait_until};
use serde_json::{json, Value};

/// A project with the worker and a `py` runner profile, and a swarm `s` on its database.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: String,
}

impl Project {
    fn new() -> Project {
        Project::with(&[])
    }

    /// A project whose swarm `s` is created with `init` added to `swarm_init`'s arguments.
    fn with(init: &[&str]) -> Project {
        Project::on(None, init)
    }

    /// A project on the store `db` (default: a SQLite file in it).
    fn on(db: Option<String>, init: &[&str]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join(".mesh")).unwrap();
        let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/worker/worker.py");
        let profile = |name: &str, usage: &str| {
            format!(
                "[runners.{name}]\nprogram = \"python3\"\nargs = [{:?}]\nstdin = \"{{prompt}}\"\nenv = {{ MESH_BIN = \"{{mesh_bin}}\" }}\n{usage}",
                worker.to_string_lossy()
            )
        };
        // `pyspend` reads what the worker says it spent as Claude Code's stream-json reports it.
        let runners = profile("py", "") + &profile("pyspend", "usage = \"claude-stream-json\"\n");
        std::fs::write(root.join(".mesh/runners.toml"), runners).unwrap();
        let db = db.unwrap_or_else(|| root.join("mesh.db").to_string_lossy().into_owned());
        let project = Project { _dir: dir, root, db };
        let mut args = vec!["swarm_init", "mesh", "--swarmId=s", "--heartbeatInterval=0.5", "--messageTimeout=600"];
        args.extend(init);
        let init = project.call(&args);
        assert_eq!(init["swarmId"], "s", "{init}");
        project
    }

    /// `mesh-mcp call` in the project; its JSON (the error body on failure).
    fn call(&self, args: &[&str]) -> Value {
        let out =
            Command::new(bin()).args(["--db", &self.db, "call"]).args(args).current_dir(&self.root).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| json!({"stderr": String::from_utf8_lossy(&out.stderr)}))
    }

    fn supervise(&self) -> Child {
        self.supervise_up_to(4)
    }

    fn supervise_up_to(&self, capacity: usize) -> Child {
        self.supervise_command(capacity).stderr(Stdio::null()).spawn().unwrap()
    }

    /// A supervisor whose log, at debug level, goes to `supervisor.log` in the project: what it
    /// decided about each worker can be waited for.
    fn supervise_logged(&self) -> Child {
        let log = std::fs::File::create(self.root.join("supervisor.log")).unwrap();
        self.supervise_command(4).env("MESH_LOG_LEVEL", "debug").stderr(log).spawn().unwrap()
    }

    fn supervise_command(&self, capacity: usize) -> Command {
        let mut command = Command::new(bin());
        command.args(["--db", &self.db, "supervise", "--capacity", &capacity.to_string(), "--project"]);
        command.arg(&self.root).stdin(Stdio::null()).stdout(Stdio::null());
        command
    }

    /// The supervisor's log lines (see [`Project::supervise_logged`]).
    fn supervisor_log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.root.join("supervisor.log")).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    /// The lines of the workers' start/exit log.
    fn starts(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("starts.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// The agent's worker as `agent_list` shows it.
    fn worker(&self, agent: &str) -> Value {
        let list = self.call(&["agent_list", "--swarmId=s"]);
        let found = list["agents"].as_array().and_then(|a| a.iter().find(|a| a["name"] == agent).cloned());
        found.map_or(Value::Null, |a| a["worker"].clone())
    }

    /// `mesh-mcp budget` on swarm `s`, as the operator.
    fn budget(&self, flags: &[&str]) -> Value {
        let out = Command::new(bin()).args(["--db", &self.db, "budget", "s"]).args(flags).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The log's lines of one event (`start`, `exit`, `term`).
    fn events(&self, event: &str) -> Vec<String> {
        self.starts().into_iter().filter(|l| l.split(' ').next() == Some(event)).collect()
    }

    fn status(&self, agent: &str) -> String {
        let list = self.call(&["agent_list", "--swarmId=s"]);
        let found = list["agents"].as_array().and_then(|a| a.iter().find(|a| a["name"] == agent).cloned());
        found.map_or("none".into(), |a| a["status"].as_str().unwrap().to_string())
    }
}

fn get(port: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_supervised_worker_waits_for_a_task_and_completes_it() {
    let project = Project::new();
    let _supervisor = Killed(project.supervise());
    let spawned = project.call(&["agent_spawn", "worker", "--name=w", "--swarmId=s", "--profile=py", "--prompt=work"]);
    assert_eq!(spawned["worker"], "py", "{spawned}");
    assert!(spawned.get("agentToken").is_some(), "an unbound caller gets the token, as with any spawn");
    wait_until("the worker to bind its agent", || match project.status("w").as_str() {
        "active" | "idle" => Ok(()),
        other => Err(other.to_string()),
    });
    let worker = project.worker("w");
    assert_eq!((&worker["profile"], &worker["state"]), (&json!("py"), &json!("running")), "{worker}");
    assert!(worker["pid"].as_u64().is_some() && worker["host"].is_string(), "{worker}");
    let server = common::HttpServer::on_db(&project.db);
    let metrics = get(server.port(), "/metrics");
    assert!(metrics.contains("mesh_workers{state=\"running\"} 1"), "{metrics}");
    let status = project.call(&["swarm_status", "--swarmId=s"]);
    assert_eq!(status["workers"], json!({"running": 1}), "{status}");
    let created = project.call(&["task_orchestrate", "--task=review the parser", "--taskId=t1", "--swarmId=s"]);
    assert_eq!(created["taskId"], "t1", "{created}");
    let result = wait_until("the worker to complete the task", || {
        let results = project.call(&["task_results", "--taskId=t1", "--swarmId=s"]);
        match results["result"].clone() {
            Value::Null => Err(results.to_string()),
            result => Ok(result),
        }
    });
    assert_eq!(result["by"], spawned["agentId"], "{result}");
    let starts = project.starts();
    assert_eq!(starts.iter().filter(|l| l.starts_with("start")).count(), 1, "{starts:?}");
    wait_until("agent_list to show the worker exited", || match project.worker("w") {
        w if w["state"] == "exited" && w["lastExit"]["code"] == 0 => Ok(()),
        w => Err(w.to_string()),
    });
}

#[test]
fn a_worker_that_keeps_failing_is_restarted_with_backoff_then_its_agent_fails() {
    let project = Project::new();
    let _supervisor = Killed(project.supervise());
    let spawned = project.call(&["agent_spawn", "worker", "--name=c", "--swarmId=s", "--profile=py", "--prompt=crash"]);
    assert_eq!(spawned["worker"], "py", "{spawned}");
    // maxRetryAttempts is 3: the first start and three restarts (0.5, 1 and 2 s apart), then the agent fails.
    wait_until("the agent to fail", || match project.status("c").as_str() {
        "failed" => Ok(()),
        other => Err(format!("{other}, {} starts", project.starts().len())),
    });
    let starts: Vec<String> = project.starts().into_iter().filter(|l| l.starts_with("start")).collect();
    assert_eq!(starts.len(), 4, "{starts:?}");
    let times: Vec<f64> = starts.iter().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
    assert!(times[3] - times[2] > times[1] - times[0], "the backoff grows: {times:?}");
    // Given up: the supervisor reports the worker failed and lets go of its request, so nothing
    // can start it again.
    let worker = wait_until("the worker to be reported failed", || match project.worker("c") {
        w if w["state"] == "failed" => Ok(w),
        w => Err(w.to_string()),
    });
    assert_eq!(worker["restarts"], 3, "{worker}");
    assert_eq!(
        project.starts().iter().filter(|l| l.starts_with("start")).count(),
        4,
        "nothing started after giving up"
    );
}

#[test]
fn a_killed_worker_is_restarted_under_a_fresh_identity() {
    let project = Project::new();
    let _supervisor = Killed(project.supervise());
    project.call(&["agent_spawn", "worker", "--name=k", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    let first = wait_until("the worker to start", || {
        let starts = project.starts();
        starts.first().cloned().ok_or("no start yet".to_string())
    });
    let pid: i32 = first.split(' ').nth(1).unwrap().parse().unwrap();
    // SAFETY: kill sends a signal to the worker this test's supervisor started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("the worker to be started again", || match project.starts().len() {
        n if n >= 2 => Ok(()),
        n => Err(format!("{n} starts")),
    });
    wait_until("the restarted worker to bind its agent", || match project.status("k").as_str() {
        "active" | "idle" => Ok(()),
        other => Err(other.to_string()),
    });
    // A stop asked through the tool: only the owner (or the agent) may, and it ends the process
    // with SIGTERM for good.
    let stop = ["daa_fault_tolerance", "--strategy=stop_worker", "--agentId=k", "--swarmId=s"];
    let refused = project.call(&[&stop[..], &["--ownerToken=wrong"]].concat());
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
    let stopping = project.call(&stop);
    assert_eq!(stopping["worker"]["worker"]["stopping"], true, "{stopping}");
    wait_until("the worker to be stopped", || match project.worker("k") {
        w if w["state"] == "exited" => Ok(()),
        w => Err(w.to_string()),
    });
    assert_eq!(project.events("term").len(), 1, "{:?}", project.starts());
    assert_eq!(project.events("start").len(), 2, "a stopped worker is not restarted");
}

#[test]
fn only_the_operators_profiles_run_and_only_inside_the_project() {
    let project = Project::new();
    for (args, field) in [
        (vec!["--profile=sh", "--prompt=x"], "profile"),
        (vec!["--profile=command", "--prompt=x"], "profile"),
        (vec!["--profile=py", "--cwd=../elsewhere"], "cwd"),
        (vec!["--profile=py", "--cwd=/etc"], "cwd"),
        (vec!["--prompt=rm -rf /"], "profile"),
    ] {
        let mut call = vec!["agent_spawn", "worker", "--swarmId=s"];
        call.extend(args.iter().copied());
        let refused = project.call(&call);
        assert_eq!(refused["error"]["code"], "invalid_argument", "{args:?}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(field), "{args:?}: {refused}");
    }
    let list = project.call(&["agent_list", "--swarmId=s"]);
    assert_eq!(list["total"], 0, "nothing was added: {list}");
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn pids(project: &Project) -> Vec<i32> {
    project
        .starts()
        .iter()
        .filter(|l| l.starts_with("start"))
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect()
}

/// A supervisor killed with SIGKILL takes its workers with it (the parent-death signal); a
/// second supervisor on the same store adopts them once the first one's lease has run out, so
/// the worker never runs twice; and destroying the swarm stops the worker.
#[test]
fn a_dead_supervisors_worker_is_adopted_and_never_runs_twice() {
    adopted_once(&Project::new());
}

/// The same with the store on a three-member etcd cluster: supervisors that share the cluster
/// (as on different hosts) share one worker pool, and adopt each other's workers.
#[test]
fn supervisors_on_different_members_of_etcd_share_the_workers() {
    let cluster = common::EtcdCluster::start(3);
    adopted_once(&Project::on(Some(cluster.url(&[0, 1, 2], "workers")), &[]));
}

fn adopted_once(project: &Project) {
    let mut first = project.supervise();
    project.call(&["agent_spawn", "worker", "--name=a", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    let p1 = wait_until("the worker to start", || pids(project).first().copied().ok_or("no start".to_string()));
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until("the first supervisor's worker to die with it", || match alive(p1) {
        false => Ok(()),
        true => Err(format!("{p1} still runs")),
    });
    let second = Killed(project.supervise());
    let p2 = wait_until("the second supervisor to adopt the worker", || match pids(project).get(1) {
        Some(&pid) => Ok(pid),
        None => Err("not yet".to_string()),
    });
    assert!(!alive(p1) && alive(p2), "one copy at a time: {:?}", project.starts());
    let destroyed = project.call(&["swarm_destroy", "--swarmId=s"]);
    assert!(destroyed.get("error").is_none(), "{destroyed}");
    wait_until("the destroyed swarm's worker to stop", || match alive(p2) {
        false => Ok(()),
        true => Err(format!("{p2} still runs")),
    });
    assert_eq!(pids(project).len(), 2, "nothing started after the swarm was destroyed");
    drop(second);
}

/// Most workers running at once, from the workers' own start and exit records.
fn most_at_once(log: &[String]) -> usize {
    let mut events: Vec<(f64, i32)> = log
        .iter()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let delta = match fields[0] {
                "start" => 1,
                "exit" | "term" => -1,
                _ => return None,
            };
            Some((fields[3].parse().unwrap(), delta))
        })
        .collect();
    // At one instant an exit comes before a start.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

/// 50 spawn requests at once, from 50 processes, in a swarm whose maxWorkers is 5, served by two
/// supervisors that could each run all 50: every worker runs once, and never more than 5 at once.
#[test]
fn fifty_simultaneous_spawns_never_run_more_than_max_workers() {
    let project = Project::with(&["--maxAgents=60", "--maxWorkers=5"]);
    let _supervisors = [Killed(project.supervise_up_to(50)), Killed(project.supervise_up_to(50))];
    std::thread::scope(|scope| {
        let spawns: Vec<_> = (0..50)
            .map(|n| {
                let project = &project;
                scope.spawn(move || {
                    let name = format!("--name=w{n}");
                    let args = ["agent_spawn", "worker", &name, "--swarmId=s", "--profile=py", "--prompt=sleep 0.4"];
                    project.call(&args)
                })
            })
            .collect();
        for spawn in spawns {
            let spawned = spawn.join().unwrap();
            assert_eq!(spawned["worker"], "py", "{spawned}");
        }
    });
    wait_until("every worker to run and exit", || match project.events("exit").len() {
        50 => Ok(()),
        n => Err(format!("{n} exited, {} started", project.events("start").len())),
    });
    assert_eq!(project.events("start").len(), 50, "each worker ran once");
    let most = most_at_once(&project.starts());
    assert_eq!(most, 5, "the cap is reached and never passed");
}

/// A spend cap: workers report what they spent (as Claude Code's result message says it); once
/// the swarm's total reaches the cap, a running worker is stopped gracefully (SIGTERM), a new one
/// does not start, `swarm_status` says why with an alert, and raising the cap lets it start.
#[test]
fn a_spend_cap_stops_running_workers_and_starts_nothing_new() {
    let project = Project::new();
    let set = project.budget(&["--spend-cap-usd", "1"]);
    assert_eq!(set["limits"]["spendCapUsd"], 1.0, "{set}");
    let _supervisor = Killed(project.supervise_logged());
    project.call(&["agent_spawn", "worker", "--name=stayer", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    wait_until("the staying worker to start", || project.events("start").first().cloned().ok_or("none"));
    for (name, exits) in [("p1", 1), ("p2", 2)] {
        let name = format!("--name={name}");
        project.call(&["agent_spawn", "worker", &name, "--swarmId=s", "--profile=pyspend", "--prompt=spend 0.6"]);
        wait_until("the spender to exit", || match project.events("exit").len() {
            n if n >= exits => Ok(()),
            n => Err(format!("{n} exits")),
        });
    }
    let stopped = wait_until("the staying worker to be stopped for the cap", || match project.worker("stayer") {
        w if w["state"] == "exited" => Ok(w),
        w => Err(w.to_string()),
    });
    assert!(stopped["stoppedFor"].as_str().unwrap().contains("spend cap"), "{stopped}");
    assert_eq!(project.events("term").len(), 1, "stopped with SIGTERM: {:?}", project.starts());
    let status = project.call(&["swarm_status", "--swarmId=s"]);
    let budget = &status["budget"];
    assert!((budget["spent"]["costUsd"].as_f64().unwrap() - 1.2).abs() < 1e-9, "{status}");
    assert_eq!(budget["spent"]["outputTokens"], 20, "{status}");
    assert!(budget["exhausted"].as_str().unwrap().contains("$1.2000 of its $1.0000"), "{status}");
    let alerts = status["alerts"].as_array().unwrap();
    assert!(alerts.iter().any(|a| a["metric"] == "spendUsd"), "{status}");
    // What the spender printed is readable through a tool, from the store (any host).
    let log = project.call(&["daa_fault_tolerance", "--strategy=worker_log", "--agentId=p2", "--swarmId=s"]);
    assert!(log["worker"]["logTail"].as_str().unwrap().contains("\"total_cost_usd\": 0.6"), "{log}");

    let late = project.call(&["agent_spawn", "worker", "--name=late", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    let late = late["agentId"].as_str().unwrap_or_else(|| panic!("{late}")).to_string();
    let waiting = project.call(&["swarm_status", "--swarmId=s"]);
    assert_eq!(waiting["workers"]["requested"], 1, "{waiting}");
    // The supervisor looked at the late worker and held it back for the cap: nothing started.
    wait_until("the supervisor to hold the late worker back", || {
        let held = project.supervisor_log().into_iter().find(|l| l.contains("the worker waits") && l.contains(&late));
        held.ok_or("not yet")
    });
    assert_eq!(project.events("start").len(), 3, "nothing starts over the cap: {:?}", project.starts());
    project.budget(&["--spend-cap-usd", "5"]);
    wait_until("the late worker to start once the cap is raised", || match project.events("start").len() {
        4 => Ok(()),
        n => Err(format!("{n} starts")),
    });
}

/// maxRestarts fails a crashing worker's agent before maxRetryAttempts would, and maxWallSeconds
/// stops a worker that runs on, gracefully; both say why.
#[test]
fn restarts_and_wall_time_are_budgeted_per_worker() {
    let project = Project::with(&["--maxRestarts=1", "--maxWallSeconds=1.5"]);
    let _supervisor = Killed(project.supervise());
    project.call(&["agent_spawn", "worker", "--name=c", "--swarmId=s", "--profile=py", "--prompt=crash"]);
    let crashed = wait_until("the crashing worker to be given up", || match project.worker("c") {
        w if w["state"] == "failed" => Ok(w),
        w => Err(w.to_string()),
    });
    assert_eq!(crashed["restarts"], 1, "{crashed}");
    assert!(crashed["stoppedFor"].as_str().unwrap().contains("maxRestarts"), "{crashed}");
    assert_eq!(project.status("c"), "failed");
    assert_eq!(project.events("start").len(), 2, "one start and one restart");

    project.call(&["agent_spawn", "worker", "--name=long", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    let ended = wait_until("the long worker to be stopped", || match project.worker("long") {
        w if w["state"] == "exited" => Ok(w),
        w => Err(w.to_string()),
    });
    assert!(ended["stoppedFor"].as_str().unwrap().contains("maxWallSeconds"), "{ended}");
    assert_eq!(project.events("term").len(), 1, "stopped with SIGTERM: {:?}", project.starts());
    let init_budget = project.budget(&[]);
    assert_eq!(init_budget["limits"], json!({"maxRestarts": 1, "maxWallSeconds": 1.5}), "{init_budget}");
}
