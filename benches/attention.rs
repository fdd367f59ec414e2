//! Attention benchmarks: `cargo bench --bench attention` (release). Prints markdown tables on
//! stdout, progress on stderr; BENCHMARKS.md records a run.
//!
//! 1. **Our attention against the naive reference**, N agents attending to each other (d = 384,
//!    8 heads, identity projections), at N = 4, 12, 100, 1000 and 10,000: `Attention::forward`
//!    on the path it picks by size, against a plain f64 implementation written out below the
//!    way `src/attention/reference.rs` (tests only) is: full N x N logits per head, no chunks,
//!    no fusion. The naive one is not run at N = 10,000 (its logits alone take 800 MB per
//!    head); the relative error of ours against it is printed where both ran.
//! 2. **One query against N keys and values, against `@ruvector/attention`**: it has no Q/K/V/O
//!    projections and takes one query per call, so we time our single-query kernel
//!    (`attention::single::attend_one`, same heads, no projections) on the very inputs handed
//!    to its `MultiHeadAttention(384, 8).compute(query, keys, values)` (written to a file and
//!    read by `benches/ruvector_attention.mjs` under Node), and compare the outputs. Needs the package: `benches/ruvector_attention.sh
//!    --install` puts it in `~/.cache/mesh-mcp/bench-node` (`RUVECTOR_NODE_DIR` overrides);
//!    without it that column says "not installed".
//! 3. **`attention_consensus` end to end over stdio**: the release binary spawned as `mesh-mcp
//!    serve --db :memory:`, a raw JSON-RPC client, round trips timed at N = 4, 12 and 100
//!    outputs (peers and byzantine modes), next to the server's own `executionMs`.
//!
//! 4. **Which path at which size**: the fused plain-Rust pass against candle on one thread and
//!    on all threads, at N = 4 to 1000, next to the path `choose_path` picks; the measurement
//!    behind the constants in `src/attention/path.rs`.
//!
//! Knobs: `MESH_BENCH_BUDGET_MS` time spent per measurement (default 1000). Without `--bench`
//! (`cargo test --benches`) it is a smoke test: small N, tiny budgets.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_mcp::attention::projection::SplitMix64;
use mesh_mcp::attention::single::attend_one;
use mesh_mcp::attention::{choose_path, Attention, AttentionConfig, AttentionRequest, ComputeDevice, Path};
use serde_json::{json, Value};

#[path = "../tests/common/rpc.rs"]
mod rpc;
use rpc::RawServer;

const D: usize = 384;
const H: usize = 8;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.next_symmetric() as f32).collect()
}

/// Mean time per call: one warm-up (skipped past a second), then calls until `budget` is spent
/// or `max_reps` made.
fn time(budget: Duration, max_reps: usize, mut f: impl FnMut()) -> (Duration, usize) {
    let t = Instant::now();
    f();
    let first = t.elapsed();
    if first > Duration::from_secs(1) || max_reps <= 1 {
        return (first, 1);
    }
    let start = Instant::now();
    let mut reps = 0;
    while reps < max_reps && (reps == 0 || start.elapsed() < budget) {
        f();
        reps += 1;
    }
    (start.elapsed() / reps as u32, reps)
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// The naive f64 attention with identity projections: per head, full N x N logits, row
/// softmax, weights times values. Returns the `N x d` output.
fn naive(x: &[f32], n: usize) -> Vec<f64> {
    let dh = D / H;
    let x: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let mut out = vec![0f64; n * D];
    for h in 0..H {
        let cols = h * dh..(h + 1) * dh;
        let mut logits = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = cols.clone().map(|c| x[i * D + c] * x[j * D + c]).sum();
                logits[i * n + j] = dot / (dh as f64).sqrt();
            }
        }
        for i in 0..n {
            let row = &logits[i * n..(i + 1) * n];
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|l| (l - max).exp()).collect();
            let s: f64 = e.iter().sum();
            for j in 0..n {
                for c in cols.clone() {
                    out[i * D + c] += e[j] / s * x[j * D + c];
                }
            }
        }
    }
    out
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max);
    diff / b.iter().map(|y| y.abs()).fold(f64::MIN_POSITIVE, f64::max)
}

