//! The pBFT driver: `daa_consensus` with `protocol: pbft`, the engine's own code
//! ([`crate::mesh::consensus::pbft`]), driven by agents over a lossy, partitioned network.
//!
//! A client hands request k to agent (k - 1) mod n, which proposes it to every agent. Replicas
//! learn of each change of a proposal from the store's pushes (or poll `status` when they have
//! heard nothing for a while) and send the phase they owe: the primary its pre-prepare, then
//! prepare, then commit once the proposal is prepared. Byzantine agents follow a [`Tactic`]. The
//! run lasts until every honest agent has learned the outcome of every request, or the time runs
//! out. Checked: agreement (every agent learns the outcome the decision log holds) and the commit
//! certificate (an approval rests on more than f honest commits in the deciding view).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, RngExt};
use serde_json::{json, Value};

use super::checks::agreement;
use super::host::{CallError, Host, Identity};
use super::peer::{Agent, Caller, Msg, Peer, Served, StoreNode};
use super::report::{Kind, Report, Verdict};
use super::{pick_nodes, store_with_node_zero, Event, Network, Sim, SimConfig, Step};
use crate::protocols::{NodeId, Outbox};

/// Agent timers tick this often (simulated ms).
pub const TICK_MS: u64 = 10;
/// The client hands out request k at `k * REQUEST_EVERY_MS`.
const REQUEST_EVERY_MS: u64 = 5;
/// The swarm's heartbeat interval and liveness lease (seconds of simulated time): a partition
/// shorter than the lease fails nobody; a longer one fails the agents cut off from the store.
const HEARTBEAT_SECS: f64 = 1.0;
const LEASE_SECS: f64 = 5.0;
/// The server's reconcile sweep runs this often (simulated ms).
const SWEEP_MS: u64 = 100;
/// A replica that heard nothing of an open proposal for this long asks for its status.
const STALE_MS: u64 = 500;

/// How a Byzantine agent misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tactic {
    Honest,
    /// Approves every phase as early as it can: commits before the proposal is prepared.
    Rush,
    /// Refuses in every phase, and as a primary withholds its pre-prepare (forcing a view change).
    Refuse,
    /// Prepares approve and reject both: the engine flags it Byzantine.
    Equivocate,
}

#[derive(Debug, Clone)]
enum Purpose {
    Propose(u64),
    Vote { proposal: String, view: u64, phase: &'static str },
    Status,
    Keepalive,
}

/// What a replica knows of one proposal.
#[derive(Debug, Clone, Default)]
struct Known {
    request: u64,
    status: String,
    view: u64,
    primary: String,
    pre_prepared: bool,
    prepared: bool,
    heard_at: u64,
}

impl Known {
    fn from_view(p: &Value, now: u64) -> Option<(String, Self)> {
        let id = p["proposalId"].as_str()?.to_string();
        let pbft = &p["pbft"];
        let view = pbft["view"].as_u64()?;
        let known = Self {
            request: p["proposal"]["request"].as_u64()?,
            status: p["status"].as_str()?.to_string(),
            view,
            primary: pbft["primary"].as_str()?.to_string(),
            pre_prepared: pbft["prePrepared"].as_bool()?,
            prepared: pbft["preparedInView"].as_u64() == Some(view),
            heard_at: now,
        };
        Some((id, known))
    }
}

/// One agent of the run.
pub struct Replica {
    caller: Caller<Purpose>,
    tactic: Tactic,
    known: BTreeMap<String, Known>,
    sent: BTreeSet<(String, u64, &'static str)>,
    /// Requests handed to this agent and not yet proposed.
    to_propose: BTreeSet<u64>,
    /// The outcome of each decided proposal, as this agent learned it: (request, outcome).
    pub learned: BTreeMap<String, (u64, String)>,
    /// Requests whose outcome this agent learned.
    pub requests_learned: BTreeSet<u64>,
}

impl Replica {
    fn new(idx: NodeId, me: Identity, store: NodeId, swarm: &str, tactic: Tactic) -> Self {
        let heartbeat_ms = (HEARTBEAT_SECS * 1000.0) as u64;
        Self {
            caller: Caller::new(idx, me, store, swarm, heartbeat_ms),
            tactic,
            known: BTreeMap::new(),
            sent: BTreeSet::new(),
            to_propose: BTreeSet::new(),
            learned: BTreeMap::new(),
            requests_learned: BTreeSet::new(),
        }
    }

    /// The client hands this agent request `k` to propose.
    pub fn request(&mut self, k: u64, now: u64) -> Outbox<Msg> {
        self.to_propose.insert(k);
        let mut out = Vec::new();
        self.propose_pending(now, &mut out);
        out
    }

