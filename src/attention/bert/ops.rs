//! The steps of the CPU BERT encoder, on row-major `rows x width` f32 slices: the dense product
//! (the `gemm` crate, bias and residual folded into the destination), the per-head products of
//! attention, layer norm, the three activations candle-transformers' BERT knows, and an erf that
//! vectorises.
//!
//! The elementwise loops are written branch-free over slices so the compiler vectorises them; the
//! two that show in profiles (layer norm, GELU) also get an AVX2+FMA copy picked at run time, since
//! the crate is built for baseline x86-64.

use candle_transformers::models::bert::HiddenAct;
use gemm::Parallelism;

/// Define `fn` twice: as built, and compiled for AVX2 and FMA, used when the CPU has them. The
/// body must be safe code: the wide copy differs only in the instructions it may use.
macro_rules! wide {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $body
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `wide` was compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body
        }
    };
}

/// A linear layer, its weight transposed from PyTorch's `outputs x inputs` to `inputs x outputs`
/// (row-major): with the destination row-major too, gemm then reads the weight in the layout its
/// kernels take, and at a few rows (batch 1) skips packing it, which is most of the memory traffic.
pub struct Dense {
    pub weight_t: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Layer norm's scale and shift.
pub struct Norm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Dense {
    /// From PyTorch's `outputs x inputs` weights, stacked row-wise (Q, K and V make one layer of
    /// `3h` outputs), transposed here eight source rows at a time: each write is eight contiguous
    /// floats, and the eight rows being read stay in cache.
    pub fn stacked(weights: &[&[f32]], bias: Vec<f32>, inputs: usize) -> Self {
        let outputs = bias.len();
        assert_eq!(weights.iter().map(|w| w.len()).sum::<usize>(), inputs * outputs);
        let mut weight_t = vec![0f32; inputs * outputs];
        let mut offset = 0;
        for weight in weights {
            let rows_here = weight.len() / inputs;
            for r0 in (0..rows_here).step_by(8) {
                let rows = (rows_here - r0).min(8);
                let src = &weight[r0 * inputs..(r0 + rows) * inputs];
                let (from, to) = (offset + r0, offset + r0 + rows);
                for (c, dst) in weight_t.chunks_exact_mut(outputs).enumerate() {
                    for (k, d) in dst[from..to].iter_mut().enumerate() {
                        *d = src[k * inputs + c];
                    }
                }
            }
            offset += rows_here;
        }
        Self { weight_t, bias, inputs, outputs }
    }

    /// `out = x Wᵀ + b (+ residual)` for `x` of `rows x inputs`. The bias and the residual are
    /// written into `out` first and the product is accumulated onto them, so neither costs a pass.
    pub fn forward(&self, x: &[f32], residual: Option<&[f32]>, out: &mut [f32], par: Parallelism) {
        let rows = x.len() / self.inputs;
        debug_assert_eq!(x.len(), rows * self.inputs);
        debug_assert_eq!(out.len(), rows * self.outputs);
        for (r, row) in out.chunks_exact_mut(self.outputs).enumerate() {
            match residual {
                Some(res) => {
                    for ((o, b), x) in
                        row.iter_mut().zip(&self.bias).zip(&res[r * self.outputs..(r + 1) * self.outputs])
                    {
                        *o = b + x;
                    }
                }
                None => row.copy_from_slice(&self.bias),
            }
        }
        // SAFETY: the pointers and strides describe `x` (rows x inputs), Wᵀ (inputs x outputs,
        // read from the outputs x inputs weight) and `out` (rows x outputs), all in bounds.
        unsafe {
            gemm::gemm(
                rows,
                self.outputs,
                self.inputs,
                out.as_mut_ptr(),
                1,
                self.outputs as isize,
                true,
                x.as_ptr(),
                1,
                self.inputs as isize,
                self.weight_t.as_ptr(),
                1,
                self.outputs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }
}

/// `dst (m x n) = scale · a (m x k) · b (k x n)`, each given as a pointer with row and column
/// strides: the per-head products of attention, which read Q, K and V in place from the fused
/// QKV matrix.
///
/// # Safety
/// Every pointer with its strides must address valid memory for its shape, and `dst` must not
/// overlap `a` or `b`.
pub unsafe fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    scale: f32,
    par: Parallelism,
) {
    gemm::gemm(m, n, k, dst.0, dst.2, dst.1, false, a.0, a.2, a.1, b.0, b.2, b.1, 0.0, scale, false, false, false, par);
}

wide! {
/// Layer norm over each row of `x`, in place: `(x - mean) / sqrt(var + eps) · w + b`, with the
/// biased variance (as PyTorch computes it).
pub fn layer_norm(x: &mut [f32], norm: &Norm, eps: f32) {
    let width = norm.weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}
}

/// The hidden activation, in place.
pub fn activate(x: &mut [f32], act: HiddenAct) {
    match act {
        HiddenAct::Gelu => gelu_erf(x),
        HiddenAct::GeluApproximate => x.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
        HiddenAct::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

wide! {
/// GELU with the exact erf, as BERT's `"gelu"` is: `x/2 · (1 + erf(x/√2))`.
fn gelu_erf(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}
}

/// The tanh approximation of GELU (`"geluapproximate"` in candle's config), as candle's `gelu` computes it.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// erf for f32 as Eigen and XLA compute it: `x · P(x²) / Q(x²)` on x clamped to [-4, 4] (beyond
/// which erf is ±1 in f32). Absolute error under 4e-7, about 6 f32 ulps near ±1 (the test measures it
/// against f64; PyTorch's vectorised erf allows 1.5e-7 before rounding), and no
/// branch or libm call, so a loop over it vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-8;
    p = x2 * p + -2.101_024_020_825_08e-6;
    p = x2 * p + -5.692_506_394_623_46e-5;
    p = x2 * p + -7.349_906_303_268_55e-4;
    p = x2 * p + -2.954_599_808_540_25e-3;
    p = x2 * p + -1.609_603_332_624_15e-2;
    let mut q = x2 * -1.456_607_184_649_96e-5 + -2.133_740_552_789_05e-4;
    q = x2 * q + -1.682_826_974_382_03e-3;
    q = x2 * q + -7.373_329_167_204_68e-3;
    q = x2 * q + -1.426_473_905_141_89e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_4e7_of_the_f64_value_everywhere() {
        let (mut worst, mut at) = (0.0f64, 0.0);
        for i in -60_000..=60_000 {
            let x = (i as f32 * 1e-4) as f64;
            let e = (erf(x as f32) as f64 - libm::erf(x)).abs();
            if e > worst {
                (worst, at) = (e, x);
            }
        }
        assert!(worst < 4e-7, "worst error {worst} at {at}");
        assert!((erf(100.0) - 1.0).abs() < 1e-6 && (erf(-100.0) + 1.0).abs() < 1e-6);
    }
}
