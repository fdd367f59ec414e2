//! Pure core of pattern search and `neural_patterns action=predict`: ranking stored patterns by
//! cosine similarity, and estimating a new task's reward and success from its nearest neighbours.
//!
//! ## The estimate
//! Neighbours are the top k stored patterns by cosine similarity `s_i`, keeping only those with
//! `s_i >= PATTERN_NEIGHBOUR_MIN_SIMILARITY`. With weights `w_i = s_i`:
//! - `reward = Σ w_i r_i / Σ w_i`, `successProbability = Σ w_i [success_i] / Σ w_i`;
//! - `confidence = similarity × agreement × support`, each in [0, 1]: `similarity` is the mean
//!   `s_i`; `agreement = 1 − 2σ`, with `σ` the weighted standard deviation of the neighbours'
//!   rewards (rewards lie in [0, 1], so `σ ≤ 0.5`); `support = n / (n + 1)` for `n` neighbours,
//!   so one neighbour alone gives at most 0.5.
//!
//! No neighbour, no estimate: the caller says nothing can be predicted rather than give a number.

use super::api::Estimate;

/// A candidate's similarity with what it is compared against, and its index among the candidates.
pub type Scored = (usize, f64);

/// The `k` best by similarity, best first; ties keep candidate order (stored order).
pub fn top_k(mut scored: Vec<Scored>, k: usize) -> Vec<Scored> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// What predict needs of one neighbour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub similarity: f64,
    pub reward: f64,
    pub success: bool,
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The estimate from neighbours with positive similarity; `None` when there are none.
pub fn estimate(neighbours: &[Neighbour]) -> Option<Estimate> {
    let total: f64 = neighbours.iter().map(|n| n.similarity.max(0.0)).sum();
    if neighbours.is_empty() || total <= 0.0 {
        return None;
    }
    let w = |n: &Neighbour| n.similarity.max(0.0) / total;
    let reward: f64 = neighbours.iter().map(|n| w(n) * n.reward).sum();
    let success: f64 = neighbours.iter().map(|n| w(n) * n.success as u8 as f64).sum();
    let variance: f64 = neighbours.iter().map(|n| w(n) * (n.reward - reward).powi(2)).sum();
    let agreement = (1.0 - 2.0 * variance.sqrt()).clamp(0.0, 1.0);
    let similarity = (neighbours.iter().map(|n| n.similarity).sum::<f64>() / neighbours.len() as f64).clamp(0.0, 1.0);
    let support = neighbours.len() as f64 / (neighbours.len() as f64 + 1.0);
    Some(Estimate {
        reward: round(reward),
        success_probability: round(success),
        confidence: round(similarity * agreement * support),
        similarity: round(similarity),
        agreement: round(agreement),
        support: round(support),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(similarity: f64, reward: f64, success: bool) -> Neighbour {
        Neighbour { similarity, reward, success }
    }

    #[test]
    fn top_k_ranks_by_similarity_and_breaks_ties_by_stored_order() {
        let ranked = top_k(vec![(0, 0.2), (1, 0.9), (2, 0.5), (3, 0.9)], 3);
        assert_eq!(ranked, vec![(1, 0.9), (3, 0.9), (2, 0.5)]);
        assert!(top_k(vec![], 3).is_empty());
    }

    #[test]
    fn estimate_weights_neighbours_by_similarity() {
        let e = estimate(&[n(0.9, 1.0, true), n(0.3, 0.0, false)]).unwrap();
        assert_eq!(e.reward, 0.75);
        assert_eq!(e.success_probability, 0.75);
        // σ = sqrt(0.75 * 0.25^2 + 0.25 * 0.75^2) = 0.433; agreement = 1 - 0.866.
        assert_eq!(e.agreement, 0.134);
        assert_eq!(e.similarity, 0.6);
        assert_eq!(e.support, 0.6667);
        assert_eq!(e.confidence, round(0.6 * (1.0 - 2.0 * 0.1875f64.sqrt()) * (2.0 / 3.0)));
    }

    #[test]
    fn agreeing_close_neighbours_give_more_confidence_than_one_or_split_ones() {
        let agree = estimate(&[n(0.8, 0.9, true), n(0.8, 0.9, true), n(0.8, 0.9, true)]).unwrap();
        assert_eq!(agree.agreement, 1.0);
        assert_eq!(agree.confidence, 0.6); // 0.8 * 1 * 3/4
        let one = estimate(&[n(0.8, 0.9, true)]).unwrap();
        assert!(one.confidence < agree.confidence);
        let split = estimate(&[n(0.8, 1.0, true), n(0.8, 0.0, false), n(0.8, 1.0, true)]).unwrap();
        assert!(split.confidence < agree.confidence);
    }

    #[test]
    fn no_neighbour_means_no_estimate() {
        assert_eq!(estimate(&[]), None);
        assert_eq!(estimate(&[n(0.0, 1.0, true)]), None);
    }
}
