//! `GET /health` and `GET /status`: the node's view of itself, its links
//! and replication, converted from the layers' own types into
//! [`meridian_api::status`]'s.

use axum::extract::State;
use axum::Json;
use meridian_api::status::{
    EmulatedLink, Health, LinkCounters, NodeStatus, PeerLink, PeerReplication, PeerReport,
    ReplicationReport, ShippingCounters,
};
use meridian_core::LinkFigures;

use super::AdminState;
use crate::state::Node;

/// `GET /health`.
pub async fn health(State(s): State<AdminState>) -> Json<Health> {
    let peers = s.node().mesh.status();
    // A region serves its own clients whether or not peers are reachable
    // (multi-master), so readiness does not wait for the mesh.
    Json(Health {
        status: "ok".into(),
        ready: true,
        region: s.node().region.clone(),
        peers_up: peers.iter().filter(|p| p.outbound_up).count(),
        peers_total: peers.len(),
    })
}

/// The node's status now.
pub(crate) fn node_status(node: &Node) -> NodeStatus {
    NodeStatus {
        cluster: node.topology.cluster_name.clone(),
        region: node.region.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: node.started.elapsed().as_secs_f64(),
        emulate_wan: node.topology.emulate_wan,
        peers: node
            .mesh
            .status()
            .into_iter()
            .map(|link| {
                let emulated = node.links.get(&link.region).map(|c| {
                    let state = c.state();
                    EmulatedLink {
                        figures: LinkFigures::from(state.outbound),
                        partitioned: state.partitioned,
                        stats: link_counters(c.stats()),
                    }
                });
                PeerReport {
                    link: peer_link(link),
                    emulated,
                }
            })
            .collect(),
        replication: Some(replication_report(node)),
    }
}

fn replication_report(node: &Node) -> ReplicationReport {
    let repl = node.repl.status();
    let lag = crate::lag::lag_by_origin(&node.db);
    ReplicationReport {
        applied: node
            .db
            .applied()
            .iter()
            .map(|(r, s)| (r.to_string(), s))
            .collect(),
        peers: repl
            .peers
            .into_iter()
            .map(|(r, p)| (r.to_string(), peer_replication(p)))
            .collect(),
        lag_from: lag,
    }
}

/// `GET /status`.
pub async fn status(State(s): State<AdminState>) -> Json<NodeStatus> {
    Json(node_status(s.node()))
}

fn peer_link(l: meridian_wan::PeerLinkStatus) -> PeerLink {
    PeerLink {
        region: l.region,
        outbound_up: l.outbound_up,
        inbound_up: l.inbound_up,
        rtt_ms: l.rtt_ms,
        connects_total: l.connects_total,
        last_error: l.last_error,
    }
}

fn link_counters(s: meridian_wan::LinkStats) -> LinkCounters {
    LinkCounters {
        bytes_out: s.bytes_out,
        bytes_in: s.bytes_in,
        connections_open: s.connections_open,
        connections_total: s.connections_total,
        connections_refused: s.connections_refused,
    }
}

fn peer_replication(p: meridian_repl::runtime::PeerReplication) -> PeerReplication {
    let c = p.counters;
    PeerReplication {
        acked: p.acked,
        pending_operations: p.pending_operations,
        pending_bytes: p.pending_bytes,
        counters: ShippingCounters {
            shipped: c.shipped,
            retransmitted: c.retransmitted,
            failed: c.failed,
            relayed: c.relayed,
        },
    }
}