    fn propose_pending(&mut self, now: u64, out: &mut Outbox<Msg>) {
        for k in self.to_propose.clone() {
            if !self.caller.waiting(|p| matches!(p, Purpose::Propose(r) if *r == k)) {
                let args = json!({ "action": "propose", "protocol": "pbft", "agents": "all",
                                   "proposal": { "request": k } });
                self.caller.call(now, "daa_consensus", args, Purpose::Propose(k), out);
            }
        }
    }

    fn learn(&mut self, p: &Value, now: u64) -> Option<String> {
        let (id, known) = Known::from_view(p, now)?;
        if known.status != "open" {
            self.requests_learned.insert(known.request);
            self.learned.insert(id.clone(), (known.request, known.status.clone()));
        }
        self.known.insert(id.clone(), known);
        Some(id)
    }

    fn vote(&mut self, now: u64, id: &str, view: u64, phase: &'static str, approve: bool, out: &mut Outbox<Msg>) {
        self.sent.insert((id.to_string(), view, phase));
        let vote = if approve { "approve" } else { "reject" };
        let args = json!({ "action": "vote", "proposalId": id, "vote": vote, "phase": phase });
        let purpose = Purpose::Vote { proposal: id.to_string(), view, phase };
        self.caller.call(now, "daa_consensus", args, purpose, out);
    }

    /// Send whatever this agent owes for proposal `id` now.
    fn act(&mut self, id: &str, now: u64, out: &mut Outbox<Msg>) {
        let Some(k) = self.known.get(id).cloned() else { return };
        if k.status != "open" {
            return;
        }
        let owes = |phase: &'static str| !self.sent.contains(&(id.to_string(), k.view, phase));
        let primary = k.primary == self.caller.me.id && !k.pre_prepared;
        match self.tactic {
            Tactic::Refuse if primary => {}
            _ if primary && owes("pre-prepare") => self.vote(now, id, k.view, "pre-prepare", true, out),
            Tactic::Equivocate if k.pre_prepared && owes("prepare") => {
                self.vote(now, id, k.view, "prepare", true, out);
                self.caller.call(
                    now,
                    "daa_consensus",
                    json!({ "action": "vote", "proposalId": id, "vote": "reject", "phase": "prepare" }),
                    Purpose::Status,
                    out,
                );
            }
            Tactic::Rush if owes("commit") && !(k.pre_prepared && owes("prepare")) => {
                self.vote(now, id, k.view, "commit", true, out)
            }
            tactic if k.pre_prepared && owes("prepare") => {
                self.vote(now, id, k.view, "prepare", tactic != Tactic::Refuse, out)
            }
            tactic if k.prepared && owes("commit") && tactic != Tactic::Equivocate => {
                self.vote(now, id, k.view, "commit", tactic != Tactic::Refuse, out)
            }
            _ => {}
        }
    }

    fn on_reply(&mut self, id: u64, result: Result<Arc<Value>, CallError>, now: u64, out: &mut Outbox<Msg>) {
        let Some(purpose) = self.caller.replied(id) else { return };
        match (&purpose, result) {
            (_, Ok(v)) => {
                if let Purpose::Propose(k) = purpose {
                    self.to_propose.remove(&k);
                }
                if let Some(p) = self.learn(&v["proposal"], now) {
                    self.act(&p, now, out);
                }
            }
            (Purpose::Vote { proposal, view, phase }, Err(e)) => {
                // Refused (not prepared yet, a view change meanwhile...): owed again at the next news.
                self.sent.remove(&(proposal.clone(), *view, *phase));
                self.caller.on_error(&e, now, Purpose::Keepalive, out);
            }
            (_, Err(e)) => self.caller.on_error(&e, now, Purpose::Keepalive, out),
        }
    }
}

impl Agent for Replica {
    fn id(&self) -> NodeId {
        self.caller.idx
    }

