//! The naive f64 reference both paths are checked against: every step written out with full
//! `N x N` matrices per head, no chunks, no fusion. Tests only.

use super::projection::Projections;

pub struct Reference {
    pub output: Vec<f64>,
    /// `N x N`, averaged over heads.
    pub weights: Vec<f64>,
    pub received: Vec<f64>,
}

fn matmul(a: &[f64], b: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0f64; n * d];
    for i in 0..n {
        for c in 0..d {
            out[i * d + c] = (0..d).map(|kk| a[i * d + kk] * b[kk * d + c] as f64).sum();
        }
    }
    out
}

pub fn attention(
    x: &[f32],
    n: usize,
    proj: &Projections,
    heads: usize,
    bias: Option<&[f32]>,
    mask: Option<&[bool]>,
) -> Reference {
    let d = proj.dim;
    let dh = d / heads;
    let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let (q, k, v) = match &proj.weights {
        Some(w) => (matmul(&x64, &w.q, n, d), matmul(&x64, &w.k, n, d), matmul(&x64, &w.v, n, d)),
        None => (x64.clone(), x64.clone(), x64.clone()),
    };
    let mut concat = vec![0f64; n * d];
    let mut weights = vec![0f64; n * n];
    for h in 0..heads {
        let cols = h * dh..(h + 1) * dh;
        // Logits for the whole head.
        let mut logits = vec![f64::NEG_INFINITY; n * n];
        for i in 0..n {
            for j in 0..n {
                if mask.is_some_and(|m| !m[i * n + j]) {
                    continue;
                }
                let dot: f64 = cols.clone().map(|c| q[i * d + c] * k[j * d + c]).sum();
                logits[i * n + j] = dot / (dh as f64).sqrt() + bias.map_or(0.0, |b| b[i * n + j] as f64);
            }
        }
        // Softmax per row; a fully masked row stays all zero.
        for i in 0..n {
            let r = &logits[i * n..(i + 1) * n];
            let max = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                continue;
            }
            let e: Vec<f64> = r.iter().map(|l| (l - max).exp()).collect();
            let s: f64 = e.iter().sum();
            for j in 0..n {
                let a = e[j] / s;
                weights[i * n + j] += a / heads as f64;
                for c in cols.clone() {
                    concat[i * d + c] += a * v[j * d + c];
                }
            }
        }
    }
    let output = match &proj.weights {
        Some(w) => matmul(&concat, &w.o, n, d),
        None => concat,
    };
    let received = (0..n).map(|j| (0..n).map(|i| weights[i * n + j]).sum::<f64>() / n as f64).collect();
    Reference { output, weights, received }
}

/// Normwise relative error `max|a − b| / max|b|`: elementwise relative error is meaningless for
/// entries near zero.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// Seeded inputs uniform in [-1, 1).
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = super::projection::SplitMix64::new(seed);
    (0..len).map(|_| rng.next_symmetric() as f32).collect()
}

/// Check an output against the reference: output, head-averaged weights and received weight.
pub fn assert_matches(out: &super::AttentionOutput, r: &Reference, what: &str) {
    let e_out = rel_err(&out.output, &r.output);
    let e_rec = rel_err(&out.received, &r.received);
    assert!(e_out < 1e-5, "{what}: output relative error {e_out:e}");
    assert!(e_rec < 1e-5, "{what}: received relative error {e_rec:e}");
    if let Some(w) = &out.weights {
        let e_w = rel_err(w, &r.weights);
        assert!(e_w < 1e-5, "{what}: weights relative error {e_w:e}");
    }
}
