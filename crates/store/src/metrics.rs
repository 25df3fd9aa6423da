//! [`StoreMetrics`]: the store's Prometheus families, declared where their
//! figures are counted (STYLE §16).
//!
//! A `prometheus_client` [`Collector`] over a [`Db`] handle: at each scrape
//! it reads the writer's live counters ([`Db::stats`]), the applied vector
//! ([`Db::applied`]) and the backend's write-ahead log figures
//! ([`crate::Backend::log_stats`]), so no figure is copied. Names, help
//! texts and labels are the ones `/metrics` has always shown; counters are
//! declared without their `_total`, which the encoder appends to the
//! sample names. Does not own the registry or the HTTP endpoint: the node
//! registers the collector and serves the text.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use meridian_core::RegionName;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::histogram::HistogramSnapshot;
use crate::stats::DbStats;
use crate::writer::Db;

/// The store's families for one node: replication latency per origin,
/// commit times and counts, the applied vector, conflicts, and the
/// write-ahead log's figures (for backends that keep one).
#[derive(Clone)]
pub struct StoreMetrics {
    db: Db,
    /// This node's region: the `to` label of replication latency.
    region: RegionName,
}

impl fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One of the writer's plain counters, as a family.
struct CounterFamily {
    /// Without `_total`: the encoder appends it.
    name: &'static str,
    help: &'static str,
    read: fn(&DbStats) -> &AtomicU64,
}

/// The writer's plain counters.
const COUNTERS: [CounterFamily; 9] = [
    CounterFamily {
        name: "meridian_hlc_remote_ahead",
        help: "Remote HLC stamps beyond the max clock offset (counted, not adopted).",
        read: |s| &s.hlc_remote_ahead,
    },
    CounterFamily {
        name: "meridian_anti_entropy_repaired_keys",
        help: "Keys whose data anti-entropy repaired from a peer (should stay 0 without faults).",
        read: |s| &s.repaired_keys,
    },
    CounterFamily {
        name: "meridian_store_withheld_states",
        help: "Key states dropped because this region stopped holding their table (made pinned elsewhere at run time).",
        read: |s| &s.withheld_states,
    },
    CounterFamily {
        name: "meridian_store_withheld_entries",
        help: "Stored log entries rewritten as placeholders for the same reason.",
        read: |s| &s.withheld_entries,
    },
    CounterFamily {
        name: "meridian_store_purged_keys",
        help: "Expired keys whose data this region dropped (locally, never replicated).",
        read: |s| &s.purged_keys,
    },
    CounterFamily {
        name: "meridian_store_local_writes",
        help: "Writes accepted in this region.",
        read: |s| &s.local_writes,
    },
    CounterFamily {
        name: "meridian_store_remote_applied",
        help: "Replicated writes applied here.",
        read: |s| &s.remote_applied,
    },
    CounterFamily {
        name: "meridian_store_commits",
        help: "Storage commits (one fsync each under the fsync policy).",
        read: |s| &s.commits,
    },
    CounterFamily {
        name: "meridian_store_commit_failures",
        help: "Storage commits that failed; their writes were refused.",
        read: |s| &s.commit_failures,
    },
];

impl StoreMetrics {
    /// The collector over `db`, whose node is in `region`.
    pub fn new(db: Db, region: RegionName) -> Self {
        StoreMetrics { db, region }
    }

    fn encode_latencies(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            "meridian_replication_latency_seconds",
            "Apply time at the destination minus commit time at the origin.",
            None,
            MetricType::Histogram,
        )?;
        let latency = self
            .db
            .stats()
            .replication_latency
            .lock()
            .expect("stats lock is never poisoned");
        for (origin, h) in latency.iter() {
            let labels = [("from", origin.as_str()), ("to", self.region.as_str())];
            histogram(family.encode_family(&labels)?, &h.snapshot())?;
        }
        Ok(())
    }

    fn encode_vv_and_conflicts(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            "meridian_replication_applied_sequence",
            "Version vector: highest contiguous sequence applied per origin.",
            None,
            MetricType::Gauge,
        )?;
        for (origin, seq) in self.db.applied().iter() {
            let labels = [("origin", origin.as_str())];
            ConstGauge::new(seq).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "meridian_conflicts",
            "Concurrent writes overwritten by another, detected in this region.",
            None,
            MetricType::Counter,
        )?;
        let conflicts = self
            .db
            .stats()
            .conflicts
            .lock()
            .expect("stats lock is never poisoned");
        for (table, n) in conflicts.iter() {
            let labels = [("table", table.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_log(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let Some(log) = self.db.backend().log_stats() else {
            return Ok(());
        };
        counter(
            encoder,
            "meridian_store_logged_commits",
            "Commits made durable by one fdatasync of their write-ahead log record.",
            log.logged_commits,
        )?;
        histogram(
            encoder.encode_descriptor(
                "meridian_store_checkpoint_seconds",
                "Checkpoints: the memtable (or a commit holding a value too large to log) made durable in the database file itself, in the background.",
                None,
                MetricType::Histogram,
            )?,
            &log.checkpoint_seconds,
        )?;
        gauge(
            encoder,
            "meridian_store_wal_bytes",
            "Write-ahead log bytes not yet checkpointed (replayed after a crash).",
            log.log_bytes,
        )?;
        gauge(
            encoder,
            "meridian_store_memtable_bytes",
            "Bytes of commits held in memory until their checkpoint writes them to the database file.",
            log.memtable_bytes,
        )
    }
}

impl Collector for StoreMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = self.db.stats();
        self.encode_latencies(&mut encoder)?;
        histogram(
            encoder.encode_descriptor(
                "meridian_store_commit_seconds",
                "Time to merge and durably commit one batch (one fsync under the fsync policy).",
                None,
                MetricType::Histogram,
            )?,
            &stats.commit_seconds.snapshot(),
        )?;
        self.encode_vv_and_conflicts(&mut encoder)?;
        for c in &COUNTERS {
            let value = (c.read)(stats).load(Ordering::Relaxed);
            counter(&mut encoder, c.name, c.help, value)?;
        }
        self.encode_log(&mut encoder)
    }
}