fn vs_reference(sizes: &[usize], budget: Duration) {
    let att = Attention::new(AttentionConfig::default()).unwrap();
    println!("## Multi-head self-attention, N agents (d = 384, 8 heads, identity projections)\n");
    println!("| N | ours | path | naive f64 reference | speedup | rel. error vs reference |");
    println!("|---|---|---|---|---|---|");
    for &n in sizes {
        eprintln!("self-attention N={n}");
        let x = random(n * D, n as u64);
        let req = AttentionRequest::new(&x, n);
        let mut out = None;
        let (ours, _) = time(budget, 10_000, || out = Some(att.forward(&req).unwrap()));
        let out = out.unwrap();
        let (reference, err) = if n <= 1000 {
            let mut r = Vec::new();
            let (t, _) = time(budget, 1000, || r = naive(&x, n));
            (Some(t), Some(rel_err(&out.output, &r)))
        } else {
            (None, None)
        };
        let path = format!("{:?}", out.path);
        match (reference, err) {
            (Some(r), Some(e)) => println!(
                "| {n} | {} | {path} | {} | {:.1}x | {e:.1e} |",
                fmt(ours),
                fmt(r),
                r.as_secs_f64() / ours.as_secs_f64()
            ),
            _ => println!("| {n} | {} | {path} | not run (800 MB of logits per head) | | |", fmt(ours)),
        }
    }
    println!();
}

fn ruvector_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RUVECTOR_NODE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mesh-mcp/bench-node")))?;
    dir.join("node_modules/@ruvector/attention/package.json").is_file().then_some(dir)
}

/// Time `@ruvector/attention` on the same input under Node; `None` when it cannot run.
fn ruvector(
    dir: &PathBuf,
    input: &[f32],
    n: usize,
    budget: Duration,
    max_reps: usize,
) -> Option<(Duration, usize, Vec<f32>)> {
    let file = std::env::temp_dir().join(format!("mesh-attention-bench-{}-{n}.bin", std::process::id()));
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&file, bytes).ok()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ruvector_attention.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(dir)
        .arg(&file)
        .args([n, D, H, budget.as_millis() as usize, max_reps].map(|v| v.to_string()))
        .output();
    let _ = std::fs::remove_file(&file);
    let out = out.ok()?;
    if !out.status.success() {
        eprintln!("node failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let result: Vec<f32> = v["out"].as_array()?.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect();
    Some((Duration::from_secs_f64(v["meanUs"].as_f64()? / 1e6), v["reps"].as_u64()? as usize, result))
}

fn vs_ruvector(sizes: &[usize], budget: Duration) {
    let dir = ruvector_dir();
    let version = dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("node_modules/@ruvector/attention/package.json")).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "not installed".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    println!("## One query against N keys and values (d = 384, 8 heads, no projections)\n");
    println!(
        "Same computation on both sides: `attend_one` (our fused single-query kernel) and `@ruvector/attention` {version} \
         `MultiHeadAttention.compute` under Node {}, on the same inputs; max |difference| of the outputs in the last column.\n",
        node.unwrap_or_else(|| "(none)".into())
    );
    println!("| N | ours | @ruvector/attention | calls timed (ours / theirs) | ours faster by | max abs diff |");
    println!("|---|---|---|---|---|---|");
    let mut skip_theirs = false;
    for &n in sizes {
        eprintln!("single query N={n}");
        let input = random(D + 2 * n * D, 1000 + n as u64);
        let (q, rest) = input.split_at(D);
        let (k, v) = rest.split_at(n * D);
        let mut out = vec![0f32; D];
        let (ours, reps) = time(budget, 100_000, || attend_one(q, k, v, H, &mut out, None).unwrap());
        let theirs = match (&dir, skip_theirs) {
            (Some(dir), false) => ruvector(dir, &input, n, budget, 10_000),
            _ => None,
        };
        match theirs {
            Some((t, their_reps, result)) => {
                let diff = out.iter().zip(&result).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let same_len = result.len() == D;
                println!(
                    "| {n} | {} | {} | {reps} / {their_reps} | {:.1}x | {} |",
                    fmt(ours),
                    fmt(t),
                    t.as_secs_f64() / ours.as_secs_f64(),
                    if same_len { format!("{diff:.1e}") } else { format!("length {} != {D}", result.len()) }
                );
                // Past 10 s a call, the next size (10x the keys) is not worth the wait.
                skip_theirs = t > Duration::from_secs(10);
            }
            None => println!("| {n} | {} | not run | {reps} / - | | |", fmt(ours)),
        }
    }
    println!();
}

