//! `RedbStore` commit throughput, as a report (not a timed test).
//!
//! `cargo bench -p meridian-store --bench backend`
//!
//! For batches of 1, 16 and 256 entries — each a ~100-byte `KeyState` plus
//! the `LogEntry` that produced it, as the single writer commits them — the
//! commits/s and entries/s a fresh database sustains, with fsync
//! (`Durability::Fsync`) and without (`Durability::None`), and the commit
//! latency percentiles.
//!
//! Keys come in two orders, because it is the order that decides the cost
//! of a large batch: `random` (hashed keys, what clients mostly send) dirties
//! one B-tree leaf per state, `sequential` (the log's own order) shares
//! leaves. The database lives under Cargo's target tmp dir, so fsync reaches
//! the same device as builds (not a tmpfs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meridian_core::record::KeyState;
use meridian_core::{Hlc, LogEntry, Op, RegionName, Version, VersionVector};
use meridian_store::{Backend, CommitBatch, Durability, RedbStore};

/// Entries per commit: a lone write, a small group commit, a large one.
const BATCH_ENTRIES: [usize; 3] = [1, 16, 256];

/// Wall-clock budget per row: long enough for a steady rate (hundreds to
/// thousands of fsyncs), short enough that the twelve rows finish in about
/// half a minute.
const ROW_TIME_BUDGET: Duration = Duration::from_secs(3);

/// Commits per row at most, so the fastest rows (single entries without
/// fsync, ~50k commits/s) stop early instead of growing the file for the
/// whole budget: without fsync redb reuses no freed page, so files grow to
/// hundreds of MB.
const ROW_COMMITS_MAX: usize = 50_000;

/// Target encoded size of one key state.
const STATE_BYTES_TARGET: usize = 100;

fn origin() -> RegionName {
    RegionName::new("us-east").expect("valid region")
}

/// A realistic stamp (2023 wall clock), so its varint has production size.
fn hlc(seq: u64) -> Hlc {
    Hlc::new(1_700_000_000_000 + seq, 0)
}

fn key_state(seq: u64, value: &[u8]) -> KeyState {
    let v = Version {
        hlc: hlc(seq),
        origin: origin(),
    };
    KeyState::from_put(v, value.to_vec())
}

fn log_entry(seq: u64, key: &[u8], value: &[u8]) -> LogEntry {
    LogEntry {
        origin: origin(),
        seq,
        hlc: hlc(seq),
        table: "bench".into(),
        key: key.to_vec(),
        observed: None,
        op: Op::Put {
            value: value.to_vec(),
            expires_at_ms: None,
        },
    }
}

fn encoded_len<T: serde::Serialize>(v: &T) -> usize {
    postcard::to_stdvec(v).expect("encodes").len()
}

/// A value that makes a key state about [`STATE_BYTES_TARGET`] encoded.
fn value_for_target() -> Vec<u8> {
    let mut value = Vec::new();
    while encoded_len(&key_state(1, &value)) < STATE_BYTES_TARGET {
        value.push(b'v');
    }
    value
}

#[derive(Clone, Copy, Debug)]
enum KeyOrder {
    Random,
    Sequential,
}

fn key(seq: u64, order: KeyOrder) -> Vec<u8> {
    let n = match order {
        // A multiplicative hash spreads keys over the key space, as hashed
        // user keys would be.
        KeyOrder::Random => seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        KeyOrder::Sequential => seq,
    };
    format!("{n:016x}").into_bytes()
}

fn batch(first_seq: u64, entries: usize, order: KeyOrder, value: &[u8]) -> CommitBatch {
    let origin = origin();
    let mut states = Vec::with_capacity(entries);
    let mut log = Vec::with_capacity(entries);
    for seq in first_seq..first_seq + entries as u64 {
        let key = key(seq, order);
        states.push(("bench".to_string(), key.clone(), key_state(seq, value)));
        log.push(log_entry(seq, &key, value));
    }
    let last = first_seq + entries as u64 - 1;
    let mut vv = VersionVector::new();
    vv.advance(&origin, last);
    CommitBatch {
        states,
        log,
        vv,
        hlc_floor: hlc(last),
        peer_vvs: BTreeMap::new(),
    }
}

struct Row {
    durability: Durability,
    order: KeyOrder,
    entries: usize,
    commits: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    file_bytes: u64,
}

fn run_row(durability: Durability, order: KeyOrder, entries: usize, value: &[u8]) -> Row {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = RedbStore::open(&dir.path().join("bench.redb")).expect("open");
    let mut latencies = Vec::new();
    let mut next_seq = 1;
    let start = Instant::now();
    while start.elapsed() < ROW_TIME_BUDGET && latencies.len() < ROW_COMMITS_MAX {
        let b = batch(next_seq, entries, order, value);
        let t = Instant::now();
        store.commit(&b, durability).expect("commit");
        latencies.push(t.elapsed());
        next_seq += entries as u64;
    }
    // Time spent committing only, not building batches.
    let elapsed = latencies.iter().sum();
    Row {
        durability,
        order,
        entries,
        commits: latencies.len(),
        elapsed,
        latencies,
        file_bytes: store.size_bytes().expect("size"),
    }
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let value = value_for_target();
    let sample = batch(1, 1, KeyOrder::Random, &value);
    println!(
        "RedbStore commits: key state {} B, log entry {} B encoded; \
         {} s or {} commits per row, fresh database each row\n",
        encoded_len(&sample.states[0].2),
        encoded_len(&sample.log[0]),
        ROW_TIME_BUDGET.as_secs(),
        ROW_COMMITS_MAX,
    );
    println!(
        "| durability | keys | entries/commit | commits | commits/s | entries/s | p50 ms | p99 ms | file MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for durability in [Durability::Fsync, Durability::None] {
        for order in [KeyOrder::Random, KeyOrder::Sequential] {
            for entries in BATCH_ENTRIES {
                let mut row = run_row(durability, order, entries, &value);
                row.latencies.sort();
                print_row(&row);
            }
        }
    }
}

fn print_row(row: &Row) {
    let secs = row.elapsed.as_secs_f64();
    println!(
        "| {:?} | {:?} | {} | {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.1} |",
        row.durability,
        row.order,
        row.entries,
        row.commits,
        row.commits as f64 / secs,
        (row.commits * row.entries) as f64 / secs,
        percentile_ms(&row.latencies, 0.50),
        percentile_ms(&row.latencies, 0.99),
        row.file_bytes as f64 / 1e6,
    );
}
