//! Figures derived from a swarm's graph and liveness, computed once per change instead of on
//! every read: each agent's neighbours, and the connected groups of live agents (partitions,
//! connectivity, healthy links, who is down).
//!
//! The registry ([`super::registry`]) keeps them between operations and drops them when what
//! they depend on changes: the neighbours when the graph does, the groups when the graph, the
//! agents or a liveness key does. A heartbeat changes none of these, so the calls that dominate a
//! busy swarm (votes, sends, receives, status) read them as they are. Both stay exact: they are
//! recomputed in full, on the first read after a change.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::ids::AgentId;
use crate::mesh::topology::Graph;

/// A lazily computed figure, shared by the registry and the views taken from it: the first
/// reader computes it, later readers of the same registry state reuse it.
pub(crate) type Memo<T> = Arc<OnceLock<T>>;

/// Each node's neighbours, in join order.
#[derive(Debug, Default)]
pub(crate) struct Links {
    neighbours: HashMap<AgentId, Vec<AgentId>>,
}

impl Links {
    pub fn of(graph: &Graph) -> Self {
        let pos: HashMap<&AgentId, usize> = graph.nodes.iter().enumerate().map(|(i, id)| (id, i)).collect();
        let mut lists: HashMap<AgentId, Vec<(usize, AgentId)>> = HashMap::with_capacity(graph.nodes.len());
        for (a, b) in &graph.edges {
            if let (Some(&i), Some(&j)) = (pos.get(a), pos.get(b)) {
                lists.entry(a.clone()).or_default().push((j, b.clone()));
                lists.entry(b.clone()).or_default().push((i, a.clone()));
            }
        }
        let neighbours = lists
            .into_iter()
            .map(|(id, mut list)| {
                list.sort_unstable_by_key(|(i, _)| *i);
                (id, list.into_iter().map(|(_, n)| n).collect())
            })
            .collect();
        Self { neighbours }
    }

    pub fn neighbours(&self, id: &AgentId) -> &[AgentId] {
        self.neighbours.get(id).map_or(&[], Vec::as_slice)
    }

    pub fn degree(&self, id: &AgentId) -> usize {
        self.neighbours(id).len()
    }
}

/// The connected groups of live agents over the graph's links.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    /// Group sizes, largest first.
    sizes: Vec<usize>,
    /// Each live node's group, as an index into `sizes`.
    group: HashMap<AgentId, usize>,
    /// Links with both ends live.
    healthy_links: usize,
    /// Agents of the swarm that are not live (failed or offline), in join order.
    pub down: Vec<AgentId>,
    nodes: usize,
}

impl Parts {
    /// Groups of `graph` among the agents `live` accepts; `agents` lists every agent of the swarm.
    pub fn of<'a>(graph: &Graph, agents: impl Iterator<Item = &'a AgentId>, live: impl Fn(&AgentId) -> bool) -> Self {
        let components = graph.components(&live);
        let mut group = HashMap::new();
        for (i, c) in components.iter().enumerate() {
            group.extend(c.iter().map(|id| (id.clone(), i)));
        }
        Self {
            sizes: components.iter().map(Vec::len).collect(),
            group,
            healthy_links: graph.edges_among(&live),
            down: agents.filter(|id| !live(id)).cloned().collect(),
            nodes: graph.nodes.len(),
        }
    }

    /// How many live agents share `id`'s group (0 when it is not live or not in the graph).
    pub fn group_size(&self, id: &AgentId) -> usize {
        self.group.get(id).map_or(0, |&g| self.sizes[g])
    }

    /// Group sizes, largest first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    pub fn partitions(&self) -> usize {
        self.sizes.len()
    }

    pub fn healthy_links(&self) -> usize {
        self.healthy_links
    }

    /// The share of pairs of live agents that can reach each other (none below two live agents).
    pub fn pair_connectivity(&self) -> Option<f64> {
        let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as f64;
        let live: usize = self.sizes.iter().sum();
        (live >= 2).then(|| self.sizes.iter().map(|&n| pairs(n)).sum::<f64>() / pairs(live))
    }

    /// The largest group's share of all nodes (0 for no nodes).
    pub fn connected_fraction(&self) -> f64 {
        if self.nodes == 0 {
            return 0.0;
        }
        self.sizes.first().copied().unwrap_or(0) as f64 / self.nodes as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::topology::TopologyKind;

    fn ring(n: usize) -> (Graph, Vec<AgentId>) {
        let ids: Vec<AgentId> = (0..n).map(|i| AgentId::new(format!("a{i}"))).collect();
        let mut g = Graph::new();
        for id in &ids {
            g.join(TopologyKind::Ring, id.clone(), false);
        }
        (g, ids)
    }

    /// The memoised figures equal the graph's own, computed the slow way, with some agents down.
    #[test]
    fn derived_figures_equal_the_graphs_own() {
        let (g, ids) = ring(9);
        let live = |id: &AgentId| id != &ids[2] && id != &ids[6];
        let parts = Parts::of(&g, ids.iter(), live);
        assert_eq!(parts.partitions(), g.components(live).len());
        assert_eq!(parts.pair_connectivity(), g.pair_connectivity(live));
        assert_eq!(parts.connected_fraction(), g.connected_fraction(live));
        assert_eq!(parts.healthy_links(), g.edges_among(live));
        assert_eq!(parts.down, vec![ids[2].clone(), ids[6].clone()]);
        assert_eq!(parts.group_size(&ids[2]), 0);
        for id in ids.iter().filter(|id| live(id)) {
            let slow = g.components(live).into_iter().find(|c| c.contains(id)).map_or(0, |c| c.len());
            assert_eq!(parts.group_size(id), slow, "{id}");
        }
        let links = Links::of(&g);
        for id in &ids {
            assert_eq!(links.neighbours(id).iter().collect::<Vec<_>>(), g.neighbours(id), "{id}");
            assert_eq!(links.degree(id), g.degree(id));
        }
    }
}
