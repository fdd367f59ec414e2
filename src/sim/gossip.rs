//! The gossip driver: some live nodes write keys at time 0, faulty nodes crash for good at random
//! times, and the run lasts until every live node holds every key (or the time budget is spent).

use std::time::Instant;

use rand::RngExt;

use super::report::{Kind, Report, Verdict};
use super::{pick_nodes, Event, Network, Sim, SimConfig, Step};
use crate::protocols::gossip::Gossip;
use crate::protocols::NodeId;

/// One gossip round, in simulated ms.
pub const ROUND_MS: u64 = 100;
/// Faulty nodes crash at a random time before this.
const CRASH_BEFORE_MS: u64 = 10 * ROUND_MS;

/// The value node `writer` writes under `key`.
fn written(key: u32, writer: NodeId) -> u64 {
    ((key as u64) << 32) | writer as u64
}

pub fn run(cfg: &SimConfig) -> Report {
    let started = Instant::now();
    let n = cfg.nodes;
    let mut rng = Sim::<Gossip>::side_rng(cfg.seed, 3);
    let faulty = pick_nodes(&mut rng, n, cfg.faulty);
    let live: Vec<NodeId> = (0..n).filter(|i| faulty.binary_search(i).is_err()).collect();
    let mut nodes: Vec<Gossip> = (0..n).map(|i| Gossip::new(i, n, cfg.fanout as usize)).collect();
    let keys = cfg.requests;
    let mut writers = Vec::new();
    for key in 0..keys {
        let writer = live[rng.random_range(0..live.len())];
        nodes[writer as usize].set(key, written(key, writer));
        writers.push(writer);
    }
    let net = Network::new(n, cfg.drop, cfg.delay, &cfg.partitions, cfg.gst);
    let mut sim = Sim::new(nodes, net, ROUND_MS, Sim::<Gossip>::side_rng(cfg.seed, 0));
    for &id in &faulty {
        let at = rng.random_range(0..CRASH_BEFORE_MS);
        sim.schedule(at, Event::Crash(id));
    }

    let complete = |g: &Gossip| (0..keys).all(|k| g.version(k).is_some());
    let mut done = vec![false; n as usize];
    let mut done_live = 0usize;
    for &id in &live {
        if complete(&sim.nodes[id as usize]) {
            done[id as usize] = true;
            done_live += 1;
        }
    }
    let mut first = (done_live > 0).then_some(0);
    let mut converged = (done_live == live.len()).then_some(0);
    while converged.is_none() {
        let Some(step) = sim.step(cfg.max_time) else { break };
        if let Step::Touched(id) = step {
            let i = id as usize;
            if !done[i] && complete(&sim.nodes[i]) {
                done[i] = true;
                if faulty.binary_search(&id).is_err() {
                    done_live += 1;
                    first.get_or_insert(sim.now);
                    if done_live == live.len() {
                        converged = Some(sim.now);
                    }
                }
            }
        }
    }

    let mut report = Report::start(cfg, faulty.clone());
    let end = converged.unwrap_or(sim.now);
    report.rounds = end.div_ceil(ROUND_MS);
    report.traffic(sim.traffic, live.len() as u64);
    report.decisions = done_live as u64;
    report.first_decision_ms = first;
    report.all_decisions_ms = converged;
    report.sim_time_ms = sim.now;
    report.stats.push(("keys".into(), keys as u64));
    report.stats.push(("fanout".into(), cfg.fanout as u64));
    let detail = match converged {
        Some(t) => {
            format!("all {} live nodes hold all {keys} keys after {} rounds ({t} ms)", live.len(), report.rounds)
        }
        None => format!("{done_live} of {} live nodes hold all {keys} keys when the run stopped", live.len()),
    };
    report.properties.push(Verdict::new("convergence", Kind::Liveness, converged.is_some(), detail));
    let forged = live.iter().find_map(|&id| {
        (0..keys).find_map(|k| {
            let e = sim.nodes[id as usize].entry(k)?;
            (e.value != written(k, writers[k as usize])).then(|| format!("node {id} holds {e:?}, nobody wrote that"))
        })
    });
    let integrity = Verdict::new(
        "integrity",
        Kind::Safety,
        forged.is_none(),
        forged.unwrap_or_else(|| "every value held was written by its writer".into()),
    );
    report.properties.push(integrity);
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Protocol;

    fn cfg(n: u32, seed: u64) -> SimConfig {
        SimConfig::new(Protocol::Gossip, n, seed)
    }

    #[test]
    fn gossip_run_converges_in_log_rounds_with_fanout_3() {
        // Over many seeds and sizes: rounds <= 2 log2(N) + 2 (measured: about log2(N) / 2 + 2).
        for (i, n) in [16u32, 64, 256, 1024].into_iter().enumerate() {
            for seed in 0..(40 >> i) {
                let r = run(&cfg(n, seed));
                let bound = 2 * n.ilog2() as u64 + 2;
                assert!(r.all_decisions_ms.is_some(), "n={n} seed={seed} did not converge");
                assert!(r.rounds <= bound, "n={n} seed={seed}: {} rounds > {bound}", r.rounds);
            }
        }
    }

    #[test]
    fn gossip_live_nodes_converge_despite_crashes_drops_and_a_healed_partition() {
        for seed in 0..60 {
            let mut c = cfg(40, seed);
            c.faulty = (seed % 10) as u32;
            c.drop = 0.2;
            c.partitions = vec!["0-19|20-39@0..800".parse().unwrap()];
            let r = run(&c);
            assert!(r.safe(), "seed {seed}: {:?}", r.properties);
            assert!(r.all_decisions_ms.is_some_and(|t| t >= 800), "seed {seed}: {:?}", r.properties);
        }
    }

    #[test]
    fn gossip_partition_that_never_heals_keeps_the_halves_apart() {
        let mut c = cfg(20, 1);
        c.requests = 1;
        c.max_time = 3_000;
        c.partitions = vec!["0-9|10-19".parse().unwrap()];
        let r = run(&c);
        assert!(r.all_decisions_ms.is_none());
        assert_eq!(r.decisions, 10, "only the writer's half converges");
        assert!(!r.properties[0].ok && r.safe());
    }
}
