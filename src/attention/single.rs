//! One query against N keys and values, multi-head, no projections: a fused single-query kernel.
//!
//! This is the computation of `@ruvector/attention`'s `multiHeadAttention(query, keys, values,
//! {dim, numHeads})` (one query per call, no Q/K/V/O weights), which the attention benchmark
//! compares against like for like. Per head `h` over slice `h` of width `d_h = d / H`:
//! `softmax(q_h · k_{j,h} / sqrt(d_h))` over the N keys, times the values' slices; the heads'
//! outputs are concatenated. One pass over the keys computes every head's logits (the keys are
//! read once, row by row), and dot products run on eight independent accumulators so the
//! compiler can vectorise them (a single f32 accumulator forbids reordering the sum).

use crate::error::{MeshError, Result};

/// Attend from `query` (`d`) to `keys` and `values` (`n x d`, row-major) over `heads` heads,
/// writing the `d` outputs into `out`. The mean over heads of each key's weight goes into
/// `weights` (`n`) when given.
pub fn attend_one(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    heads: usize,
    out: &mut [f32],
    mut weights: Option<&mut [f32]>,
) -> Result<()> {
    let d = query.len();
    if heads == 0 || d == 0 || !d.is_multiple_of(heads) {
        return Err(MeshError::invalid("heads", format!("{heads} heads do not divide dimension {d} evenly")));
    }
    if keys.len() != values.len() || !keys.len().is_multiple_of(d) || keys.is_empty() {
        return Err(MeshError::invalid(
            "keys",
            format!("keys ({}) and values ({}) must both hold n ≥ 1 rows of {d}", keys.len(), values.len()),
        ));
    }
    let n = keys.len() / d;
    if out.len() != d || weights.as_ref().is_some_and(|w| w.len() != n) {
        return Err(MeshError::invalid("out", format!("expected {d} outputs and {n} weights")));
    }
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    // logits[h * n + j]
    let mut logits = vec![0f32; heads * n];
    for j in 0..n {
        let kj = &keys[j * d..(j + 1) * d];
        for h in 0..heads {
            logits[h * n + j] = dot(&query[h * dh..(h + 1) * dh], &kj[h * dh..(h + 1) * dh]) * scale;
        }
    }
    logits.chunks_exact_mut(n).for_each(super::softmax);
    out.fill(0.0);
    let inv_heads = 1.0 / heads as f32;
    for j in 0..n {
        let vj = &values[j * d..(j + 1) * d];
        for h in 0..heads {
            let w = logits[h * n + j];
            out[h * dh..(h + 1) * dh].iter_mut().zip(&vj[h * dh..(h + 1) * dh]).for_each(|(o, v)| *o += w * v);
            if let Some(ws) = weights.as_deref_mut() {
                ws[j] += w * inv_heads;
            }
        }
    }
    Ok(())
}

/// Dot product on eight accumulators.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::super::projection::{ProjectionKind, Projections};
    use super::super::reference::{self, rel_err};
    use super::*;

    #[test]
    fn one_query_matches_the_f64_reference_row_at_4_12_100_and_300() {
        let (d, h) = (384, 8);
        let proj = Projections::new(ProjectionKind::Identity, d).unwrap();
        // (1000 is covered by the candle test's reference run; the f64 reference is slow unoptimised.)
        for n in [4, 12, 100, 300] {
            let x = reference::random(n * d, n as u64 + 7);
            let r = reference::attention(&x, n, &proj, h, None, None);
            for i in [0, n / 2, n - 1] {
                let mut out = vec![0f32; d];
                let mut w = vec![0f32; n];
                attend_one(&x[i * d..(i + 1) * d], &x, &x, h, &mut out, Some(&mut w)).unwrap();
                let e = rel_err(&out, &r.output[i * d..(i + 1) * d]);
                assert!(e < 1e-5, "N={n} row {i}: relative error {e:e}");
                let ew = rel_err(&w, &r.weights[i * n..(i + 1) * n]);
                assert!(ew < 1e-5, "N={n} row {i}: weights relative error {ew:e}");
            }
        }
    }

    #[test]
    fn odd_widths_and_bad_shapes() {
        // d_h = 5: the dot product's remainder path.
        let x = reference::random(3 * 10, 1);
        let mut out = vec![0f32; 10];
        attend_one(&x[..10], &x, &x, 2, &mut out, None).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
        assert!(attend_one(&x[..10], &x, &x, 3, &mut out, None).is_err());
        assert!(attend_one(&x[..10], &x[..20], &x, 2, &mut out, None).is_err());
        assert!(attend_one(&x[..10], &[], &[], 2, &mut out, None).is_err());
        assert!(attend_one(&x[..10], &x, &x, 2, &mut out[..9], None).is_err());
    }
}
