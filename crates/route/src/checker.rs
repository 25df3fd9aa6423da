//! Active checks: one task per instance asks `edge.health.path` every
//! `edge.health.interval_ms` (the first check at a random point of the
//! first interval, so instances added together are not checked in step)
//! and feeds the result to the pool's rise/fall rule. A 2xx or 3xx answer
//! within `edge.health.timeout_ms` passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::Request;
use meridian_core::config::HealthCheckConfig;
use meridian_core::RegionName;

use crate::pool::{Backend, Pool};
use crate::upstream::Upstream;

/// Largest health answer read, bytes; the rest is not waited for.
const CHECK_BODY_BYTES_MAX: usize = 16 * 1024;

/// A ticker of `interval` whose first tick comes at a random point of the
/// first interval, so targets added together (instances, regions) are not
/// checked in step; a late tick delays the next rather than bunching.
pub(crate) async fn spread_ticker(interval: Duration) -> tokio::time::Interval {
    tokio::time::sleep(interval.mul_f64(fastrand::f64())).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Checks `backend` until it leaves the pool or the edge stops.
pub async fn run_checker(
    pool: Arc<Pool>,
    backend: Arc<Backend>,
    upstream: Upstream,
    config: HealthCheckConfig,
    region: RegionName,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let timeout = Duration::from_millis(config.timeout_ms);
    let mut ticker = spread_ticker(Duration::from_millis(config.interval_ms)).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = backend.retired.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let passed = check_once(&upstream, &backend, &config.path, timeout).await;
        if let Some(up) = pool.checked(&backend, passed.is_ok(), Instant::now()) {
            match passed {
                Ok(()) => tracing::info!(%region, backend = %backend.addr, "instance up"),
                Err(why) => {
                    tracing::warn!(%region, backend = %backend.addr, %why, up, "instance down")
                }
            }
        }
    }
}

async fn check_once(
    upstream: &Upstream,
    b: &Backend,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let req = Request::get(path)
        .header(hyper::header::HOST, b.addr.to_string())
        .body(Either::Left(Full::new(Bytes::new())))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let resp = upstream
        .send(b.addr, req, Some(timeout))
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read the answer so the connection can be reused for the next check.
    let left = timeout.saturating_sub(started.elapsed());
    let _ = tokio::time::timeout(
        left,
        Limited::new(resp.into_body(), CHECK_BODY_BYTES_MAX).collect(),
    )
    .await;
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}
