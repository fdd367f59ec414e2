//! Graph measures for topology-aware attention, as pure functions over adjacency lists
//! (`adj[u]` = the neighbours of node `u`, undirected, no self loops):
//!
//! - [`hops_from`]: breadth-first hop distances from one node;
//! - [`hop_bias`]: the Graphormer-style spatial encoding of a set of agents: logit bias
//!   `−HOP_BIAS × hops(i, j)`, and a mask that excludes unreachable pairs and self-attention;
//! - [`betweenness`]: Brandes' algorithm (2001), O(V·E) for unweighted graphs, normalised to
//!   [0, 1] by the `(V−1)(V−2)/2` pairs a node can lie between.
//!
//! Graphormer (Ying et al. 2021) learns one scalar per distance; nothing here is trained, so the
//! bias is fixed at one logit per hop. With embeddings scaled to unit-variance components (see
//! the parent module), a logit is `≈ sqrt(d_h) × cosine ≈ 7 × cosine` per head, so one hop weighs
//! as much as a cosine difference of about 0.15: near peers are favoured without drowning
//! what they say.

use std::collections::VecDeque;

/// Logit subtracted per hop of distance.
pub const HOP_BIAS: f32 = 1.0;

/// Hops from `s` to every node; `None` where unreachable.
pub fn hops_from(adj: &[Vec<usize>], s: usize) -> Vec<Option<usize>> {
    let mut dist = vec![None; adj.len()];
    dist[s] = Some(0);
    let mut queue = VecDeque::from([s]);
    while let Some(u) = queue.pop_front() {
        let du = dist[u].unwrap_or(0);
        for &v in &adj[u] {
            if dist[v].is_none() {
                dist[v] = Some(du + 1);
                queue.push_back(v);
            }
        }
    }
    dist
}

/// Bias and mask (`k x k`, row = query) among the agents at graph positions `nodes`: bias
/// `−HOP_BIAS × hops`, allowed where reachable and not the same agent.
pub fn hop_bias(adj: &[Vec<usize>], nodes: &[usize]) -> (Vec<f32>, Vec<bool>) {
    let k = nodes.len();
    let mut bias = vec![0f32; k * k];
    let mut allowed = vec![false; k * k];
    for (i, &s) in nodes.iter().enumerate() {
        let dist = hops_from(adj, s);
        for (j, &t) in nodes.iter().enumerate() {
            if let (true, Some(h)) = (i != j, dist[t]) {
                bias[i * k + j] = -HOP_BIAS * h as f32;
                allowed[i * k + j] = true;
            }
        }
    }
    (bias, allowed)
}

/// Betweenness centrality of every node by Brandes' algorithm: for each node, the share of
/// shortest paths between other pairs that pass through it, summed over pairs, divided by the
/// `(V−1)(V−2)/2` pairs (so a star's hub is 1 and a leaf 0). 0 for every node of a graph with
/// fewer than 3 nodes.
pub fn betweenness(adj: &[Vec<usize>]) -> Vec<f64> {
    let n = adj.len();
    let mut cb = vec![0f64; n];
    let mut sigma = vec![0f64; n];
    let mut dist = vec![-1i64; n];
    let mut delta = vec![0f64; n];
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut stack = Vec::with_capacity(n);
    for s in 0..n {
        sigma.fill(0.0);
        dist.fill(-1);
        delta.fill(0.0);
        preds.iter_mut().for_each(Vec::clear);
        sigma[s] = 1.0;
        dist[s] = 0;
        let mut queue = VecDeque::from([s]);
        while let Some(v) = queue.pop_front() {
            stack.push(v);
            for &w in &adj[v] {
                if dist[w] < 0 {
                    dist[w] = dist[v] + 1;
                    queue.push_back(w);
                }
                if dist[w] == dist[v] + 1 {
                    sigma[w] += sigma[v];
                    preds[w].push(v);
                }
            }
        }
        while let Some(w) = stack.pop() {
            for &v in &preds[w] {
                delta[v] += sigma[v] / sigma[w] * (1.0 + delta[w]);
            }
            if w != s {
                cb[w] += delta[w];
            }
        }
    }
    // Each unordered pair was counted from both ends.
    let pairs = (n.saturating_sub(1) * n.saturating_sub(2)) as f64 / 2.0;
    cb.iter().map(|c| if pairs > 0.0 { c / 2.0 / pairs } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undirected(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        adj
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn brandes_on_a_path_counts_the_pairs_each_inner_node_separates() {
        // 0-1-2-3-4: node 1 lies between 0 and {2,3,4} (3 pairs), node 2 between {0,1} and {3,4} (4).
        let b = betweenness(&undirected(5, &[(0, 1), (1, 2), (2, 3), (3, 4)]));
        assert!(close(&b, &[0.0, 3.0 / 6.0, 4.0 / 6.0, 3.0 / 6.0, 0.0]), "{b:?}");
    }

    #[test]
    fn brandes_on_a_star_gives_the_hub_one_and_leaves_zero() {
        let b = betweenness(&undirected(6, &[(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]));
        assert!(close(&b, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), "{b:?}");
    }

    #[test]
    fn brandes_on_a_cycle_splits_paths_equally() {
        // C5: each node is the middle of 2 shortest paths of length 2 (unique), 2 of 6 pairs.
        let b = betweenness(&undirected(5, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]));
        assert!(close(&b, &[1.0 / 6.0; 5]), "{b:?}");
        // C4: opposite nodes have two shortest paths, each middle node carries half: 0.5 of 3 pairs.
        let b = betweenness(&undirected(4, &[(0, 1), (1, 2), (2, 3), (3, 0)]));
        assert!(close(&b, &[0.5 / 3.0; 4]), "{b:?}");
    }

    #[test]
    fn brandes_handles_tiny_and_disconnected_graphs() {
        assert!(betweenness(&[]).is_empty());
        assert_eq!(betweenness(&undirected(2, &[(0, 1)])), vec![0.0, 0.0]);
        // Two separate paths 0-1-2 and 3-4: only node 1 lies between anything (1 of 6 pairs).
        let b = betweenness(&undirected(5, &[(0, 1), (1, 2), (3, 4)]));
        assert!(close(&b, &[0.0, 1.0 / 6.0, 0.0, 0.0, 0.0]), "{b:?}");
    }

    #[test]
    fn hop_bias_subtracts_one_logit_per_hop_and_masks_self_and_unreachable() {
        let adj = undirected(5, &[(0, 1), (1, 2), (3, 4)]);
        assert_eq!(hops_from(&adj, 0), vec![Some(0), Some(1), Some(2), None, None]);
        let (bias, allowed) = hop_bias(&adj, &[0, 2, 3]);
        assert_eq!(bias, vec![0.0, -2.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(allowed, vec![false, true, false, true, false, false, false, false, false]);
    }
}
