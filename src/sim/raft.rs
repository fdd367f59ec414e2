//! The Raft driver: a client proposes values to whoever leads (retrying until they commit),
//! faulty nodes crash and restart again and again with their persisted state, and every event is
//! followed by the election-safety and commit checks.

use std::time::Instant;

use rand::RngExt;

use super::checks::{CommitLog, LeaderLog};
use super::report::{Kind, Report, Verdict};
use super::{pick_nodes, Event, Network, Sim, SimConfig, Step};
use crate::protocols::raft::{Config, Raft, NOOP};
use crate::protocols::NodeId;

/// Node timers tick this often (simulated ms).
pub const TICK_MS: u64 = 10;
/// The client looks for a leader this often.
const CLIENT_EVERY_MS: u64 = 10;
/// A proposal not committed after this long is proposed again.
const RETRY_MS: u64 = 400;
/// New values the client proposes per visit.
const PIPELINE: usize = 4;

/// What the driver knows while watching a run.
struct Watch {
    leaders: LeaderLog,
    commits: CommitLog,
    /// Per node: the commit index already checked.
    seen: Vec<u64>,
    /// Per value (index value - 1): when it was last proposed, and when it committed.
    proposed: Vec<Option<u64>>,
    decided: Vec<Option<u64>>,
    decided_count: u64,
}

impl Watch {
    /// Check node `id` after something happened to it.
    fn look(&mut self, sim: &Sim<Raft>, id: NodeId) {
        let node = &sim.nodes[id as usize];
        if node.is_leader() && self.leaders.observe(node.term(), id) {
            self.commits.check_leader(id, node.term(), node.log());
        }
        let i = id as usize;
        for index in self.seen[i] + 1..=node.commit_index() {
            let entry = node.log()[index as usize - 1];
            if self.commits.observe(id, index, entry) && entry.value != NOOP {
                let slot = &mut self.decided[entry.value as usize - 1];
                if slot.is_none() {
                    *slot = Some(sim.now);
                    self.decided_count += 1;
                }
            }
        }
        self.seen[i] = self.seen[i].max(node.commit_index());
    }

    /// Propose to the live leader of the highest term, if any.
    fn client(&mut self, sim: &mut Sim<Raft>) {
        let leader = (0..sim.nodes.len())
            .filter(|&i| !sim.down[i] && sim.nodes[i].is_leader())
            .max_by_key(|&i| sim.nodes[i].term());
        let Some(leader) = leader else { return };
        let now = sim.now;
        let mut fresh = 0;
        for v in 0..self.proposed.len() {
            if self.decided[v].is_some() {
                continue;
            }
            match self.proposed[v] {
                Some(at) if now < at + RETRY_MS => continue,
                None if fresh == PIPELINE => continue,
                None => fresh += 1,
                Some(_) => {}
            }
            self.proposed[v] = Some(now);
            let out = sim.nodes[leader].propose(v as u64 + 1, now).expect("it leads");
            sim.send(out);
        }
        self.look(sim, leader as NodeId);
    }
}

pub fn run(cfg: &SimConfig) -> Report {
    let started = Instant::now();
    let n = cfg.nodes;
    let mut rng = Sim::<Raft>::side_rng(cfg.seed, 2);
    let faulty = pick_nodes(&mut rng, n, cfg.faulty);
    let mut sim_rng = Sim::<Raft>::side_rng(cfg.seed, 0);
    let nodes = (0..n).map(|i| Raft::new(i, n, Config::default(), 0, &mut sim_rng)).collect();
    let net = Network::new(n, cfg.drop, cfg.delay, &cfg.partitions, cfg.gst);
    let mut sim = Sim::new(nodes, net, TICK_MS, sim_rng);
    for &id in &faulty {
        let at = rng.random_range(0..2_000);
        sim.schedule(at, Event::Crash(id));
    }
    sim.schedule(0, Event::Client(0));
    let requests = cfg.requests as usize;
    let mut w = Watch {
        leaders: LeaderLog::default(),
        commits: CommitLog::default(),
        seen: vec![0; n as usize],
        proposed: vec![None; requests],
        decided: vec![None; requests],
        decided_count: 0,
    };
    let (mut crashes, mut restarts) = (0u64, 0u64);
    while w.decided_count < requests as u64 {
        let Some(step) = sim.step(cfg.max_time) else { break };
        match step {
            Step::Touched(id) => w.look(&sim, id),
            Step::Client(_) => {
                w.client(&mut sim);
                sim.schedule(sim.now + CLIENT_EVERY_MS, Event::Client(0));
            }
            Step::Crashed(id) => {
                crashes += 1;
                let back = sim.now + rng.random_range(100..1_000);
                sim.schedule(back, Event::Restart(id));
            }
            Step::Restarted(id) => {
                restarts += 1;
                w.seen[id as usize] = 0;
                let again = sim.now + rng.random_range(200..3_000);
                sim.schedule(again, Event::Crash(id));
                w.look(&sim, id);
            }
            Step::Nothing => {}
        }
    }

    let mut report = Report::start(cfg, faulty);
    let all = (w.decided_count == requests as u64).then(|| w.decided.iter().flatten().copied().max().unwrap_or(0));
    report.rounds = all.unwrap_or(sim.now).div_ceil(TICK_MS);
    report.traffic(sim.traffic, w.decided_count);
    report.decisions = w.decided_count;
    report.first_decision_ms = w.decided.iter().flatten().copied().min();
    report.all_decisions_ms = all;
    report.sim_time_ms = sim.now;
    let max_term = sim.nodes.iter().map(|r| r.term()).max().unwrap_or(0);
    report.stats = vec![
        ("terms".into(), max_term),
        ("terms with a leader".into(), w.leaders.terms_led()),
        ("log entries committed".into(), w.commits.len() as u64),
        ("crashes".into(), crashes),
        ("restarts".into(), restarts),
    ];
    report.properties.push(w.leaders.verdict());
    report.properties.push(w.commits.verdict());
    let detail = format!("{} of {requests} client values committed", w.decided_count);
    report.properties.push(Verdict::new("progress", Kind::Liveness, all.is_some(), detail));
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Protocol;

    #[test]
    fn raft_run_decides_every_request_without_faults() {
        let r = run(&SimConfig::new(Protocol::Raft, 5, 1));
        assert!(r.safe(), "{:?}", r.properties);
        assert_eq!(r.decisions, 20);
        assert!(r.all_decisions_ms.is_some());
    }

    #[test]
    fn raft_keeps_one_leader_per_term_and_its_commits_over_many_seeds_with_faults() {
        for seed in 0..150 {
            let n = [3, 5, 7][seed as usize % 3];
            let mut c = SimConfig::new(Protocol::Raft, n, seed);
            c.faulty = (seed % (n as u64 / 2 + 1)) as u32;
            c.drop = [0.0, 0.05, 0.2][seed as usize / 3 % 3];
            c.delay = (1, 30);
            c.requests = 10;
            c.max_time = 20_000;
            if seed % 4 == 0 {
                c.partitions = vec![format!("0|1-{}@300..1500", n - 1).parse().unwrap()];
            }
            let r = run(&c);
            assert!(r.safe(), "seed {seed}: {:?}", r.properties);
            assert!(r.all_decisions_ms.is_some(), "seed {seed} made no progress: {:?}", r.properties);
        }
    }
}
