//! The election driver: `daa_consensus elect` and fenced writes, the engine's own code
//! ([`crate::mesh::consensus::election`]: a leader record under a store lease, a term key that
//! only grows), driven by agents over a lossy, partitioned network while faulty agents crash and
//! restart again and again.
//!
//! Every agent stands: it calls `elect` every [`ELECT_MS`] while it does not lead (a first
//! standing candidate is promoted by the sweep when the leader's lease runs out), and renews
//! every [`RENEW_MS`] while it believes it leads. A believed leader makes fenced writes
//! (`propose` with its `term`) every [`WRITE_MS`]; a restarted leader still believes in its old
//! term, which is exactly what fencing must refuse. The run lasts until `requests` fenced writes
//! were accepted. Checked: one leader per term, and that every accepted fenced write was made by
//! the leader of the current term at the instant the engine accepted it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, RngExt};
use serde_json::{json, Value};

use super::checks::LeaderLog;
use super::host::{CallError, Identity};
use super::peer::{Agent, Caller, Msg, Peer, Served, StoreNode};
use super::report::{Kind, Report, Verdict};
use super::{pick_nodes, store_with_node_zero, Event, Network, Sim, SimConfig, Step};
use crate::protocols::{NodeId, Outbox};

/// Agent timers tick this often (simulated ms).
pub const TICK_MS: u64 = 10;
const HEARTBEAT_SECS: f64 = 1.0;
/// The agents' liveness lease, which is also the leader's lease (`elect` defaults to it).
const LEASE_SECS: f64 = 2.0;
const SWEEP_MS: u64 = 100;
/// A non-leader stands again this often; a leader renews this often.
pub const ELECT_MS: u64 = 300;
pub const RENEW_MS: u64 = 500;
/// A believed leader makes a fenced write this often.
pub const WRITE_MS: u64 = 50;

#[derive(Debug, Clone)]
enum Purpose {
    Elect,
    Write,
    Keepalive,
}

/// One agent: what it believes about its leadership.
pub struct Candidate {
    caller: Caller<Purpose>,
    /// The term this agent believes it leads at.
    leads: Option<u64>,
    next_elect: u64,
    next_write: u64,
}

impl Candidate {
    fn new(idx: NodeId, me: Identity, store: NodeId, swarm: &str) -> Self {
        let heartbeat_ms = (HEARTBEAT_SECS * 1000.0) as u64;
        Self { caller: Caller::new(idx, me, store, swarm, heartbeat_ms), leads: None, next_elect: 0, next_write: 0 }
    }

    fn on_reply(&mut self, id: u64, result: Result<Arc<Value>, CallError>, now: u64, out: &mut Outbox<Msg>) {
        let Some(purpose) = self.caller.replied(id) else { return };
        match (purpose, result) {
            (Purpose::Elect, Ok(v)) => {
                let me = v["leader"]["agentId"].as_str() == Some(self.caller.me.id.as_str());
                self.leads = (v["elected"] == true && me).then(|| v["leader"]["term"].as_u64()).flatten();
            }
            (Purpose::Write, Err(e)) if e.code == "stale_term" => self.leads = None,
            (_, Err(e)) => self.caller.on_error(&e, now, Purpose::Keepalive, out),
            _ => {}
        }
    }
}

impl Agent for Candidate {
    fn id(&self) -> NodeId {
        self.caller.idx
    }

    fn on_message(&mut self, msg: Msg, now: u64) -> Outbox<Msg> {
        let mut out = Vec::new();
        if let Msg::Reply { id, result } = msg {
            self.on_reply(id, result, now, &mut out);
        }
        out
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) -> Outbox<Msg> {
        let mut out = Vec::new();
        self.caller.tick(now, Purpose::Keepalive, &mut out);
        if now >= self.next_elect && !self.caller.waiting(|p| matches!(p, Purpose::Elect)) {
            let every = if self.leads.is_some() { RENEW_MS } else { ELECT_MS };
            self.next_elect = now + every + rng.random_range(0..every / 4);
            self.caller.call(now, "daa_consensus", json!({ "action": "elect" }), Purpose::Elect, &mut out);
        }
        if let Some(term) = self.leads {
            if now >= self.next_write {
                self.next_write = now + WRITE_MS;
                let args = json!({ "action": "propose", "protocol": "quorum", "term": term,
                                   "agents": [self.caller.me.id], "proposal": { "write": now } });
                self.caller.call(now, "daa_consensus", args, Purpose::Write, &mut out);
            }
        }
        out
    }
}

/// What the driver sees of the engine's answers.
#[derive(Default)]
struct Watch {
    leaders: LeaderLog,
    writes: u64,
    stale_refused: u64,
    violation: Option<String>,
}

impl Watch {
    /// Look at one served call; `current` asks the engine who leads right now.
    fn observe(&mut self, s: &Served, current: impl FnOnce() -> Option<(u64, String)>, me: &str) {
        let action = s.args["action"].as_str().unwrap_or_default();
        match (action, &s.result) {
            ("elect", Ok(v)) if v["elected"] == true => {
                if let Some(term) = v["leader"]["term"].as_u64() {
                    self.leaders.observe(term, s.from);
                }
            }
            ("propose", Ok(_)) => {
                self.writes += 1;
                let term = s.args["term"].as_u64().unwrap_or(0);
                let now = current();
                if now.as_ref().is_none_or(|(t, who)| *t != term || who != me) {
                    self.violation.get_or_insert(format!(
                        "node {} wrote fenced with term {term} at {} ms, but the engine's leader then was {now:?}",
                        s.from, s.at
                    ));
                }
            }
            ("propose", Err(e)) if e.code == "stale_term" => self.stale_refused += 1,
            _ => {}
        }
    }