    fn on_message(&mut self, msg: Msg, now: u64) -> Outbox<Msg> {
        let mut out = Vec::new();
        match msg {
            Msg::Reply { id, result } => self.on_reply(id, result, now, &mut out),
            Msg::Changed(p) => {
                if let Some(id) = self.learn(&p, now) {
                    self.act(&id, now, &mut out);
                }
            }
            Msg::Call { .. } => {}
        }
        out
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, _rng: &mut R) -> Outbox<Msg> {
        let mut out = Vec::new();
        self.caller.tick(now, Purpose::Keepalive, &mut out);
        self.propose_pending(now, &mut out);
        let stale: Vec<String> = self
            .known
            .iter()
            .filter(|(_, k)| k.status == "open" && now >= k.heard_at + STALE_MS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.known.get_mut(&id).expect("listed").heard_at = now;
            let args = json!({ "action": "status", "proposalId": id });
            self.caller.call(now, "daa_consensus", args, Purpose::Status, &mut out);
            self.act(&id, now, &mut out);
        }
        out
    }
}

/// What the driver sees of the engine's answers: counted commits and decisions.
#[derive(Default)]
struct Watch {
    /// Agents whose approving commit the engine counted, per (proposal, view).
    commits: BTreeMap<(String, u64), BTreeSet<NodeId>>,
    /// Each decided proposal: (request, outcome, deciding view, f).
    decided: BTreeMap<String, (u64, String, u64, u64)>,
}

impl Watch {
    fn observe(&mut self, s: &Served) {
        let Ok(out) = &s.result else { return };
        let p = &out["proposal"];
        let view = p["pbft"]["view"].as_u64().unwrap_or(0);
        let id = p["proposalId"].as_str().unwrap_or_default().to_string();
        let commit = s.args["phase"] == "commit" && s.args["vote"] == "approve" && out["effect"] == "counted";
        if s.tool == "daa_consensus" && s.args["action"] == "vote" && commit {
            self.commits.entry((id.clone(), view)).or_default().insert(s.from);
        }
        let status = p["status"].as_str().unwrap_or("open");
        if status != "open" && !self.decided.contains_key(&id) {
            let request = p["proposal"]["request"].as_u64().unwrap_or(0);
            let f = p["tally"]["f"].as_u64().unwrap_or(0);
            self.decided.insert(id, (request, status.to_string(), view, f));
        }
    }

