//! What a simulation run is asked to do ([`SimConfig`]), its checks ([`SimConfig::validate`]) and
//! the errors a bad request gets ([`SimError`]).

use std::fmt;
use std::str::FromStr;

use super::faults::Partition;

/// The protocols the simulator can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `daa_consensus` pBFT, the engine's.
    Pbft,
    /// `daa_consensus elect` and fenced writes, the engine's.
    Election,
    /// The reference gossip core ([`crate::protocols::gossip`]).
    Gossip,
}

impl FromStr for Protocol {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "pbft" => Ok(Self::Pbft),
            "election" => Ok(Self::Election),
            "gossip" => Ok(Self::Gossip),
            other => Err(SimError::UnknownProtocol(other.to_string())),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pbft => "pbft",
            Self::Election => "election",
            Self::Gossip => "gossip",
        })
    }
}

/// Why a simulation cannot run as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("unknown protocol `{0}` (expected pbft, election or gossip)")]
    UnknownProtocol(String),
    #[error("--nodes must be at least 1")]
    NoNodes,
    #[error("--faulty {faulty} is too many for {protocol} with {nodes} nodes (at most {max}{why})")]
    TooManyFaulty { protocol: Protocol, nodes: u32, faulty: u32, max: u32, why: &'static str },
    #[error("--drop must be a probability in [0, 1), got {0}")]
    BadDrop(f64),
    #[error("bad --delay `{0}` (expected MIN..MAX in ms, MIN <= MAX, e.g. 1..10)")]
    BadDelay(String),
    #[error("bad --partition `{spec}`: {why}")]
    BadPartition { spec: String, why: String },
    #[error("--fanout must be at least 1")]
    NoFanout,
    #[error("--requests must be at least 1")]
    NoRequests,
}

/// Default per-message delay range, in simulated ms.
pub const DEFAULT_DELAY: (u64, u64) = (1, 10);
/// Default simulated-time budget of one run, in ms.
pub const DEFAULT_MAX_TIME_MS: u64 = 120_000;

/// One simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub protocol: Protocol,
    pub nodes: u32,
    /// pBFT: Byzantine agents (each rushes, refuses or equivocates); election: agents that crash
    /// and restart again and again; gossip: nodes that crash for good.
    pub faulty: u32,
    /// Probability that a message is lost (until `gst`).
    pub drop: f64,
    /// Each message takes a delay drawn uniformly from `delay.0..=delay.1` ms.
    pub delay: (u64, u64),
    pub partitions: Vec<Partition>,
    /// Global stabilization time: from then on no message is dropped and partitions are over.
    pub gst: Option<u64>,
    /// pBFT: client requests to decide; election: fenced writes the leaders must get accepted;
    /// gossip: keys written (each by a random live node).
    pub requests: u32,
    /// Gossip: peers contacted per round.
    pub fanout: u32,
    /// Stop after this much simulated time even without a decision or convergence.
    pub max_time: u64,
    pub seed: u64,
}

impl SimConfig {
    /// A fault-free run of `protocol` on `nodes` nodes with the defaults.
    pub fn new(protocol: Protocol, nodes: u32, seed: u64) -> Self {
        Self {
            protocol,
            nodes,
            faulty: 0,
            drop: 0.0,
            delay: DEFAULT_DELAY,
            partitions: Vec::new(),
            gst: None,
            requests: if protocol == Protocol::Gossip { 4 } else { 20 },
            fanout: 3,
            max_time: DEFAULT_MAX_TIME_MS,
            seed,
        }
    }

    /// The largest `faulty` the protocol tolerates on `nodes` nodes, and why.
    pub fn max_faulty(protocol: Protocol, nodes: u32) -> (u32, &'static str) {
        match protocol {
            Protocol::Pbft => ((nodes.saturating_sub(1)) / 3, ": pBFT needs n >= 3f + 1"),
            Protocol::Election => ((nodes.saturating_sub(1)) / 2, ": the swarm needs a live majority"),
            Protocol::Gossip => (nodes.saturating_sub(1), ": at least one node must stay up"),
        }
    }

    /// Check the run makes sense before starting it.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.nodes == 0 {
            return Err(SimError::NoNodes);
        }
        let (max, why) = Self::max_faulty(self.protocol, self.nodes);
        if self.faulty > max {
            return Err(SimError::TooManyFaulty {
                protocol: self.protocol,
                nodes: self.nodes,
                faulty: self.faulty,
                max,
                why,
            });
        }
        if !(0.0..1.0).contains(&self.drop) {
            return Err(SimError::BadDrop(self.drop));
        }
        if self.delay.0 > self.delay.1 {
            return Err(SimError::BadDelay(format!("{}..{}", self.delay.0, self.delay.1)));
        }
        for p in &self.partitions {
            p.check(self.nodes)?;
        }
        if self.fanout == 0 {
            return Err(SimError::NoFanout);
        }
        if self.requests == 0 {
            return Err(SimError::NoRequests);
        }
        Ok(())
    }
}

/// Parse a `--delay` range `MIN..MAX` (ms) or a single fixed delay `D`.
pub fn parse_delay(s: &str) -> Result<(u64, u64), SimError> {
    let bad = || SimError::BadDelay(s.to_string());
    let (lo, hi) = match s.split_once("..") {
        Some((lo, hi)) => (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?),
        None => {
            let d = s.trim().parse().map_err(|_| bad())?;
            (d, d)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_zero_nodes_and_too_many_byzantine() {
        assert_eq!(SimConfig::new(Protocol::Election, 0, 1).validate(), Err(SimError::NoNodes));
        let mut c = SimConfig::new(Protocol::Pbft, 6, 1);
        c.faulty = 1;
        assert!(c.validate().is_ok());
        c.faulty = 2;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("n >= 3f + 1"), "{e}");
    }

    #[test]
    fn delay_parses_ranges_and_single_values() {
        assert_eq!(parse_delay("1..10"), Ok((1, 10)));
        assert_eq!(parse_delay("5"), Ok((5, 5)));
        assert!(parse_delay("10..1").is_err());
        assert!(parse_delay("x").is_err());
    }
}
