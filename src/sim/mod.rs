//! A deterministic discrete-event simulator: `mesh-mcp simulate`.
//!
//! Events (deliveries, timer ticks, crashes, restarts, client requests) sit in one queue ordered by
//! `(time, sequence number)`, and one seeded generator draws every random choice in event order, so
//! a run is reproducible bit for bit from its seed. [`faults`] decides each message's fate (loss,
//! delay, partitions). The [`pbft`] and [`election`] drivers run the engine itself ([`host`]: the
//! tool table behind `daa_consensus` on an in-memory store with the simulated clock), its agents
//! talking to it over the simulated network ([`peer`]); the [`gossip`] driver runs the reference
//! gossip core of [`crate::protocols`]. Drivers check properties with [`checks`]; [`report`] prints
//! what happened.

pub mod checks;
pub mod config;
pub mod election;
pub mod faults;
pub mod gossip;
pub mod host;
pub mod pbft;
pub mod peer;
pub mod report;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub use config::{Protocol, SimConfig, SimError};
pub use faults::{Network, Partition};
pub use report::Report;

use crate::protocols::{Envelope, Node, NodeId, Outbox};

/// Validate `cfg` and run it.
pub fn run(cfg: &SimConfig) -> Result<Report, SimError> {
    cfg.validate()?;
    Ok(match cfg.protocol {
        Protocol::Pbft => pbft::run(cfg),
        Protocol::Election => election::run(cfg),
        Protocol::Gossip => gossip::run(cfg),
    })
}

/// Something that happens at a simulated time.
#[derive(Debug)]
pub enum Event<M> {
    Deliver(Envelope<M>),
    Tick(NodeId),
    Crash(NodeId),
    Restart(NodeId),
    /// A driver's own event (a client request), with the driver's tag.
    Client(u64),
}

/// What one step did, for the driver to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A message reached this (live) node, or its timer ticked.
    Touched(NodeId),
    Crashed(NodeId),
    Restarted(NodeId),
    Client(u64),
    /// A message to a crashed node, or a crashed node's tick: nothing happened.
    Nothing,
}

struct Queued<M> {
    time: u64,
    seq: u64,
    event: Event<M>,
}

impl<M> PartialEq for Queued<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M> Eq for Queued<M> {}
impl<M> PartialOrd for Queued<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Queued<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Message counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub sent: u64,
    pub delivered: u64,
    /// Lost to `--drop`, a partition, or a crashed receiver.
    pub lost: u64,
}

/// Nodes of one protocol on a simulated network.
pub struct Sim<N: Node> {
    pub nodes: Vec<N>,
    pub now: u64,
    pub rng: StdRng,
    pub down: Vec<bool>,
    pub traffic: Traffic,
    queue: BinaryHeap<Reverse<Queued<N::Msg>>>,
    seq: u64,
    net: Network,
    tick_every: u64,
}

impl<N: Node> Sim<N> {
    /// Nodes with their first ticks spread at random over one tick period.
    pub fn new(nodes: Vec<N>, net: Network, tick_every: u64, rng: StdRng) -> Self {
        let n = nodes.len();
        let mut sim = Self {
            nodes,
            now: 0,
            rng,
            down: vec![false; n],
            traffic: Traffic::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            net,
            tick_every,
        };
        for id in 0..n as NodeId {
            let phase = sim.rng.random_range(0..tick_every);
            sim.schedule(phase, Event::Tick(id));
        }
        sim
    }

