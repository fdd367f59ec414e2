//! The candle layer: multi-head attention written out as matmul, scale, bias and mask, softmax,
//! times V (on the CPU, candle 0.11's `ops::sdpa` has no kernel).
//!
//! Queries go through in chunks of `chunk` rows: per chunk the logits are `heads x chunk x N`,
//! so memory is O(chunk x N) per head rather than O(N²). Bias and mask are folded into one
//! additive chunk (`bias`, or −∞ where masked) built straight from the caller's slices, so
//! neither is copied whole onto the device. A fully masked query row would make softmax
//! 0/0; such rows get a zero additive row (a harmless uniform softmax) and are then multiplied
//! by 0, so they come out as zero weights and a zero output, as the fused path and the
//! reference define.

use candle_core::{DType, Device, Tensor};

use super::path::Path;
use super::projection::Projections;
use super::{compute, AttentionOutput, AttentionRequest};
use crate::error::Result;

/// Projection weights on the device; `None` is the identity.
#[derive(Debug, Clone)]
struct ProjectionTensors {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
}

#[derive(Debug, Clone)]
pub struct CandleAttention {
    heads: usize,
    dim: usize,
    weights: Option<ProjectionTensors>,
    device: Device,
}

impl CandleAttention {
    /// Put the projections on `device`.
    pub fn load(proj: &Projections, heads: usize, device: Device) -> Result<Self> {
        let d = proj.dim;
        let weights = match &proj.weights {
            None => None,
            Some(w) => {
                let t = |m: &[f32]| Tensor::from_slice(m, (d, d), &device).map_err(compute);
                Some(ProjectionTensors { q: t(&w.q)?, k: t(&w.k)?, v: t(&w.v)?, o: t(&w.o)? })
            }
        };
        Ok(Self { heads, dim: d, weights, device })
    }

    /// Attention over a validated request, `chunk` queries at a time.
    pub fn forward(&self, req: &AttentionRequest, chunk: usize) -> Result<AttentionOutput> {
        self.forward_tensors(req, chunk.max(1)).map_err(compute)
    }

