//! Newtypes for identities, so raw strings don't wander between modules.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of generated ids of this kind.
            pub const PREFIX: &'static str = $prefix;

            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// A fresh id: the prefix and 12 random hex digits.
            pub fn generate() -> Self {
                Self(format!("{}-{}", $prefix, crate::secret::random_hex(6)))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

id_type!(
    /// An agent of a swarm.
    AgentId, "agent"
);
id_type!(
    /// A swarm.
    SwarmId, "swarm"
);
id_type!(
    /// A mailbox message.
    MessageId, "msg"
);
impl MessageId {
    /// A fresh id that sorts after every id this process made earlier: the send time in
    /// milliseconds (12 hex digits), a count within the millisecond (4) and 8 random hex digits.
    /// A mailbox is then in send order by key, so `receive` reads its oldest messages with one
    /// bounded range instead of the whole mailbox. Senders in different processes order by their
    /// clocks. (Ids made before the count, 12 + 8 digits, sort with these by millisecond.)
    pub fn at(now_ms: i64) -> Self {
        Self(format!("{}-{:016x}{}", Self::PREFIX, next_stamp(now_ms), crate::secret::random_hex(4)))
    }
}

/// The last message stamp this process gave out: milliseconds shifted left by 16, plus a count.
static LAST_STAMP: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// A stamp above every earlier one: `now_ms`'s first, or one past the last when the clock has
/// not moved on (or went back). Past 65,535 in one millisecond the count carries into the
/// milliseconds, which keeps the order.
fn next_stamp(now_ms: i64) -> i64 {
    use std::sync::atomic::Ordering::Relaxed;
    let first = now_ms.max(0) << 16;
    let previous = LAST_STAMP.fetch_update(Relaxed, Relaxed, |last| Some(first.max(last + 1))).unwrap_or_default();
    first.max(previous + 1)
}

id_type!(
    /// A consensus proposal.
    ProposalId, "prop"
);
id_type!(
    /// A task of a swarm.
    TaskId, "task"
);
id_type!(
    /// A ReasoningBank pattern.
    PatternId, "pat"
);
id_type!(
    /// An operation outcome recorded by `neural_patterns action=learn`.
    OutcomeId, "out"
);

#[cfg(test)]
mod tests {
    use super::MessageId;

    /// Message ids sort in the order they were made: within one millisecond, and when the clock
    /// goes back.
    #[test]
    fn message_ids_sort_in_the_order_they_were_made() {
        let ids = [MessageId::at(1_000), MessageId::at(1_000), MessageId::at(999), MessageId::at(1_700_000_000_000)];
        assert!(ids.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "{ids:?}");
        assert_eq!(ids[3].as_str().len(), "msg-".len() + 16 + 8);
    }
}
