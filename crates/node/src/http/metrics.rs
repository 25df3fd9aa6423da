//! `GET /metrics`: Prometheus text, rendered at scrape time from the
//! layers' own counters and snapshots.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::status::node_status;
use super::AdminState;
use crate::prom::{Kind, PromText};
use crate::state::Node;

/// `GET /metrics`.
pub async fn metrics(State(s): State<AdminState>) -> Response {
    let node = s.node();
    let region = node.region.as_str();
    let status = node_status(node);
    let mut p = PromText::default();
    p.family(
        "meridian_build_info",
        Kind::Gauge,
        "Always 1; labels carry the version and region.",
    );
    p.sample(
        "meridian_build_info",
        &[("version", &status.version), ("region", region)],
        1.0,
    );
    p.family(
        "meridian_uptime_seconds",
        Kind::Gauge,
        "Seconds since the node started.",
    );
    p.sample("meridian_uptime_seconds", &[], status.uptime_s);

    p.family(
        "meridian_peer_link_up",
        Kind::Gauge,
        "1 while the authenticated connection to or from the peer is alive.",
    );
    for peer in &status.peers {
        let r = peer.link.region.as_str();
        let out = f64::from(u8::from(peer.link.outbound_up));
        let inb = f64::from(u8::from(peer.link.inbound_up));
        p.sample(
            "meridian_peer_link_up",
            &[("peer", r), ("direction", "outbound")],
            out,
        );
        p.sample(
            "meridian_peer_link_up",
            &[("peer", r), ("direction", "inbound")],
            inb,
        );
    }
    p.family(
        "meridian_peer_link_rtt_seconds",
        Kind::Gauge,
        "Last heartbeat round-trip time to the peer.",
    );
    for peer in &status.peers {
        if let Some(rtt) = peer.link.rtt_ms {
            p.sample(
                "meridian_peer_link_rtt_seconds",
                &[("peer", peer.link.region.as_str())],
                rtt / 1000.0,
            );
        }
    }
    p.family(
        "meridian_peer_connects_total",
        Kind::Counter,
        "Successful authenticated connects to the peer.",
    );
    for peer in &status.peers {
        let r = peer.link.region.as_str();
        p.sample(
            "meridian_peer_connects_total",
            &[("peer", r)],
            peer.link.connects_total as f64,
        );
    }
    p.family(
        "meridian_peer_auth_failures_total",
        Kind::Counter,
        "Peer connections refused for bad credentials.",
    );
    p.sample(
        "meridian_peer_auth_failures_total",
        &[],
        node.mesh.auth_failures() as f64,
    );
    p.family(
        "meridian_admin_unauthorized_total",
        Kind::Counter,
        "Admin requests refused for a missing or wrong token.",
    );
    p.sample(
        "meridian_admin_unauthorized_total",
        &[],
        s.unauthorized.load(Ordering::Relaxed) as f64,
    );

    let emulated: Vec<_> = status
        .peers
        .iter()
        .filter_map(|p| p.emulated.as_ref().map(|e| (p.link.region.as_str(), e)))
        .collect();
    p.family(
        "meridian_wan_link_partitioned",
        Kind::Gauge,
        "1 while the emulated link to the peer is cut.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_partitioned",
            &[("peer", r)],
            f64::from(u8::from(e.partitioned)),
        );
    }
    p.family(
        "meridian_wan_link_one_way_delay_seconds",
        Kind::Gauge,
        "Emulated one-way delay to the peer.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_one_way_delay_seconds",
            &[("peer", r)],
            e.figures.rtt_ms / 2000.0,
        );
    }
    p.family(
        "meridian_wan_link_bytes_total",
        Kind::Counter,
        "Bytes carried by the emulated link on connections this node opened.",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_bytes_total",
            &[("peer", r), ("direction", "outbound")],
            e.stats.bytes_out as f64,
        );
        p.sample(
            "meridian_wan_link_bytes_total",
            &[("peer", r), ("direction", "inbound")],
            e.stats.bytes_in as f64,
        );
    }
    p.family(
        "meridian_wan_link_connections_refused_total",
        Kind::Counter,
        "Connections the emulated link refused (partitioned or target unreachable).",
    );
    for (r, e) in &emulated {
        p.sample(
            "meridian_wan_link_connections_refused_total",
            &[("peer", r)],
            e.stats.connections_refused as f64,
        );
    }
    replication_metrics(&mut p, node);
    endpoint_metrics(&mut p, node);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        p.finish(),
    )
        .into_response()
}