    fn forward_tensors(&self, req: &AttentionRequest, chunk: usize) -> candle_core::Result<AttentionOutput> {
        let (n, d, h) = (req.n, self.dim, self.heads);
        let dh = d / h;
        let x = Tensor::from_slice(req.x, (n, d), &self.device)?;
        let project = |w: Option<&Tensor>| match w {
            Some(w) => x.matmul(w),
            None => Ok(x.clone()),
        };
        let ws = self.weights.as_ref();
        // [N, d] -> [H, N, dh]; the query is pre-scaled once instead of every logit chunk.
        let split = |t: Tensor| t.reshape((n, h, dh))?.transpose(0, 1)?.contiguous();
        let q = split(project(ws.map(|w| &w.q))?.affine(1.0 / (dh as f64).sqrt(), 0.0)?)?;
        let kt = split(project(ws.map(|w| &w.k))?)?.transpose(1, 2)?.contiguous()?; // [H, dh, N]
        let v = split(project(ws.map(|w| &w.v))?)?;

        let mut outs = Vec::with_capacity(n.div_ceil(chunk));
        let mut received = Tensor::zeros(n, DType::F32, &self.device)?;
        let mut weights = req.full_weights.then(|| Vec::with_capacity(n * n));
        for start in (0..n).step_by(chunk) {
            let c = chunk.min(n - start);
            let qc = q.narrow(1, start, c)?.contiguous()?;
            let mut logits = qc.matmul(&kt)?; // [H, c, N]
            let extras = ChunkExtras::build(req, start, c);
            if let Some(add) = &extras.additive {
                let add = Tensor::from_slice(add, (c, n), &self.device)?;
                logits = logits.broadcast_add(&add)?;
            }
            let mut w = candle_nn::ops::softmax_last_dim(&logits)?;
            if let Some(keep) = &extras.keep {
                let keep = Tensor::from_slice(keep, (c, 1), &self.device)?;
                w = w.broadcast_mul(&keep)?;
            }
            let out = w.matmul(&v)?.transpose(0, 1)?.reshape((c, d))?; // concat heads
            outs.push(out);
            let mean = (w.sum(0)? / h as f64)?; // [c, N]
            received = (received + mean.sum(0)?)?;
            if let Some(all) = weights.as_mut() {
                all.extend(mean.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        let mut out = Tensor::cat(&outs, 0)?;
        if let Some(w) = ws {
            out = out.matmul(&w.o)?;
        }
        let received = (received / n as f64)?.to_vec1::<f32>()?;
        let output = out.flatten_all()?.to_vec1::<f32>()?;
        Ok(AttentionOutput { n, dim: d, output, received, weights, path: Path::Candle { chunk, threads: 0 } })
    }
}

/// The additive logit term of one chunk of queries, and which of its rows survive.
struct ChunkExtras {
    /// `c x N`: bias, plus −∞ where masked; `None` when the request has neither.
    additive: Option<Vec<f32>>,
    /// `c`: 1 for a row with some allowed key, 0 for a fully masked one; `None` when all survive.
    keep: Option<Vec<f32>>,
}

impl ChunkExtras {
    fn build(req: &AttentionRequest, start: usize, c: usize) -> Self {
        let n = req.n;
        if req.bias.is_none() && req.mask.is_none() {
            return Self { additive: None, keep: None };
        }
        let mut add = vec![0f32; c * n];
        let mut keep = vec![1f32; c];
        for r in 0..c {
            let i = start + r;
            let row = &mut add[r * n..(r + 1) * n];
            if let Some(b) = req.bias {
                row.copy_from_slice(&b[i * n..(i + 1) * n]);
            }
            if let Some(m) = req.mask {
                let allowed = &m[i * n..(i + 1) * n];
                if allowed.iter().any(|a| *a) {
                    row.iter_mut().zip(allowed).filter(|(_, a)| !**a).for_each(|(v, _)| *v = f32::NEG_INFINITY);
                } else {
                    row.fill(0.0);
                    keep[r] = 0.0;
                }
            }
        }
        let any_dead = keep.contains(&0.0);
        Self { additive: Some(add), keep: any_dead.then_some(keep) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::Path;
    use super::super::reference::{self, assert_matches, random};
    use super::super::{Attention, AttentionConfig, AttentionRequest, ProjectionKind, Projections};

    const D: usize = 384;
    const H: usize = 8;

    fn attention(kind: ProjectionKind) -> Attention {
        Attention::new(AttentionConfig { projection: kind, ..Default::default() }).unwrap()
    }

    fn candle(chunk: usize) -> Path {
        Path::Candle { chunk, threads: 1 }
    }

    #[test]
    fn candle_matches_f64_reference_at_4_12_100_and_1000() {
        for (kind, sizes) in
            [(ProjectionKind::Identity, &[4, 12, 100, 1000][..]), (ProjectionKind::Seeded(42), &[4, 12, 100][..])]
        {
            let att = attention(kind);
            for &n in sizes {
                let x = random(n * D, n as u64);
                let req = AttentionRequest::new(&x, n).with_full_weights();
                let out = att.forward_on(candle(256), &req).unwrap();
                let r = reference::attention(&x, n, &Projections::new(kind, D).unwrap(), H, None, None);
                assert_matches(&out, &r, &format!("candle {kind:?} N={n}"));
            }
        }
    }

    #[test]
    fn candle_chunked_equals_unchunked() {
        let att = attention(ProjectionKind::Seeded(5));
        let n = 100;
        let x = random(n * D, 11);
        let bias = random(n * n, 12);
        let req = AttentionRequest::new(&x, n).with_bias(&bias).with_full_weights();
        let whole = att.forward_on(candle(n), &req).unwrap();
        for chunk in [1, 7, 32, 99] {
            let parts = att.forward_on(candle(chunk), &req).unwrap();
            let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(diff(&parts.output, &whole.output) < 1e-6, "chunk {chunk}");
            assert!(diff(parts.weights.as_ref().unwrap(), whole.weights.as_ref().unwrap()) < 1e-6);
            assert!(diff(&parts.received, &whole.received) < 1e-6);
        }
    }

    #[test]
    fn bias_shifts_weight_toward_the_favoured_key_on_both_paths() {
        let att = attention(ProjectionKind::Identity);
        let n = 6;
        let x = random(n * D, 21);
        let mut bias = vec![0f32; n * n];
        bias[2 * n + 4] = 5.0; // query 2 favours key 4
        for path in [Path::Fused, candle(4)] {
            let plain = att.forward_on(path, &AttentionRequest::new(&x, n).with_full_weights()).unwrap();
            let biased =
                att.forward_on(path, &AttentionRequest::new(&x, n).with_bias(&bias).with_full_weights()).unwrap();
            let (p, b) = (plain.weights.unwrap(), biased.weights.unwrap());
            assert!(b[2 * n + 4] > p[2 * n + 4] + 0.3, "{path:?}: {} -> {}", p[2 * n + 4], b[2 * n + 4]);
            assert!(b[2 * n + 4] > 0.9, "{path:?}: +5 logits dominates");
            assert_eq!(b[n..2 * n], p[n..2 * n], "{path:?}: other queries unchanged");
            assert!(biased.received[4] > plain.received[4]);
        }
    }

    #[test]
    fn masked_key_gets_zero_weight_and_fully_masked_row_is_zero_not_nan() {
        let att = attention(ProjectionKind::Seeded(8));
        let n = 5;
        let x = random(n * D, 31);
        let mut mask = vec![true; n * n];
        (0..n).for_each(|i| mask[i * n + 1] = false); // nobody may attend to agent 1
        (0..n).for_each(|j| mask[3 * n + j] = false); // agent 3 attends to nothing
        let bias = random(n * n, 32);
        let req = AttentionRequest::new(&x, n).with_mask(&mask).with_bias(&bias).with_full_weights();
        let r = reference::attention(
            &x,
            n,
            &Projections::new(ProjectionKind::Seeded(8), D).unwrap(),
            H,
            Some(&bias),
            Some(&mask),
        );
        for path in [Path::Fused, candle(2), candle(5)] {
            let out = att.forward_on(path, &req).unwrap();
            assert!(out.output.iter().chain(&out.received).all(|v| v.is_finite()), "{path:?}: no NaN");
            let w = out.weights.as_ref().unwrap();
            assert!((0..n).all(|i| w[i * n + 1] == 0.0), "{path:?}: masked column");
            assert_eq!(out.received[1], 0.0);
            assert!(w[3 * n..4 * n].iter().all(|v| *v == 0.0), "{path:?}: dead row weights");
            assert!(out.output[3 * D..4 * D].iter().all(|v| *v == 0.0), "{path:?}: dead row output");
            for i in [0, 1, 2, 4] {
                let s: f32 = w[i * n..(i + 1) * n].iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{path:?}: row {i} sums to {s}");
            }
            assert_matches(&out, &r, &format!("{path:?} masked"));
        }
    }

    #[test]
    fn candle_weights_per_query_sum_to_one_and_received_sums_to_one() {
        let att = attention(ProjectionKind::Identity);
        let n = 50;
        let x = random(n * D, 41);
        let out = att.forward_on(candle(16), &AttentionRequest::new(&x, n).with_full_weights()).unwrap();
        let w = out.weights.unwrap();
        assert!((0..n).all(|i| (w[i * n..(i + 1) * n].iter().sum::<f32>() - 1.0).abs() < 1e-5));
        assert!((out.received.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn forward_picks_the_path_by_size_and_both_agree() {
        let att = attention(ProjectionKind::Identity);
        for n in [4, 200] {
            let x = random(n * D, 51);
            let req = AttentionRequest::new(&x, n);
            let auto = att.forward(&req).unwrap();
            assert_eq!(auto.path, super::super::choose_path(n, D, H, att.config().device));
            let other = if auto.path == Path::Fused { candle(64) } else { Path::Fused };
            let alt = att.forward_on(other, &req).unwrap();
            let diff = auto.output.iter().zip(&alt.output).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-5, "N={n}: paths differ by {diff}");
        }
    }
}
