//! A fixed-bucket histogram with atomic counters, exported to Prometheus as a
//! real histogram (`_bucket{le}`, `_sum`, `_count`), with quantile estimates
//! for `meridian status`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket upper bounds in seconds: 5 ms steps from 10 ms to 250 ms, where
/// inter-region replication lag lives (one-way delays of 29–108 ms in the
/// default profile), finer below, sparse beyond. 67 buckets per series.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030,
    0.035, 0.040, 0.045, 0.050, 0.055, 0.060, 0.065, 0.070, 0.075, 0.080, 0.085, 0.090, 0.095,
    0.100, 0.105, 0.110, 0.115, 0.120, 0.125, 0.130, 0.135, 0.140, 0.145, 0.150, 0.155, 0.160,
    0.165, 0.170, 0.175, 0.180, 0.185, 0.190, 0.195, 0.200, 0.205, 0.210, 0.215, 0.220, 0.225,
    0.230, 0.235, 0.240, 0.245, 0.250, 0.300, 0.400, 0.500, 0.750, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Samples kept for exact recent quantiles.
pub const RECENT_SAMPLES_MAX: usize = 4096;

/// The latest [`RECENT_SAMPLES_MAX`] samples, for exact quantiles over the
/// recent past (`meridian status`), where histogram buckets are too coarse
/// to check a millisecond-level promise.
#[derive(Default)]
pub struct RecentSamples {
    samples: std::collections::VecDeque<f64>,
}

impl RecentSamples {
    /// Records one value, dropping the oldest beyond the bound.
    pub fn push(&mut self, value: f64) {
        if self.samples.len() == RECENT_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(value);
    }

    /// Exact `(p50, p99)` of the kept samples; `None` if empty.
    pub fn p50_p99(&self) -> Option<(f64, f64)> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    /// Number of samples kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// A histogram over [`LATENCY_BUCKETS_SECONDS`].
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            // One more than the bounds: the +Inf bucket.
            counts: (0..=LATENCY_BUCKETS_SECONDS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
}

/// A point-in-time copy.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)`; the last bound is `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    /// Records one value.
    pub fn observe(&self, value: f64) {
        let i = LATENCY_BUCKETS_SECONDS.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// A consistent-enough copy for export.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS_SECONDS
                .get(i)
                .copied()
                .unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

impl HistogramSnapshot {
    /// Estimated `q` quantile (0..=1), interpolating linearly inside the
    /// bucket, as Prometheus's `histogram_quantile` does. `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower_bound = 0.0;
        let mut lower_count = 0u64;
        for (bound, cumulative) in &self.buckets {
            if *cumulative as f64 >= rank {
                if bound.is_infinite() {
                    return Some(lower_bound);
                }
                let in_bucket = (*cumulative - lower_count) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - lower_count as f64) / in_bucket
                } else {
                    0.0
                };
                return Some(lower_bound + (bound - lower_bound) * frac);
            }
            lower_bound = *bound;
            lower_count = *cumulative;
        }
        Some(lower_bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_quantiles_interpolate() {
        let h = Histogram::default();
        for _ in 0..50 {
            h.observe(0.041);
        }
        for _ in 0..50 {
            h.observe(0.085);
        }
        h.observe(100.0);
        let s = h.snapshot();
        assert_eq!(s.count, 101);
        assert_eq!(s.buckets.last().unwrap(), &(f64::INFINITY, 101));
        assert!((s.sum - (50.0 * 0.041 + 50.0 * 0.085 + 100.0)).abs() < 1e-9);
        // 101 samples: rank 25.25 lies among the 0.041s, rank 75.75 among
        // the 0.085s; each interpolates inside its bucket.
        let p25 = s.quantile(0.25).unwrap();
        assert!((0.04..=0.05).contains(&p25), "{p25}");
        let p75 = s.quantile(0.75).unwrap();
        assert!((0.08..=0.09).contains(&p75), "{p75}");
        assert_eq!(
            s.quantile(1.0),
            Some(60.0),
            "the +Inf bucket reports its lower bound"
        );
        assert_eq!(
            HistogramSnapshot {
                buckets: vec![],
                count: 0,
                sum: 0.0
            }
            .quantile(0.5),
            None
        );
    }
}
