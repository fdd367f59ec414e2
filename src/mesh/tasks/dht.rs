//! A consistent-hash ring with virtual nodes over the live agents: where a DHT-placed task
//! lives, and which successors hold its replicas. SHA-256 makes placement the same in every
//! process and every build (`DefaultHasher` promises neither).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ids::AgentId;

fn point(s: &str) -> u64 {
    let digest = Sha256::digest(s.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

pub struct Ring {
    points: BTreeMap<u64, AgentId>,
}

impl Ring {
    /// A ring with `vnodes` points per agent.
    pub fn new<'a>(agents: impl IntoIterator<Item = &'a AgentId>, vnodes: usize) -> Self {
        let mut points = BTreeMap::new();
        for a in agents {
            for i in 0..vnodes {
                points.insert(point(&format!("{a}#{i}")), a.clone());
            }
        }
        Self { points }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The first `n` distinct agents clockwise from the key's point: the owner, then its
    /// replicas' holders.
    pub fn successors(&self, key: &str, n: usize) -> Vec<AgentId> {
        let at = point(key);
        let mut out: Vec<AgentId> = Vec::new();
        for a in self.points.range(at..).chain(self.points.range(..at)).map(|(_, a)| a) {
            if out.len() >= n {
                break;
            }
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    pub fn owner(&self, key: &str) -> Option<AgentId> {
        self.successors(key, 1).into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DHT_VIRTUAL_NODES;

    fn agents(n: usize) -> Vec<AgentId> {
        (0..n).map(|i| AgentId::new(format!("agent-{i:03}"))).collect()
    }

    fn owners(ring: &Ring, keys: &[String]) -> Vec<AgentId> {
        keys.iter().map(|k| ring.owner(k).unwrap()).collect()
    }

    #[test]
    fn one_agent_joining_or_leaving_moves_about_one_nth_of_the_keys() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("task-{i}")).collect();
        for n in [5usize, 10, 20] {
            let all = agents(n + 1);
            let before = owners(&Ring::new(&all[..n], DHT_VIRTUAL_NODES), &keys);
            let after = owners(&Ring::new(&all, DHT_VIRTUAL_NODES), &keys);
            let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            // Only keys taken by the newcomer move.
            assert!(before.iter().zip(&after).all(|(b, a)| b == a || a == &all[n]));
            let share = moved as f64 / keys.len() as f64;
            let ideal = 1.0 / (n + 1) as f64;
            assert!(share > 0.5 * ideal && share < 2.0 * ideal, "join of 1 to {n}: {share} moved, ideal {ideal}");
            // Leaving is the same move backwards.
            let left = owners(&Ring::new(&all[..n], DHT_VIRTUAL_NODES), &keys);
            assert_eq!(left, before);
        }
    }

    #[test]
    fn replicas_are_distinct_successors_starting_with_the_owner() {
        let all = agents(5);
        let ring = Ring::new(&all, DHT_VIRTUAL_NODES);
        let r = ring.successors("task-x", 3);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ring.owner("task-x").unwrap());
        assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
        assert_eq!(ring.successors("task-x", 9).len(), 5);
    }

    #[test]
    fn placement_is_stable_across_rings_built_in_any_order() {
        let all = agents(7);
        let mut rev = all.clone();
        rev.reverse();
        let (a, b) = (Ring::new(&all, 16), Ring::new(&rev, 16));
        for i in 0..100 {
            assert_eq!(a.owner(&format!("k{i}")), b.owner(&format!("k{i}")));
        }
    }
}
