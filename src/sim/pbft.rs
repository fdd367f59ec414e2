//! The pBFT driver: a client multicasts one request every few ms to every replica, Byzantine
//! replicas equivocate ([`super::byzantine`]), and the run lasts until every honest replica has
//! executed every request (or the time budget is spent). Agreement is checked over every decision
//! every honest replica made.

use std::time::Instant;

use super::byzantine::equivocate;
use super::checks::agreement;
use super::report::{Kind, Report, Verdict};
use super::{pick_nodes, Event, Network, Sim, SimConfig, Step};
use crate::protocols::pbft::{Config, Pbft};
use crate::protocols::NodeId;

/// Replica timers tick this often (simulated ms).
pub const TICK_MS: u64 = 10;
/// The client sends request i at `i * REQUEST_EVERY_MS`.
const REQUEST_EVERY_MS: u64 = 5;

pub fn run(cfg: &SimConfig) -> Report {
    run_with(cfg, Config::default())
}

/// Run with explicit protocol settings (tests shrink the checkpoint interval).
pub fn run_with(cfg: &SimConfig, pbft: Config) -> Report {
    let started = Instant::now();
    let n = cfg.nodes;
    let mut rng = Sim::<Pbft>::side_rng(cfg.seed, 1);
    let byzantine = pick_nodes(&mut rng, n, cfg.faulty);
    let honest: Vec<NodeId> = (0..n).filter(|i| byzantine.binary_search(i).is_err()).collect();
    let nodes = (0..n).map(|i| Pbft::new(i, n, pbft)).collect();
    let net = Network::new(n, cfg.drop, cfg.delay, &cfg.partitions, cfg.gst);
    let mut sim = Sim::new(nodes, net, TICK_MS, Sim::<Pbft>::side_rng(cfg.seed, 0));
    for &id in &byzantine {
        sim.set_byzantine(id, equivocate);
    }
    let requests = cfg.requests as u64;
    for value in 1..=requests {
        sim.schedule(value * REQUEST_EVERY_MS, Event::Client(value));
    }

    let all_executed = |p: &Pbft| p.executed_count() as u64 >= requests && (1..=requests).all(|v| p.has_executed(v));
    let mut done = vec![false; n as usize];
    let mut done_honest = 0;
    let mut first: Option<u64> = None;
    let mut all: Option<u64> = None;
    while all.is_none() {
        let Some(step) = sim.step(cfg.max_time) else { break };
        let touched = match step {
            Step::Touched(id) => vec![id],
            Step::Client(value) => {
                for id in 0..n {
                    let out = sim.nodes[id as usize].on_request(value, sim.now);
                    sim.send(out);
                }
                honest.clone()
            }
            _ => Vec::new(),
        };
        for id in touched {
            let node = &sim.nodes[id as usize];
            if byzantine.binary_search(&id).is_ok() || done[id as usize] {
                continue;
            }
            if first.is_none() && node.executed_count() > 0 {
                first = Some(sim.now);
            }
            if all_executed(node) {
                done[id as usize] = true;
                done_honest += 1;
                if done_honest == honest.len() {
                    all = Some(sim.now);
                }
            }
        }
    }

    let mut report = Report::start(cfg, byzantine);
    report.rounds = all.unwrap_or(sim.now).div_ceil(TICK_MS);
    let decided = if all.is_some() {
        requests
    } else {
        (1..=requests).filter(|&v| honest.iter().all(|&i| sim.nodes[i as usize].has_executed(v))).count() as u64
    };
    report.traffic(sim.traffic, decided);
    report.decisions = decided;
    report.first_decision_ms = first;
    report.all_decisions_ms = all;
    report.sim_time_ms = sim.now;
    let honest_nodes = || honest.iter().map(|&i| &sim.nodes[i as usize]);
    report.stats = vec![
        ("max view".into(), honest_nodes().map(|p| p.view()).max().unwrap_or(0)),
        (
            "stable checkpoint (min over honest)".into(),
            honest_nodes().map(|p| p.stable_checkpoint()).min().unwrap_or(0),
        ),
        ("log length (max over honest)".into(), honest_nodes().map(|p| p.log_len() as u64).max().unwrap_or(0)),
    ];
    let decisions = honest.iter().flat_map(|&i| sim.nodes[i as usize].decisions().iter().map(move |&(s, v)| (i, s, v)));
    report.properties.push(agreement(decisions));
    let detail = format!("{decided} of {requests} requests executed by all {} honest replicas", honest.len());
    report.properties.push(Verdict::new("progress", Kind::Liveness, all.is_some(), detail));
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Protocol;

    #[test]
    fn pbft_run_decides_every_request_without_faults() {
        let r = run(&SimConfig::new(Protocol::Pbft, 4, 1));
        assert!(r.safe(), "{:?}", r.properties);
        assert_eq!(r.decisions, 20);
        assert!(r.all_decisions_ms.is_some());
    }

    #[test]
    fn pbft_honest_replicas_agree_and_progress_after_heal_over_many_seeds() {
        for seed in 0..150 {
            let n = [4, 5, 7, 10][seed as usize % 4];
            let mut c = SimConfig::new(Protocol::Pbft, n, seed);
            c.faulty = (seed % ((n as u64 - 1) / 3 + 1)) as u32;
            c.drop = [0.0, 0.1, 0.3][seed as usize / 4 % 3];
            c.delay = (1, 20);
            c.requests = 12;
            c.gst = Some(2_000);
            c.max_time = 60_000;
            if seed % 3 == 0 {
                c.partitions = vec![format!("0-{}|{}-{}@50..1500", n / 2 - 1, n / 2, n - 1).parse().unwrap()];
            }
            let r = run_with(&c, Config { checkpoint_every: 4, window: 8, ..Config::default() });
            assert!(r.safe(), "seed {seed}: {:?}", r.properties);
            assert!(r.all_decisions_ms.is_some(), "seed {seed} stuck: {:?} {:?}", r.properties, r.stats);
        }
    }
}
