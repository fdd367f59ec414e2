//! Attention consensus over peers' outputs: the pure math behind `attention_consensus`. No I/O,
//! no clock: the engine op (`mesh::attend`) embeds, reads the swarm graph and times the call.
//!
//! ## The quantities
//! - **Input.** Each output's embedding, L2-normalised, then scaled by `sqrt(d)` ([`scale_rows`])
//!   so its components have unit variance: the regime the `1/sqrt(d_h)` of scaled dot-product
//!   attention is designed for. At unit norm every logit would lie within ±0.02 of the others
//!   and every weight would be about `1/n` whatever the texts said.
//! - **Weight.** Attention runs with identity projections and **self-attention masked** (an agent
//!   attending to its own output says nothing about agreement, and at this scale it would take
//!   almost all of every row). A peer's weight is the attention it receives from the others,
//!   averaged over heads and over queries (the core's `received`): the weights sum to 1 when
//!   every peer can attend to someone.
//! - **Consensus**: the output with the highest weight (ties: the earlier output).
//! - **Ranking**: peers by weight, highest first (ties: the earlier output).
//! - **attendsTo**: for each peer, the other peer it gives most attention to (head-averaged):
//!   where camps form, peers attend within their camp.
//! - **Strength**: [`strength::strength`].
//! - **Outliers** (byzantine): [`outliers::byzantine`], on the weights as support.
//! - **Topology**: [`graph::hop_bias`] adds `−hops` to the logits and masks unreachable pairs;
//!   degree and betweenness ([`graph::betweenness`]) are reported, not mixed into the logits.
//! - **Gossip**: [`gossip::gossip`] runs rounds over neighbours; the weights are then one pass
//!   over the gossiped vectors, each agent attending to its neighbours only.

pub mod gossip;
pub mod graph;
pub mod outliers;
pub mod strength;

use super::{Attention, AttentionRequest, Path};
use crate::error::Result;

/// Scale unit-normalised rows by `sqrt(d)` into one `n x d` buffer. `Err(i)` names the first row
/// that is zero or not finite (a text with nothing to embed), which attention cannot place.
pub fn scale_rows(rows: &[Vec<f32>], dim: usize) -> std::result::Result<Vec<f32>, usize> {
    let mut x = Vec::with_capacity(rows.len() * dim);
    let target = (dim as f64).sqrt();
    for (i, row) in rows.iter().enumerate() {
        let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        if row.len() != dim || !norm.is_finite() || norm == 0.0 {
            return Err(i);
        }
        let k = (target / norm) as f32;
        x.extend(row.iter().map(|v| v * k));
    }
    Ok(x)
}

/// The weights of one self-masked pass.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Per peer: attention received from the others, averaged over heads and queries.
    pub weights: Vec<f64>,
    /// Per peer: the other peer it attends to most and that weight; `None` when it may attend
    /// to nobody (isolated in topology and gossip modes).
    pub attends_to: Vec<Option<(usize, f64)>>,
    pub path: Path,
}

/// One attention pass over `x` (`n x d`) with self-attention masked, plus `bias` and `allowed`
/// (`n x n`) when given.
pub fn score(att: &Attention, x: &[f32], n: usize, bias: Option<&[f32]>, allowed: Option<&[bool]>) -> Result<Scored> {
    let mask: Vec<bool> = (0..n * n).map(|k| k / n != k % n && allowed.is_none_or(|a| a[k])).collect();
    let mut req = AttentionRequest::new(x, n).with_mask(&mask).with_full_weights();
    if let Some(b) = bias {
        req = req.with_bias(b);
    }
    let out = att.forward(&req)?;
    let full = out.weights.unwrap_or_default();
    let attends_to = (0..n)
        .map(|i| {
            let row = &full[i * n..(i + 1) * n];
            (0..n)
                .filter(|&j| mask[i * n + j])
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .map(|j| (j, row[j] as f64))
        })
        .collect();
    Ok(Scored { weights: out.received.iter().map(|w| *w as f64).collect(), attends_to, path: out.path })
}

/// Indices by weight, highest first; ties keep input order.
pub fn ranking(weights: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{AttentionConfig, Embedder, HashedNgramEmbedder};

    fn embed(texts: &[&str]) -> Vec<f32> {
        let rows = HashedNgramEmbedder::new().embed(texts).unwrap();
        scale_rows(&rows, 384).unwrap()
    }

    #[test]
    fn scale_rows_gives_norm_sqrt_d_and_names_a_zero_row() {
        let x = scale_rows(&[vec![3.0, 4.0], vec![0.0, 2.0]], 2).unwrap();
        assert!((x[0] * x[0] + x[1] * x[1] - 2.0).abs() < 1e-6);
        assert_eq!(scale_rows(&[vec![1.0, 0.0], vec![0.0, 0.0]], 2), Err(1));
        assert_eq!(scale_rows(&[vec![f32::NAN, 0.0]], 2), Err(0));
    }

    #[test]
    fn identical_outputs_share_the_weight_evenly_and_each_attends_elsewhere() {
        let att = Attention::new(AttentionConfig::default()).unwrap();
        let x = embed(&["use fastify for the api"; 4]);
        let s = score(&att, &x, 4, None, None).unwrap();
        assert!(s.weights.iter().all(|w| (w - 0.25).abs() < 1e-6), "{:?}", s.weights);
        assert!(s.attends_to.iter().enumerate().all(|(i, a)| a.is_some_and(|(j, _)| j != i)));
    }

    #[test]
    fn an_unrelated_output_gets_the_least_weight_and_camps_attend_within() {
        let att = Attention::new(AttentionConfig::default()).unwrap();
        let x = embed(&[
            "we should build the api gateway with express and its middleware",
            "express middleware makes the api gateway easy to build",
            "fastify schema validation makes the api faster than express",
            "fastify is faster and its schema validation is built in",
            "my grandmother bakes sourdough bread every sunday morning",
        ]);
        let s = score(&att, &x, 5, None, None).unwrap();
        assert_eq!(ranking(&s.weights)[4], 4, "{:?}", s.weights);
        assert!((s.weights.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert_eq!(s.attends_to[0].unwrap().0, 1);
        assert_eq!(s.attends_to[3].unwrap().0, 2);
    }

    #[test]
    fn ranking_sorts_by_weight_then_input_order() {
        assert_eq!(ranking(&[0.2, 0.5, 0.2, 0.1]), vec![1, 0, 2, 3]);
    }
}
