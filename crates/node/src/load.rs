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

use meridian_api::load::{LoadReport, LoadSpec};
use meridian_core::Op;
use meridian_store::db::Db;
use meridian_store::histogram::FineHistogram;
use tokio::sync::Semaphore;

/// Writes outstanding at once; beyond it the generator falls behind and
/// says so (`behind`), rather than queueing without bound.
pub const IN_FLIGHT_MAX: usize = 8192;

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
