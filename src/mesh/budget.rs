//! The byte budget of one reply. A list stops adding items before its JSON would pass
//! [`config::MAX_REPLY_BYTES`], says it was cut, and the caller continues from a cursor (or, for
//! a mailbox, after acknowledging what it got). The first item always fits: every stored item is
//! smaller than the budget, so a cut page still makes progress.

use serde::Serialize;

use crate::config;

#[derive(Debug)]
pub struct Budget {
    left: usize,
    taken: usize,
    cut: bool,
}

impl Default for Budget {
    fn default() -> Self {
        Self::of(config::MAX_REPLY_BYTES)
    }
}

impl Budget {
    pub fn of(bytes: usize) -> Self {
        Self { left: bytes, taken: 0, cut: false }
    }

    /// Whether `item` still fits; once one does not, nothing more does.
    pub fn admit(&mut self, item: &impl Serialize) -> bool {
        if self.cut {
            return false;
        }
        let bytes = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(usize::MAX);
        if self.taken > 0 && bytes > self.left {
            self.cut = true;
            return false;
        }
        self.left = self.left.saturating_sub(bytes);
        self.taken += 1;
        true
    }

    /// The bytes not used yet.
    pub fn left(&self) -> usize {
        self.left
    }

    /// `Some(true)` when the list was cut short, for an output's `truncated` field.
    pub fn truncated(&self) -> Option<bool> {
        self.cut.then_some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_the_item_that_would_overflow_and_stays_stopped() {
        let mut b = Budget::of(10);
        assert!(b.admit(&"abcd")); // 6 bytes as JSON
        assert!(!b.admit(&"abcdefgh")); // 10 bytes: over the 4 left
        assert!(!b.admit(&"")); // 2 bytes would fit, but the list is cut
        assert_eq!(b.truncated(), Some(true));
    }

    #[test]
    fn the_first_item_always_fits_and_an_uncut_list_says_nothing() {
        let mut b = Budget::of(1);
        assert!(b.admit(&"much longer than one byte"));
        let mut roomy = Budget::of(1000);
        assert!(roomy.admit(&1) && roomy.admit(&2));
        assert_eq!(roomy.truncated(), None);
    }
}
