//! A fixed-bucket histogram with atomic counters, exported to Prometheus as a
//! real histogram (`_bucket{le}`, `_sum`, `_count`), with quantile estimates
//! for `meridian status`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket upper bounds in seconds: dense from 1 ms to 300 ms, where
/// inter-region replication lag lives, sparse beyond.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11,
    0.12, 0.13, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
    60.0,
];

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