    fn fencing(&self) -> Verdict {
        match &self.violation {
            Some(v) => Verdict::new("fenced writes only by the current leader", Kind::Safety, false, v.clone()),
            None => Verdict::new(
                "fenced writes only by the current leader",
                Kind::Safety,
                true,
                format!("{} fenced writes accepted, {} stale ones refused", self.writes, self.stale_refused),
            ),
        }
    }
}

pub fn run(cfg: &SimConfig) -> Report {
    let started = Instant::now();
    let n = cfg.nodes;
    let mut rng = Sim::<Peer<Candidate>>::side_rng(cfg.seed, 2);
    let faulty = pick_nodes(&mut rng, n, cfg.faulty);
    let (host, ids) = super::host::Host::new(cfg.seed, n, HEARTBEAT_SECS, LEASE_SECS);
    let swarm = host.swarm.clone();
    let agent_ids: Vec<String> = ids.iter().map(|me| me.id.clone()).collect();
    let mut nodes: Vec<Peer<Candidate>> =
        ids.into_iter().enumerate().map(|(i, me)| Peer::Agent(Candidate::new(i as NodeId, me, n, &swarm))).collect();
    nodes.push(Peer::Store(Box::new(StoreNode::new(host, n, SWEEP_MS, false))));
    let net = Network::new(n + 1, cfg.drop, cfg.delay, &store_with_node_zero(&cfg.partitions, n), cfg.gst);
    let mut sim = Sim::new(nodes, net, TICK_MS, Sim::<Peer<Candidate>>::side_rng(cfg.seed, 0));
    for &id in &faulty {
        sim.schedule(rng.random_range(0..2_000), Event::Crash(id));
    }
    let requests = cfg.requests as u64;
    let mut watch = Watch::default();
    let (mut first, mut all) = (None, None);
    while all.is_none() {
        let Some(step) = sim.step(cfg.max_time) else { break };
        match step {
            Step::Crashed(id) => sim.schedule(sim.now + rng.random_range(500..4_000), Event::Restart(id)),
            Step::Restarted(id) => sim.schedule(sim.now + rng.random_range(1_000..5_000), Event::Crash(id)),
            Step::Touched(id) if id == n => {
                let now = sim.now;
                let store = sim.nodes[n as usize].store_mut().expect("the store");
                for s in std::mem::take(&mut store.journal) {
                    let current = || {
                        let v = store
                            .host
                            .call(now, "daa_consensus", json!({ "action": "leader", "swarmId": store.host.swarm }))
                            .ok()?;
                        Some((v["leader"]["term"].as_u64()?, v["leader"]["agentId"].as_str()?.to_string()))
                    };
                    watch.observe(&s, current, &agent_ids[s.from as usize]);
                }
                if first.is_none() && watch.writes > 0 {
                    first = Some(sim.now);
                }
                if watch.writes >= requests {
                    all = Some(sim.now);
                }
            }
            _ => {}
        }
    }
    let mut report = Report::start(cfg, faulty);
    report.rounds = all.unwrap_or(sim.now).div_ceil(TICK_MS);
    report.traffic(sim.traffic, watch.writes);
    report.decisions = watch.writes.min(requests);
    report.first_decision_ms = first;
    report.all_decisions_ms = all;
    report.sim_time_ms = sim.now;
    let believers = BTreeSet::from_iter(sim.nodes.iter().filter_map(|p| p.agent()?.leads));
    report.stats = vec![
        ("terms granted".into(), watch.leaders.terms_led()),
        ("stale fenced writes refused".into(), watch.stale_refused),
        ("terms believed at the end".into(), believers.len() as u64),
    ];
    report.properties.push(watch.leaders.verdict());
    report.properties.push(watch.fencing());
    let detail = format!("{} of {requests} fenced writes accepted", watch.writes.min(requests));
    report.properties.push(Verdict::new("progress", Kind::Liveness, all.is_some(), detail));
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Protocol;

    #[test]
    fn election_without_faults_elects_one_leader_that_writes() {
        let r = run(&SimConfig::new(Protocol::Election, 3, 1));
        assert!(r.safe(), "{:?}", r.properties);
        assert!(r.all_decisions_ms.is_some(), "{:?}", r.properties);
    }

    #[test]
    fn election_keeps_one_leader_per_term_and_fences_restarted_leaders_over_many_seeds() {
        let mut stale = 0;
        for seed in 0..8 {
            let n = [3, 5][seed as usize % 2];
            let mut c = SimConfig::new(Protocol::Election, n, seed);
            c.faulty = (n - 1) / 2;
            c.drop = [0.0, 0.05][seed as usize / 2 % 2];
            c.requests = 200;
            c.max_time = 60_000;
            let r = run(&c);
            assert!(r.safe(), "seed {seed}: {:?}", r.properties);
            assert!(r.all_decisions_ms.is_some(), "seed {seed} stuck: {:?} {:?}", r.properties, r.stats);
            stale += r.stats[1].1;
        }
        assert!(stale > 0, "no restarted leader ever tried its old term: the fencing check was never exercised");
    }
}
