//! The swarm's connection graph: which agents are linked to which.
//!
//! This module is pure — no I/O, no clock, no randomness — so the same sequence
//! of joins and leaves always yields the same graph, on every server.
//!
//! A [`Graph`] is undirected. Nodes are kept in join order (the order is what
//! breaks every tie); edges are kept normalised (smaller id first), sorted, with
//! no duplicates and no self loops, so two graphs compare equal exactly when
//! they link the same pairs.
//!
//! Four shapes ([`TopologyKind`]):
//!
//! * **mesh** — a full mesh while the swarm has at most [`SMALL_MESH`] nodes.
//!   Beyond that a new node is inserted by *edge split*: take an existing edge
//!   `(a, b)` between high-degree nodes, replace it by `(a, new)` and
//!   `(new, b)`, then add one more edge from `new` to a node `c` that still has
//!   room (degree below [`MESH_MAX_DEGREE`]): the one *farthest* from `new`, so
//!   each join also lays a long shortcut and the diameter stays small (6 at 120
//!   nodes; always taking the lowest-degree `c` instead gives 24).
//!
//!   Why the average degree stays at 4: the split leaves the degrees of `a` and
//!   `b` unchanged, so each join adds exactly two edges — four units of degree
//!   — for one node. The full mesh of five has degree sum 20 = 4·5 (a rebuilt
//!   mesh has 4n too), so the sum stays at `4n`. Existing degrees never go
//!   down, the new node gets 3, and `c` is only chosen below 5, so every degree
//!   stays in `3..=5`. (Such a `c` always exists: were every node but `a`, `b`
//!   at 5, the sum would exceed `4n`.) Subdividing an edge and adding an edge
//!   both preserve 2-edge-connectivity, so the mesh has no bridge: any single
//!   link can fail without splitting it. These guarantees hold for a mesh grown
//!   by joins from empty or from a [`Graph::rebuild`]; leaves erode them until
//!   the next rebuild.
//! * **hierarchical** — a tree under the root, each node with at most
//!   [`BRANCHING`] children; a new node attaches to the shallowest node with a
//!   free slot (breadth-first from the root, ties by join order).
//! * **ring** — a cycle in join order; a new node goes between the last and
//!   the first.
//! * **star** — every node linked to the hub.
//!
//! The root (hierarchical) or hub (star) is the *anchor*, kept for every kind:
//! the first node of the graph, or the joiner when it is a coordinator and the
//! graph has no anchor yet. A coordinator joining later does not take over.
//! When the anchor leaves, the next joiner becomes it if it is a coordinator,
//! else the earliest remaining node does.
//!
//! [`Graph::join`] only adds links at the joiner (mesh and ring also drop the
//! one link they split). [`Graph::leave`] drops the leaver's links and does no
//! repair; [`Graph::rebuild`] lays a fresh, well-shaped graph over the live
//! nodes, and [`Graph::diff`] says which links that changes. Routing and
//! reachability ([`Graph::shortest_path`], [`Graph::components`]) take a
//! `usable` predicate so callers can route around failed agents.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

/// Up to this many nodes, a mesh links every node to every other.
pub const SMALL_MESH: usize = 5;
/// Below this degree no mesh node is left once the mesh outgrows [`SMALL_MESH`].
pub const MESH_MIN_DEGREE: usize = 3;
/// No mesh node gets more links than this.
pub const MESH_MAX_DEGREE: usize = 5;
/// The most children a node has in a hierarchical tree.
pub const BRANCHING: usize = 4;

/// An undirected link, normalised: smaller id first.
pub type Edge = (AgentId, AgentId);

// The shape of a swarm's connection graph (a plain comment: the schema would serve it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// Everyone linked while small, then degree 3 to 5 with redundant paths.
    #[default]
    Mesh,
    /// A tree under a coordinator, at most [`BRANCHING`] children per node.
    Hierarchical,
    /// A cycle in join order.
    Ring,
    /// Everyone linked to one hub.
    Star,
}

impl TopologyKind {
    pub const ALL: [TopologyKind; 4] = [Self::Mesh, Self::Hierarchical, Self::Ring, Self::Star];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::Hierarchical => "hierarchical",
            Self::Ring => "ring",
            Self::Star => "star",
        }
    }
}

impl fmt::Display for TopologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topology name that is none of `mesh`, `hierarchical`, `ring`, `star`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTopology(pub String);

impl fmt::Display for UnknownTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown topology {:?} (expected mesh, hierarchical, ring or star)", self.0)
    }
}

impl std::error::Error for UnknownTopology {}

impl FromStr for TopologyKind {
    type Err = UnknownTopology;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownTopology(s.to_string()))
    }
}

/// Links that appeared and disappeared, each list normalised and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkChange {
    pub added: Vec<Edge>,
    pub removed: Vec<Edge>,
}

impl LinkChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    fn tidy(mut self) -> Self {
        self.added.sort();
        self.removed.sort();
        self
    }
}

/// An undirected graph: nodes in join order; edges stored normalised (smaller
/// id first), sorted, no duplicates, no self loops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<AgentId>,
    pub edges: Vec<Edge>,
    /// The root of a hierarchy, the hub of a star (see the module notes).
    #[serde(default)]
    pub root: Option<AgentId>,
}

