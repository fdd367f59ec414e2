//! How a swarm's graph is stored: a small head (the anchor and the next join sequence), one key
//! per node (its join sequence) and one key per link. Every graph change rewrites the head, so a
//! compare on the head's revision orders graph changes as a compare on the whole graph did; but
//! a join writes only the head, its node and its links. An `agent_spawn` into 10,000 agents
//! writes what it writes into 10, and the change log no longer keeps a copy of the whole graph
//! per spawn (it held 368 MB at 10,000 agents).
//!
//! The registry ([`super::registry`]) rebuilds the in-memory [`Graph`] from these keys and
//! follows their changes one by one. A head written before nodes and links had keys of their
//! own holds the whole graph; the first change after an upgrade moves it out.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, SwarmId};
use crate::mesh::keys;
use crate::mesh::model::encode;
use crate::mesh::topology::{Edge, Graph, LinkChange};
use crate::store::{Op, Revision};

/// The record under `swarm/<id>/graph`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GraphHead {
    #[serde(default)]
    pub root: Option<AgentId>,
    /// The join sequence the next node gets.
    #[serde(default)]
    pub next_seq: u64,
    /// A graph written whole, before nodes and links had keys (empty since).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<AgentId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<Edge>,
}

impl GraphHead {
    /// Whether this head holds a whole graph (written by an earlier version).
    pub fn is_whole(&self) -> bool {
        !self.nodes.is_empty() || !self.edges.is_empty()
    }
}

/// What a writer needs of the head it read: the next join sequence, and whether the head still
/// holds a whole graph to move out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HeadState {
    pub next_seq: u64,
    pub whole: bool,
}

/// Which nodes a graph change touches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NodeChange<'a> {
    /// No node joined, left or moved.
    None,
    /// This node joined, or rejoined, at the end of the join order.
    Joined(&'a AgentId),
    /// Every node may have moved (a rebuild): renumber them all.
    Renumbered,
}

/// The writes that take the stored graph, whose head is `head`, to `after`: the head (always),
/// the nodes `nodes` names, and the links of `links`. `after` is read only for the nodes to
/// renumber and the anchor. A head that still holds a whole graph is moved out in full.
pub(crate) fn graph_ops(
    swarm: &SwarmId,
    head: HeadState,
    after: &Graph,
    nodes: NodeChange,
    links: &LinkChange,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut next_seq = head.next_seq;
    let mut put_node = |id: &AgentId, ops: &mut Vec<Op>| {
        ops.push(Op::put(keys::node(swarm, id), encode(&next_seq)));
        next_seq += 1;
    };
    let whole = head.whole;
    match nodes {
        _ if whole => after.nodes.iter().for_each(|n| put_node(n, &mut ops)),
        NodeChange::Renumbered => after.nodes.iter().for_each(|n| put_node(n, &mut ops)),
        NodeChange::Joined(id) => put_node(id, &mut ops),
        NodeChange::None => {}
    }
    if whole {
        ops.extend(after.edges.iter().map(|(a, b)| Op::put(keys::link(swarm, a, b), Vec::new())));
    } else {
        ops.extend(links.removed.iter().map(|(a, b)| Op::delete(keys::link(swarm, a, b))));
        // After the deletes: a link dropped and made again (a rejoin) stays.
        ops.extend(links.added.iter().map(|(a, b)| Op::put(keys::link(swarm, a, b), Vec::new())));
    }
    let head = GraphHead { root: after.root.clone(), next_seq, ..GraphHead::default() };
    ops.push(Op::put(keys::graph(swarm), encode(&head)));
    ops
}

/// A swarm's graph as the registry follows it: built from the head, node and link keys, and
/// changed one key at a time as their changes arrive. Changes are applied when a view is taken
/// ([`GraphState::settle`]): a link in place by binary search, the node order re-sorted only
/// when a node did not join at the end.
#[derive(Debug, Default)]
pub(crate) struct GraphState {
    pub graph: Arc<Graph>,
    /// Mod revision of the head, for compare-and-swap (0: no head).
    pub rev: Revision,
    pub head: HeadState,
    /// Each node's join sequence: the node set.
    pub seq: Arc<HashMap<AgentId, u64>>,
    /// Link changes not yet in `graph`; the last write of a link wins.
    links: HashMap<Edge, bool>,
    /// `graph.nodes` must be rebuilt from `seq`.
    nodes_dirty: bool,
    /// The node order changed other than by additions at the end since the last settle.
    reordered: bool,
}

impl GraphState {
    pub fn put_head(&mut self, head: GraphHead, rev: Revision) {
        self.rev = rev;
        self.head = HeadState { next_seq: head.next_seq, whole: head.is_whole() };
        let graph = Arc::make_mut(&mut self.graph);
        graph.root = head.root;
        if self.head.whole {
            let seq = Arc::make_mut(&mut self.seq);
            seq.clear();
            seq.extend(head.nodes.iter().enumerate().map(|(i, n)| (n.clone(), i as u64)));
            (graph.nodes, graph.edges) = (head.nodes, head.edges);
            self.links.clear();
            self.nodes_dirty = false;
            self.reordered = true;
        }
    }

    pub fn delete_head(&mut self) {
        *self = Self { reordered: true, ..Self::default() };
    }

    pub fn put_node(&mut self, id: AgentId, seq: u64) {
        let last = self.graph.nodes.last().and_then(|n| self.seq.get(n)).copied();
        let appended = !self.nodes_dirty && !self.seq.contains_key(&id) && last.is_none_or(|l| l < seq);
        Arc::make_mut(&mut self.seq).insert(id.clone(), seq);
        if appended {
            Arc::make_mut(&mut self.graph).nodes.push(id);
        } else {
            self.nodes_dirty = true;
        }
    }

    pub fn delete_node(&mut self, id: &AgentId) {
        if Arc::make_mut(&mut self.seq).remove(id).is_some() {
            self.nodes_dirty = true;
        }
    }

    /// A link key's change; `rest` is `<a>/<b>`.
    pub fn link(&mut self, rest: &str, present: bool) {
        if let Some((a, b)) = rest.split_once('/') {
            self.links.insert((AgentId::new(a), AgentId::new(b)), present);
        }
    }

    /// Apply what arrived to `graph`. Returns whether the node order was rebuilt (rather than
    /// only added to at the end).
    pub fn settle(&mut self) -> bool {
        let reordered = std::mem::take(&mut self.reordered) || self.nodes_dirty;
        if self.links.is_empty() && !self.nodes_dirty {
            return reordered;
        }
        let graph = Arc::make_mut(&mut self.graph);
        if self.nodes_dirty {
            let mut nodes: Vec<(u64, AgentId)> = self.seq.iter().map(|(id, s)| (*s, id.clone())).collect();
            nodes.sort_unstable();
            graph.nodes = nodes.into_iter().map(|(_, id)| id).collect();
            self.nodes_dirty = false;
        }
        if self.links.len() > 16 {
            // Many at once (a first read, a rebuild, a destroy): one pass and one sort.
            graph.edges.retain(|e| self.links.get(e) != Some(&false));
            graph.edges.extend(self.links.drain().filter(|(_, present)| *present).map(|(e, _)| e));
            graph.edges.sort_unstable();
            graph.edges.dedup();
        } else {
            for (e, present) in self.links.drain() {
                match (graph.edges.binary_search(&e), present) {
                    (Err(at), true) => graph.edges.insert(at, e),
                    (Ok(at), false) => {
                        graph.edges.remove(at);
                    }
                    _ => {}
                }
            }
        }
        reordered
    }
}
