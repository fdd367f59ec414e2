//! Gossip rounds of attention propagation.
//!
//! Each round every agent attends only to its topology neighbours and itself, and its vector is
//! replaced by the attention output: with identity projections, per head a convex combination
//! of those vectors, weighted by similarity. Keeping itself in the mix is what lets the rounds
//! settle (without it a bipartite graph swaps its two halves forever). The rounds stop when the
//! **residual** `‖X' − X‖_F / ‖X‖_F` (the relative change of all vectors over one round) falls
//! below the tolerance, or after `max_rounds`. On a connected graph the vectors contract towards
//! one shared vector, as in any averaging gossip.

use crate::attention::{Attention, AttentionRequest};
use crate::error::Result;

/// Stop once a round changes the vectors by less than this (relative Frobenius norm).
pub const GOSSIP_TOLERANCE: f64 = 1e-3;

/// What the rounds left.
#[derive(Debug, Clone)]
pub struct GossipRun {
    /// `n x d`: every agent's vector after the last round.
    pub x: Vec<f32>,
    /// Rounds run (at least 1).
    pub rounds: usize,
    /// The residual of the last round.
    pub residual: f64,
}

/// Run up to `max_rounds` rounds (at least one) over `x` (`n x d`) where `neighbours[i*n+j]`
/// says whether `i` and `j` are linked (the diagonal is ignored: every agent keeps itself).
pub fn gossip(
    att: &Attention,
    x: &[f32],
    n: usize,
    neighbours: &[bool],
    max_rounds: usize,
    tol: f64,
) -> Result<GossipRun> {
    let mask: Vec<bool> = (0..n * n).map(|k| neighbours[k] || k / n == k % n).collect();
    let mut x = x.to_vec();
    let (mut rounds, mut residual) = (0, f64::INFINITY);
    while rounds < max_rounds.max(1) {
        let out = att.forward(&AttentionRequest::new(&x, n).with_mask(&mask))?;
        residual = relative_change(&x, &out.output);
        x = out.output;
        rounds += 1;
        if residual < tol {
            break;
        }
    }
    Ok(GossipRun { x, rounds, residual })
}

/// `‖b − a‖ / ‖a‖` (Frobenius); the absolute change when `a` is zero.
fn relative_change(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((*y - *x) as f64).powi(2)).sum();
    let base: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    if base == 0.0 {
        diff.sqrt()
    } else {
        (diff / base).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::reference::random;
    use crate::attention::AttentionConfig;

    fn ring(n: usize) -> Vec<bool> {
        (0..n * n).map(|k| (k / n + 1) % n == k % n || (k % n + 1) % n == k / n).collect()
    }

    #[test]
    fn gossip_on_a_connected_ring_contracts_until_the_residual_is_below_tolerance() {
        let att = Attention::new(AttentionConfig { dim: 16, heads: 2, ..Default::default() }).unwrap();
        let n = 6;
        let x = random(n * 16, 7);
        let one = gossip(&att, &x, n, &ring(n), 1, GOSSIP_TOLERANCE).unwrap();
        assert_eq!(one.rounds, 1);
        let many = gossip(&att, &x, n, &ring(n), 500, GOSSIP_TOLERANCE).unwrap();
        assert!(many.rounds > 1 && many.rounds < 500, "settles before the cap: {} rounds", many.rounds);
        assert!(many.residual < GOSSIP_TOLERANCE);
        let spread =
            |v: &[f32]| (1..n).map(|i| relative_change(&v[..16], &v[i * 16..(i + 1) * 16])).fold(0.0, f64::max);
        assert!(spread(&many.x) < 0.1 * spread(&x), "agents drew together: {} -> {}", spread(&x), spread(&many.x));
    }

    #[test]
    fn an_isolated_agent_keeps_its_own_vector() {
        let att = Attention::new(AttentionConfig { dim: 8, heads: 2, ..Default::default() }).unwrap();
        let n = 3;
        let x = random(n * 8, 9);
        let mut links = vec![false; 9];
        (links[1], links[3]) = (true, true); // 0-1 linked, 2 alone
        let run = gossip(&att, &x, n, &links, 5, 0.0).unwrap();
        assert_eq!(run.rounds, 5, "a zero tolerance runs every round");
        let drift = relative_change(&x[16..], &run.x[16..]);
        assert!(drift < 1e-6, "agent 2 attends only to itself: drift {drift}");
    }
}