/// One unlabelled counter family.
fn counter(p: &mut PromText, name: &str, help: &str, v: u64) {
    p.family(name, Kind::Counter, help);
    p.sample(name, &[], v as f64);
}

/// The Redis endpoint's counters, its requests to other regions and the
/// table modes it applies.
fn endpoint_metrics(p: &mut PromText, node: &Node) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &node.resp.stats;
    let counters: [(&str, &str, u64); 6] = [
        (
            "meridian_redis_connections_received_total",
            "Redis connections accepted.",
            stats.connections_received.load(Relaxed),
        ),
        (
            "meridian_redis_connections_rejected_total",
            "Redis connections refused at resp.connections_max.",
            stats.rejected_connections.load(Relaxed),
        ),
        (
            "meridian_redis_commands_total",
            "Redis commands run.",
            stats.commands_processed.load(Relaxed),
        ),
        (
            "meridian_redis_error_replies_total",
            "Redis error replies sent.",
            stats.error_replies.load(Relaxed),
        ),
        (
            "meridian_redis_protocol_errors_total",
            "Redis connections closed for a protocol error.",
            stats.protocol_errors.load(Relaxed),
        ),
        (
            "meridian_redis_auth_failures_total",
            "Failed AUTH / HELLO AUTH.",
            stats.auth_failures.load(Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        counter(p, name, help, v);
    }
    p.family(
        "meridian_redis_connections",
        Kind::Gauge,
        "Redis connections open now.",
    );
    p.sample(
        "meridian_redis_connections",
        &[],
        stats.connected.load(Relaxed) as f64,
    );
    for (map, what, help) in [
        (
            &stats.forwarded,
            "forwarded",
            "Commands sent to the region that serves their keys (a single-master home, an allowed region of a pinned table): send to answer.",
        ),
        (
            &stats.commit_points,
            "commit_point",
            "Strong reads' questions to a single-master home for its commit point: send to answer.",
        ),
    ] {
        let map = map.lock().expect("stats lock is never poisoned");
        let seconds = format!("meridian_{what}_request_seconds");
        p.family(&seconds, Kind::Histogram, help);
        for (to, r) in map.iter() {
            let h = r.seconds.snapshot();
            p.histogram(&seconds, &[("to", to.as_str())], &h.buckets, h.sum, h.count);
        }
        let total = format!("meridian_{what}_requests_total");
        p.family(
            &total,
            Kind::Counter,
            "Requests by outcome: answered, not_sent (link down: nothing ran), no_answer (timed out: a write may have run).",
        );
        for (to, r) in map.iter() {
            for (outcome, n) in [
                ("answered", r.answered),
                ("not_sent", r.not_sent),
                ("no_answer", r.no_answer),
            ] {
                p.sample(&total, &[("to", to.as_str()), ("outcome", outcome)], n as f64);
            }
        }
    }
    p.family(
        "meridian_table_epoch",
        Kind::Gauge,
        "Epoch of each table's mode as this region applies it (0: as configured; +1 per run-time change).",
    );
    let view = node.resp.modes.view();
    for t in &view.topology.tables {
        p.sample(
            "meridian_table_epoch",
            &[("table", &t.name)],
            view.epoch(&t.name) as f64,
        );
    }
}

fn replication_metrics(p: &mut PromText, node: &Node) {
    let me = node.region.as_str();
    let stats = node.db.stats();
    p.family(
        "meridian_replication_latency_seconds",
        Kind::Histogram,
        "Apply time at the destination minus commit time at the origin.",
    );
    for (origin, h) in stats
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
    {
        let s = h.snapshot();
        p.histogram(
            "meridian_replication_latency_seconds",
            &[("from", origin.as_str()), ("to", me)],
            &s.buckets,
            s.sum,
            s.count,
        );
    }
    p.family(
        "meridian_store_commit_seconds",
        Kind::Histogram,
        "Time to merge and durably commit one batch (one fsync under the fsync policy).",
    );
    let c = stats.commit_seconds.snapshot();
    p.histogram(
        "meridian_store_commit_seconds",
        &[],
        &c.buckets,
        c.sum,
        c.count,
    );
    let repl = node.repl.status();
    p.family(
        "meridian_replication_pending_operations",
        Kind::Gauge,
        "Writes of this region the destination has not acknowledged.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_pending_operations",
            &[("from", me), ("to", peer.as_str())],
            r.pending_operations as f64,
        );
    }
    p.family(
        "meridian_replication_pending_bytes",
        Kind::Gauge,
        "Approximate bytes of those writes.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_pending_bytes",
            &[("from", me), ("to", peer.as_str())],
            r.pending_bytes as f64,
        );
    }
    p.family(
        "meridian_replication_failed_operations_total",
        Kind::Counter,
        "Writes whose delivery failed (lost link, stalled acknowledgements, gaps) and were sent again.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_failed_operations_total",
            &[("from", me), ("to", peer.as_str())],
            r.counters.retransmitted as f64,
        );
    }
    p.family(
        "meridian_replication_relayed_operations_total",
        Kind::Counter,
        "Other regions' writes this region relayed to the peer.",
    );
    for (peer, r) in &repl.peers {
        p.sample(
            "meridian_replication_relayed_operations_total",
            &[("via", me), ("to", peer.as_str())],
            r.counters.relayed as f64,
        );
    }
    p.family(
        "meridian_replication_applied_sequence",
        Kind::Gauge,
        "Version vector: highest contiguous sequence applied per origin.",
    );
    for (origin, seq) in node.db.applied().iter() {
        p.sample(
            "meridian_replication_applied_sequence",
            &[("origin", origin.as_str())],
            seq as f64,
        );
    }
    p.family(
        "meridian_conflicts_total",
        Kind::Counter,
        "Concurrent writes overwritten by another, detected in this region.",
    );
    for (table, n) in stats
        .conflicts
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
    {
        p.sample("meridian_conflicts_total", &[("table", table)], *n as f64);
    }
    use std::sync::atomic::Ordering::Relaxed;
    counter(
        p,
        "meridian_hlc_remote_ahead_total",
        "Remote HLC stamps beyond the max clock offset (counted, not adopted).",
        stats.hlc_remote_ahead.load(Relaxed),
    );
    counter(
        p,
        "meridian_anti_entropy_repaired_keys_total",
        "Keys whose data anti-entropy repaired from a peer (should stay 0 without faults).",
        stats.repaired_keys.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_withheld_states_total",
        "Key states dropped because this region stopped holding their table (made pinned elsewhere at run time).",
        stats.withheld_states.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_withheld_entries_total",
        "Stored log entries rewritten as placeholders for the same reason.",
        stats.withheld_entries.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_purged_keys_total",
        "Expired keys whose data this region dropped (locally, never replicated).",
        stats.purged_keys.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_local_writes_total",
        "Writes accepted in this region.",
        stats.local_writes.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_remote_applied_total",
        "Replicated writes applied here.",
        stats.remote_applied.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_commits_total",
        "Storage commits (one fsync each under the fsync policy).",
        stats.commits.load(Relaxed),
    );
    counter(
        p,
        "meridian_store_commit_failures_total",
        "Storage commits that failed; their writes were refused.",
        stats.commit_failures.load(Relaxed),
    );
    if let Some(log) = node.db.backend().log_stats() {
        counter(
            p,
            "meridian_store_logged_commits_total",
            "Commits made durable by one fdatasync of their write-ahead log record.",
            log.logged_commits,
        );
        p.family(
            "meridian_store_checkpoint_seconds",
            Kind::Histogram,
            "Checkpoints: the memtable (or a commit holding a value too large to log) made durable in the database file itself, in the background.",
        );
        let c = &log.checkpoint_seconds;
        p.histogram(
            "meridian_store_checkpoint_seconds",
            &[],
            &c.buckets,
            c.sum,
            c.count,
        );
        p.family(
            "meridian_store_wal_bytes",
            Kind::Gauge,
            "Write-ahead log bytes not yet checkpointed (replayed after a crash).",
        );
        p.sample("meridian_store_wal_bytes", &[], log.log_bytes as f64);
        p.family(
            "meridian_store_memtable_bytes",
            Kind::Gauge,
            "Bytes of commits held in memory until their checkpoint writes them to the database file.",
        );
        p.sample(
            "meridian_store_memtable_bytes",
            &[],
            log.memtable_bytes as f64,
        );
    }
}
