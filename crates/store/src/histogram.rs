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

/// Resolution of [`FineHistogram`]: 0.1 ms, fine enough to check a
/// millisecond-level lag promise.
pub const FINE_RESOLUTION_SECONDS: f64 = 0.0001;

/// Buckets of [`FineHistogram`]: 0.1 ms steps up to 1 s (80 KB of counters);
/// slower samples land in one overflow bucket and in `max`.
pub const FINE_BUCKETS: usize = 10_000;

/// A linear histogram with 0.1 ms buckets, for replication lag: exact
/// enough for quantiles that are compared with the physical limit, and
/// summed into [`LATENCY_BUCKETS_SECONDS`] for Prometheus.
pub struct FineHistogram {
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
    max_bits: AtomicU64,
}

impl Default for FineHistogram {
    fn default() -> Self {
        FineHistogram {
            counts: (0..=FINE_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            max_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl FineHistogram {
    /// Records one value in seconds.
    pub fn observe(&self, value: f64) {
        let i = ((value.max(0.0) / FINE_RESOLUTION_SECONDS) as usize).min(FINE_BUCKETS);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + value).to_bits())
            });
        let _ = self
            .max_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (value > f64::from_bits(b)).then_some(value.to_bits())
            });
    }

    /// Forgets everything (benchmarks measure one phase at a time).
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
        self.sum_bits.store(0f64.to_bits(), Ordering::Relaxed);
        self.max_bits.store(0f64.to_bits(), Ordering::Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Largest sample, seconds.
    pub fn max(&self) -> f64 {
        f64::from_bits(self.max_bits.load(Ordering::Relaxed))
    }

    /// The `q` quantile in seconds, as the upper edge of its 0.1 ms bucket
    /// (never under-reports); the maximum when it lies beyond 1 s.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles(&[q]).map(|v| v[0])
    }

    /// Several quantiles (`qs` ascending) in one pass, in seconds: each the
    /// upper edge of its 0.1 ms bucket (never under-reports), the maximum
    /// when it lies beyond 1 s. `None` if empty.
    pub fn quantiles(&self, qs: &[f64]) -> Option<Vec<f64>> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(qs.len());
        let (mut i, mut seen) = (0usize, counts[0]);
        for q in qs {
            let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
            while seen < rank && i < FINE_BUCKETS {
                i += 1;
                seen += counts[i];
            }
            out.push(if i == FINE_BUCKETS {
                self.max()
            } else {
                (i + 1) as f64 * FINE_RESOLUTION_SECONDS
            });
        }
        Some(out)
    }

    /// The same samples over [`LATENCY_BUCKETS_SECONDS`], for export.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_SECONDS.len() + 1);
        let (mut cumulative, mut next) = (0u64, 0usize);
        for bound in LATENCY_BUCKETS_SECONDS {
            // Fine bucket i holds [i, i+1) × resolution: whole buckets below
            // the bound count as ≤ bound.
            let upto = ((bound / FINE_RESOLUTION_SECONDS).round() as usize).min(FINE_BUCKETS);
            while next < upto {
                cumulative += counts[next];
                next += 1;
            }
            // Overflow samples lie in [1 s, max]: under any bound ≥ max.
            let overflow = if *bound >= self.max() {
                counts[FINE_BUCKETS]
            } else {
                0
            };
            buckets.push((*bound, cumulative + overflow));
        }
        let total: u64 = counts.iter().sum();
        buckets.push((f64::INFINITY, total));
        HistogramSnapshot {
            buckets,
            count: total,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
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
    fn fine_quantiles_resolve_a_tenth_of_a_millisecond() {
        let h = FineHistogram::default();
        for i in 0..1000 {
            h.observe(0.040 + i as f64 * 0.000_002); // 40.000 .. 41.998 ms
        }
        h.observe(3.0);
        let p50 = h.quantile(0.5).unwrap();
        assert!((0.0409..=0.0412).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Some(3.0), "beyond 1 s the max is reported");
        let s = h.snapshot();
        assert_eq!(s.count, 1001);
        let at = |b: f64| s.buckets.iter().find(|(x, _)| *x == b).unwrap().1;
        assert_eq!((at(0.040), at(0.045), at(60.0)), (0, 1000, 1001));
        h.reset();
        assert_eq!((h.count(), h.quantile(0.5)), (0, None));
    }

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

    #[test]
    fn quantiles_in_one_pass_agree_with_one_at_a_time() {
        let h = FineHistogram::default();
        for i in 0..1000 {
            h.observe(0.04 + (i % 97) as f64 * 0.0003);
        }
        h.observe(2.5);
        let qs = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0];
        let all = h.quantiles(&qs).unwrap();
        for (q, v) in qs.iter().zip(&all) {
            assert_eq!(Some(*v), h.quantile(*q), "q {q}");
        }
        assert_eq!(all[6], 2.5, "the slowest sample is the maximum");
    }
}
