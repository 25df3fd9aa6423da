//! Replication's Prometheus families: what each peer still lacks of our
//! writes, and what had to be sent again or relayed.
//!
//! Entry type: [`ReplMetrics`], a `prometheus_client` collector the node
//! registers once. It reads [`ReplHandle::status`] at every scrape, so no
//! figure is copied. Replication latency, applied sequences and conflicts
//! are counted by the store and declared there, not here.

use std::fmt;
use std::sync::Arc;

use meridian_core::RegionName;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::runtime::{PeerReplication, ReplHandle, ReplStatus};

/// Collector of the replication families:
/// `meridian_replication_pending_operations`,
/// `meridian_replication_pending_bytes` (gauges, labels `from`, `to`),
/// `meridian_replication_failed_operations_total` (counter, `from`, `to`)
/// and `meridian_replication_relayed_operations_total` (counter, `via`,
/// `to`), one series per peer.
#[derive(Clone)]
pub struct ReplMetrics {
    /// This region: `from` and `via` of every series.
    region: RegionName,
    /// Where the status comes from at scrape time.
    status: Arc<dyn Fn() -> ReplStatus + Send + Sync>,
}

impl ReplMetrics {
    /// A collector for `region`'s replicator.
    pub fn new(region: RegionName, repl: ReplHandle) -> Self {
        ReplMetrics {
            region,
            status: Arc::new(move || repl.status()),
        }
    }
}

impl fmt::Debug for ReplMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplMetrics")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One per-peer family: its name as exposed (counters without `_total`,
/// which the encoder appends), help, type, the label naming this region,
/// and the figure it reads.
struct PeerFamily {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    own_label: &'static str,
    value: fn(&PeerReplication) -> u64,
}

const PEER_FAMILIES: [PeerFamily; 4] = [
    PeerFamily {
        name: "meridian_replication_pending_operations",
        help: "Writes of this region the destination has not acknowledged.",
        kind: MetricType::Gauge,
        own_label: "from",
        value: |p| p.pending_operations,
    },
    PeerFamily {
        name: "meridian_replication_pending_bytes",
        help: "Approximate bytes of those writes.",
        kind: MetricType::Gauge,
        own_label: "from",
        value: |p| p.pending_bytes,
    },
    PeerFamily {
        name: "meridian_replication_failed_operations",
        help: "Writes whose delivery failed (lost link, stalled acknowledgements, gaps) and were sent again.",
        kind: MetricType::Counter,
        own_label: "from",
        value: |p| p.counters.retransmitted,
    },
    PeerFamily {
        name: "meridian_replication_relayed_operations",
        help: "Other regions' writes this region relayed to the peer.",
        kind: MetricType::Counter,
        own_label: "via",
        value: |p| p.counters.relayed,
    },
];

impl Collector for ReplMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let status = (self.status)();
        let me = self.region.as_str();
        for family in &PEER_FAMILIES {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (peer, repl) in &status.peers {
                let labels = [(family.own_label, me), ("to", peer.as_str())];
                let mut series = metric.encode_family(&labels)?;
                let value = (family.value)(repl);
                match family.kind {
                    MetricType::Counter => {
                        series.encode_counter::<NoLabelSet, _, u64>(&value, None)?
                    }
                    _ => series.encode_gauge(&value)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::PeerCounters;
    use prometheus_client::registry::Registry;

    #[test]
    fn families_carry_admin_names_labels_and_values() {
        let peer = PeerReplication {
            pending_operations: 3,
            pending_bytes: 120,
            counters: PeerCounters {
                retransmitted: 2,
                relayed: 5,
                ..PeerCounters::default()
            },
            ..PeerReplication::default()
        };
        let mut status = ReplStatus::default();
        status
            .peers
            .insert(RegionName::new("eu-west").unwrap(), peer);
        let metrics = ReplMetrics {
            region: RegionName::new("us-east").unwrap(),
            status: Arc::new(move || status.clone()),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "# HELP meridian_replication_pending_operations Writes of this region the destination has not acknowledged.",
            "# TYPE meridian_replication_pending_operations gauge",
            "meridian_replication_pending_operations{from=\"us-east\",to=\"eu-west\"} 3",
            "meridian_replication_pending_bytes{from=\"us-east\",to=\"eu-west\"} 120",
            "# TYPE meridian_replication_failed_operations counter",
            "meridian_replication_failed_operations_total{from=\"us-east\",to=\"eu-west\"} 2",
            "meridian_replication_relayed_operations_total{via=\"us-east\",to=\"eu-west\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
