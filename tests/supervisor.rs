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
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join(".mesh")).unwrap();
        let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/worker/worker.py");
        let runners = format!(
            "[runners.py]\nprogram = \"python3\"\nargs = [{:?}]\nstdin = \"{{prompt}}\"\nenv = {{ MESH_BIN = \"{{mesh_bin}}\" }}\n",
            worker.to_string_lossy()
        );
        std::fs::write(root.join(".mesh/runners.toml"), runners).unwrap();
        let db = root.join("mesh.db").to_string_lossy().into_owned();
        let project = Project { _dir: dir, root, db };
        let init =
            project.call(&["swarm_init", "mesh", "--swarmId=s", "--heartbeatInterval=0.5", "--messageTimeout=600"]);
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
        Command::new(bin())
            .args(["--db", &self.db, "supervise", "--capacity", "4", "--project"])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
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
    let project = Project::new();
    let mut first = project.supervise();
    project.call(&["agent_spawn", "worker", "--name=a", "--swarmId=s", "--profile=py", "--prompt=stay"]);
    let p1 = wait_until("the worker to start", || pids(&project).first().copied().ok_or("no start".to_string()));
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until("the first supervisor's worker to die with it", || match alive(p1) {
        false => Ok(()),
        true => Err(format!("{p1} still runs")),
    });
    let second = Killed(project.supervise());
    let p2 = wait_until("the second supervisor to adopt the worker", || match pids(&project).get(1) {
        Some(&pid) => Ok(pid),
        None => Err("not yet".to_string()),
    });
    assert!(!alive(p1) && alive(p2), "one copy at a time");
    let destroyed = project.call(&["swarm_destroy", "--swarmId=s"]);
    assert!(destroyed.get("error").is_none(), "{destroyed}");
    wait_until("the destroyed swarm's worker to stop", || match alive(p2) {
        false => Ok(()),
        true => Err(format!("{p2} still runs")),
    });
    assert_eq!(pids(&project).len(), 2, "nothing started after the swarm was destroyed");
    drop(second);
}
