//! Safety checkers, fed by the drivers as a run goes and turned into [`Verdict`]s at its end.
//! They only look at histories (who decided what, who led which term), so tests can feed them
//! fabricated bad histories and see them fail.

use std::collections::BTreeMap;

use super::report::{Kind, Verdict};
use crate::protocols::raft::Entry;
use crate::protocols::NodeId;

/// pBFT agreement: no two honest replicas decide different values at one sequence number.
pub fn agreement<I: IntoIterator<Item = (NodeId, u64, u64)>>(decisions: I) -> Verdict {
    let mut first: BTreeMap<u64, (NodeId, u64)> = BTreeMap::new();
    let mut count = 0u64;
    for (node, seq, value) in decisions {
        count += 1;
        let &mut (n0, v0) = first.entry(seq).or_insert((node, value));
        if v0 != value {
            let detail = format!("seq {seq}: replica {n0} decided {v0}, replica {node} decided {value}");
            return Verdict::new("agreement", Kind::Safety, false, detail);
        }
    }
    let detail = format!("{count} decisions at {} sequence numbers agree", first.len());
    Verdict::new("agreement", Kind::Safety, true, detail)
}

/// Raft election safety: at most one leader per term, over the whole run.
#[derive(Debug, Default)]
pub struct LeaderLog {
    leaders: BTreeMap<u64, NodeId>,
    violation: Option<String>,
}

impl LeaderLog {
    /// `node` is leader in `term`; answers whether this is news (a new leadership).
    pub fn observe(&mut self, term: u64, node: NodeId) -> bool {
        match self.leaders.get(&term) {
            Some(&other) if other != node => {
                self.violation.get_or_insert(format!("term {term}: leaders {other} and {node}"));
                false
            }
            Some(_) => false,
            None => {
                self.leaders.insert(term, node);
                true
            }
        }
    }

    /// Terms that had a leader.
    pub fn terms_led(&self) -> u64 {
        self.leaders.len() as u64
    }

    pub fn verdict(&self) -> Verdict {
        match &self.violation {
            Some(v) => Verdict::new("one leader per term", Kind::Safety, false, v.clone()),
            None => Verdict::new(
                "one leader per term",
                Kind::Safety,
                true,
                format!("{} terms had one leader each", self.leaders.len()),
            ),
        }
    }
}

/// Raft state-machine safety and leader completeness: every node's committed prefix agrees with
/// every other's, and every later leader's log holds every committed entry.
#[derive(Debug, Default)]
pub struct CommitLog {
    /// The entry committed at index i + 1.
    committed: Vec<Entry>,
    violation: Option<String>,
}

impl CommitLog {
    /// `node` says `entry` is committed at `index` (1-based); answers whether the index is newly
    /// committed anywhere.
    pub fn observe(&mut self, node: NodeId, index: u64, entry: Entry) -> bool {
        let i = index as usize - 1;
        match self.committed.get(i) {
            Some(known) if *known != entry => {
                self.violation
                    .get_or_insert(format!("index {index}: node {node} committed {entry:?}, earlier {known:?}"));
                false
            }
            Some(_) => false,
            None if i == self.committed.len() => {
                self.committed.push(entry);
                true
            }
            None => {
                self.violation.get_or_insert(format!("node {node} committed index {index} past the known prefix"));
                false
            }
        }
    }

    /// A new leader's log must contain every committed entry.
    pub fn check_leader(&mut self, node: NodeId, term: u64, log: &[Entry]) {
        for (i, entry) in self.committed.iter().enumerate() {
            if log.get(i) != Some(entry) {
                let had = log.get(i);
                self.violation.get_or_insert(format!(
                    "leader {node} of term {term} lacks committed index {}: {entry:?}, has {had:?}",
                    i + 1
                ));
                return;
            }
        }
    }

    /// Entries committed so far.
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    pub fn verdict(&self) -> Verdict {
        match &self.violation {
            Some(v) => Verdict::new("committed entries never lost", Kind::Safety, false, v.clone()),
            None => {
                let detail = format!(
                    "{} committed entries agree on every node and every later leader holds them",
                    self.committed.len()
                );
                Verdict::new("committed entries never lost", Kind::Safety, true, detail)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, value: u64) -> Entry {
        Entry { term, value }
    }

    #[test]
    fn agreement_catches_two_values_at_one_sequence_number() {
        assert!(agreement([(0, 1, 10), (1, 1, 10), (2, 2, 11)]).ok);
        let v = agreement([(0, 1, 10), (1, 2, 11), (2, 1, 12)]);
        assert!(!v.ok);
        assert!(v.detail.contains("seq 1") && v.detail.contains("12"), "{}", v.detail);
    }

    #[test]
    fn leader_log_catches_two_leaders_in_one_term() {
        let mut log = LeaderLog::default();
        assert!(log.observe(1, 0));
        assert!(!log.observe(1, 0));
        assert!(log.observe(2, 1));
        assert!(log.verdict().ok);
        log.observe(2, 3);
        assert!(!log.verdict().ok);
        assert!(log.verdict().detail.contains("term 2"));
    }

    #[test]
    fn commit_log_catches_a_conflicting_commit() {
        let mut log = CommitLog::default();
        assert!(log.observe(0, 1, e(1, 5)));
        assert!(!log.observe(1, 1, e(1, 5)));
        assert!(log.verdict().ok);
        log.observe(2, 1, e(2, 6));
        assert!(!log.verdict().ok);
    }

    #[test]
    fn commit_log_catches_a_leader_missing_a_committed_entry() {
        let mut log = CommitLog::default();
        log.observe(0, 1, e(1, 5));
        log.observe(0, 2, e(1, 6));
        log.check_leader(1, 2, &[e(1, 5), e(1, 6), e(2, 0)]);
        assert!(log.verdict().ok);
        log.check_leader(2, 3, &[e(1, 5), e(2, 0)]);
        let v = log.verdict();
        assert!(!v.ok && v.detail.contains("lacks committed index 2"), "{}", v.detail);
    }
}
