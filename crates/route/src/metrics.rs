//! [`RouteMetrics`]: the edge's and the region board's figures for
//! `/metrics`, read from their live state at scrape time.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `meridian_edge_requests_total` | counter | |
//! | `meridian_edge_responses_total` | counter | `class` |
//! | `meridian_edge_served_local_total` | counter | |
//! | `meridian_edge_retries_total`, `…_retries_refused_total` | counter | |
//! | `meridian_edge_forwarded_total`, `…_replayed_total`, `…_writes_to_home_total` | counter | `to` |
//! | `meridian_edge_rejected_total` | counter | `reason` |
//! | `meridian_edge_upstream_errors_total` | counter | `kind` |
//! | `meridian_edge_connections_total`, `…_connection_errors_total` | counter | —, `kind` |
//! | `meridian_edge_connections` | gauge | |
//! | `meridian_edge_ejections_total`, `…_ejections_spared_total` | counter | |
//! | `meridian_edge_backend_up`, `…_backend_in_flight` | gauge | `backend` |
//! | `meridian_edge_backend_requests_total`, `…_backend_failures_total` | counter | `backend` |
//! | `meridian_edge_instances_up`, `meridian_edge_load_per_instance` | gauge | |
//! | `meridian_edge_draining` | gauge | |
//! | `meridian_region_up` (quorum verdict), `meridian_region_down_votes` | gauge | `region` |
//! | `meridian_region_observer_vote` (1 up, 0 down, −1 unknown) | gauge | `observer`, `region` |
//!
//! `meridian_edge_load_per_instance` — mean requests in flight per up
//! instance over the last second — is the signal `meridian up` scales on,
//! and the one to feed a Kubernetes HPA or KEDA (README "Traffic").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use meridian_core::RegionName;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::edge::Edge;
use crate::policy::quorum::Vote;
use crate::stats::{Rejection, CONNECTION_ERROR_KINDS, UPSTREAM_ERROR_KINDS};

/// The edge's families.
#[derive(Debug)]
pub struct RouteMetrics {
    edge: Arc<Edge>,
}

