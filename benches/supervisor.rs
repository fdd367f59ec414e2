//! Supervisors (issue 16), measured through the release binary: the time from `agent_spawn` to a
//! worker's first call, the restart latency after `kill -9` of a worker, the adoption time after
//! `kill -9` of its supervisor (a second supervisor takes the worker once the first one's lease
//! has run out), and a supervisor's own CPU and memory while it holds 100 idle workers.
//!
//! `cargo bench --bench supervisor`; `MESH_BENCH_ROUNDS` sets the rounds of the first two
//! (default 10). The worker is `tests/data/worker/worker.py` (Python 3, speaking MCP to its own
//! bound `mesh-mcp serve`); the 100 idle workers are `sleep`. Prints markdown tables. Without
//! `--bench` (`cargo test --benches`) it is a smoke test: one round, 5 idle workers, 2 s.

#[path = "../tests/common/rpc.rs"]
mod rpc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rpc::RawServer;
use serde_json::json;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds =
        if bench { std::env::var("MESH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10) } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join(".mesh")).unwrap();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/worker/worker.py");
    let runners = format!(
        "[runners.py]\nprogram = \"python3\"\nargs = [{:?}]\nstdin = \"{{prompt}}\"\nenv = {{ MESH_BIN = \"{{mesh_bin}}\" }}\n\n\
         [runners.idle]\nprogram = \"sleep\"\nargs = [\"3600\"]\nstdin = \"{{prompt}}\"\n",
        worker.to_string_lossy()
    );
    std::fs::write(root.join(".mesh/runners.toml"), runners).unwrap();
    let db = root.join("mesh.db").to_string_lossy().into_owned();
    // The bench's own session on the store: it spawns the agents and watches them.
    std::env::set_current_dir(&root).unwrap();
    let mut mesh = RawServer::spawn(&db);
    let init = json!({"topology": "mesh", "swarmId": "b", "heartbeatInterval": 600, "messageTimeout": 3600, "maxAgents": 1000});
    mesh.ok("swarm_init", init);

    let mut supervisor = supervise(&db, &root, 200);
    let (mut first_calls, mut restarts) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let name = format!("w{i}");
        let started = Instant::now();
        let spawned =
            mesh.ok("agent_spawn", json!({"type": "worker", "name": name, "profile": "py", "prompt": "stay"}));
        let id = spawned["agentId"].as_str().unwrap().to_string();
        until(|| heartbeat(&mut mesh, &name));
        first_calls.push(started.elapsed());
        let pid = until(|| starts(&root).iter().find(|(_, agent)| *agent == id).map(|(pid, _)| *pid));
        let before = starts(&root).len();
        let killed = Instant::now();
        // SAFETY: kill sends a signal to a worker this bench's supervisor started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        until(|| (starts(&root).len() > before).then_some(()));
        restarts.push(killed.elapsed());
    }
    let adopted = {
        let before = starts(&root).len();
        supervisor.kill().unwrap();
        supervisor.wait().unwrap();
        let killed = Instant::now();
        supervisor = supervise(&db, &root, 200);
        until(|| (starts(&root).len() >= before + rounds).then_some(()));
        killed.elapsed()
    };
    let idle = if bench { 100 } else { 5 };
    for i in 0..idle {
        mesh.ok("agent_spawn", json!({"type": "worker", "name": format!("idle{i}"), "profile": "idle"}));
    }
    until(|| (running(&mut mesh) >= rounds + idle).then_some(()));
    std::thread::sleep(Duration::from_secs(if bench { 10 } else { 1 }));
    let window = Duration::from_secs(if bench { 30 } else { 2 });
    let (first, last) = (sample(supervisor.id()), {
        std::thread::sleep(window);
        sample(supervisor.id())
    });
    let cpu = 100.0 * (last.1 - first.1) / window.as_secs_f64();

    println!("| {rounds} rounds | p50 ms | max ms |\n|---|---|---|");
    for (label, times) in
        [("agent_spawn -> the worker's first call", first_calls), ("kill -9 of a worker -> started again", restarts)]
    {
        let (p50, max) = quantiles(times);
        println!("| {label} | {p50:.0} | {max:.0} |");
    }
    println!(
        "\nkill -9 of the supervisor -> all {rounds} workers started by a second one: {:.1} s",
        adopted.as_secs_f64()
    );
    println!(
        "\n| supervisor holding | RSS MiB | CPU, % of one core |\n|---|---|---|\n| {} idle workers | {:.1} | {:.2} |",
        rounds + idle,
        last.0 as f64 / 1024.0,
        cpu
    );
    let _ = supervisor.kill();
    let _ = supervisor.wait();
}

fn supervise(db: &str, root: &Path, capacity: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mesh-mcp"))
        .args(["--db", db, "supervise", "--capacity", &capacity.to_string(), "--project"])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Poll `probe` every 5 ms, for up to 60 s.
fn until<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn agents(mesh: &mut RawServer) -> Vec<serde_json::Value> {
    let list = mesh.ok("agent_list", json!({"limit": 500}));
    list["agents"].as_array().cloned().unwrap_or_default()
}

/// Whether agent `name` has made a call (its worker's session bound it).
fn heartbeat(mesh: &mut RawServer, name: &str) -> Option<()> {
    agents(mesh).iter().any(|a| a["name"] == name && a.get("heartbeatAgeMs").is_some()).then_some(())
}

fn running(mesh: &mut RawServer) -> usize {
    agents(mesh).iter().filter(|a| a["worker"]["state"] == "running").count()
}

/// `(pid, agent id)` of each start in the workers' log, in order.
fn starts(root: &Path) -> Vec<(i32, String)> {
    let log: PathBuf = root.join("starts.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start"))
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let pid = parts.nth(1)?.parse().ok()?;
            Some((pid, parts.next()?.to_string()))
        })
        .collect()
}

/// (RSS in KiB, CPU seconds) of a process.
fn sample(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf reads a constant of the system.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (rss.unwrap(), ticks / per_sec)
}

fn quantiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[(times.len() - 1) / 2]), ms(*times.last().unwrap()))
}
