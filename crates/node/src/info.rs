//! What the Redis endpoint's `INFO` shows about the cluster: the node's
//! links and replication state in Redis's `name:value` lines.

use meridian_core::RegionName;
use meridian_repl::ReplHandle;
use meridian_store::db::Db;
use meridian_wan::PeerMesh;

/// The node's view, for `INFO replication` and `INFO memory`.
pub struct NodeInfo {
    /// This region.
    pub region: RegionName,
    /// Links.
    pub mesh: PeerMesh,
    /// Replication status.
    pub repl: ReplHandle,
    /// Lag histograms.
    pub db: Db,
}

impl meridian_resp::ClusterInfo for NodeInfo {
    fn replication(&self) -> Vec<(String, String)> {
        let links = self.mesh.status();
        let repl = self.repl.status();
        let lag = crate::lag::lag_by_origin(&self.db);
        let ms = |q: Option<f64>| q.map_or("-".to_string(), |ms| format!("{ms:.1}"));
        let mut out = vec![
            ("regions".to_string(), (links.len() + 1).to_string()),
            (
                "connected_regions".to_string(),
                links
                    .iter()
                    .filter(|l| l.outbound_up && l.inbound_up)
                    .count()
                    .to_string(),
            ),
            ("applied".to_string(), self.db.applied().to_token()),
        ];
        for (i, link) in links.iter().enumerate() {
            let peer = repl.peers.get(&link.region);
            let l = lag.get(link.region.as_str());
            let (p50, p99) = (ms(l.and_then(|l| l.p50_ms)), ms(l.and_then(|l| l.p99_ms)));
            out.push((
                format!("region{i}"),
                format!(
                    "name={},link={},rtt_ms={},acked_seq={},pending_ops={},pending_bytes={},lag_from_p50_ms={p50},lag_from_p99_ms={p99}",
                    link.region,
                    if link.outbound_up && link.inbound_up { "up" } else { "down" },
                    link.rtt_ms.map_or("-".to_string(), |r| format!("{r:.1}")),
                    peer.map_or(0, |p| p.acked.get(&self.region)),
                    peer.map_or(0, |p| p.pending_operations),
                    peer.map_or(0, |p| p.pending_bytes),
                ),
            ));
        }
        out
    }

    fn memory(&self) -> Vec<(String, String)> {
        let rss = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        vec![
            ("used_memory".to_string(), rss.to_string()),
            ("used_memory_rss".to_string(), rss.to_string()),
            ("maxmemory".to_string(), "0".to_string()),
        ]
    }
}