/// The pair in stored order, or `None` for a self loop.
fn normalise(a: &AgentId, b: &AgentId) -> Option<Edge> {
    match a.cmp(b) {
        std::cmp::Ordering::Less => Some((a.clone(), b.clone())),
        std::cmp::Ordering::Greater => Some((b.clone(), a.clone())),
        std::cmp::Ordering::Equal => None,
    }
}

/// Neighbour lists by node position, each in join order.
struct Adjacency {
    lists: Vec<Vec<usize>>,
}

impl Adjacency {
    fn degree(&self, i: usize) -> usize {
        self.lists[i].len()
    }
}

// Reading the graph.
impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, id: &AgentId) -> bool {
        self.nodes.contains(id)
    }

    /// The root of a hierarchy, the hub of a star.
    pub fn root(&self) -> Option<&AgentId> {
        self.root.as_ref()
    }

    pub fn has_edge(&self, a: &AgentId, b: &AgentId) -> bool {
        normalise(a, b).is_some_and(|edge| self.edges.binary_search(&edge).is_ok())
    }

    /// The nodes linked to `id`, in join order.
    pub fn neighbours(&self, id: &AgentId) -> Vec<&AgentId> {
        self.nodes.iter().filter(|other| self.has_edge(id, other)).collect()
    }

    pub fn degree(&self, id: &AgentId) -> usize {
        self.edges.iter().filter(|(a, b)| a == id || b == id).count()
    }

    fn position(&self, id: &AgentId) -> Option<usize> {
        self.nodes.iter().position(|n| n == id)
    }

    fn adjacency(&self) -> Adjacency {
        let pos: HashMap<&AgentId, usize> = self.nodes.iter().enumerate().map(|(i, id)| (id, i)).collect();
        let mut lists = vec![Vec::new(); self.nodes.len()];
        for (a, b) in &self.edges {
            if let (Some(&i), Some(&j)) = (pos.get(a), pos.get(b)) {
                lists[i].push(j);
                lists[j].push(i);
            }
        }
        for list in &mut lists {
            list.sort_unstable();
        }
        Adjacency { lists }
    }

    fn usable_mask(&self, usable: impl Fn(&AgentId) -> bool) -> Vec<bool> {
        self.nodes.iter().map(usable).collect()
    }
}

/// What a join does, computed without changing the graph: [`Graph::join_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    pub change: LinkChange,
    /// The anchor after the join.
    pub root: Option<AgentId>,
    /// The joiner's neighbours, in join order.
    pub neighbours: Vec<AgentId>,
}

impl Graph {
    /// What [`Graph::join`] would do, for the shapes whose rule looks at a few nodes only (star
    /// and ring), without changing or copying the graph: a join into 10,000 agents then costs
    /// what it costs into 10. `is_node` must answer membership of the graph (the registry keeps
    /// the node set). `None` for mesh and hierarchical, whose rules read the whole graph: join a
    /// copy there. The joiner must not be a node yet.
    pub fn join_plan(
        &self,
        kind: TopologyKind,
        id: &AgentId,
        coordinator: bool,
        is_node: impl Fn(&AgentId) -> bool,
    ) -> Option<JoinPlan> {
        let root = match self.root.as_ref().filter(|r| is_node(r)) {
            Some(r) => r.clone(),
            None => self.nodes.first().filter(|_| !coordinator).unwrap_or(id).clone(),
        };
        let mut change = LinkChange::default();
        let add = |a: &AgentId, b: &AgentId, change: &mut LinkChange| {
            if let Some(e) = normalise(a, b).filter(|e| self.edges.binary_search(e).is_err()) {
                if !change.added.contains(&e) {
                    change.added.push(e);
                }
            }
        };
        let neighbours = match kind {
            TopologyKind::Star if &root == id => {
                self.nodes.iter().for_each(|n| add(id, n, &mut change));
                self.nodes.clone()
            }
            TopologyKind::Star => {
                add(&root, id, &mut change);
                vec![root.clone()]
            }
            TopologyKind::Ring => match (self.nodes.first(), self.nodes.last()) {
                (Some(first), Some(last)) => {
                    if self.nodes.len() >= 3 {
                        change.removed.extend(normalise(last, first).filter(|e| self.edges.binary_search(e).is_ok()));
                    }
                    add(last, id, &mut change);
                    add(id, first, &mut change);
                    if first == last {
                        vec![first.clone()]
                    } else {
                        vec![first.clone(), last.clone()]
                    }
                }
                _ => Vec::new(),
            },
            TopologyKind::Mesh | TopologyKind::Hierarchical => return None,
        };
        Some(JoinPlan { change: change.tidy(), root: Some(root), neighbours })
    }
}

