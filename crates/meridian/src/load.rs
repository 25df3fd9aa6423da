//! A paced write generator inside the node, for benchmarks.
//!
//! `POST /admin/bench/load` (admin token) writes `rate_per_s` values per
//! second for `duration_ms` straight into the engine — open loop, paced
//! every millisecond, at most [`IN_FLIGHT_MAX`] writes outstanding — and
//! answers with what it achieved and each write's local latency (decide →
//! durable commit → acknowledged). It measures the engine and replication,
//! not a client protocol: the Redis endpoint is benchmarked on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_core::Op;
use meridian_store::db::Db;
use meridian_store::histogram::FineHistogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Writes outstanding at once; beyond it the generator falls behind and
/// says so (`behind`), rather than queueing without bound.
pub const IN_FLIGHT_MAX: usize = 8192;

/// Longest run accepted, so a typo cannot occupy a node for hours.
pub const DURATION_MS_MAX: u64 = 15 * 60 * 1000;

/// Highest rate accepted.
pub const RATE_PER_S_MAX: u64 = 1_000_000;

/// What to generate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Writes per second.
    pub rate_per_s: u64,
    /// How long.
    pub duration_ms: u64,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Distinct keys written, cycled (`{prefix}{i}`).
    pub keys: u64,
    /// Key prefix; make it unique per region to avoid conflicts.
    pub key_prefix: String,
    /// Table.
    #[serde(default = "default_table")]
    pub table: String,
}

fn default_table() -> String {
    crate::data_api::DEFAULT_TABLE.to_string()
}

/// What happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Writes acknowledged.
    pub written: u64,
    /// Writes refused (storage errors).
    pub failed: u64,
    /// Ticks at which the generator could not issue what was due because
    /// [`IN_FLIGHT_MAX`] writes were outstanding.
    pub behind: u64,
    /// Achieved writes per second.
    pub achieved_per_s: f64,
    /// Local write latency, ms.
    pub local_p50_ms: f64,
    /// Local write latency, ms.
    pub local_p99_ms: f64,
    /// Local write latency, ms.
    pub local_max_ms: f64,
}

impl LoadSpec {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_per_s == 0 || self.rate_per_s > RATE_PER_S_MAX {
            return Err(format!("rate_per_s must be 1..={RATE_PER_S_MAX}"));
        }
        if self.duration_ms == 0 || self.duration_ms > DURATION_MS_MAX {
            return Err(format!("duration_ms must be 1..={DURATION_MS_MAX}"));
        }
        if self.value_bytes > crate::data_api::VALUE_BYTES_MAX {
            return Err(format!(
                "value_bytes must be at most {}",
                crate::data_api::VALUE_BYTES_MAX
            ));
        }
        if self.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        Ok(())
    }
}

/// Runs the load and reports.
pub async fn run(db: Db, spec: LoadSpec) -> LoadReport {
    let latency = Arc::new(FineHistogram::default());
    let written = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
    let value: Arc<[u8]> = vec![b'x'; spec.value_bytes].into();
    let total = spec.rate_per_s * spec.duration_ms / 1000;
    let duration = Duration::from_millis(spec.duration_ms);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let (mut issued, mut behind) = (0u64, 0u64);
    while issued < total {
        tick.tick().await;
        let elapsed = start.elapsed();
        let due = ((elapsed.as_secs_f64() * spec.rate_per_s as f64) as u64).min(total);
        while issued < due {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                behind += 1;
                break;
            };
            let key = format!("{}{}", spec.key_prefix, issued % spec.keys).into_bytes();
            let (db, table, value) = (db.clone(), spec.table.clone(), value.clone());
            let (latency, written, failed) = (latency.clone(), written.clone(), failed.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let decide = Box::new(move |_: Option<&_>, _| {
                    Ok(Some(Op::Put {
                        value: value.to_vec(),
                        expires_at_ms: None,
                    }))
                });
                match db.write(&table, &key, decide).await {
                    Ok(_) => {
                        latency.observe(t0.elapsed().as_secs_f64());
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(permit);
            });
            issued += 1;
        }
        if elapsed > duration * 2 {
            // Far behind schedule: stop issuing, report what was achieved.
            break;
        }
    }
    // Wait for every outstanding write.
    let _all = permits.acquire_many(IN_FLIGHT_MAX as u32).await;
    let secs = start.elapsed().as_secs_f64();
    let ms = |q: f64| latency.quantile(q).unwrap_or(0.0) * 1000.0;
    let written = written.load(Ordering::Relaxed);
    LoadReport {
        written,
        failed: failed.load(Ordering::Relaxed),
        behind,
        achieved_per_s: written as f64 / secs,
        local_p50_ms: ms(0.5),
        local_p99_ms: ms(0.99),
        local_max_ms: latency.max() * 1000.0,
    }
}
