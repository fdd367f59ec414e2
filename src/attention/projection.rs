//! How the query, key, value and output projections are chosen.
//!
//! The attention here is untrained: nothing learns `W_q`, `W_k`, `W_v`, `W_o`. Two choices:
//!
//! - [`ProjectionKind::Identity`] (default): every projection is the identity, so head `h` sees
//!   the slice `x[:, h*d/H .. (h+1)*d/H]` of each embedding as its query, key and value, and the
//!   output is the heads' results concatenated. Attention logits are then scaled dot products of
//!   embedding slices: similar agents attend to each other, and every head looks at different
//!   features. No randomness, nothing to store.
//! - [`ProjectionKind::Seeded`]: four fixed `d x d` matrices drawn from a [`SplitMix64`] stream
//!   with the given seed, entries uniform in `±sqrt(3/d)` (variance `1/d`, so norms are kept on
//!   average). The same seed gives the same weights on every machine and release, because the
//!   generator is written out here rather than borrowed from a crate whose streams may change.

use crate::error::{MeshError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProjectionKind {
    #[default]
    Identity,
    Seeded(u64),
}

/// Row-major `d x d` weights, applied as `x · W` (a row vector times the matrix).
#[derive(Debug, Clone)]
pub struct Weights {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub o: Vec<f32>,
}

/// The projections of one attention layer; `None` weights mean identity.
#[derive(Debug, Clone)]
pub struct Projections {
    pub dim: usize,
    pub weights: Option<Weights>,
}

impl Projections {
    pub fn new(kind: ProjectionKind, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(MeshError::invalid("dim", "must be at least 1"));
        }
        let weights = match kind {
            ProjectionKind::Identity => None,
            ProjectionKind::Seeded(seed) => {
                let mut rng = SplitMix64::new(seed);
                let bound = (3.0 / dim as f64).sqrt();
                let mut draw = || (0..dim * dim).map(|_| (rng.next_symmetric() * bound) as f32).collect::<Vec<f32>>();
                Some(Weights { q: draw(), k: draw(), v: draw(), o: draw() })
            }
        };
        Ok(Self { dim, weights })
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny, fixed, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn next_symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// `out = x · w` for `x` of `n x d` and `w` of `d x d`, all row-major.
pub(crate) fn project_into(x: &[f32], w: &[f32], n: usize, d: usize, out: &mut [f32]) {
    out.fill(0.0);
    for i in 0..n {
        let row = &x[i * d..(i + 1) * d];
        let dst = &mut out[i * d..(i + 1) * d];
        for (kk, &xv) in row.iter().enumerate() {
            let wrow = &w[kk * d..(kk + 1) * d];
            dst.iter_mut().zip(wrow).for_each(|(o, wv)| *o += xv * wv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_its_reference_stream() {
        // First outputs for seed 1234567 from the published reference implementation.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn seeded_projections_are_reproducible_and_scaled() {
        let a = Projections::new(ProjectionKind::Seeded(7), 64).unwrap();
        let b = Projections::new(ProjectionKind::Seeded(7), 64).unwrap();
        let (wa, wb) = (a.weights.unwrap(), b.weights.unwrap());
        assert_eq!(wa.q, wb.q);
        assert_ne!(wa.q, wa.k);
        let var = wa.q.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / wa.q.len() as f64;
        assert!((var * 64.0 - 1.0).abs() < 0.1, "variance about 1/d, got {var}");
    }

    #[test]
    fn identity_projection_has_no_weights() {
        assert!(Projections::new(ProjectionKind::Identity, 384).unwrap().weights.is_none());
        assert!(Projections::new(ProjectionKind::Identity, 0).is_err());
    }
}
