//! The node's metric registry: each layer's own `prometheus-client`
//! collector — wan, repl, store, tables and resp declare their families
//! where the figures are counted — registered once at start, plus the
//! node's own families (build, uptime, refused admin requests). Everything
//! is read at scrape time (`GET /metrics`), so no figure is copied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use meridian_core::RegionName;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::state::Node;

/// The node's own families.
#[derive(Debug)]
struct NodeMetrics {
    region: RegionName,
    started: Instant,
    unauthorized: Arc<AtomicU64>,
}

impl Collector for NodeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut build = encoder.encode_descriptor(
            "meridian_build_info",
            "Always 1; labels carry the version and region.",
            None,
            ConstGauge::new(1i64).metric_type(),
        )?;
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("region", self.region.as_str()),
        ];
        ConstGauge::new(1i64).encode(build.encode_family(&labels)?)?;
        let uptime = encoder.encode_descriptor(
            "meridian_uptime_seconds",
            "Seconds since the node started.",
            None,
            ConstGauge::new(0f64).metric_type(),
        )?;
        ConstGauge::new(self.started.elapsed().as_secs_f64()).encode(uptime)?;
        let refused = ConstCounter::new(self.unauthorized.load(Ordering::Relaxed));
        let family = encoder.encode_descriptor(
            "meridian_admin_unauthorized",
            "Admin requests refused for a missing or wrong token.",
            None,
            refused.metric_type(),
        )?;
        refused.encode(family)
    }
}

/// Every layer's collector, registered once at start.
pub fn registry(node: &Node, unauthorized: Arc<AtomicU64>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(NodeMetrics {
        region: node.region.clone(),
        started: node.started,
        unauthorized,
    }));
    r.register_collector(Box::new(meridian_wan::WanMetrics::new(
        node.mesh.clone(),
        node.links.clone(),
    )));
    r.register_collector(Box::new(meridian_repl::ReplMetrics::new(
        node.region.clone(),
        node.repl.clone(),
    )));
    r.register_collector(Box::new(meridian_store::StoreMetrics::new(
        node.db.clone(),
        node.region.clone(),
    )));
    r.register_collector(Box::new(meridian_tables::TablesMetrics::new(
        node.resp.modes.clone(),
    )));
    r.register_collector(Box::new(meridian_resp::RespMetrics::new(
        node.resp.stats.clone(),
    )));
    if let Some(edge) = &node.edge {
        r.register_collector(Box::new(meridian_route::RouteMetrics::new(edge.clone())));
    }
    r
}
