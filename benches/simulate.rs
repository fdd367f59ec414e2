//! The protocol simulator's figures against N: `cargo bench --bench simulate` (release profile).
//!
//! Runs the library's simulator fault-free with the default delays (1..10 ms per message): gossip
//! (fanout 3, 4 keys), the engine's pBFT (20 client requests) and its leader election (20 fenced
//! writes), a few seeds per size; pBFT and the election run the engine itself on an in-memory
//! store. It prints one markdown table per protocol on stdout: mean rounds or 10 ms ticks, mean
//! messages, messages per decision (per node for gossip), simulated time to the first decision
//! and to all decisions or convergence, and wall time per run. It exits non-zero if any run
//! violates a safety property or fails to finish. Without `--bench` (`cargo test --benches`) it
//! is a smoke test on the smallest sizes.

use std::process::ExitCode;

use mesh_mcp::sim::{self, Protocol, Report, SimConfig};

const SEEDS: u64 = 5;

struct Row {
    n: u32,
    reports: Vec<Report>,
}

fn mean(rows: &[Report], f: impl Fn(&Report) -> f64) -> f64 {
    rows.iter().map(f).sum::<f64>() / rows.len() as f64
}

fn table(protocol: Protocol, rows: &[Row]) -> String {
    let gossip = protocol == Protocol::Gossip;
    let mut s = format!("### {protocol} ({SEEDS} seeds per N, means)\n\n");
    let (rounds, per, last) = if gossip {
        ("rounds", "msgs / node", "convergence")
    } else {
        ("ticks (10 ms)", "msgs / decision", "all decisions")
    };
    s += &format!("| N | {rounds} | messages | {per} | first decision | {last} | wall / run |\n");
    s += "|---:|---:|---:|---:|---:|---:|---:|\n";
    for row in rows {
        let r = &row.reports;
        let ms = |v: Option<u64>| v.unwrap_or(0) as f64;
        s += &format!(
            "| {} | {:.1} | {:.0} | {:.1} | {:.0} ms | {:.0} ms | {:.1} ms |\n",
            row.n,
            mean(r, |x| x.rounds as f64),
            mean(r, |x| x.messages as f64),
            mean(r, |x| x.messages_per_decision),
            mean(r, |x| ms(x.first_decision_ms)),
            mean(r, |x| ms(x.all_decisions_ms)),
            mean(r, |x| x.wall_ms),
        );
    }
    s
}

fn main() -> ExitCode {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let plan: [(Protocol, &[u32]); 3] = [
        (Protocol::Gossip, &[10, 100, 1000, 10_000]),
        (Protocol::Pbft, &[4, 7, 16, 31, 64, 100]),
        (Protocol::Election, &[3, 5, 9, 33, 101]),
    ];
    let mut failed = false;
    for (protocol, sizes) in plan {
        let sizes = if smoke { &sizes[..1] } else { sizes };
        let mut rows = Vec::new();
        for &n in sizes {
            let mut reports = Vec::new();
            for seed in 1..=SEEDS {
                let r = sim::run(&SimConfig::new(protocol, n, seed)).expect("valid config");
                if !r.safe() || r.all_decisions_ms.is_none() {
                    eprintln!("{protocol} n={n} seed={seed} failed:\n{}", r.table());
                    failed = true;
                }
                eprintln!("{protocol} n={n} seed={seed}: {:.1} ms", r.wall_ms);
                reports.push(r);
            }
            rows.push(Row { n, reports });
        }
        println!("{}", table(protocol, &rows));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
