//! Gossip dissemination of a versioned key/value state by push-pull anti-entropy.
//!
//! Every round each node picks `fanout` distinct random peers and opens a three-way exchange with
//! each, as in Scuttlebutt and chitchat:
//! 1. `Syn`: the initiator's digest, `(key, version)` for every key it holds;
//! 2. `SynAck`: the peer sends back the entries it holds newer than that digest (push) and the keys
//!    for which the initiator is newer (pull request);
//! 3. `Ack`: the initiator sends those entries.
//!
//! Each exchange reconciles the two whole states (anti-entropy), so an update spreads as an
//! epidemic: the informed set roughly multiplies by `fanout + 1` per round, which gives convergence
//! in O(log N) rounds. A digest costs one pair per key, not per node, so a round is O(N) messages
//! of O(keys) size each, whatever N is.

use std::collections::BTreeMap;

use rand::seq::index;
use rand::Rng;

use super::{Envelope, Node, NodeId, Outbox};

/// One key's value at one version; a higher version wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: u32,
    pub version: u64,
    pub value: u64,
}

/// The three messages of a push-pull exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// The initiator's digest: `(key, version)` of everything it holds.
    Syn { digest: Vec<(u32, u64)> },
    /// Entries newer than the digest, and the keys the initiator should send back.
    SynAck { delta: Vec<Entry>, want: Vec<u32> },
    /// The entries asked for.
    Ack { delta: Vec<Entry> },
}

/// A gossip node: its versioned state and how many peers it contacts per round.
#[derive(Debug, Clone)]
pub struct Gossip {
    id: NodeId,
    n: u32,
    fanout: usize,
    state: BTreeMap<u32, (u64, u64)>,
    rounds: u64,
}

impl Gossip {
    /// A node `id` of a cluster of `n` that contacts `fanout` random peers each round.
    pub fn new(id: NodeId, n: u32, fanout: usize) -> Self {
        Self { id, n, fanout, state: BTreeMap::new(), rounds: 0 }
    }

    /// Write `value` under `key` locally, one version above what this node holds.
    pub fn set(&mut self, key: u32, value: u64) -> Entry {
        let version = self.version(key).map_or(1, |v| v + 1);
        self.state.insert(key, (version, value));
        Entry { key, version, value }
    }

    /// The version of `key` this node holds, if any.
    pub fn version(&self, key: u32) -> Option<u64> {
        self.state.get(&key).map(|&(v, _)| v)
    }

    /// The entry this node holds for `key`.
    pub fn entry(&self, key: u32) -> Option<Entry> {
        self.state.get(&key).map(|&(version, value)| Entry { key, version, value })
    }

    /// How many rounds this node has started.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    fn digest(&self) -> Vec<(u32, u64)> {
        self.state.iter().map(|(&k, &(v, _))| (k, v)).collect()
    }

    /// Keep every entry newer than ours; answer whether anything changed.
    fn merge(&mut self, delta: &[Entry]) -> bool {
        let mut changed = false;
        for e in delta {
            if self.version(e.key).is_none_or(|v| v < e.version) {
                self.state.insert(e.key, (e.version, e.value));
                changed = true;
            }
        }
        changed
    }

    /// `fanout` distinct peers other than this node, uniformly at random.
    fn peers<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<NodeId> {
        let others = self.n as usize - 1;
        let k = self.fanout.min(others);
        index::sample(rng, others, k)
            .into_iter()
            .map(|i| {
                let i = i as NodeId;
                if i >= self.id {
                    i + 1
                } else {
                    i
                }
            })
            .collect()
    }
}

impl Node for Gossip {
    type Msg = Msg;

