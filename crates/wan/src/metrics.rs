//! The inter-region transport's Prometheus families: peer links as the mesh
//! sees them, and the emulated links' conditions and traffic.
//!
//! Entry type: [`WanMetrics`], a `prometheus_client` collector the node
//! registers once with its [`PeerMesh`] and its emulated links'
//! [`LinkControl`]s. Everything is read at scrape time from
//! [`PeerMesh::status`], [`LinkControl::state`] and [`LinkControl::stats`]:
//! no figure is copied. Replication's families are the replication crate's.

use std::collections::BTreeMap;
use std::fmt;

use meridian_core::{LinkFigures, RegionName};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::link::LinkControl;
use crate::mesh::{PeerLinkStatus, PeerMesh};

/// Collector of the transport families, one series per peer (and
/// direction where the family has one):
/// `meridian_peer_link_up` (gauge, `peer`, `direction`),
/// `meridian_peer_link_rtt_seconds` (gauge, `peer`, once measured),
/// `meridian_peer_connects_total` (counter, `peer`),
/// `meridian_peer_auth_failures_total` (counter),
/// and for emulated links only
/// `meridian_wan_link_partitioned` (gauge, `peer`),
/// `meridian_wan_link_one_way_delay_seconds` (gauge, `peer`),
/// `meridian_wan_link_bytes_total` (counter, `peer`, `direction`) and
/// `meridian_wan_link_connections_refused_total` (counter, `peer`).
#[derive(Clone)]
pub struct WanMetrics {
    mesh: PeerMesh,
    /// Emulated links by peer; empty when emulation is off.
    links: BTreeMap<RegionName, LinkControl>,
}

impl WanMetrics {
    /// A collector for `mesh` and the emulated links to its peers (none
    /// when emulation is off).
    pub fn new(mesh: PeerMesh, links: impl IntoIterator<Item = (RegionName, LinkControl)>) -> Self {
        WanMetrics {
            mesh,
            links: links.into_iter().collect(),
        }
    }
}

impl fmt::Debug for WanMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WanMetrics")
            .field("links", &self.links.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Labels of one series.
type Labels = Vec<(&'static str, String)>;

/// One emulated link at scrape time, as the admin API reports it.
struct EmulatedLink {
    peer: String,
    partitioned: bool,
    figures: LinkFigures,
    bytes_out: u64,
    bytes_in: u64,
    connections_refused: u64,
}

impl Collector for WanMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let peers = self.mesh.status();
        encode_peer_links(&mut encoder, &peers, self.mesh.auth_failures())?;
        encode_emulated_links(&mut encoder, &self.emulated(&peers))
    }
}

impl WanMetrics {
    /// The emulated links of `peers`, in the mesh's order.
    fn emulated(&self, peers: &[PeerLinkStatus]) -> Vec<EmulatedLink> {
        peers
            .iter()
            .filter_map(|link| {
                let control = self.links.get(&link.region)?;
                let state = control.state();
                let stats = control.stats();
                Some(EmulatedLink {
                    peer: link.region.to_string(),
                    partitioned: state.partitioned,
                    figures: LinkFigures::from(state.outbound),
                    bytes_out: stats.bytes_out,
                    bytes_in: stats.bytes_in,
                    connections_refused: stats.connections_refused,
                })
            })
            .collect()
    }
}

