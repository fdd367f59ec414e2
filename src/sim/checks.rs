//! Safety checkers, fed by the drivers as a run goes and turned into [`Verdict`]s at its end.
//! They only look at histories (who decided what, who led which term), so tests can feed them
//! fabricated bad histories and see them fail.

use std::collections::BTreeMap;

use super::report::{Kind, Verdict};
use crate::protocols::NodeId;

/// Agreement: no two nodes decide different values at one sequence number.
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

/// Election safety: at most one leader per term, over the whole run.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