    fn id(&self) -> NodeId {
        self.id
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, _now: u64) -> Outbox<Msg> {
        let me = self.id;
        let reply = |msg| vec![Envelope { from: me, to: from, msg }];
        match msg {
            Msg::Syn { digest } => {
                let theirs: BTreeMap<u32, u64> = digest.into_iter().collect();
                let delta: Vec<Entry> = self
                    .state
                    .iter()
                    .filter(|(k, (v, _))| theirs.get(k).is_none_or(|t| t < v))
                    .map(|(&key, &(version, value))| Entry { key, version, value })
                    .collect();
                let want: Vec<u32> =
                    theirs.iter().filter(|(k, &t)| self.version(**k).is_none_or(|v| v < t)).map(|(&k, _)| k).collect();
                if delta.is_empty() && want.is_empty() {
                    return Vec::new();
                }
                reply(Msg::SynAck { delta, want })
            }
            Msg::SynAck { delta, want } => {
                self.merge(&delta);
                let delta: Vec<Entry> = want.iter().filter_map(|&k| self.entry(k)).collect();
                if delta.is_empty() {
                    return Vec::new();
                }
                reply(Msg::Ack { delta })
            }
            Msg::Ack { delta } => {
                self.merge(&delta);
                Vec::new()
            }
        }
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, _now: u64, rng: &mut R) -> Outbox<Msg> {
        self.rounds += 1;
        let digest = self.digest();
        self.peers(rng)
            .into_iter()
            .map(|to| Envelope { from: self.id, to, msg: Msg::Syn { digest: digest.clone() } })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Deliver every message at once (no loss, no delay) until the cluster is quiet.
    fn deliver_all(nodes: &mut [Gossip], mut out: Outbox<Msg>) {
        while let Some(e) = out.pop() {
            let more = nodes[e.to as usize].on_message(e.from, e.msg, 0);
            out.extend(more);
        }
    }

    #[test]
    fn gossip_exchange_pushes_newer_and_pulls_missing_entries() {
        let mut nodes = vec![Gossip::new(0, 2, 1), Gossip::new(1, 2, 1)];
        nodes[0].set(1, 10);
        nodes[1].set(2, 20);
        nodes[1].set(2, 21);
        let mut rng = StdRng::seed_from_u64(1);
        let out = nodes[0].on_tick(0, &mut rng);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, 1);
        deliver_all(&mut nodes, out);
        for node in &nodes {
            assert_eq!(node.entry(1), Some(Entry { key: 1, version: 1, value: 10 }));
            assert_eq!(node.entry(2), Some(Entry { key: 2, version: 2, value: 21 }));
        }
    }

    #[test]
    fn gossip_keeps_the_higher_version() {
        let mut a = Gossip::new(0, 2, 1);
        a.set(7, 1);
        a.set(7, 2);
        a.set(7, 3);
        assert!(!a.merge(&[Entry { key: 7, version: 2, value: 99 }]));
        assert_eq!(a.entry(7).unwrap().value, 3);
        assert!(a.merge(&[Entry { key: 7, version: 4, value: 4 }]));
        assert_eq!(a.entry(7).unwrap().value, 4);
    }

    #[test]
    fn gossip_peers_are_distinct_and_never_self() {
        let node = Gossip::new(5, 10, 4);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let mut peers = node.peers(&mut rng);
            assert_eq!(peers.len(), 4);
            assert!(peers.iter().all(|&p| p != 5 && p < 10));
            peers.sort();
            peers.dedup();
            assert_eq!(peers.len(), 4);
        }
    }

    #[test]
    fn gossip_push_pull_converges() {
        let n = 64;
        let mut nodes: Vec<Gossip> = (0..n).map(|i| Gossip::new(i, n, 3)).collect();
        nodes[3].set(0, 42);
        nodes[40].set(1, 43);
        let mut rng = StdRng::seed_from_u64(9);
        let mut rounds = 0;
        while !nodes.iter().all(|g| g.version(0) == Some(1) && g.version(1) == Some(1)) {
            rounds += 1;
            assert!(rounds <= 20, "no convergence after 20 rounds");
            for i in 0..n as usize {
                let out = nodes[i].on_tick(0, &mut rng);
                deliver_all(&mut nodes, out);
            }
        }
        assert!(rounds <= 8, "took {rounds} rounds for 64 nodes");
    }
}
