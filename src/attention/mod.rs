//! Multi-head attention over agent embeddings: the compute core (issue 5) that attention-based
//! consensus, ReasoningBank and semantic memory search will sit on. No MCP tool lives here.
//!
//! ## Layout
//! - [`embed`]: the [`Embedder`] trait and the offline default, [`HashedNgramEmbedder`] (lexical).
//! - [`minilm`]: the real model, all-MiniLM-L6-v2 (semantic): tokenizer, loading, pooling.
//! - `bert`: its encoder on the CPU in plain Rust over the gemm kernels (candle runs it on CUDA).
//! - [`projection`]: how Q, K, V and O are chosen (identity per-head slices, or seeded weights).
//! - [`multihead`]: the candle layer: matmul, scale, bias and mask, softmax, times V, with the
//!   queries processed in chunks so memory is O(chunk x N), not O(N²), per head.
//! - [`fused`]: the same computation as one plain-Rust pass, faster where candle's per-op
//!   overhead dominates (a handful of agents).
//! - [`path`]: which of the two runs, and on how many threads, by size (from measurements).
//! - [`device`]: the CPU by default, CUDA behind the `cuda` feature.
//! - [`compute`]: the embedder and device a process runs with, chosen at start-up.
//! - [`consensus`]: attention consensus over peers' outputs (weights, strength, Byzantine
//!   outliers, hop-distance bias, Brandes centrality, gossip rounds): pure functions.
//! - [`single`]: one query against N keys and values (no projections), fused.
//! - `reference` (tests only): the naive f64 implementation both paths are checked against.
//!
//! ## The computation
//! For `x` of `N x d` and `H` heads of width `d_h = d / H`: `Q = xW_q`, `K = xW_k`, `V = xW_v`;
//! per head, `A = softmax(Q_h K_hᵀ / sqrt(d_h) + bias + mask)` with `mask` = −∞ where a query may
//! not attend; `out = concat_h(A V_h) W_o`. A query whose row is fully masked attends to nothing:
//! its weights are all 0 and its output row is 0 (never NaN). Alongside the output come the
//! weights averaged over heads, and `received`: the weight each agent receives, averaged over
//! heads and over all N queries (the peer score of attention consensus).

mod bert;
pub mod compute;
pub mod consensus;
pub mod device;
pub mod embed;
pub mod fused;
pub mod minilm;
pub mod multihead;
pub mod path;
pub mod projection;
#[cfg(test)]
mod reference;
pub mod single;

pub use compute::{Compute, ComputeOptions};
pub use device::ComputeDevice;
pub use embed::{cosine, Embedder, EmbedderInfo, EmbedderKind, HashedNgramEmbedder};
pub use minilm::MiniLmEmbedder;
pub use multihead::CandleAttention;
pub use path::{choose_path, Path};
pub use projection::{ProjectionKind, Projections};

use crate::error::{MeshError, Result};

/// Default heads over the default dimension (384 / 8 = 48 per head).
pub const DEFAULT_HEADS: usize = 8;
pub const DEFAULT_DIM: usize = embed::HASHED_EMBEDDER_DIM;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionConfig {
    pub dim: usize,
    pub heads: usize,
    pub projection: ProjectionKind,
    pub device: ComputeDevice,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            dim: DEFAULT_DIM,
            heads: DEFAULT_HEADS,
            projection: ProjectionKind::Identity,
            device: ComputeDevice::Cpu,
        }
    }
}

/// One attention call: N agents' vectors and optional per-pair extras.
#[derive(Debug, Clone, Copy)]
pub struct AttentionRequest<'a> {
    /// `N x d`, row-major, one row per agent.
    pub x: &'a [f32],
    pub n: usize,
    /// `N x N` additive logit bias, row = query, column = key (topology: minus hop distance).
    /// Must be finite; exclude pairs with `mask` instead of −∞.
    pub bias: Option<&'a [f32]>,
    /// `N x N`, `true` where query i may attend to key j (gossip: neighbours only).
    pub mask: Option<&'a [bool]>,
    /// Also return the full `N x N` head-averaged weights (O(N²) memory).
    pub full_weights: bool,
}

impl<'a> AttentionRequest<'a> {
    pub fn new(x: &'a [f32], n: usize) -> Self {
        Self { x, n, bias: None, mask: None, full_weights: false }
    }
    pub fn with_bias(self, bias: &'a [f32]) -> Self {
        Self { bias: Some(bias), ..self }
    }
    pub fn with_mask(self, mask: &'a [bool]) -> Self {
        Self { mask: Some(mask), ..self }
    }
    pub fn with_full_weights(self) -> Self {
        Self { full_weights: true, ..self }
    }

    /// Reject what would panic or poison the result: shapes that disagree, non-finite numbers.
    pub fn validate(&self, dim: usize) -> Result<()> {
        let n = self.n;
        if n == 0 {
            return Err(MeshError::invalid("x", "no agents: attention needs at least one row"));
        }
        if self.x.len() != n * dim {
            return Err(MeshError::invalid(
                "x",
                format!("expected {n} rows of {dim} values ({}), got {} values", n * dim, self.x.len()),
            ));
        }
        if let Some(i) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(MeshError::invalid("x", format!("row {} holds a non-finite value ({})", i / dim, self.x[i])));
        }
        if let Some(b) = self.bias {
            if b.len() != n * n {
                return Err(MeshError::invalid("bias", format!("expected {n} x {n} values, got {}", b.len())));
            }
            if let Some(i) = b.iter().position(|v| !v.is_finite()) {
                return Err(MeshError::invalid(
                    "bias",
                    format!(
                        "entry ({}, {}) is {}; the bias must be finite (use the mask to exclude pairs)",
                        i / n,
                        i % n,
                        b[i]
                    ),
                ));
            }
        }
        if let Some(m) = self.mask {
            if m.len() != n * n {
                return Err(MeshError::invalid("mask", format!("expected {n} x {n} values, got {}", m.len())));
            }
        }
        Ok(())
    }
}