// Changing the graph.
impl Graph {
    /// Adds `id` and wires it in the shape of `kind`. A node already present
    /// is left alone (empty change).
    pub fn join(&mut self, kind: TopologyKind, id: AgentId, coordinator: bool) -> LinkChange {
        let mut change = LinkChange::default();
        if self.contains(&id) {
            return change;
        }
        self.settle_root(&id, coordinator);
        self.nodes.push(id.clone());
        match kind {
            TopologyKind::Mesh => self.join_mesh(&id, &mut change),
            TopologyKind::Hierarchical => self.join_tree(&id, &mut change),
            TopologyKind::Ring => self.join_ring(&id, &mut change),
            TopologyKind::Star => self.join_star(&id, &mut change),
        }
        change.tidy()
    }

    /// Drops every link of `id` but keeps it a member (a failed agent: its place is kept for
    /// its return). Returns the neighbours it lost, in join order.
    pub fn isolate(&mut self, id: &AgentId) -> Vec<AgentId> {
        let lost = self.neighbours(id).into_iter().cloned().collect();
        self.edges.retain(|(a, b)| a != id && b != id);
        lost
    }

    /// Removes `id` and its links, without rewiring (see [`Graph::rebuild`]).
    pub fn leave(&mut self, id: &AgentId) -> LinkChange {
        let Some(i) = self.position(id) else {
            return LinkChange::default();
        };
        self.nodes.remove(i);
        let (removed, kept) = std::mem::take(&mut self.edges).into_iter().partition(|(a, b)| a == id || b == id);
        self.edges = kept;
        if self.root.as_ref() == Some(id) {
            self.root = None;
        }
        LinkChange { added: Vec::new(), removed }
    }

    /// A fresh graph of shape `kind` over `live` (in that order, duplicates
    /// dropped), anchored at `coordinator` when it is live, else the first.
    ///
    /// A mesh of more than [`SMALL_MESH`] nodes is the circulant graph
    /// C_n(1, s) with s = ceil(sqrt n): node `i` linked to `i ± 1` and `i ± s`,
    /// degree 4, no bridge, and a diameter of about sqrt(n).
    pub fn rebuild(kind: TopologyKind, live: &[AgentId], coordinator: Option<&AgentId>) -> Graph {
        let mut nodes: Vec<AgentId> = Vec::with_capacity(live.len());
        for id in live {
            if !nodes.contains(id) {
                nodes.push(id.clone());
            }
        }
        let root = coordinator.filter(|c| nodes.contains(c)).or(nodes.first()).cloned();
        let pairs = match kind {
            TopologyKind::Mesh => mesh_pairs(nodes.len()),
            TopologyKind::Ring => ring_pairs(nodes.len()),
            TopologyKind::Hierarchical | TopologyKind::Star => {
                let r = root.as_ref().and_then(|r| nodes.iter().position(|n| n == r));
                anchored_pairs(kind, nodes.len(), r.unwrap_or(0))
            }
        };
        let mut edges: Vec<Edge> = pairs.into_iter().filter_map(|(i, j)| normalise(&nodes[i], &nodes[j])).collect();
        edges.sort();
        edges.dedup();
        Graph { nodes, edges, root }
    }

    /// The links to add and drop to turn `self` into `newer`.
    pub fn diff(&self, newer: &Graph) -> LinkChange {
        let missing_from = |g: &Graph, e: &&Edge| g.edges.binary_search(e).is_err();
        LinkChange {
            added: newer.edges.iter().filter(|e| missing_from(self, e)).cloned().collect(),
            removed: self.edges.iter().filter(|e| missing_from(newer, e)).cloned().collect(),
        }
    }

    fn add_edge(&mut self, a: &AgentId, b: &AgentId, change: &mut LinkChange) {
        let Some(edge) = normalise(a, b) else { return };
        if let Err(at) = self.edges.binary_search(&edge) {
            self.edges.insert(at, edge.clone());
            change.added.push(edge);
        }
    }

    fn remove_edge(&mut self, a: &AgentId, b: &AgentId, change: &mut LinkChange) {
        let Some(edge) = normalise(a, b) else { return };
        if let Ok(at) = self.edges.binary_search(&edge) {
            change.removed.push(self.edges.remove(at));
        }
    }

    /// Keeps the anchor if there is one; otherwise a coordinator joiner (or
    /// the first node ever) takes it, else the earliest remaining node.
    fn settle_root(&mut self, joiner: &AgentId, coordinator: bool) {
        if self.root.as_ref().is_some_and(|r| self.contains(r)) {
            return;
        }
        let earliest = self.nodes.first().filter(|_| !coordinator);
        self.root = Some(earliest.unwrap_or(joiner).clone());
    }

    fn join_mesh(&mut self, id: &AgentId, change: &mut LinkChange) {
        let others: Vec<AgentId> = self.nodes.iter().filter(|n| *n != id).cloned().collect();
        if others.len() < SMALL_MESH {
            for other in &others {
                self.add_edge(id, other, change);
            }
            return;
        }
        if let Some((a, b)) = self.edge_to_split() {
            self.remove_edge(&a, &b, change);
            self.add_edge(&a, id, change);
            self.add_edge(id, &b, change);
        }
        while self.degree(id) < MESH_MIN_DEGREE {
            let Some(c) = self.roomiest_stranger(id) else {
                break;
            };
            self.add_edge(id, &c, change);
        }
    }

