//! The catch-up suite: a region partitioned while another keeps writing,
//! then healed: entries applied per second until it has everything.

use std::time::{Duration, Instant};

use anyhow::bail;
use meridian_api::status::NodeStatus;
use serde::Serialize;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::load::LoadSpec;

use super::cluster::{drained, load_all, set_partition, statuses};

#[derive(Serialize)]
pub(crate) struct CatchUp {
    pub(crate) partitioned_s: f64,
    pub(crate) backlog_entries: u64,
    /// Heal until the first missing entry is applied (link redial).
    pub(crate) reconnect_s: f64,
    /// First to last missing entry applied.
    pub(crate) transfer_s: f64,
    /// Backlog over transfer time.
    pub(crate) entries_per_s: f64,
}

/// ap-south partitioned from both others while us-east writes, then healed:
/// how fast it catches up.
pub(crate) async fn catch_up(
    file: &ClusterFile,
    client: &AdminClient,
    secs: u64,
) -> anyhow::Result<CatchUp> {
    for other in ["us-east", "eu-west"] {
        set_partition(file, client, "ap-south", other, true).await?;
    }
    let spec = LoadSpec {
        rate_per_s: 5000,
        duration_ms: secs * 1000,
        value_bytes: 100,
        keys: 1_000_000,
        key_prefix: "catchup:".into(),
        table: meridian_api::data::DEFAULT_TABLE.into(),
    };
    let before = statuses(file).await?["ap-south"]
        .replication
        .as_ref()
        .and_then(|r| r.applied.get("us-east").copied())
        .unwrap_or(0);
    load_all(file, client, vec![("us-east".into(), spec)]).await?;
    let target = statuses(file).await?["us-east"]
        .replication
        .as_ref()
        .and_then(|r| r.applied.get("us-east").copied())
        .unwrap_or(0);
    for other in ["us-east", "eu-west"] {
        set_partition(file, client, "ap-south", other, false).await?;
    }
    let start = Instant::now();
    let url = format!("{}/status", file.regions["ap-south"].admin);
    let plain = AdminClient::new(None);
    let mut first: Option<Instant> = None;
    loop {
        let s: NodeStatus = plain.get(&url).await?;
        let have = s
            .replication
            .as_ref()
            .and_then(|r| r.applied.get("us-east").copied())
            .unwrap_or(0);
        if have > before && first.is_none() {
            first = Some(Instant::now());
        }
        if have >= target {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("ap-south did not catch up within 10 minutes ({have} of {target})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    let first = first.unwrap_or(done);
    drained(file, Duration::from_secs(120)).await?;
    let backlog = target - before;
    // The poll is every 20 ms: the transfer time is known to ±20 ms.
    let transfer_s = done.duration_since(first).as_secs_f64().max(0.02);
    Ok(CatchUp {
        partitioned_s: secs as f64,
        backlog_entries: backlog,
        reconnect_s: first.duration_since(start).as_secs_f64(),
        transfer_s,
        entries_per_s: backlog as f64 / transfer_s,
    })
}
