//! The fused path: the whole attention in one plain-Rust f32 pass, for small N.
//!
//! Per query and head: logits against every key, a max-subtracted softmax into one reused
//! scratch row, and the weighted sum of values straight into the output row. Buffers are
//! allocated once per call (projected Q, K, V when the projections are not the identity; the
//! scratch row; the outputs), never per operation, which is what makes it beat candle's
//! per-op dispatch at a handful of agents.

use super::path::Path;
use super::projection::{project_into, Projections};
use super::{AttentionOutput, AttentionRequest};

/// Compute attention for a validated request.
pub fn forward(proj: &Projections, heads: usize, req: &AttentionRequest) -> AttentionOutput {
    let (n, d) = (req.n, proj.dim);
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();

    let projected = proj.weights.as_ref().map(|w| {
        let mut buf = vec![0f32; 3 * n * d];
        let (q, rest) = buf.split_at_mut(n * d);
        let (k, v) = rest.split_at_mut(n * d);
        project_into(req.x, &w.q, n, d, q);
        project_into(req.x, &w.k, n, d, k);
        project_into(req.x, &w.v, n, d, v);
        buf
    });
    let (q, k, v) = match &projected {
        Some(buf) => (&buf[..n * d], &buf[n * d..2 * n * d], &buf[2 * n * d..]),
        None => (req.x, req.x, req.x),
    };

    let mut out = vec![0f32; n * d];
    let mut received = vec![0f32; n];
    let mut weights = req.full_weights.then(|| vec![0f32; n * n]);
    let mut row = vec![0f32; n];
    let inv_heads = 1.0 / heads as f32;
    let inv_hn = inv_heads / n as f32;

    for i in 0..n {
        let allowed = |j: usize| req.mask.is_none_or(|m| m[i * n + j]);
        if !(0..n).any(allowed) {
            continue; // attends to nothing: zero weights, zero output
        }
        for h in 0..heads {
            let qi = &q[i * d + h * dh..i * d + (h + 1) * dh];
            let mut max = f32::NEG_INFINITY;
            for j in 0..n {
                row[j] = if allowed(j) {
                    let kj = &k[j * d + h * dh..j * d + (h + 1) * dh];
                    let dot: f32 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                    dot * scale + req.bias.map_or(0.0, |b| b[i * n + j])
                } else {
                    f32::NEG_INFINITY
                };
                max = max.max(row[j]);
            }
            let mut sum = 0f32;
            for r in row.iter_mut() {
                *r = (*r - max).exp(); // exp(−∞) = 0 for masked keys
                sum += *r;
            }
            let inv = 1.0 / sum; // sum ≥ 1: the max term is exp(0)
            let oi = &mut out[i * d + h * dh..i * d + (h + 1) * dh];
            for j in 0..n {
                let w = row[j] * inv;
                if w == 0.0 {
                    continue;
                }
                let vj = &v[j * d + h * dh..j * d + (h + 1) * dh];
                oi.iter_mut().zip(vj).for_each(|(o, vv)| *o += w * vv);
                received[j] += w * inv_hn;
                if let Some(wm) = weights.as_mut() {
                    wm[i * n + j] += w * inv_heads;
                }
            }
        }
    }

    if let Some(w) = &proj.weights {
        let concat = out;
        out = vec![0f32; n * d];
        project_into(&concat, &w.o, n, d, &mut out);
    }
    AttentionOutput { n, dim: d, output: out, received, weights, path: Path::Fused }
}

#[cfg(test)]
mod tests {
    use super::super::projection::{ProjectionKind, Projections};
    use super::super::reference::{self, assert_matches, random};
    use super::super::AttentionRequest;
    use super::forward;

    const D: usize = 384;
    const H: usize = 8;

    #[test]
    fn fused_matches_f64_reference_at_4_12_and_100() {
        for kind in [ProjectionKind::Identity, ProjectionKind::Seeded(42)] {
            let proj = Projections::new(kind, D).unwrap();
            for n in [4, 12, 100] {
                let x = random(n * D, n as u64);
                let out = forward(&proj, H, &AttentionRequest::new(&x, n).with_full_weights());
                let r = reference::attention(&x, n, &proj, H, None, None);
                assert_matches(&out, &r, &format!("fused {kind:?} N={n}"));
            }
        }
    }

    #[test]
    fn fused_matches_reference_with_bias_and_mask() {
        let proj = Projections::new(ProjectionKind::Identity, D).unwrap();
        let n = 12;
        let x = random(n * D, 3);
        let bias: Vec<f32> = random(n * n, 4).iter().map(|b| b * 3.0).collect();
        let mask: Vec<bool> = (0..n * n).map(|k| (k / n + k % n) % 3 != 0).collect();
        let req = AttentionRequest::new(&x, n).with_bias(&bias).with_mask(&mask).with_full_weights();
        let r = reference::attention(&x, n, &proj, H, Some(&bias), Some(&mask));
        assert_matches(&forward(&proj, H, &req), &r, "fused with bias and mask");
    }

    #[test]
    fn fused_weights_per_query_sum_to_one() {
        let proj = Projections::new(ProjectionKind::Seeded(1), D).unwrap();
        let n = 12;
        let x = random(n * D, 9);
        let out = forward(&proj, H, &AttentionRequest::new(&x, n).with_full_weights());
        let w = out.weights.unwrap();
        for i in 0..n {
            let s: f32 = w[i * n..(i + 1) * n].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "row {i} sums to {s}");
        }
        assert!((out.received.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