/// One unlabelled counter family.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(family)
}

/// One unlabelled gauge family.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

/// One histogram series from a snapshot. The snapshot's buckets are
/// cumulative (as Prometheus exposes them); the encoder takes per-bucket
/// counts and sums them itself, so they are handed over as differences.
fn histogram(mut series: MetricEncoder, snapshot: &HistogramSnapshot) -> fmt::Result {
    series.encode_histogram::<NoLabelSet>(
        snapshot.sum,
        snapshot.count,
        &per_bucket(&snapshot.buckets),
        None,
    )
}

/// Cumulative `(upper bound, count)` buckets as per-bucket counts.
fn per_bucket(cumulative: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut below = 0;
    cumulative
        .iter()
        .map(|&(bound, total)| {
            let here = total.saturating_sub(below);
            below += here;
            (bound, here)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use meridian_core::{Hlc, LogEntry, Op, SystemClock};
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::engine::DbConfig;
    use crate::mem::MemStore;
    use crate::Durability;

    #[test]
    fn per_bucket_undoes_cumulative_counts() {
        let cumulative = [(0.1, 2), (0.5, 2), (1.0, 5), (f64::INFINITY, 6)];
        assert_eq!(
            per_bucket(&cumulative),
            [(0.1, 2), (0.5, 0), (1.0, 3), (f64::INFINITY, 1)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn exposes_the_store_families() {
        let region = RegionName::new("us-east").unwrap();
        let config = DbConfig {
            region: region.clone(),
            durability: Durability::None,
            max_offset_ms: 500,
        };
        let db = Db::start(Arc::new(MemStore::new()), config, SystemClock).unwrap();
        for key in [b"a", b"b", b"c"] {
            let put = Box::new(|_: Option<&_>, _| {
                Ok(Some(Op::Put {
                    value: b"v".to_vec(),
                    expires_at_ms: None,
                }))
            });
            db.write("t", key, put).await.unwrap();
        }
        let eu = RegionName::new("eu-west").unwrap();
        let remote = LogEntry {
            origin: eu.clone(),
            seq: 1,
            hlc: Hlc::new(1_000, 0),
            table: "t".into(),
            key: b"z".to_vec(),
            observed: None,
            op: Op::Put {
                value: b"w".to_vec(),
                expires_at_ms: None,
            },
        };
        db.apply_remote(vec![remote]).await.unwrap();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StoreMetrics::new(db.clone(), region)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();

        assert!(
            text.contains("# TYPE meridian_store_commits counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\nmeridian_store_local_writes_total 3\n"),
            "{text}"
        );
        let commits = db.stats().commits.load(Ordering::Relaxed);
        assert!(text.contains(&format!("\nmeridian_store_commits_total {commits}\n")));
        assert!(text.contains("\nmeridian_replication_applied_sequence{origin=\"us-east\"} 3\n"));
        assert!(text.contains("\nmeridian_replication_applied_sequence{origin=\"eu-west\"} 1\n"));
        assert!(text.contains(
            "\nmeridian_replication_latency_seconds_count{from=\"eu-west\",to=\"us-east\"} 1\n"
        ));
        assert!(text.contains("\nmeridian_store_commit_seconds_bucket{le=\"+Inf\"} "));
        assert!(text.contains("# HELP meridian_conflicts Concurrent writes overwritten"));
        // A memory store keeps no write-ahead log.
        assert!(!text.contains("meridian_store_wal_bytes"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_logged_backend_adds_its_log_families() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::RedbStore::open(&dir.path().join("store.redb")).unwrap();
        let region = RegionName::new("us-east").unwrap();
        let config = DbConfig {
            region: region.clone(),
            durability: Durability::Fsync,
            max_offset_ms: 500,
        };
        let db = Db::start(Arc::new(store), config, SystemClock).unwrap();
        let put = Box::new(|_: Option<&_>, _| {
            Ok(Some(Op::Put {
                value: b"v".to_vec(),
                expires_at_ms: None,
            }))
        });
        db.write("t", b"a", put).await.unwrap();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StoreMetrics::new(db, region)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();

        assert!(
            text.contains("\nmeridian_store_logged_commits_total 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE meridian_store_checkpoint_seconds histogram\n"));
        assert!(text.contains("# TYPE meridian_store_wal_bytes gauge\n"));
        assert!(text.contains("\nmeridian_store_memtable_bytes "), "{text}");
    }
}