/// Realistic-looking outputs: several positions in different words.
fn outputs(n: usize) -> Vec<Value> {
    let stances = [
        "Use Express.js for the API: its middleware ecosystem is the largest and the team knows it",
        "Fastify serves twice the requests per second and validates JSON schema out of the box",
        "Put a Redis cache with a five minute TTL in front of the profile service",
        "Ship behind a feature flag and roll out to five percent of users first",
        "Write the migration as two steps so the old code keeps working during deploy",
    ];
    (0..n)
        .map(|i| json!({"agentType": "coder", "content": format!("{} (review {i}, point {})", stances[i % stances.len()], i * 7 % 13)}))
        .collect()
}

fn end_to_end(sizes: &[usize], budget: Duration) {
    let bin = std::env::var_os("MESH_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mesh-mcp")));
    let mut server = RawServer::launch(bin.to_str().expect("a UTF-8 binary path"), ":memory:", &[]);
    println!("## attention_consensus over stdio (release binary, `serve --db :memory:`, lexical embedder)\n");
    println!("Round trip = request line written to the reply line read; executionMs = the server's own measurement.\n");
    println!("| N outputs | mode | calls | round trip mean | round trip median | executionMs mean | embedMs mean |");
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        for mode in ["peers", "byzantine"] {
            eprintln!("end to end N={n} {mode}");
            let args = json!({"name": "attention_consensus", "arguments": {"mode": mode, "outputs": outputs(n)}});
            let (mut rt, mut exec, mut embed) = (Vec::new(), Vec::new(), Vec::new());
            let start = Instant::now();
            while rt.len() < 10_000 && (rt.len() < 5 || start.elapsed() < budget) {
                let line = server.line("tools/call", args.clone());
                let t = Instant::now();
                let resp = server.round_trip(&line);
                let took = t.elapsed();
                let text = resp["result"]["content"][0]["text"].as_str().expect("tool result");
                assert_ne!(resp["result"]["isError"], true, "{text}");
                let body: Value = serde_json::from_str(text).unwrap();
                rt.push(took);
                exec.push(body["executionMs"].as_f64().unwrap());
                embed.push(body["embedMs"].as_f64().unwrap());
            }
            let calls = rt.len();
            let mean = rt.iter().sum::<Duration>() / calls as u32;
            rt.sort();
            let median = rt[calls / 2];
            let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "| {n} | {mode} | {calls} | {} | {} | {:.3} ms | {:.3} ms |",
                fmt(mean),
                fmt(median),
                avg(&exec),
                avg(&embed)
            );
        }
    }
    println!();
}

fn paths(sizes: &[usize], budget: Duration) {
    let att = Attention::new(AttentionConfig::default()).expect("attention");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## Path crossover (d = {D}, {H} heads, identity projections; mean per forward)\n");
    println!("| N | fused | candle 1 thread | candle {threads} threads | chosen |");
    println!("|---|---|---|---|---|");
    for &n in sizes {
        eprintln!("paths N={n}");
        let x = random(n * D, n as u64);
        let req = AttentionRequest::new(&x, n);
        let on = |path: Path| {
            time(budget, 2000, || {
                att.forward_on(path, &req).expect("forward");
            })
            .0
        };
        let fused = on(Path::Fused);
        let one = on(Path::Candle { chunk: n, threads: 1 });
        let all = on(Path::Candle { chunk: n, threads });
        let chosen = choose_path(n, D, H, ComputeDevice::Cpu);
        println!("| {n} | {} | {} | {} | {chosen:?} |", fmt(fused), fmt(one), fmt(all));
    }
    println!();
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let budget_ms = std::env::var("MESH_BENCH_BUDGET_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let budget = Duration::from_millis(if bench { budget_ms } else { 20 });
    let (sizes, e2e): (&[usize], &[usize]) =
        if bench { (&[4, 12, 100, 1000, 10_000], &[4, 12, 100]) } else { (&[4, 12], &[4]) };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "# Attention benchmarks ({} build, {cpus} CPUs visible)\n",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    vs_reference(sizes, budget);
    vs_ruvector(sizes, budget);
    end_to_end(e2e, budget);
    let crossover: &[usize] = if bench { &[4, 12, 32, 64, 100, 256, 1000] } else { &[4, 12] };
    paths(crossover, budget);
}
