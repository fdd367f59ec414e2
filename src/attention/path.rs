//! Which implementation runs, and on how many threads, chosen by size.
//!
//! Small N (4 to 12 agents, the common case) is dominated by candle's per-op dispatch and
//! allocation, so a fused plain-Rust pass wins there; past a crossover the blocked, vectorised
//! matmuls of candle win. The constants below come from measurements on the development machine
//! (`cargo bench --bench attention`, its path-crossover table);
//! BENCHMARKS.md has the table.

use std::sync::OnceLock;

use super::ComputeDevice;
use crate::error::Result;

/// From this many agents up, the candle path is faster than the fused one on the CPU.
/// Measured 2026-11-21 (release, d = 384, 8 heads, identity projections, 2-core EPYC shared
/// with other builds, two runs): fused 11-35 µs vs candle 146-190 µs at N = 4, 71-73 vs
/// 195-226 µs at N = 12, 421-470 vs 425-602 µs at N = 32; at N = 64 candle wins or ties
/// (1.1-1.8 ms vs fused 1.5-2.1 ms), at N = 100 clearly (2.1-3.4 vs 3.6-5.4 ms).
pub const FUSED_MAX_N: usize = 64;
/// From this many agents up, candle's matmuls get all cores; below, one thread beats the cost
/// of waking the pool. Measured as above: at N = 100 one thread was faster (2.1 vs 2.9 ms,
/// 3.4 vs 4.5 ms); at N = 256 two threads tied or won (13.9 vs 13.2 ms, 14.1 vs 22.7 ms).
pub const PARALLEL_MIN_N: usize = 256;
/// Bytes the per-chunk logits and weights may take (`heads x chunk x N` f32, twice): 64 MiB
/// lets N = 10,000 run in chunks of ~100 queries instead of materialising 8 x 10⁸ logits (6 GB).
pub const CHUNK_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// One plain-Rust pass on the calling thread.
    Fused,
    /// candle tensors, `chunk` queries at a time, matmuls on `threads` threads.
    Candle { chunk: usize, threads: usize },
}

/// The path for `n` agents of dimension `d` over `heads` heads on `device`.
pub fn choose_path(n: usize, d: usize, heads: usize, device: ComputeDevice) -> Path {
    let _ = d; // the crossover was measured at d = 384; the fused cost is linear in d as well
    if device.is_cpu() && n < FUSED_MAX_N {
        return Path::Fused;
    }
    let per_row = heads.max(1) * n.max(1) * std::mem::size_of::<f32>() * 2;
    let chunk = (CHUNK_BYTES / per_row).clamp(1, n.max(1));
    let threads = if n < PARALLEL_MIN_N { 1 } else { available_threads() };
    Path::Candle { chunk, threads }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run `f` with candle's CPU matmuls limited to `threads` (it parallelises over the current
/// rayon pool). One thread uses a private single-thread pool; more use the global pool.
pub(crate) fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    static SINGLE: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    if threads > 1 {
        return f();
    }
    match SINGLE.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(1).build().ok()) {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_meshes_take_the_fused_path_and_large_ones_candle() {
        let cpu = ComputeDevice::Cpu;
        assert_eq!(choose_path(4, 384, 8, cpu), Path::Fused);
        assert_eq!(choose_path(12, 384, 8, cpu), Path::Fused);
        assert!(matches!(choose_path(1000, 384, 8, cpu), Path::Candle { .. }));
        assert!(matches!(choose_path(4, 384, 8, ComputeDevice::Cuda(0)), Path::Candle { .. }));
    }

    #[test]
    fn chunks_keep_ten_thousand_agents_within_the_memory_budget() {
        let Path::Candle { chunk, .. } = choose_path(10_000, 384, 8, ComputeDevice::Cpu) else { panic!() };
        assert!((50..10_000).contains(&chunk), "chunk {chunk}");
        assert!(8 * chunk * 10_000 * 4 * 2 <= CHUNK_BYTES);
        let Path::Candle { chunk, .. } = choose_path(100, 384, 8, ComputeDevice::Cpu) else { panic!() };
        assert_eq!(chunk, 100, "small N runs in one chunk");
    }
}