    /// A generator for a driver's own choices, derived from `seed` but apart from the run's.
    pub fn side_rng(seed: u64, stream: u64) -> StdRng {
        StdRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn schedule(&mut self, time: u64, event: Event<N::Msg>) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { time, seq: self.seq, event }));
    }

    /// Put messages on the network: each is lost or delivered after a random delay.
    pub fn send(&mut self, out: Outbox<N::Msg>) {
        for env in out {
            self.traffic.sent += 1;
            match self.net.fate(env.from, env.to, self.now, &mut self.rng) {
                Some(delay) => self.schedule(self.now + delay, Event::Deliver(env)),
                None => self.traffic.lost += 1,
            }
        }
    }

    /// Run the next event if it is due by `until`.
    pub fn step(&mut self, until: u64) -> Option<Step> {
        if self.queue.peek().is_none_or(|Reverse(q)| q.time > until) {
            return None;
        }
        let Reverse(Queued { time, event, .. }) = self.queue.pop().expect("peeked");
        self.now = time;
        Some(match event {
            Event::Deliver(env) => {
                let to = env.to;
                if self.down[to as usize] {
                    self.traffic.lost += 1;
                    return Some(Step::Nothing);
                }
                self.traffic.delivered += 1;
                let out = self.nodes[to as usize].on_message(env.from, env.msg, time);
                self.send(out);
                Step::Touched(to)
            }
            Event::Tick(id) => {
                self.schedule(time + self.tick_every, Event::Tick(id));
                if self.down[id as usize] {
                    return Some(Step::Nothing);
                }
                let out = self.nodes[id as usize].on_tick(time, &mut self.rng);
                self.send(out);
                Step::Touched(id)
            }
            Event::Crash(id) => {
                self.down[id as usize] = true;
                Step::Crashed(id)
            }
            Event::Restart(id) => {
                self.down[id as usize] = false;
                self.nodes[id as usize].on_restart(time, &mut self.rng);
                Step::Restarted(id)
            }
            Event::Client(tag) => Step::Client(tag),
        })
    }

    /// Whether a partition separates `a` and `b` now.
    pub fn separated(&self, a: NodeId, b: NodeId) -> bool {
        self.net.separated(a, b, self.now)
    }
}

/// The partitions of a run whose nodes `0..n` are agents and node `n` the store: the store sits
/// in node 0's group of each partition.
pub fn store_with_node_zero(partitions: &[Partition], n: u32) -> Vec<Partition> {
    let mut partitions = partitions.to_vec();
    for p in &mut partitions {
        if let Some(group) = p.groups.iter_mut().find(|g| g.contains(&0)) {
            group.push(n);
        }
    }
    partitions
}

/// `k` distinct node ids out of `n`, in increasing order.
pub fn pick_nodes(rng: &mut StdRng, n: u32, k: u32) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> =
        rand::seq::index::sample(rng, n as usize, k as usize).into_iter().map(|i| i as NodeId).collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::broadcast;
    use rand::Rng;

    /// Pings every peer on each tick; counts what it hears.
    struct Pinger {
        id: NodeId,
        n: u32,
        heard: Vec<(u64, NodeId)>,
    }

    impl Node for Pinger {
        type Msg = u64;
        fn id(&self) -> NodeId {
            self.id
        }
        fn on_message(&mut self, from: NodeId, _msg: u64, now: u64) -> Outbox<u64> {
            self.heard.push((now, from));
            Vec::new()
        }
        fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, _rng: &mut R) -> Outbox<u64> {
            broadcast(self.id, self.n, &now)
        }
    }

    fn pingers(seed: u64, drop: f64) -> Sim<Pinger> {
        let nodes = (0..4).map(|id| Pinger { id, n: 4, heard: Vec::new() }).collect();
        Sim::new(nodes, Network::new(4, drop, (1, 5), &[], None), 10, StdRng::seed_from_u64(seed))
    }

    fn history(seed: u64) -> Vec<Vec<(u64, NodeId)>> {
        let mut sim = pingers(seed, 0.2);
        while sim.step(500).is_some() {}
        sim.nodes.into_iter().map(|p| p.heard).collect()
    }

    #[test]
    fn sim_is_reproducible_from_its_seed() {
        assert_eq!(history(5), history(5));
        assert_ne!(history(5), history(6));
    }

    #[test]
    fn sim_delivers_in_time_order_and_counts_traffic() {
        let mut sim = pingers(1, 0.0);
        let mut last = 0;
        while sim.step(300).is_some() {
            assert!(sim.now >= last);
            last = sim.now;
        }
        assert!(last <= 300);
        assert_eq!(sim.traffic.lost, 0);
        let heard: usize = sim.nodes.iter().map(|p| p.heard.len()).sum();
        assert_eq!(sim.traffic.delivered, heard as u64);
        assert!(sim.traffic.sent >= sim.traffic.delivered);
    }

    #[test]
    fn sim_crashed_node_hears_nothing_until_restarted() {
        let mut sim = pingers(2, 0.0);
        sim.schedule(0, Event::Crash(1));
        sim.schedule(200, Event::Restart(1));
        while sim.step(400).is_some() {}
        let heard = &sim.nodes[1].heard;
        assert!(heard.iter().all(|&(t, _)| t >= 200));
        assert!(!heard.is_empty());
        assert!(sim.traffic.lost > 0);
    }
}
