//! Fixed-bucket latency histograms: lock-free recording with atomics, and the serializable
//! counts that snapshots, the store series and Prometheus share.
//!
//! Buckets are cumulative-free on the wire (one count per bucket, the last one open-ended); the
//! Prometheus renderer accumulates them. Quantiles are estimated by linear interpolation inside
//! the bucket that holds them (Prometheus' `histogram_quantile`), so they are estimates bounded by
//! the bucket edges, and reports say so.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) for tool calls and store operations: 50 µs to 30 s.
pub const FAST_MS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 30000.0];
/// Upper bounds (ms) for message delivery and consensus decisions: 1 ms to 1 h.
pub const SLOW_MS: &[f64] =
    &[1.0, 10.0, 100.0, 1000.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 3600000.0];

/// A histogram being recorded: one atomic per bucket plus the sum in microseconds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_us: AtomicU64::new(0) }
    }

    pub fn observe_ms(&self, ms: f64) {
        let ms = ms.max(0.0);
        let i = self.bounds.iter().position(|b| ms <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((ms * 1000.0).round() as u64, Relaxed);
    }

    /// The counts so far; an empty histogram gives the empty (default) counts.
    pub fn counts(&self) -> HistCounts {
        let c = HistCounts {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        };
        if c.is_empty() {
            HistCounts::default()
        } else {
            c
        }
    }
}

/// What a histogram has counted: one count per bucket of its bounds (the last: above them all)
/// and the sum of the observations in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistCounts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sum_us: u64,
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HistCounts {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn add(&mut self, other: &HistCounts) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// `self - earlier`, for counts that only grow (a delta between two snapshots).
    pub fn since(&self, earlier: &HistCounts) -> HistCounts {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        let delta = HistCounts { buckets, sum_us: self.sum_us.saturating_sub(earlier.sum_us) };
        if delta.is_empty() {
            HistCounts::default()
        } else {
            delta
        }
    }

    pub fn mean_ms(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_us as f64 / 1000.0 / n as f64)
    }

    /// The `q` quantile (0..=1) estimated from the buckets of `bounds`; `None` without data. An
    /// estimate in the open last bucket is its lower edge (nothing bounds it from above).
    pub fn quantile_ms(&self, bounds: &[f64], q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
                let Some(&upper) = bounds.get(i) else { return Some(lower) };
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += n;
        }
        bounds.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_of_their_upper_bound() {
        let h = Histogram::new(&[1.0, 10.0]);
        for ms in [0.5, 1.0, 3.0, 10.0, 11.0] {
            h.observe_ms(ms);
        }
        let c = h.counts();
        assert_eq!(c.buckets, vec![2, 2, 1]);
        assert_eq!(c.sum_us, 25_500);
        assert_eq!(c.count(), 5);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let c = HistCounts { buckets: vec![0, 4, 0], sum_us: 0 };
        assert_eq!(c.quantile_ms(&[1.0, 11.0], 0.5), Some(6.0));
        assert_eq!(c.quantile_ms(&[1.0, 11.0], 1.0), Some(11.0));
        let open = HistCounts { buckets: vec![0, 0, 3], sum_us: 0 };
        assert_eq!(open.quantile_ms(&[1.0, 11.0], 0.5), Some(11.0));
        assert_eq!(HistCounts::default().quantile_ms(&[1.0], 0.5), None);
    }

    #[test]
    fn deltas_and_sums_round_trip() {
        let a = HistCounts { buckets: vec![1, 2, 3], sum_us: 10 };
        let mut b = a.clone();
        b.add(&HistCounts { buckets: vec![0, 1, 0], sum_us: 5 });
        assert_eq!(b.since(&a), HistCounts { buckets: vec![0, 1, 0], sum_us: 5 });
        assert_eq!(a.since(&a), HistCounts::default());
    }
}
