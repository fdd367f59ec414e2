//! The network's faults: loss, delay and partitions, and the fate of each message under them.
//!
//! Partition syntax (`--partition`, repeatable): groups of node ids separated by `|`, each group a
//! comma-separated list of ids and inclusive ranges, then an optional time window `@START..END` in
//! simulated ms (END exclusive; without a window the partition lasts the whole run). Nodes not named
//! in any group form one more group together. Messages between different groups are lost while the
//! partition holds. Example: `0-49|50-99@100..2000`, or `0,1|2-4`.

use std::str::FromStr;

use rand::{Rng, RngExt};

use super::config::SimError;
use crate::protocols::NodeId;

/// A split of the nodes into groups that cannot talk to each other during `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The spec as written, for the report.
    pub spec: String,
    pub groups: Vec<Vec<NodeId>>,
    pub start: u64,
    pub end: u64,
}

impl FromStr for Partition {
    type Err = SimError;
    fn from_str(spec: &str) -> Result<Self, SimError> {
        let bad = |why: &str| SimError::BadPartition { spec: spec.to_string(), why: why.to_string() };
        let (groups_part, window) = match spec.split_once('@') {
            Some((g, w)) => (g, Some(w)),
            None => (spec, None),
        };
        let (start, end) = match window {
            None => (0, u64::MAX),
            Some(w) => {
                let (s, e) = w.split_once("..").ok_or_else(|| bad("the window must be START..END"))?;
                let s: u64 = s.trim().parse().map_err(|_| bad("START is not a number"))?;
                let e: u64 = if e.trim().is_empty() {
                    u64::MAX
                } else {
                    e.trim().parse().map_err(|_| bad("END is not a number"))?
                };
                if s >= e {
                    return Err(bad("START must be before END"));
                }
                (s, e)
            }
        };
        let mut groups = Vec::new();
        for group in groups_part.split('|') {
            let mut ids = Vec::new();
            for item in group.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (lo, hi) = match item.split_once('-') {
                    Some((lo, hi)) => (lo.trim().parse(), hi.trim().parse()),
                    None => (item.parse(), item.parse()),
                };
                let (lo, hi): (NodeId, NodeId) = match (lo, hi) {
                    (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
                    _ => return Err(bad(&format!("`{item}` is not an id or a range LO-HI"))),
                };
                ids.extend(lo..=hi);
            }
            if ids.is_empty() {
                return Err(bad("a group is empty"));
            }
            groups.push(ids);
        }
        Ok(Self { spec: spec.to_string(), groups, start, end })
    }
}

impl Partition {
    /// Every id exists and appears in one group at most.
    pub fn check(&self, nodes: u32) -> Result<(), SimError> {
        let mut seen = vec![false; nodes as usize];
        for &id in self.groups.iter().flatten() {
            let bad = |why: String| SimError::BadPartition { spec: self.spec.clone(), why };
            if id >= nodes {
                return Err(bad(format!("node {id} does not exist (--nodes {nodes})")));
            }
            if std::mem::replace(&mut seen[id as usize], true) {
                return Err(bad(format!("node {id} is in two groups")));
            }
        }
        Ok(())
    }

    /// The group of every node: its index, or `groups.len()` for the unnamed rest.
    fn group_of(&self, nodes: u32) -> Vec<u32> {
        let mut of = vec![self.groups.len() as u32; nodes as usize];
        for (g, ids) in self.groups.iter().enumerate() {
            for &id in ids {
                of[id as usize] = g as u32;
            }
        }
        of
    }
}

/// The faults of a run, ready to decide each message's fate in O(partitions).
#[derive(Debug, Clone)]
pub struct Network {
    drop: f64,
    delay: (u64, u64),
    /// `(start, end, group of each node)` per partition.
    partitions: Vec<(u64, u64, Vec<u32>)>,
    gst: u64,
}

impl Network {
    pub fn new(nodes: u32, drop: f64, delay: (u64, u64), partitions: &[Partition], gst: Option<u64>) -> Self {
        let partitions = partitions.iter().map(|p| (p.start, p.end, p.group_of(nodes))).collect();
        Self { drop, delay, partitions, gst: gst.unwrap_or(u64::MAX) }
    }

    /// Whether a partition separates `a` and `b` at `now`.
    pub fn separated(&self, a: NodeId, b: NodeId, now: u64) -> bool {
        now < self.gst
            && self.partitions.iter().any(|(s, e, g)| (*s..*e).contains(&now) && g[a as usize] != g[b as usize])
    }

    /// The delay of a message sent at `now`, or `None` when it is lost.
    pub fn fate<R: Rng + ?Sized>(&self, from: NodeId, to: NodeId, now: u64, rng: &mut R) -> Option<u64> {
        if self.separated(from, to, now) {
            return None;
        }
        if self.drop > 0.0 && now < self.gst && rng.random_bool(self.drop) {
            return None;
        }
        Some(rng.random_range(self.delay.0..=self.delay.1))
    }

    /// When the last fault ends: the GST, or else the last partition's end (`None`: never).
    pub fn heals_at(&self) -> Option<u64> {
        if self.gst < u64::MAX {
            return Some(self.gst);
        }
        if self.drop > 0.0 {
            return None;
        }
        let end = self.partitions.iter().map(|p| p.1).max().unwrap_or(0);
        (end < u64::MAX).then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn partition_parses_groups_ranges_and_window() {
        let p: Partition = "0-2,5|3@100..200".parse().unwrap();
        assert_eq!(p.groups, vec![vec![0, 1, 2, 5], vec![3]]);
        assert_eq!((p.start, p.end), (100, 200));
        let forever: Partition = "0|1".parse().unwrap();
        assert_eq!((forever.start, forever.end), (0, u64::MAX));
    }

    #[test]
    fn partition_rejects_bad_specs() {
        for spec in ["", "0|", "a-b", "3-1", "0|1@5", "0|1@9..3"] {
            assert!(spec.parse::<Partition>().is_err(), "{spec} parsed");
        }
        let p: Partition = "0-3|3".parse().unwrap();
        assert!(p.check(10).is_err(), "node 3 twice");
        assert!("0|9".parse::<Partition>().unwrap().check(5).is_err(), "node 9 of 5");
    }

    #[test]
    fn partition_separates_groups_only_inside_its_window() {
        let p: Partition = "0-1|2-3@100..200".parse().unwrap();
        let net = Network::new(6, 0.0, (1, 1), &[p], None);
        assert!(net.separated(0, 2, 150));
        assert!(!net.separated(0, 1, 150));
        assert!(net.separated(0, 4, 150), "unnamed nodes are a group of their own");
        assert!(!net.separated(4, 5, 150));
        assert!(!net.separated(0, 2, 99) && !net.separated(0, 2, 200));
    }

    #[test]
    fn network_drops_about_the_asked_share_until_gst() {
        let net = Network::new(2, 0.3, (2, 4), &[], Some(1000));
        let mut rng = StdRng::seed_from_u64(1);
        let lost = (0..10_000).filter(|_| net.fate(0, 1, 10, &mut rng).is_none()).count();
        assert!((2_700..3_300).contains(&lost), "lost {lost}");
        assert!((0..1000).all(|_| net.fate(0, 1, 1000, &mut rng).is_some_and(|d| (2..=4).contains(&d))));
    }
}