    /// The edge whose ends have the highest degrees (smaller end first, then
    /// the sum), ties to the earliest-joined pair.
    fn edge_to_split(&self) -> Option<Edge> {
        let adj = self.adjacency();
        let mut best: Option<((usize, usize), (usize, usize))> = None;
        for (i, list) in adj.lists.iter().enumerate() {
            for &j in list.iter().filter(|&&j| j > i) {
                let (di, dj) = (adj.degree(i), adj.degree(j));
                let score = (di.min(dj), di + dj);
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, (i, j)));
                }
            }
        }
        best.and_then(|(_, (i, j))| normalise(&self.nodes[i], &self.nodes[j]))
    }

    /// The node with room for a link (degree below [`MESH_MAX_DEGREE`]) that
    /// is farthest from `id`, so the new link is a long shortcut; ties to the
    /// lower degree, then the earliest joined.
    fn roomiest_stranger(&self, id: &AgentId) -> Option<AgentId> {
        let adj = self.adjacency();
        let me = self.position(id)?;
        let hops = hop_counts(&adj, me);
        (0..self.nodes.len())
            .filter(|&c| c != me && adj.degree(c) < MESH_MAX_DEGREE)
            .filter(|c| adj.lists[me].binary_search(c).is_err())
            .min_by_key(|&c| (std::cmp::Reverse(hops[c]), adj.degree(c), c))
            .map(|c| self.nodes[c].clone())
    }

    fn join_tree(&mut self, id: &AgentId, change: &mut LinkChange) {
        if let Some(parent) = self.shallowest_free_parent(id) {
            self.add_edge(&parent, id, change);
        }
    }

    /// Breadth-first from the root, the first node with fewer than
    /// [`BRANCHING`] children. `None` when `id` is the root itself.
    fn shallowest_free_parent(&self, id: &AgentId) -> Option<AgentId> {
        let root = self.root.as_ref().filter(|r| *r != id)?;
        let adj = self.adjacency();
        let start = self.position(root)?;
        let mut parent = vec![usize::MAX; self.nodes.len()];
        parent[start] = start;
        let mut queue = VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            let children: Vec<usize> = adj.lists[u].iter().copied().filter(|&v| v != parent[u]).collect();
            if children.len() < BRANCHING {
                return Some(self.nodes[u].clone());
            }
            for v in children {
                if parent[v] == usize::MAX {
                    parent[v] = u;
                    queue.push_back(v);
                }
            }
        }
        Some(root.clone())
    }

    fn join_ring(&mut self, id: &AgentId, change: &mut LinkChange) {
        let others = self.nodes.len() - 1;
        if others == 0 {
            return;
        }
        let (first, last) = (self.nodes[0].clone(), self.nodes[others - 1].clone());
        if others >= 3 {
            self.remove_edge(&last, &first, change);
        }
        self.add_edge(&last, id, change);
        self.add_edge(id, &first, change);
    }

    fn join_star(&mut self, id: &AgentId, change: &mut LinkChange) {
        let Some(hub) = self.root.clone() else { return };
        if &hub == id {
            let others: Vec<AgentId> = self.nodes.iter().filter(|n| *n != id).cloned().collect();
            for other in &others {
                self.add_edge(id, other, change);
            }
        } else {
            self.add_edge(&hub, id, change);
        }
    }
}

/// Hops from `start` to every position (`usize::MAX` where unreachable).
fn hop_counts(adj: &Adjacency, start: usize) -> Vec<usize> {
    let mut hops = vec![usize::MAX; adj.lists.len()];
    hops[start] = 0;
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for &v in &adj.lists[u] {
            if hops[v] == usize::MAX {
                hops[v] = hops[u] + 1;
                queue.push_back(v);
            }
        }
    }
    hops
}