/// What attention returns.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    pub n: usize,
    pub dim: usize,
    /// `N x d`, row-major.
    pub output: Vec<f32>,
    /// `N`: weight each agent receives, averaged over heads and over all N queries. Sums to
    /// (queries not fully masked) / N, so to 1 without a mask.
    pub received: Vec<f32>,
    /// `N x N` weights averaged over heads, when asked for; each row sums to 1 (0 if masked out).
    pub weights: Option<Vec<f32>>,
    /// The path that computed it.
    pub path: Path,
}

/// Multi-head attention with the path chosen by size.
#[derive(Debug, Clone)]
pub struct Attention {
    config: AttentionConfig,
    projections: Projections,
    candle: CandleAttention,
}

impl Attention {
    pub fn new(config: AttentionConfig) -> Result<Self> {
        if config.heads == 0 || config.dim == 0 || !config.dim.is_multiple_of(config.heads) {
            return Err(MeshError::invalid(
                "heads",
                format!("{} heads do not divide dimension {} evenly", config.heads, config.dim),
            ));
        }
        let projections = Projections::new(config.projection, config.dim)?;
        let candle = CandleAttention::load(&projections, config.heads, config.device.candle()?)?;
        Ok(Self { config, projections, candle })
    }

    pub fn config(&self) -> &AttentionConfig {
        &self.config
    }

    /// Run on the path [`choose_path`] picks for this size and device.
    pub fn forward(&self, req: &AttentionRequest) -> Result<AttentionOutput> {
        let path = choose_path(req.n, self.config.dim, self.config.heads, self.config.device);
        self.forward_on(path, req)
    }

    /// Run on a given path (benchmarks, tests). `Fused` always runs on the CPU.
    pub fn forward_on(&self, path: Path, req: &AttentionRequest) -> Result<AttentionOutput> {
        req.validate(self.config.dim)?;
        match path {
            Path::Fused => Ok(fused::forward(&self.projections, self.config.heads, req)),
            Path::Candle { chunk, threads } => {
                let mut out = path::with_threads(threads, || self.candle.forward(req, chunk))?;
                out.path = path;
                Ok(out)
            }
        }
    }
}

/// Softmax of one row in place, max-subtracted so large logits cannot overflow (the plain-Rust
/// kernels' shared step; rows here are never fully masked).
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// A candle failure as a `MeshError`.
pub(crate) fn compute(e: candle_core::Error) -> MeshError {
    MeshError::Compute(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_rejects_heads_that_do_not_divide_the_dimension() {
        assert!(Attention::new(AttentionConfig { heads: 7, ..Default::default() }).is_err());
        assert!(Attention::new(AttentionConfig { heads: 0, ..Default::default() }).is_err());
    }

    #[test]
    fn attention_rejects_bad_input_without_panicking() {
        let att = Attention::new(AttentionConfig { dim: 8, heads: 2, ..Default::default() }).unwrap();
        let x = vec![0.5f32; 16];
        let cases: Vec<(AttentionRequest, &str)> = vec![
            (AttentionRequest::new(&[], 0), "x"),
            (AttentionRequest::new(&x[..15], 2), "x"),
            (AttentionRequest::new(&x, 3), "x"),
            (AttentionRequest::new(&x, 2).with_bias(&[0.0; 3]), "bias"),
            (AttentionRequest::new(&x, 2).with_bias(&[0.0, f32::NEG_INFINITY, 0.0, 0.0]), "bias"),
            (AttentionRequest::new(&x, 2).with_mask(&[true; 5]), "mask"),
        ];
        for (req, field) in cases {
            for path in [Path::Fused, Path::Candle { chunk: 1, threads: 1 }] {
                let e = att.forward_on(path, &req).unwrap_err();
                assert!(matches!(e, MeshError::InvalidArgument { field: f, .. } if f == field), "{e}");
            }
        }
        let mut bad = x.clone();
        bad[9] = f32::NAN;
        let e = att.forward(&AttentionRequest::new(&bad, 2)).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("non-finite"), "{e}");
    }

    #[test]
    fn single_agent_attends_only_to_itself() {
        let att = Attention::new(AttentionConfig { dim: 8, heads: 2, ..Default::default() }).unwrap();
        let x: Vec<f32> = (0..8).map(|i| i as f32 / 8.0).collect();
        for path in [Path::Fused, Path::Candle { chunk: 4, threads: 1 }] {
            let out = att.forward_on(path, &AttentionRequest::new(&x, 1).with_full_weights()).unwrap();
            assert_eq!(out.weights.unwrap(), vec![1.0]);
            assert_eq!(out.received, vec![1.0]);
            let err = out.output.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-6, "identity attention over one row returns the row");
        }
    }
}
