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
    /// A fresh id that sorts after every id made earlier: the send time in milliseconds (12 hex
    /// digits) and 8 random hex digits. A mailbox is then in send order by key, so `receive` reads
    /// its oldest messages with one bounded range instead of the whole mailbox. Senders on
    /// different hosts order by their clocks.
    pub fn at(now_ms: i64) -> Self {
        Self(format!("{}-{:012x}{}", Self::PREFIX, now_ms.max(0), crate::secret::random_hex(4)))
    }
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