/// Mesh over positions `0..n`: complete up to [`SMALL_MESH`], else C_n(1, ceil(sqrt n)).
fn mesh_pairs(n: usize) -> Vec<(usize, usize)> {
    if n <= SMALL_MESH {
        (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect()
    } else {
        // The circulant C_n(1, s) with s near sqrt(n): a Hamiltonian cycle (so no bridge) plus
        // chords of length s, giving degree 4 and a diameter of about sqrt(n) rather than the
        // n/4 of C_n(1, 2). At n = 6, s = 3 would make every chord double up; use 2 there.
        let mut s = (n as f64).sqrt().ceil() as usize;
        if 2 * s == n {
            s -= 1;
        }
        (0..n).flat_map(|i| [(i, (i + 1) % n), (i, (i + s) % n)]).collect()
    }
}

/// Cycle over positions `0..n` (a single link for two, none for one).
fn ring_pairs(n: usize) -> Vec<(usize, usize)> {
    if n < 2 {
        return Vec::new();
    }
    (0..n).map(|i| (i, (i + 1) % n)).collect()
}

/// Star or breadth-filled tree over positions `0..n`, anchored at `root`.
fn anchored_pairs(kind: TopologyKind, n: usize, root: usize) -> Vec<(usize, usize)> {
    let order: Vec<usize> = std::iter::once(root).chain((0..n).filter(|&i| i != root)).collect();
    (1..order.len())
        .map(|k| {
            let parent = if kind == TopologyKind::Star { 0 } else { (k - 1) / BRANCHING };
            (order[parent], order[k])
        })
        .collect()
}

// Routing and reachability.
impl Graph {
    /// A fewest-hops path from `from` to `to` through usable nodes only
    /// (both ends included), or `None`. Breadth-first, neighbours in join
    /// order, so the answer is deterministic; O(V + E).
    pub fn shortest_path(
        &self,
        from: &AgentId,
        to: &AgentId,
        usable: impl Fn(&AgentId) -> bool,
    ) -> Option<Vec<AgentId>> {
        let (s, t) = (self.position(from)?, self.position(to)?);
        let ok = self.usable_mask(usable);
        if !ok[s] || !ok[t] {
            return None;
        }
        let adj = self.adjacency();
        let mut prev = vec![usize::MAX; self.nodes.len()];
        prev[s] = s;
        let mut queue = VecDeque::from([s]);
        while let Some(u) = queue.pop_front() {
            if u == t {
                return Some(self.trace_back(&prev, t));
            }
            for &v in &adj.lists[u] {
                if ok[v] && prev[v] == usize::MAX {
                    prev[v] = u;
                    queue.push_back(v);
                }
            }
        }
        None
    }

    fn trace_back(&self, prev: &[usize], mut at: usize) -> Vec<AgentId> {
        let mut path = vec![self.nodes[at].clone()];
        while prev[at] != at {
            at = prev[at];
            path.push(self.nodes[at].clone());
        }
        path.reverse();
        path
    }

    /// Connected components among usable nodes, largest first (ties: the one
    /// holding the earliest-joined node first), members in join order.
    pub fn components(&self, usable: impl Fn(&AgentId) -> bool) -> Vec<Vec<AgentId>> {
        let ok = self.usable_mask(usable);
        let adj = self.adjacency();
        let mut seen = vec![false; self.nodes.len()];
        let mut components = Vec::new();
        for start in 0..self.nodes.len() {
            if !ok[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            let (mut members, mut queue) = (Vec::new(), VecDeque::from([start]));
            while let Some(u) = queue.pop_front() {
                members.push(u);
                for &v in adj.lists[u].iter().filter(|&&v| ok[v]) {
                    if !std::mem::replace(&mut seen[v], true) {
                        queue.push_back(v);
                    }
                }
            }
            members.sort_unstable();
            components.push(members.into_iter().map(|i| self.nodes[i].clone()).collect::<Vec<_>>());
        }
        components.sort_by_key(|c| std::cmp::Reverse(c.len()));
        components
    }

    /// The share of pairs of usable nodes that can reach each other; `None` with fewer than two
    /// usable nodes. 1.0 means no partition; it falls as the live agents split apart.
    pub fn pair_connectivity(&self, usable: impl Fn(&AgentId) -> bool) -> Option<f64> {
        let parts = self.components(usable);
        let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as f64;
        let live: usize = parts.iter().map(Vec::len).sum();
        (live >= 2).then(|| parts.iter().map(|c| pairs(c.len())).sum::<f64>() / pairs(live))
    }

    /// The largest usable component's share of all nodes (0 for no nodes).
    pub fn connected_fraction(&self, usable: impl Fn(&AgentId) -> bool) -> f64 {
        if self.nodes.is_empty() {
            return 0.0;
        }
        let largest = self.components(usable).first().map_or(0, Vec::len);
        largest as f64 / self.nodes.len() as f64
    }

    /// How many links have both ends usable.
    pub fn edges_among(&self, usable: impl Fn(&AgentId) -> bool) -> usize {
        self.edges.iter().filter(|(a, b)| usable(a) && usable(b)).count()
    }
}

#[cfg(test)]
mod join_plan_tests {
    use super::*;

    /// For star and ring, the plan is exactly what joining a copy does, from the first node on,
    /// with a coordinator joining late and nodes leaving in between.
    #[test]
    fn a_join_plan_equals_the_join() {
        for kind in [TopologyKind::Star, TopologyKind::Ring] {
            let mut g = Graph::new();
            for i in 0..40 {
                let id = AgentId::new(format!("n{i:02}"));
                let coordinator = i == 7;
                let is_node = |x: &AgentId| g.nodes.contains(x);
                let plan = g.join_plan(kind, &id, coordinator, is_node).expect("star and ring plan");
                let change = g.join(kind, id.clone(), coordinator);
                assert_eq!(plan.change, change, "{kind:?} join {i}");
                assert_eq!(plan.root, g.root, "{kind:?} join {i}");
                assert_eq!(plan.neighbours.iter().collect::<Vec<_>>(), g.neighbours(&id), "{kind:?} join {i}");
                if i % 9 == 8 {
                    let gone = g.nodes[i / 3].clone();
                    g.leave(&gone);
                }
            }
        }
        let g = Graph::new();
        assert!(g.join_plan(TopologyKind::Mesh, &AgentId::new("x"), false, |_| false).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids whose sort order differs from their join order.
    fn ids(n: usize) -> Vec<AgentId> {
        (0..n).map(|i| AgentId::new(format!("agent-{:03}", (i * 37) % 1000))).collect()
    }

    fn grown(kind: TopologyKind, n: usize) -> Graph {
        let mut g = Graph::new();
        for id in ids(n) {
            g.join(kind, id, false);
        }
        g
    }

    fn all(_: &AgentId) -> bool {
        true
    }

    fn is_connected(g: &Graph) -> bool {
        g.components(all).len() <= 1
    }

    /// Whether removing some single link disconnects the graph.
    fn has_bridge(g: &Graph) -> bool {
        let adj = g.adjacency();
        if adj.lists.is_empty() {
            return false;
        }
        let reaches_all_without = |cut: (usize, usize)| {
            let mut seen = vec![false; adj.lists.len()];
            let mut stack = vec![0];
            seen[0] = true;
            while let Some(u) = stack.pop() {
                for &v in &adj.lists[u] {
                    let is_cut = (u, v) == cut || (v, u) == cut;
                    if !is_cut && !std::mem::replace(&mut seen[v], true) {
                        stack.push(v);
                    }
                }
            }
            seen.iter().all(|&s| s)
        };
        let mut links = (0..adj.lists.len()).flat_map(|i| adj.lists[i].iter().map(move |&j| (i, j)));
        links.any(|cut| !reaches_all_without(cut))
    }

    fn degrees(g: &Graph) -> Vec<usize> {
        g.nodes.iter().map(|n| g.degree(n)).collect()
    }

    fn edges_well_formed(g: &Graph) -> bool {
        g.edges.windows(2).all(|w| w[0] < w[1]) && g.edges.iter().all(|(a, b)| a < b && g.contains(a) && g.contains(b))
    }

    /// The most hops from `id` to any node (`usize::MAX` if one is unreachable).
    fn eccentricity(g: &Graph, id: &AgentId) -> usize {
        let start = g.position(id).unwrap();
        hop_counts(&g.adjacency(), start).into_iter().max().unwrap_or(0)
    }

    fn diameter(g: &Graph) -> usize {
        g.nodes.iter().map(|n| eccentricity(g, n)).max().unwrap_or(0)
    }

    #[test]
    fn kind_parses_and_displays_lowercase_names() {
        for kind in TopologyKind::ALL {
            assert_eq!(kind.to_string().parse::<TopologyKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert_eq!(" Ring ".parse::<TopologyKind>(), Ok(TopologyKind::Ring));
        assert!("torus".parse::<TopologyKind>().is_err());
    }

    #[test]
    fn small_mesh_links_everyone_to_everyone() {
        for n in 1..=SMALL_MESH {
            let g = grown(TopologyKind::Mesh, n);
            assert_eq!(g.edges.len(), n * (n - 1) / 2);
            assert!(degrees(&g).iter().all(|&d| d == n - 1), "n = {n}");
        }
    }

    #[test]
    fn grown_mesh_keeps_degree_3_to_5_connected_and_bridgeless() {
        let mut g = Graph::new();
        for (k, id) in ids(120).into_iter().enumerate() {
            g.join(TopologyKind::Mesh, id, false);
            let n = k + 1;
            assert!(edges_well_formed(&g), "n = {n}");
            assert!(is_connected(&g), "n = {n}");
            if n > SMALL_MESH {
                assert!(degrees(&g).iter().all(|d| (3..=5).contains(d)), "n = {n}");
                assert_eq!(g.edges.len(), 2 * n, "average degree 4 at n = {n}");
            }
            if n >= 3 {
                assert!(!has_bridge(&g), "bridge at n = {n}");
            }
        }
    }

    #[test]
    fn grown_mesh_stays_shallow() {
        // Long shortcuts keep the diameter logarithmic-ish (6 at 120 nodes).
        for (n, most) in [(10, 2), (30, 4), (120, 6)] {
            let d = diameter(&grown(TopologyKind::Mesh, n));
            assert!(d <= most, "n = {n}: diameter {d}");
        }
    }

    #[test]
    fn rebuilt_mesh_stays_shallow() {
        for (n, most) in [(10, 3), (30, 5), (120, 11)] {
            let d = diameter(&Graph::rebuild(TopologyKind::Mesh, &ids(n), None));
            assert!(d <= most, "n = {n}: diameter {d}");
        }
    }

    #[test]
    fn mesh_join_after_rebuild_keeps_degree_bounds() {
        let all_ids = ids(60);
        let mut g = Graph::rebuild(TopologyKind::Mesh, &all_ids[..10], None);
        for id in &all_ids[10..] {
            g.join(TopologyKind::Mesh, id.clone(), false);
            assert!(degrees(&g).iter().all(|d| (3..=5).contains(d)));
            assert!(!has_bridge(&g) && is_connected(&g));
        }
    }

    #[test]
    fn hierarchy_is_a_breadth_filled_tree_with_at_most_4_children() {
        for n in 1..=100 {
            let g = grown(TopologyKind::Hierarchical, n);
            let root = g.root().unwrap().clone();
            assert_eq!(root, g.nodes[0]);
            assert_eq!(g.edges.len(), n - 1, "n = {n}");
            assert!(is_connected(&g));
            assert!(degrees(&g).iter().all(|&d| d <= BRANCHING + 1));
            assert!(g.degree(&root) <= BRANCHING);
            // A full 4-ary tree of depth d holds (4^(d+1) - 1) / 3 nodes.
            let minimal = (0..).find(|d| (4usize.pow(d + 1) - 1) / 3 >= n).unwrap() as usize;
            assert_eq!(eccentricity(&g, &root), minimal, "n = {n}");
        }
    }

    #[test]
    fn first_coordinator_roots_the_hierarchy_and_later_ones_do_not() {
        let v = ids(4);
        let mut g = Graph::new();
        g.join(TopologyKind::Hierarchical, v[0].clone(), true);
        g.join(TopologyKind::Hierarchical, v[1].clone(), true);
        assert_eq!(g.root(), Some(&v[0]));
        let mut g = Graph::new();
        g.join(TopologyKind::Hierarchical, v[0].clone(), false);
        g.join(TopologyKind::Hierarchical, v[1].clone(), true);
        assert_eq!(g.root(), Some(&v[0]));
    }

    #[test]
    fn coordinator_joining_after_root_left_becomes_root() {
        let v = ids(3);
        let mut g = Graph::new();
        g.join(TopologyKind::Star, v[0].clone(), false);
        g.join(TopologyKind::Star, v[1].clone(), false);
        g.leave(&v[0]);
        assert_eq!(g.root(), None);
        let change = g.join(TopologyKind::Star, v[2].clone(), true);
        assert_eq!(g.root(), Some(&v[2]));
        assert_eq!(change.added, vec![normalise(&v[1], &v[2]).unwrap()]);
    }

    #[test]
    fn ring_is_a_cycle_in_join_order() {
        for n in 1..=40 {
            let g = grown(TopologyKind::Ring, n);
            let expected = match n {
                1 => 0,
                2 => 1,
                _ => n,
            };
            assert_eq!(g.edges.len(), expected, "n = {n}");
            if n >= 3 {
                assert!(degrees(&g).iter().all(|&d| d == 2));
                assert!(g.nodes.windows(2).all(|w| g.has_edge(&w[0], &w[1])));
                assert!(g.has_edge(&g.nodes[0], &g.nodes[n - 1]));
            }
            assert!(is_connected(&g));
            assert_eq!(g, Graph::rebuild(TopologyKind::Ring, &ids(n), None));
        }
    }

    #[test]
    fn star_links_everyone_to_the_hub() {
        for n in 1..=30 {
            let g = grown(TopologyKind::Star, n);
            let hub = g.root().unwrap();
            assert_eq!(g.degree(hub), n - 1);
            assert_eq!(g.edges.len(), n - 1);
            assert!(g.nodes.iter().filter(|x| *x != hub).all(|x| g.degree(x) == 1));
        }
    }

    #[test]
    fn mesh_routing_detours_around_a_failed_node() {
        let g = grown(TopologyKind::Mesh, 30);
        let (from, to) = (&g.nodes[3], &g.nodes[27]);
        let direct = g.shortest_path(from, to, all).unwrap();
        assert!(direct.len() >= 3, "want an intermediate hop: {direct:?}");
        let failed = direct[1].clone();
        let detour = g.shortest_path(from, to, |n| *n != failed).unwrap();
        assert_eq!((detour.first(), detour.last()), (Some(from), Some(to)));
        assert!(!detour.contains(&failed));
        assert!(detour.windows(2).all(|w| g.has_edge(&w[0], &w[1])));
        assert!(detour.len() >= direct.len());
    }

    #[test]
    fn routing_to_self_is_the_node_alone_and_needs_it_usable() {
        let g = grown(TopologyKind::Ring, 5);
        let a = &g.nodes[2];
        assert_eq!(g.shortest_path(a, a, all), Some(vec![a.clone()]));
        assert_eq!(g.shortest_path(a, a, |n| n != a), None);
        assert_eq!(g.shortest_path(a, &AgentId::new("stranger"), all), None);
    }

    #[test]
    fn star_with_failed_hub_has_no_route() {
        let g = grown(TopologyKind::Star, 8);
        let hub = g.root().unwrap().clone();
        assert_eq!(g.shortest_path(&g.nodes[1], &g.nodes[5], |n| *n != hub), None);
        assert_eq!(g.components(|n| *n != hub).len(), 7);
        assert_eq!(g.edges_among(|n| *n != hub), 0);
    }

    #[test]
    fn ring_split_by_two_failures_has_no_route_across() {
        let g = grown(TopologyKind::Ring, 10);
        let (x, y) = (g.nodes[2].clone(), g.nodes[7].clone());
        let up = |n: &AgentId| *n != x && *n != y;
        assert_eq!(g.shortest_path(&g.nodes[0], &g.nodes[5], up), None);
        assert!(g.shortest_path(&g.nodes[3], &g.nodes[6], up).is_some());
        let sizes: Vec<usize> = g.components(up).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 4]);
        assert!((g.connected_fraction(up) - 0.4).abs() < 1e-9);
        assert_eq!(g.edges_among(up), 6);
    }

    #[test]
    fn shortest_path_prefers_earliest_neighbours_on_ties() {
        let g = Graph::rebuild(TopologyKind::Ring, &ids(4), None);
        // 0 -> 2 has two 2-hop routes, via 1 and via 3: join order picks 1.
        let path = g.shortest_path(&g.nodes[0], &g.nodes[2], all).unwrap();
        assert_eq!(path, vec![g.nodes[0].clone(), g.nodes[1].clone(), g.nodes[2].clone()]);
    }

    #[test]
    fn rebuild_restores_a_degree_4_mesh_over_survivors() {
        let mut g = grown(TopologyKind::Mesh, 20);
        let failed: Vec<AgentId> = [1, 4, 5, 9, 13, 17].iter().map(|&i| g.nodes[i].clone()).collect();
        for id in &failed {
            g.leave(id);
        }
        let fresh = Graph::rebuild(TopologyKind::Mesh, &g.nodes, None);
        assert_eq!(fresh.nodes, g.nodes);
        assert!(is_connected(&fresh) && !has_bridge(&fresh));
        assert!(degrees(&fresh).iter().all(|&d| d == 4));
        let change = g.diff(&fresh);
        let mut patched = g.clone();
        patched.edges.retain(|e| !change.removed.contains(e));
        patched.edges.extend(change.added.iter().cloned());
        patched.edges.sort();
        assert_eq!(patched.edges, fresh.edges);
    }

    #[test]
    fn rebuilt_mesh_is_full_when_small_else_degree_4_and_bridgeless() {
        for n in 1..=60 {
            let g = Graph::rebuild(TopologyKind::Mesh, &ids(n), None);
            let want = if n <= SMALL_MESH { n - 1 } else { 4 };
            assert!(degrees(&g).iter().all(|&d| d == want), "n = {n}");
            assert!(is_connected(&g) && edges_well_formed(&g), "n = {n}");
            assert!(n < 3 || !has_bridge(&g), "n = {n}");
        }
    }

    #[test]
    fn rebuild_of_each_kind_is_connected_and_anchored_at_the_coordinator() {
        let v = ids(25);
        for kind in TopologyKind::ALL {
            let g = Graph::rebuild(kind, &v, Some(&v[7]));
            assert!(is_connected(&g) && edges_well_formed(&g), "{kind}");
            assert_eq!(g.root(), Some(&v[7]));
        }
        let tree = Graph::rebuild(TopologyKind::Hierarchical, &v, Some(&v[7]));
        assert_eq!(tree.edges.len(), 24);
        assert_eq!(tree.degree(&v[7]), BRANCHING);
        let star = Graph::rebuild(TopologyKind::Star, &v, Some(&AgentId::new("gone")));
        assert_eq!(star.root(), Some(&v[0]));
        assert_eq!(star.degree(&v[0]), 24);
    }

    #[test]
    fn diff_reports_exactly_added_and_removed_links() {
        let v = ids(4);
        let old = Graph::rebuild(TopologyKind::Ring, &v, None);
        let new = Graph::rebuild(TopologyKind::Star, &v, None);
        let change = old.diff(&new);
        let e = |i: usize, j: usize| normalise(&v[i], &v[j]).unwrap();
        let mut added = vec![e(0, 2)];
        let mut removed = vec![e(1, 2), e(2, 3)];
        added.sort();
        removed.sort();
        assert_eq!(change, LinkChange { added, removed });
        assert!(old.diff(&old).is_empty());
    }

    #[test]
    fn join_reports_its_link_change() {
        let mut g = grown(TopologyKind::Ring, 4);
        let before = g.clone();
        let change = g.join(TopologyKind::Ring, AgentId::new("late"), false);
        assert_eq!(change, before.diff(&g));
        assert_eq!(change.removed.len(), 1);
        assert_eq!(change.added.len(), 2);
        assert!(g.join(TopologyKind::Ring, AgentId::new("late"), false).is_empty());
    }

    #[test]
    fn leave_drops_the_node_and_only_its_links() {
        let mut g = grown(TopologyKind::Mesh, 12);
        let gone = g.nodes[4].clone();
        let before = g.clone();
        let change = g.leave(&gone);
        assert!(!g.contains(&gone) && change.added.is_empty());
        assert_eq!(change.removed.len(), before.degree(&gone));
        assert_eq!(change, before.diff(&g));
        assert!(g.leave(&gone).is_empty());
    }

    #[test]
    fn join_is_deterministic() {
        for kind in TopologyKind::ALL {
            assert_eq!(grown(kind, 50), grown(kind, 50), "{kind}");
        }
    }

    #[test]
    fn graph_survives_a_serde_round_trip() {
        for kind in TopologyKind::ALL {
            let g = grown(kind, 17);
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(serde_json::from_str::<Graph>(&json).unwrap(), g);
        }
        let bare: Graph = serde_json::from_str(r#"{"nodes":[],"edges":[]}"#).unwrap();
        assert_eq!(bare, Graph::new());
    }

    #[test]
    fn connected_fraction_of_an_empty_graph_is_zero() {
        assert_eq!(Graph::new().connected_fraction(all), 0.0);
        assert_eq!(grown(TopologyKind::Mesh, 9).connected_fraction(all), 1.0);
    }
}