    /// Every approval rests on at least f + 1 commits from honest agents in its deciding view.
    fn certificate(&self, honest: &BTreeSet<NodeId>) -> Verdict {
        let approved = self.decided.iter().filter(|(_, d)| d.1 == "approved");
        for (id, (request, _, view, f)) in approved.clone() {
            let commits = self.commits.get(&(id.clone(), *view));
            let by_honest = commits.map_or(0, |c| c.intersection(honest).count()) as u64;
            if by_honest <= *f {
                let detail = format!(
                    "request {request} ({id}) approved in view {view} with {by_honest} honest commits; f = {f} needs {}",
                    f + 1
                );
                return Verdict::new("commit certificate", Kind::Safety, false, detail);
            }
        }
        let detail = format!("{} approvals each rest on more than f honest commits", approved.count());
        Verdict::new("commit certificate", Kind::Safety, true, detail)
    }
}

pub fn run(cfg: &SimConfig) -> Report {
    let started = Instant::now();
    let n = cfg.nodes;
    let mut rng = Sim::<Peer<Replica>>::side_rng(cfg.seed, 1);
    let byzantine = pick_nodes(&mut rng, n, cfg.faulty);
    let (host, ids) = Host::new(cfg.seed, n, HEARTBEAT_SECS, LEASE_SECS);
    let swarm = host.swarm.clone();
    let tactics = [Tactic::Rush, Tactic::Refuse, Tactic::Equivocate];
    let mut nodes: Vec<Peer<Replica>> = Vec::new();
    for (i, me) in ids.into_iter().enumerate() {
        let byz = byzantine.binary_search(&(i as NodeId)).is_ok();
        let tactic = if byz { tactics[rng.random_range(0..tactics.len())] } else { Tactic::Honest };
        nodes.push(Peer::Agent(Replica::new(i as NodeId, me, n, &swarm, tactic)));
    }
    nodes.push(Peer::Store(Box::new(StoreNode::new(host, n, SWEEP_MS, true))));
    let net = Network::new(n + 1, cfg.drop, cfg.delay, &store_with_node_zero(&cfg.partitions, n), cfg.gst);
    let mut sim = Sim::new(nodes, net, TICK_MS, Sim::<Peer<Replica>>::side_rng(cfg.seed, 0));
    let requests = cfg.requests as u64;
    for k in 1..=requests {
        sim.schedule(k * REQUEST_EVERY_MS, Event::Client(k));
    }
    let honest: BTreeSet<NodeId> = (0..n).filter(|i| byzantine.binary_search(i).is_err()).collect();
    let mut watch = Watch::default();
    let (mut first, mut all, mut done) = (None, None, BTreeSet::new());
    while all.is_none() {
        let Some(step) = sim.step(cfg.max_time) else { break };
        match step {
            Step::Client(k) => {
                let proposer = ((k - 1) % n as u64) as usize;
                let now = sim.now;
                let out = sim.nodes[proposer].agent_mut().expect("an agent").request(k, now);
                sim.send(out);
            }
            Step::Touched(id) if id == n => {
                for s in std::mem::take(&mut sim.nodes[n as usize].store_mut().expect("the store").journal) {
                    watch.observe(&s);
                }
                if first.is_none() && !watch.decided.is_empty() {
                    first = Some(sim.now);
                }
            }
            Step::Touched(id) if honest.contains(&id) && !done.contains(&id) => {
                let agent = sim.nodes[id as usize].agent().expect("an agent");
                if agent.requests_learned.len() as u64 >= requests {
                    done.insert(id);
                    if done.len() == honest.len() {
                        all = Some(sim.now);
                    }
                }
            }
            _ => {}
        }
    }
    finish(cfg, &sim, &watch, byzantine, &honest, (first, all), started)
}

fn finish(
    cfg: &SimConfig,
    sim: &Sim<Peer<Replica>>,
    watch: &Watch,
    byzantine: Vec<NodeId>,
    honest: &BTreeSet<NodeId>,
    (first, all): (Option<u64>, Option<u64>),
    started: Instant,
) -> Report {
    let requests = cfg.requests as u64;
    let agents = || honest.iter().filter_map(|&i| sim.nodes[i as usize].agent().map(|a| (i, a)));
    let decided = (1..=requests).filter(|r| agents().all(|(_, a)| a.requests_learned.contains(r))).count() as u64;
    let mut report = Report::start(cfg, byzantine);
    report.rounds = all.unwrap_or(sim.now).div_ceil(TICK_MS);
    report.traffic(sim.traffic, decided);
    report.decisions = decided;
    report.first_decision_ms = first;
    report.all_decisions_ms = all;
    report.sim_time_ms = sim.now;
    let count = |outcome: &str| watch.decided.values().filter(|d| d.1 == outcome).count() as u64;
    report.stats = vec![
        ("proposals decided".into(), watch.decided.len() as u64),
        ("approved".into(), count("approved")),
        ("rejected".into(), count("rejected")),
        ("max deciding view".into(), watch.decided.values().map(|d| d.2).max().unwrap_or(0)),
    ];
    // Agreement: what each honest agent learned, and the engine's decision (node n), agree.
    let index: BTreeMap<&String, u64> = watch.decided.keys().zip(1..).collect();
    let index = &index;
    let code = |outcome: &str| ["approved", "rejected", "expired"].iter().position(|o| *o == outcome).unwrap_or(9);
    let learned = agents().flat_map(|(i, a)| {
        a.learned.iter().map(move |(id, (_, o))| (i, index.get(id).copied().unwrap_or(0), code(o) as u64))
    });
    let engine = watch.decided.iter().map(|(id, d)| (cfg.nodes, index[id], code(&d.1) as u64));
    report.properties.push(agreement(engine.chain(learned)));
    report.properties.push(watch.certificate(honest));
    let detail = format!("{decided} of {requests} requests decided and known to all {} honest agents", honest.len());
    report.properties.push(Verdict::new("progress", Kind::Liveness, all.is_some(), detail));
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::consensus::pbft::mutant::BROKEN_QUORUM;
    use crate::sim::Protocol;

    fn config(seed: u64) -> SimConfig {
        let n = [4, 5, 7][seed as usize % 3];
        let mut c = SimConfig::new(Protocol::Pbft, n, seed);
        c.faulty = (n - 1) / 3;
        c.drop = [0.0, 0.1][seed as usize / 3 % 2];
        c.delay = (1, 20);
        c.requests = 8;
        c.gst = Some(3_000);
        c.max_time = 60_000;
        if seed.is_multiple_of(4) {
            c.partitions = vec![format!("0-{}|{}-{}@50..1500", n / 2 - 1, n / 2, n - 1).parse().unwrap()];
        }
        c
    }

    #[test]
    fn pbft_run_decides_every_request_without_faults() {
        let r = run(&SimConfig::new(Protocol::Pbft, 4, 1));
        assert!(r.safe(), "{:?}", r.properties);
        assert_eq!(r.decisions, 20);
        assert!(r.all_decisions_ms.is_some());
    }

    #[test]
    fn pbft_engine_is_safe_and_live_with_byzantine_agents_loss_and_partitions_over_many_seeds() {
        for seed in 0..12 {
            let r = run(&config(seed));
            assert!(r.safe(), "seed {seed}: {:?}", r.properties);
            assert!(r.all_decisions_ms.is_some(), "seed {seed} stuck: {:?} {:?}", r.properties, r.stats);
        }
    }

    #[test]
    fn a_broken_quorum_rule_in_the_engine_core_fails_the_certificate_check() {
        BROKEN_QUORUM.set(true);
        let unsafe_seeds = (0..12).filter(|&seed| !run(&config(seed)).safe()).count();
        BROKEN_QUORUM.set(false);
        assert!(unsafe_seeds > 0, "the simulator did not notice a quorum of f + 1 in the engine's pBFT core");
    }
}