/// The mesh's families.
fn encode_peer_links(
    encoder: &mut DescriptorEncoder,
    peers: &[PeerLinkStatus],
    auth_failures: u64,
) -> Result<(), fmt::Error> {
    let peer = |p: &PeerLinkStatus| peer_labels(p.region.as_str());
    let directed = |p: &PeerLinkStatus, direction| directed_labels(p.region.as_str(), direction);
    family(
        encoder,
        "meridian_peer_link_up",
        "1 while the authenticated connection to or from the peer is alive.",
        MetricType::Gauge,
        peers.iter().flat_map(|p| {
            [
                (directed(p, "outbound"), u64::from(p.outbound_up)),
                (directed(p, "inbound"), u64::from(p.inbound_up)),
            ]
        }),
    )?;
    family(
        encoder,
        "meridian_peer_link_rtt_seconds",
        "Last heartbeat round-trip time to the peer.",
        MetricType::Gauge,
        peers
            .iter()
            .filter_map(|p| p.rtt_ms.map(|rtt| (peer(p), rtt / 1000.0))),
    )?;
    family(
        encoder,
        "meridian_peer_connects",
        "Successful authenticated connects to the peer.",
        MetricType::Counter,
        peers.iter().map(|p| (peer(p), p.connects_total)),
    )?;
    encoder
        .encode_descriptor(
            "meridian_peer_auth_failures",
            "Peer connections refused for bad credentials.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&auth_failures, None)
}

/// The emulated links' families.
fn encode_emulated_links(
    encoder: &mut DescriptorEncoder,
    links: &[EmulatedLink],
) -> Result<(), fmt::Error> {
    let peer = |e: &EmulatedLink| -> Labels { vec![("peer", e.peer.clone())] };
    let directed = |e: &EmulatedLink, direction: &str| -> Labels {
        vec![
            ("peer", e.peer.clone()),
            ("direction", direction.to_string()),
        ]
    };
    family(
        encoder,
        "meridian_wan_link_partitioned",
        "1 while the emulated link to the peer is cut.",
        MetricType::Gauge,
        links.iter().map(|e| (peer(e), u64::from(e.partitioned))),
    )?;
    family(
        encoder,
        "meridian_wan_link_one_way_delay_seconds",
        "Emulated one-way delay to the peer.",
        MetricType::Gauge,
        links.iter().map(|e| (peer(e), e.figures.rtt_ms / 2000.0)),
    )?;
    family(
        encoder,
        "meridian_wan_link_bytes",
        "Bytes carried by the emulated link on connections this node opened.",
        MetricType::Counter,
        links.iter().flat_map(|e| {
            [
                (directed(e, "outbound"), e.bytes_out),
                (directed(e, "inbound"), e.bytes_in),
            ]
        }),
    )?;
    family(
        encoder,
        "meridian_wan_link_connections_refused",
        "Connections the emulated link refused (partitioned or target unreachable).",
        MetricType::Counter,
        links.iter().map(|e| (peer(e), e.connections_refused)),
    )
}

/// `{peer}` of a per-peer series.
fn peer_labels(peer: &str) -> Labels {
    vec![("peer", peer.to_string())]
}

/// `{peer, direction}` of a per-direction series.
fn directed_labels(peer: &str, direction: &'static str) -> Labels {
    vec![
        ("peer", peer.to_string()),
        ("direction", direction.to_string()),
    ]
}

/// One family: its descriptor, then a sample per `(labels, value)`. Counter
/// names come without `_total`; the encoder appends it to the samples.
fn family<V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        let mut sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PeerIdentity;
    use crate::mesh::PeerTarget;
    use meridian_core::LinkConditions;
    use prometheus_client::registry::Registry;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn families_carry_admin_names_labels_and_values() {
        let shutdown = CancellationToken::new();
        let me = RegionName::new("us-east").unwrap();
        let peer = RegionName::new("eu-west").unwrap();
        // A peer nobody answers for: its link stays down.
        let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dial = nobody.local_addr().unwrap();
        drop(nobody);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mesh, _inbound) = PeerMesh::start(
            PeerIdentity::new("test", me, b"0123456789abcdef"),
            vec![PeerTarget {
                region: peer.clone(),
                dial,
            }],
            listener,
            shutdown.clone(),
        );
        let control = LinkControl::symmetric(LinkConditions::from_rtt_ms(80.0));
        control.set_partitioned(true);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(WanMetrics::new(mesh, [(peer, control)])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        shutdown.cancel();
        for line in [
            "# HELP meridian_peer_link_up 1 while the authenticated connection to or from the peer is alive.",
            "# TYPE meridian_peer_link_up gauge",
            "meridian_peer_link_up{peer=\"eu-west\",direction=\"outbound\"} 0",
            "meridian_peer_link_up{peer=\"eu-west\",direction=\"inbound\"} 0",
            "# TYPE meridian_peer_link_rtt_seconds gauge",
            "meridian_peer_connects_total{peer=\"eu-west\"} 0",
            "meridian_peer_auth_failures_total 0",
            "meridian_wan_link_partitioned{peer=\"eu-west\"} 1",
            "meridian_wan_link_one_way_delay_seconds{peer=\"eu-west\"} 0.04",
            "meridian_wan_link_bytes_total{peer=\"eu-west\",direction=\"outbound\"} 0",
            "meridian_wan_link_bytes_total{peer=\"eu-west\",direction=\"inbound\"} 0",
            "meridian_wan_link_connections_refused_total{peer=\"eu-west\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(
            !text.contains("meridian_peer_link_rtt_seconds{"),
            "no rtt before a heartbeat:\n{text}"
        );
    }
}
