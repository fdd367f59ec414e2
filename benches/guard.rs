//! The git guard's speed (issue 19): `git commit` of 1,000 files against 1,000 reservations,
//! and what of it the guard's own check takes.
//!
//! Setup: a swarm of 10 agents holding `MESH_BENCH_RESERVATIONS` (default 1,000) exclusive
//! reservations, made in this process through the tool table: 70% single files, 20% folders,
//! 10% globs (`src/m7/*.rs`, `**/*.lock`-like); a temporary git repository with the guard
//! installed and `MESH_BENCH_FILES` (default 1,000) staged files, none of them reserved (the
//! commit must pass, so every path is looked up in full). Timed, as medians of `MESH_BENCH_REPS`
//! (default 15) runs: a whole `git commit` with the guard's hook installed and with
//! `--no-verify`; the `mesh-mcp guard check` process alone as the hook runs it (git diff,
//! opening the store, the lookup), the same with the paths given on its command line, a `git
//! commit --dry-run` floor without hooks, and `guard_blocks` in process. Without `--bench` (as
//! `cargo test` runs it) a smoke test at 50 × 50.
//!
//! `cargo bench --bench guard`. Output: a markdown table on stdout, progress on stderr.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_mcp::server::tools;
use serde_json::{json, Value};

fn var(name: &str, default: usize, smoke: usize, bench: bool) -> usize {
    if !bench {
        return smoke;
    }
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn call(engine: &mesh_mcp::mesh::Engine, tool: &str, args: Value) -> Value {
    let text = tools::call(engine, tool, args).await.expect("known tool").unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&text).expect("tool output is JSON")
}

/// Reservation `i` of `n`: a file, a folder or a glob, none covering the committed files.
fn pattern(i: usize) -> String {
    match i % 10 {
        0..=6 => format!("src/m{}/reserved_{i}.rs", i % 50),
        7 | 8 => format!("assets/a{i}"),
        _ => format!("src/m{}/gen_{i}_*.rs", i % 50),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn timed(reps: usize, mut run: impl FnMut()) -> Duration {
    median(
        (0..reps)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .collect(),
    )
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git").arg("-C").arg(repo).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let reservations = var("MESH_BENCH_RESERVATIONS", 1000, 50, bench);
    let files = var("MESH_BENCH_FILES", 1000, 50, bench);
    let reps = var("MESH_BENCH_REPS", 15, 3, bench);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("guard.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = mesh_mcp::open_engine(db.to_str().unwrap(), Default::default()).unwrap();
    let committer = rt.block_on(async {
        let init = json!({"topology": "mesh", "swarmId": "repo", "maxAgents": 16, "membership": "open", "heartbeatInterval": 3600, "messageTimeout": 7200});
        call(&engine, "swarm_init", init).await;
        let mut agents = Vec::new();
        for i in 0..11 {
            agents.push(call(&engine, "agent_spawn", json!({"type": "coder", "name": format!("a{i}")})).await);
        }
        for (i, chunk) in (0..reservations).collect::<Vec<_>>().chunks(50).enumerate() {
            let agent = &agents[i % 10];
            let paths: Vec<String> = chunk.iter().map(|&j| pattern(j)).collect();
            let args = json!({"action": "reserve", "agentId": agent["agentId"], "agentToken": agent["agentToken"], "paths": paths});
            call(&engine, "reservations", args).await;
        }
        agents.pop().unwrap()
    });
    eprintln!("{reservations} reservations held");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "."]);
    git(&repo, &["config", "user.email", "bench@example.com"]);
    git(&repo, &["config", "user.name", "bench"]);
    git(&repo, &["commit", "-qm", "base", "--allow-empty"]);
    let paths: Vec<String> = (0..files).map(|i| format!("src/m{}/file_{i}.rs", i % 50)).collect();
    for p in &paths {
        std::fs::create_dir_all(repo.join(p).parent().unwrap()).unwrap();
        std::fs::write(repo.join(p), "x").unwrap();
    }
    git(&repo, &["add", "."]);
    let bin = env!("CARGO_BIN_EXE_mesh-mcp");
    let token = committer["agentToken"].as_str().unwrap().to_string();
    let check = |extra: &[String]| {
        let out = Command::new(bin)
            .current_dir(&repo)
            .arg("--db")
            .arg(&db)
            .args(["guard", "check", "--hook", "pre-commit"])
            .args(extra)
            .env("MESH_AGENT_TOKEN", &token)
            .output()
            .unwrap();
        assert!(out.status.success(), "the guard refused: {}", String::from_utf8_lossy(&out.stderr));
    };
    // A whole `git commit` of the staged files, with the guard's hook and without any
    // (`--no-verify`), undone after each run (untimed) so that every run commits the same files.
    let install =
        Command::new(bin).arg("--db").arg(&db).args(["guard", "install", "--repo"]).arg(&repo).output().unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    let commit = |verify: bool| {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let mut cmd = Command::new("git");
            cmd.arg("-C").arg(&repo).args(["commit", "-qm", "bench"]).env("MESH_AGENT_TOKEN", &token);
            if !verify {
                cmd.arg("--no-verify");
            }
            let start = Instant::now();
            let out = cmd.output().unwrap();
            times.push(start.elapsed());
            assert!(out.status.success(), "git commit: {}", String::from_utf8_lossy(&out.stderr));
            git(&repo, &["reset", "-q", "--soft", "HEAD~1"]);
        }
        median(times)
    };
    let with_hook = commit(true);
    let without = commit(false);
    let hook = timed(reps, || check(&[]));
    let given = timed(reps, || check(&paths));
    let floor = timed(reps, || git(&repo, &["diff", "--cached", "--name-only", "-z", "--no-renames"]));
    let agent = rt.block_on(engine.agent_by_token(&token, None)).unwrap();
    let lookup = timed(reps, || {
        let blocked = rt.block_on(engine.guard_blocks(Some(&agent), &paths)).unwrap();
        assert!(blocked.is_empty());
    });
    // And a commit that is refused: every file reserved.
    let reserved: Vec<String> = (0..files.min(reservations)).map(|i| pattern(i).replace('*', "x")).collect();
    let refused = timed(reps, || {
        let blocked = rt.block_on(engine.guard_blocks(Some(&agent), &reserved)).unwrap();
        assert_eq!(blocked.len(), reserved.len());
    });
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    println!("| files × reservations | `git commit` with the guard | `git commit --no-verify` | `guard check` as the hook runs it | with the paths as arguments | `git diff --cached` alone | lookup in process (allowed) | lookup in process (all {} refused) |", reserved.len());
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {files} × {reservations} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms |",
        ms(with_hook),
        ms(without),
        ms(hook),
        ms(given),
        ms(floor),
        ms(lookup),
        ms(refused)
    );
}
