//! The reference gossip core ([`gossip`]) as a pure state machine. No tool runs gossip: it is
//! here for `mesh-mcp simulate --protocol gossip`. The consensus and election the tools run are
//! the engine's own ([`crate::mesh::consensus`]), and the simulator drives those directly.
//!
//! Each core is synchronous and deterministic. It never reads a clock or an entropy source:
//! the caller passes the time (`now`, in simulated milliseconds) and a random number generator,
//! and the core answers with the messages it wants sent. The same cores could run behind an async
//! shell that owns sockets and timers; here [`crate::sim`] drives them through a simulated network.
//!
//! Cores keep their state in ordered collections (`BTreeMap`, `Vec`), never in hash maps, so the
//! order of the messages they emit depends only on their inputs, and a simulation is reproducible
//! bit for bit from its seed.

pub mod gossip;

use rand::Rng;

/// A node of a simulated cluster: its index, from 0 to N-1.
pub type NodeId = u32;

/// A message on its way from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<M> {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: M,
}

/// What a core answers with: the messages to send, in order.
pub type Outbox<M> = Vec<Envelope<M>>;

/// A protocol node as the simulator sees it: it reacts to messages and to timer ticks.
pub trait Node {
    /// The protocol's message type.
    type Msg: Clone + std::fmt::Debug;

    /// This node's id.
    fn id(&self) -> NodeId;

    /// Handle one message from `from` at time `now`.
    fn on_message(&mut self, from: NodeId, msg: Self::Msg, now: u64) -> Outbox<Self::Msg>;

    /// Let timers fire: called periodically at time `now`.
    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) -> Outbox<Self::Msg>;

    /// Come back after a crash: keep what the protocol persists, forget the rest. By default a
    /// node keeps everything (nothing of it is volatile).
    fn on_restart<R: Rng + ?Sized>(&mut self, _now: u64, _rng: &mut R) {}
}

/// Envelopes carrying `msg` from `from` to every node of `0..n` except `from` itself.
pub fn broadcast<M: Clone>(from: NodeId, n: u32, msg: &M) -> Outbox<M> {
    (0..n).filter(|&to| to != from).map(|to| Envelope { from, to, msg: msg.clone() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_reaches_every_other_node_once() {
        let out = broadcast(2, 4, &"hi");
        let to: Vec<_> = out.iter().map(|e| e.to).collect();
        assert_eq!(to, vec![0, 1, 3]);
        assert!(out.iter().all(|e| e.from == 2 && e.msg == "hi"));
    }
}
