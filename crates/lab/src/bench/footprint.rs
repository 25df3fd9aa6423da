//! The footprint suite: resident memory and disk per key after loading keys
//! into a freshly restarted us-east.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use std::collections::BTreeMap;

use anyhow::Context;

use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::load::LoadSpec;

use super::cluster::{drained, load_all};

#[derive(Serialize)]
pub(crate) struct Footprint {
    pub(crate) keys: u64,
    pub(crate) value_bytes: usize,
    pub(crate) rss_before_mb: f64,
    pub(crate) rss_after_mb: f64,
    pub(crate) rss_bytes_per_key: f64,
    pub(crate) disk_mb: f64,
    pub(crate) disk_bytes_per_key: f64,
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(f64::NAN)
}

/// Loads `keys` keys of 100 B into a freshly restarted us-east and measures
/// its memory and disk per key.
pub(crate) async fn footprint(
    file: &ClusterFile,
    client: &AdminClient,
    dir: &Path,
    keys: u64,
) -> anyhow::Result<Footprint> {
    // A fresh us-east process, so the baseline is the node with its data
    // on disk, not whatever the earlier suites left in its memory (the
    // allocator's caches, pages awaiting a checkpoint): measured after
    // those, the per-key figure once came out negative.
    for command in [
        crate::faults::Fault::Kill {
            region: "us-east".into(),
        },
        crate::faults::Fault::Restart {
            region: "us-east".into(),
        },
    ] {
        crate::faults::apply(dir, command).await?;
    }
    super::scale::wait_serving(file, "us-east", Duration::from_secs(120)).await?;
    drained(file, Duration::from_secs(600)).await?;
    let pid = ClusterFile::load(dir)?.regions["us-east"]
        .pid
        .context("us-east has no pid")?;
    let db = dir
        .join("data/us-east")
        .join(meridian_api::cluster::DB_FILE);
    let rss_before = rss_mb(pid);
    // Asked at 100k/s for as long as 50k/s needs to reach every key: a
    // slower machine still writes them all (the surplus overwrites).
    let spec = LoadSpec {
        rate_per_s: 100_000,
        duration_ms: keys * 1000 / 50_000,
        value_bytes: 100,
        keys,
        key_prefix: "fp:".into(),
        table: meridian_api::data::DEFAULT_TABLE.into(),
    };
    let loads = load_all(file, client, vec![("us-east".into(), spec)]).await?;
    drained(file, Duration::from_secs(600)).await?;
    let written = loads[0].1.written.min(keys).max(1);
    let (rss_after, disk_after) = (rss_mb(pid), file_mb(&db));
    // redb grows its file in steps: divide the file by every key it holds.
    // Hashing every key takes seconds in a debug build on a busy machine.
    let digests: BTreeMap<String, meridian_api::data::TableDigest> = AdminClient::new(None)
        .with_timeout(Duration::from_secs(60))
        .get(&format!("{}/digest", file.regions["us-east"].admin))
        .await?;
    let all_keys = digests.values().map(|d| d.keys).sum::<u64>().max(1);
    Ok(Footprint {
        keys: written,
        value_bytes: 100,
        rss_before_mb: rss_before,
        rss_after_mb: rss_after,
        rss_bytes_per_key: (rss_after - rss_before) * 1_048_576.0 / written as f64,
        disk_mb: disk_after,
        disk_bytes_per_key: disk_after * 1_048_576.0 / all_keys as f64,
    })
}