impl RouteMetrics {
    /// Reads `edge` at every scrape.
    pub fn new(edge: Arc<Edge>) -> Self {
        RouteMetrics { edge }
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let f = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(f)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let f = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(f)
}

fn labelled<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    series: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut f = e.encode_descriptor(name, help, None, kind)?;
    for (value, n) in series {
        let labels = [(label, value)];
        if matches!(kind, MetricType::Counter) {
            ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
        } else {
            ConstGauge::new(n as i64).encode(f.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn per_region<'a>(
    map: &'a BTreeMap<RegionName, AtomicU64>,
) -> impl Iterator<Item = (&'a str, u64)> + 'a {
    map.iter().map(|(r, n)| (r.as_str(), n.load(Relaxed)))
}

impl RouteMetrics {
    fn encode_traffic(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.edge.stats;
        counter(
            e,
            "meridian_edge_requests",
            "Requests the edge received.",
            s.requests.load(Relaxed),
        )?;
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let by_class = classes
            .iter()
            .zip(&s.responses)
            .map(|(c, n)| (*c, n.load(Relaxed)));
        labelled(
            e,
            "meridian_edge_responses",
            "Responses by status class.",
            MetricType::Counter,
            "class",
            by_class,
        )?;
        counter(
            e,
            "meridian_edge_served_local",
            "Requests answered by this region's instances.",
            s.served_local.load(Relaxed),
        )?;
        counter(
            e,
            "meridian_edge_retries",
            "Requests sent again after a failure (another instance or region).",
            s.retries.load(Relaxed),
        )?;
        counter(
            e,
            "meridian_edge_retries_refused",
            "Retries the retry budget refused.",
            s.retries_refused.load(Relaxed),
        )?;
        labelled(
            e,
            "meridian_edge_forwarded",
            "Requests sent to another region's edge because this region could not serve them.",
            MetricType::Counter,
            "to",
            per_region(&s.forwarded),
        )?;
        labelled(
            e,
            "meridian_edge_replayed",
            "Requests replayed in another region on an app's meridian-replay header.",
            MetricType::Counter,
            "to",
            per_region(&s.replayed),
        )?;
        labelled(
            e,
            "meridian_edge_writes_to_home",
            "Writes sent to the home region of their route's table.",
            MetricType::Counter,
            "to",
            per_region(&s.to_home),
        )?;
        let rejected = Rejection::ALL
            .iter()
            .zip(&s.rejected)
            .map(|(r, n)| (r.as_str(), n.load(Relaxed)));
        labelled(
            e,
            "meridian_edge_rejected",
            "Requests the edge answered itself with an error, by reason.",
            MetricType::Counter,
            "reason",
            rejected,
        )?;
        let upstream = UPSTREAM_ERROR_KINDS
            .iter()
            .zip(&s.upstream_errors)
            .map(|(k, n)| (*k, n.load(Relaxed)));
        labelled(
            e,
            "meridian_edge_upstream_errors",
            "Failed sends to instances, by kind.",
            MetricType::Counter,
            "kind",
            upstream,
        )?;
        counter(
            e,
            "meridian_edge_connections",
            "Client connections accepted.",
            s.connections.load(Relaxed),
        )?;
        let conn = CONNECTION_ERROR_KINDS
            .iter()
            .zip(&s.connection_errors)
            .map(|(k, n)| (*k, n.load(Relaxed)));
        labelled(
            e,
            "meridian_edge_connection_errors",
            "Client connections ended by a protocol error, by kind.",
            MetricType::Counter,
            "kind",
            conn,
        )?;
        gauge(
            e,
            "meridian_edge_open_connections",
            "Client connections open now.",
            s.connections_open.load(Relaxed) as f64,
        )
    }

    fn encode_pool(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pool = &self.edge.pool;
        counter(
            e,
            "meridian_edge_ejections",
            "Instances ejected by passive checks.",
            pool.ejections.load(Relaxed),
        )?;
        counter(
            e,
            "meridian_edge_ejections_spared",
            "Ejections skipped at edge.outlier.max_ejection_pct.",
            pool.spared.load(Relaxed),
        )?;
        let all = pool.snapshot();
        let addrs: Vec<String> = all.iter().map(|b| b.addr.to_string()).collect();
        let series = |f: &dyn Fn(usize) -> u64| -> Vec<(usize, u64)> {
            (0..all.len()).map(|i| (i, f(i))).collect()
        };
        let up = series(&|i| u64::from(all[i].is_up()));
        labelled(
            e,
            "meridian_edge_backend_up",
            "Instance passes its active checks (1) or not (0).",
            MetricType::Gauge,
            "backend",
            up.iter().map(|(i, n)| (addrs[*i].as_str(), *n)),
        )?;
        let fl = series(&|i| all[i].in_flight.load(Relaxed));
        labelled(
            e,
            "meridian_edge_backend_in_flight",
            "Requests in flight to the instance.",
            MetricType::Gauge,
            "backend",
            fl.iter().map(|(i, n)| (addrs[*i].as_str(), *n)),
        )?;
        let rq = series(&|i| all[i].requests.load(Relaxed));
        labelled(
            e,
            "meridian_edge_backend_requests",
            "Requests sent to the instance.",
            MetricType::Counter,
            "backend",
            rq.iter().map(|(i, n)| (addrs[*i].as_str(), *n)),
        )?;
        let fa = series(&|i| all[i].failures.load(Relaxed));
        labelled(
            e,
            "meridian_edge_backend_failures",
            "Requests to the instance that failed (5xx, connect, timeout, reset).",
            MetricType::Counter,
            "backend",
            fa.iter().map(|(i, n)| (addrs[*i].as_str(), *n)),
        )?;
        gauge(
            e,
            "meridian_edge_instances_up",
            "Instances passing their active checks.",
            up.iter().map(|(_, n)| *n).sum::<u64>() as f64,
        )?;
        gauge(
            e,
            "meridian_edge_load_per_instance",
            "Mean requests in flight per up instance over the last second: the scaling signal.",
            self.edge.load_per_instance(),
        )?;
        gauge(
            e,
            "meridian_edge_draining",
            "The region is drained (1) or not (0).",
            f64::from(u8::from(self.edge.is_draining())),
        )
    }

    fn encode_regions(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let board = self.edge.regions.board();
        let nearest = &self.edge.regions.nearest;
        let verdicts: Vec<(&str, u64, u64)> = nearest
            .iter()
            .filter_map(|r| {
                board
                    .verdict(r)
                    .map(|v| (r.as_str(), u64::from(!v.down), v.down_votes as u64))
            })
            .collect();
        labelled(
            e,
            "meridian_region_up",
            "Quorum verdict on the region: up (1) or down (0).",
            MetricType::Gauge,
            "region",
            verdicts.iter().map(|v| (v.0, v.1)),
        )?;
        labelled(
            e,
            "meridian_region_down_votes",
            "Observers that say the region is down.",
            MetricType::Gauge,
            "region",
            verdicts.iter().map(|v| (v.0, v.2)),
        )?;
        let mut f = e.encode_descriptor(
            "meridian_region_observer_vote",
            "One observer's view of a region: up (1), down (0), no fresh report (-1).",
            None,
            MetricType::Gauge,
        )?;
        for target in nearest {
            for observer in board.observers(target) {
                let v = match board.vote(observer, target, now) {
                    Vote::Up => 1,
                    Vote::Down => 0,
                    Vote::Unknown => -1,
                };
                let labels = [("observer", observer.as_str()), ("region", target.as_str())];
                ConstGauge::new(v).encode(f.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Collector for RouteMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_traffic(&mut encoder)?;
        self.encode_pool(&mut encoder)?;
        self.encode_regions(&mut encoder)
    }
}
