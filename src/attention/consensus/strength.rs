//! Consensus strength: how much of the attention weight backs what the consensus output says.
//!
//! `strength = Σ_j w_j · max(0, cos(e_j, e_c)) / Σ_j w_j`, where `w_j` are the peers' weights,
//! `e_j` their embeddings and `c` the consensus (highest-weight) peer. It is in [0, 1]: 1 when
//! every peer says the same thing, and it falls both when the weight spreads over peers that say
//! something else (a split) and when everyone says something different (a scatter).
//!
//! Why not a function of the weights alone (1 − entropy, say): identical outputs and mutually
//! unrelated outputs both give *equal* weights (each peer attends evenly to look-alikes, and
//! evenly to strangers), so weights alone cannot tell unanimity from chaos; a weights-only
//! measure is either 0 for both or high for both. Weighting each peer's agreement with the
//! consensus by its weight keeps "falls as the weights disperse" (away from the consensus's
//! side) and is not degenerate: equal weights over identical outputs read 1, over unrelated
//! outputs about `1/n`, over two equal camps about one half.
//!
//! The figure is only as good as the embedder's cosine: with the lexical embedder two texts
//! arguing the same position in different words have cosines around 0.2-0.4, so its strengths
//! run lower than a semantic model's.

/// Cosine of two vectors; 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64, *y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb).sqrt()
    }
}

/// Strength of the consensus at row `consensus` of `x` (`n x dim`) under `weights`. 0 when no
/// weight was given at all.
pub fn strength(weights: &[f64], x: &[f32], dim: usize, consensus: usize) -> f64 {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let c = &x[consensus * dim..(consensus + 1) * dim];
    let backed: f64 = weights.iter().enumerate().map(|(j, w)| w * cosine(&x[j * dim..(j + 1) * dim], c).max(0.0)).sum();
    (backed / total).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(dim: usize, axis: usize) -> Vec<f32> {
        let mut v = vec![0f32; dim];
        v[axis] = 1.0;
        v
    }

    #[test]
    fn identical_outputs_under_equal_weights_read_full_strength() {
        let x: Vec<f32> = (0..4).flat_map(|_| unit(8, 3)).collect();
        assert!((strength(&[0.25; 4], &x, 8, 0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn unrelated_outputs_under_equal_weights_read_one_over_n() {
        let x: Vec<f32> = (0..4).flat_map(|i| unit(8, i)).collect();
        assert!((strength(&[0.25; 4], &x, 8, 0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn strength_falls_as_weight_moves_to_the_other_camp() {
        // Camp A = rows 0, 1 (axis 0); camp B = rows 2, 3 (axis 1).
        let x: Vec<f32> = [0, 0, 1, 1].iter().flat_map(|&a| unit(8, a)).collect();
        let lopsided = strength(&[0.4, 0.4, 0.1, 0.1], &x, 8, 0);
        let even = strength(&[0.26, 0.25, 0.25, 0.24], &x, 8, 0);
        assert!((lopsided - 0.8).abs() < 1e-9 && (even - 0.51).abs() < 1e-9, "{lopsided} {even}");
        assert!(lopsided > even);
    }

    #[test]
    fn anti_aligned_peers_count_as_no_support_and_zero_weight_is_zero() {
        let mut x = unit(4, 0);
        x.extend([-1.0, 0.0, 0.0, 0.0]);
        assert_eq!(strength(&[0.5, 0.5], &x, 4, 0), 0.5);
        assert_eq!(strength(&[0.0, 0.0], &x, 4, 0), 0.0);
    }
}
