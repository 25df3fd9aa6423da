//! [`RespMetrics`]: the Redis endpoint's figures for `/metrics`, encoded
//! from its live counters ([`RespStats`]) at scrape time.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `meridian_redis_connections_received_total` | counter | |
//! | `meridian_redis_connections_rejected_total` | counter | |
//! | `meridian_redis_commands_total` | counter | |
//! | `meridian_redis_error_replies_total` | counter | |
//! | `meridian_redis_protocol_errors_total` | counter | |
//! | `meridian_redis_auth_failures_total` | counter | |
//! | `meridian_redis_connections` | gauge | |
//! | `meridian_forwarded_request_seconds` | histogram | `to` |
//! | `meridian_forwarded_requests_total` | counter | `to`, `outcome` |
//! | `meridian_commit_point_request_seconds` | histogram | `to` |
//! | `meridian_commit_point_requests_total` | counter | `to`, `outcome` |
//!
//! Counters are declared without `_total`: the library appends it to the
//! samples.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use meridian_core::RegionName;
use meridian_store::histogram::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::stats::{RemoteStats, RespStats};

/// Help of both request-outcome counters.
const OUTCOMES_HELP: &str = "Requests by outcome: answered, not_sent (link down: nothing ran), no_answer (timed out: a write may have run).";

/// The endpoint's connections, commands and requests to other regions.
#[derive(Debug)]
pub struct RespMetrics {
    stats: Arc<RespStats>,
}

impl RespMetrics {
    /// Reads `stats` (the endpoint's, [`crate::Shared::stats`]) at every scrape.
    pub fn new(stats: Arc<RespStats>) -> Self {
        RespMetrics { stats }
    }

    /// The plain counters: name (without `_total`), help, counter.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 6] {
        let s = &*self.stats;
        [
            (
                "meridian_redis_connections_received",
                "Redis connections accepted.",
                &s.connections_received,
            ),
            (
                "meridian_redis_connections_rejected",
                "Redis connections refused at resp.connections_max.",
                &s.rejected_connections,
            ),
            (
                "meridian_redis_commands",
                "Redis commands run.",
                &s.commands_processed,
            ),
            (
                "meridian_redis_error_replies",
                "Redis error replies sent.",
                &s.error_replies,
            ),
            (
                "meridian_redis_protocol_errors",
                "Redis connections closed for a protocol error.",
                &s.protocol_errors,
            ),
            (
                "meridian_redis_auth_failures",
                "Failed AUTH / HELLO AUTH.",
                &s.auth_failures,
            ),
        ]
    }
}

impl Collector for RespMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in self.counters() {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value.load(Relaxed)).encode(family)?;
        }
        let family = encoder.encode_descriptor(
            "meridian_redis_connections",
            "Redis connections open now.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.stats.connected.load(Relaxed) as i64).encode(family)?;
        encode_remote(
            &mut encoder,
            &self.stats.forwarded,
            "forwarded",
            "Commands sent to the region that serves their keys (a single-master home, an allowed region of a pinned table): send to answer.",
        )?;
        encode_remote(
            &mut encoder,
            &self.stats.commit_points,
            "commit_point",
            "Strong reads' questions to a single-master home for its commit point: send to answer.",
        )
    }
}

/// `meridian_{what}_request_seconds` and `meridian_{what}_requests_total`
/// of the requests in `map`, per region asked.
fn encode_remote(
    encoder: &mut DescriptorEncoder,
    map: &Mutex<BTreeMap<RegionName, RemoteStats>>,
    what: &str,
    help: &str,
) -> Result<(), std::fmt::Error> {
    let map = map.lock().expect("stats lock is never poisoned");
    let seconds = format!("meridian_{what}_request_seconds");
    let mut family = encoder.encode_descriptor(&seconds, help, None, MetricType::Histogram)?;
    for (to, r) in map.iter() {
        let labels = [("to", to.as_str())];
        encode_histogram(family.encode_family(&labels)?, &r.seconds.snapshot())?;
    }
    let total = format!("meridian_{what}_requests");
    let mut family = encoder.encode_descriptor(&total, OUTCOMES_HELP, None, MetricType::Counter)?;
    for (to, r) in map.iter() {
        for (outcome, n) in [
            ("answered", r.answered),
            ("not_sent", r.not_sent),
            ("no_answer", r.no_answer),
        ] {
            let labels = [("to", to.as_str()), ("outcome", outcome)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// One histogram series. The snapshot's buckets are cumulative; the
/// library takes each bucket's own count and sums them up again, so the
/// exposed `_bucket` values are the snapshot's.
fn encode_histogram(
    mut encoder: MetricEncoder,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let own = cumulative - below;
            below = cumulative;
            (bound, own)
        })
        .collect();
    encoder
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn counters_gauges_and_histograms_come_out_under_todays_names() {
        let stats = Arc::new(RespStats::default());
        stats.commands_processed.store(3, Relaxed);
        stats.connected.store(2, Relaxed);
        let eu: RegionName = "eu-west".parse().unwrap();
        let took = Duration::from_millis(3);
        RespStats::record_remote(&stats.forwarded, &eu, took, Ok(()));
        RespStats::record_remote(&stats.forwarded, &eu, took, Ok(()));
        RespStats::record_remote(&stats.forwarded, &eu, took, Err(true));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RespMetrics::new(stats)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "meridian_redis_commands_total 3",
            "meridian_redis_auth_failures_total 0",
            "meridian_redis_connections 2",
            "# TYPE meridian_forwarded_request_seconds histogram",
            "meridian_forwarded_request_seconds_count{to=\"eu-west\"} 2",
            "meridian_forwarded_request_seconds_bucket{le=\"0.002\",to=\"eu-west\"} 0",
            "meridian_forwarded_request_seconds_bucket{le=\"0.003\",to=\"eu-west\"} 2",
            "meridian_forwarded_request_seconds_bucket{le=\"+Inf\",to=\"eu-west\"} 2",
            "meridian_forwarded_requests_total{to=\"eu-west\",outcome=\"answered\"} 2",
            "meridian_forwarded_requests_total{to=\"eu-west\",outcome=\"no_answer\"} 1",
            "# TYPE meridian_commit_point_request_seconds histogram",
            "# TYPE meridian_commit_point_requests counter",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
