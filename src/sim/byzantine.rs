//! Byzantine behaviour for pBFT: equivocation. A Byzantine replica runs the honest core but tells
//! different replicas different things: every pre-prepare, prepare and commit it sends to an
//! odd-numbered replica names a different value than the one it sends to even-numbered replicas.
//! As a primary it so proposes two values for one sequence number; as a backup it votes for both.

use crate::protocols::pbft::Msg;
use crate::protocols::NodeId;

/// Marks a value a Byzantine replica made up (client values stay far below it).
pub const FORGED: u64 = 1 << 40;

/// The message a Byzantine sender sends to `to` instead of `msg`.
pub fn equivocate(msg: &Msg, to: NodeId) -> Msg {
    if to.is_multiple_of(2) {
        return msg.clone();
    }
    match *msg {
        Msg::PrePrepare { view, seq, value } => Msg::PrePrepare { view, seq, value: value ^ FORGED },
        Msg::Prepare { view, seq, value } => Msg::Prepare { view, seq, value: value ^ FORGED },
        Msg::Commit { view, seq, value } => Msg::Commit { view, seq, value: value ^ FORGED },
        ref other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivocation_sends_different_values_to_odd_and_even_replicas() {
        let msg = Msg::PrePrepare { view: 0, seq: 1, value: 7 };
        assert_eq!(equivocate(&msg, 2), msg);
        assert_eq!(equivocate(&msg, 3), Msg::PrePrepare { view: 0, seq: 1, value: 7 ^ FORGED });
        let fetch = Msg::Fetch { next: 3 };
        assert_eq!(equivocate(&fetch, 3), fetch);
    }
}
