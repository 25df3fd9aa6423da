//! The conformance suite every [`Backend`] must pass.
//!
//! Each check is a function generic over a factory returning a fresh backend
//! and a guard that keeps its resources alive (a temporary directory for
//! redb). `suite!` instantiates every check for [`MemStore`] and
//! [`RedbStore`], so the two cannot drift apart; the checks at the end need a
//! file (reopening, a second opener) and run on redb alone.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};

use meridian_core::record::KeyState;
use meridian_core::{Hlc, LogEntry, Op, RegionName, Version, VersionVector};
use meridian_store::redb_store::LOG_BUCKET_ENTRIES;
use meridian_store::{
    Backend, CommitBatch, Durability, MemStore, Meta, RedbStore, StoreError, TABLE_NAME_BYTES_MAX,
};
use tempfile::TempDir;

// ---------------------------------------------------------------- factories

fn mem_store() -> (MemStore, ()) {
    (MemStore::new(), ())
}

fn redb_store() -> (RedbStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(&dir.path().join("store.redb")).expect("open redb");
    (store, dir)
}

/// Instantiates each named check once per backend.
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod mem {
            $(#[test] fn $check() { super::$check(super::mem_store) })*
        }
        mod redb {
            $(#[test] fn $check() { super::$check(super::redb_store) })*
        }
    };
}

suite!(
    get_returns_committed_states,
    scan_is_ordered_with_cursor_and_limit,
    tables_are_isolated,
    read_log_returns_ranges,
    read_log_respects_max_entries_and_max_bytes,
    invalid_commits_are_rejected_and_change_nothing,
    truncated_entries_are_reported_kept_ones_read,
    truncation_across_bucket_boundaries,
    meta_round_trips,
    empty_commit_persists_meta,
    commits_without_fsync_are_visible,
    readers_see_whole_commits,
    size_grows_with_data,
    withholding_a_table_keeps_sequences_and_drops_its_data,
    rows_too_large_to_log_are_read_back,
);

// ---------------------------------------------------------------- builders

fn region(name: &str) -> RegionName {
    RegionName::new(name).expect("valid region name")
}

fn version(hlc: u64, origin: &str) -> Version {
    Version {
        hlc: Hlc::from_u64(hlc),
        origin: region(origin),
    }
}

/// A created string incarnation stamped `n`, holding `value_bytes` bytes.
fn state(n: u64, value_bytes: usize) -> KeyState {
    KeyState::from_put(version(n, "us-east"), vec![b'v'; value_bytes])
}

/// Entry `seq` of `origin`; sizes vary with `seq` so byte limits are tested
/// on unequal entries.
fn entry(origin: &RegionName, seq: u64) -> LogEntry {
    LogEntry {
        origin: origin.clone(),
        seq,
        hlc: Hlc::from_u64(1_000 + seq),
        table: "t".into(),
        key: format!("k{seq}").into_bytes(),
        observed: None,
        op: Op::Put {
            value: vec![b'x'; (seq % 7) as usize * 10],
            expires_at_ms: None,
        },
    }
}

fn encoded_len(e: &LogEntry) -> usize {
    postcard::to_stdvec(e).expect("encodes").len()
}

fn vv(pairs: &[(&RegionName, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for (o, s) in pairs {
        v.advance(o, *s);
    }
    v
}

/// A batch that keeps the stored meta and writes `states`.
fn states_batch<B: Backend>(b: &B, states: Vec<(&str, &[u8], KeyState)>) -> CommitBatch {
    let meta = b.meta().expect("meta");
    CommitBatch {
        states: states
            .into_iter()
            .map(|(t, k, s)| (t.to_string(), k.to_vec(), s))
            .collect(),
        log: Vec::new(),
        vv: meta.vv,
        hlc_floor: meta.hlc_floor,
        peer_vvs: BTreeMap::new(),
    }
}

/// Appends `seqs` to `origin`'s log, advancing the vector to match.
fn append<B: Backend>(
    b: &B,
    origin: &RegionName,
    seqs: RangeInclusive<u64>,
    durability: Durability,
) -> Result<(), StoreError> {
    let meta = b.meta()?;
    let mut vv = meta.vv.clone();
    let log: Vec<LogEntry> = seqs.map(|s| entry(origin, s)).collect();
    if let Some(last) = log.last() {
        if last.seq > vv.get(origin) {
            vv.advance(origin, last.seq);
        }
    }
    b.commit(
        &CommitBatch {
            states: Vec::new(),
            log,
            vv,
            hlc_floor: meta.hlc_floor,
            peer_vvs: BTreeMap::new(),
        },
        durability,
    )
}

/// Appends `seqs` in commits of `per_commit` entries without fsync, then
/// one empty fsync'd commit, as a bulk loader would.
fn append_bulk<B: Backend>(b: &B, origin: &RegionName, seqs: RangeInclusive<u64>) {
    const PER_COMMIT: u64 = 512;
    let (mut from, to) = seqs.into_inner();
    while from <= to {
        let upto = (from + PER_COMMIT - 1).min(to);
        append(b, origin, from..=upto, Durability::None).expect("append");
        from = upto + 1;
    }
    b.commit(&states_batch(b, Vec::new()), Durability::Fsync)
        .expect("fsync");
}

fn read_all<B: Backend>(
    b: &B,
    origin: &RegionName,
    from: u64,
) -> Result<Vec<LogEntry>, StoreError> {
    b.read_log(origin, from, usize::MAX, usize::MAX)
}

fn seqs(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

/// Everything observable about a backend, for "changed nothing" checks.
#[derive(Debug, PartialEq)]
struct Snapshot {
    meta: Meta,
    tables: Vec<Vec<(Vec<u8>, KeyState)>>,
    logs: Vec<Vec<LogEntry>>,
}

fn snapshot<B: Backend>(b: &B, tables: &[&str], origins: &[&RegionName]) -> Snapshot {
    let meta = b.meta().expect("meta");
    Snapshot {
        tables: tables
            .iter()
            .map(|t| b.scan(t, None, usize::MAX).expect("scan"))
            .collect(),
        logs: origins
            .iter()
            .map(|o| {
                let start = meta.log_start.get(*o).copied().unwrap_or(1);
                read_all(b, o, start).expect("read_log")
            })
            .collect(),
        meta,
    }
}

fn assert_invalid(r: Result<(), StoreError>, why: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{why}: expected Invalid, got {other:?}"),
    }
}

// ---------------------------------------------------------------- checks

fn get_returns_committed_states<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    assert_eq!(b.get("t", b"k").unwrap(), None);
    b.commit(
        &states_batch(
            &b,
            vec![("t", b"k", state(1, 10)), ("u", b"k", state(2, 10))],
        ),
        Durability::Fsync,
    )
    .unwrap();
    assert_eq!(b.get("t", b"k").unwrap(), Some(state(1, 10)));
    assert_eq!(b.get("u", b"k").unwrap(), Some(state(2, 10)));
    assert_eq!(b.get("t", b"other").unwrap(), None);
    assert_eq!(b.get("v", b"k").unwrap(), None);

    // Later commits overwrite; within a batch the last write of a key wins.
    b.commit(
        &states_batch(&b, vec![("t", b"k", state(3, 5)), ("t", b"k", state(4, 5))]),
        Durability::Fsync,
    )
    .unwrap();
    assert_eq!(b.get("t", b"k").unwrap(), Some(state(4, 5)));
    assert_eq!(b.get("u", b"k").unwrap(), Some(state(2, 10)));
}

fn scan_is_ordered_with_cursor_and_limit<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    // Binary keys in scrambled order, including the empty key and bytes
    // that sort differently as signed values.
    let keys: Vec<Vec<u8>> = vec![
        b"m".to_vec(),
        vec![0xff, 0x00],
        b"".to_vec(),
        b"a".to_vec(),
        vec![0x00],
        b"ab".to_vec(),
        vec![0x80],
        b"b".to_vec(),
    ];
    let batch_states: Vec<(&str, &[u8], KeyState)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ("t", k.as_slice(), state(i as u64 + 1, 8)))
        .collect();
    b.commit(&states_batch(&b, batch_states), Durability::Fsync)
        .unwrap();

    let mut sorted = keys.clone();
    sorted.sort();
    let all = b.scan("t", None, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        sorted
    );
    for (k, s) in &all {
        let i = keys.iter().position(|x| x == k).unwrap();
        assert_eq!(*s, state(i as u64 + 1, 8), "state of {k:?}");
    }

    // Paging with the last key as cursor visits every key once, in order.
    let mut paged = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = b.scan("t", after.as_deref(), 3).unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().0.clone());
        paged.extend(page.into_iter().map(|(k, _)| k));
    }
    assert_eq!(paged, sorted);

    // The cursor is exclusive, and need not be a stored key.
    let after_a = b.scan("t", Some(b"a"), usize::MAX).unwrap();
    assert_eq!(after_a.first().map(|(k, _)| k.as_slice()), Some(&b"ab"[..]));
    let after_aa = b.scan("t", Some(b"aa"), 1).unwrap();
    assert_eq!(after_aa.len(), 1);
    assert_eq!(after_aa[0].0, b"ab");
    // The empty cursor excludes only the empty key.
    assert_eq!(
        b.scan("t", Some(b""), usize::MAX).unwrap().len(),
        keys.len() - 1
    );
    assert!(b.scan("t", Some(&[0xff, 0x00]), 10).unwrap().is_empty());
    assert!(b.scan("t", None, 0).unwrap().is_empty());
    assert!(b.scan("absent", None, 10).unwrap().is_empty());
}

fn tables_are_isolated<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    // Naive concatenation of table and key would make ("a", "bx") and
    // ("ab", "x") the same stored key.
    b.commit(
        &states_batch(
            &b,
            vec![
                ("a", b"bx", state(1, 1)),
                ("a", b"a", state(2, 1)),
                ("ab", b"x", state(3, 1)),
                ("ab", b"", state(4, 1)),
                ("b", b"a", state(5, 1)),
                ("", b"ab", state(6, 1)),
            ],
        ),
        Durability::Fsync,
    )
    .unwrap();
    let keys = |t: &str| -> Vec<Vec<u8>> {
        b.scan(t, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(keys("a"), vec![b"a".to_vec(), b"bx".to_vec()]);
    assert_eq!(keys("ab"), vec![b"".to_vec(), b"x".to_vec()]);
    assert_eq!(keys("b"), vec![b"a".to_vec()]);
    assert_eq!(keys(""), vec![b"ab".to_vec()]);
    assert!(keys("abx").is_empty());
    // A cursor past a table's last key does not run into the next table.
    assert!(b.scan("a", Some(b"bx"), 10).unwrap().is_empty());
    assert_eq!(b.get("a", b"bx").unwrap(), Some(state(1, 1)));
    assert_eq!(b.get("ab", b"x").unwrap(), Some(state(3, 1)));
    assert_eq!(b.get("a", b"b").unwrap(), None);
    assert_eq!(b.get("ab", b"bx").unwrap(), None);
    assert_eq!(b.get("", b"a").unwrap(), None);
}

fn read_log_returns_ranges<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let (a, c) = (region("us-east"), region("eu-west"));
    assert!(read_all(&b, &a, 1).unwrap().is_empty());
    // Two origins interleaved within one batch and across batches.
    let meta = b.meta().unwrap();
    b.commit(
        &CommitBatch {
            log: vec![entry(&a, 1), entry(&c, 1), entry(&a, 2), entry(&c, 2)],
            vv: vv(&[(&a, 2), (&c, 2)]),
            hlc_floor: meta.hlc_floor,
            ..CommitBatch::default()
        },
        Durability::Fsync,
    )
    .unwrap();
    append(&b, &a, 3..=10, Durability::Fsync).unwrap();
    append(&b, &c, 3..=3, Durability::Fsync).unwrap();

    let all = read_all(&b, &a, 1).unwrap();
    assert_eq!(all, (1..=10).map(|s| entry(&a, s)).collect::<Vec<_>>());
    assert_eq!(seqs(&read_all(&b, &c, 1).unwrap()), vec![1, 2, 3]);
    assert_eq!(
        seqs(&read_all(&b, &a, 4).unwrap()),
        (4..=10).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&read_all(&b, &a, 10).unwrap()), vec![10]);
    assert!(read_all(&b, &a, 11).unwrap().is_empty(), "past the end");
    assert!(
        read_all(&b, &a, 1_000).unwrap().is_empty(),
        "far past the end"
    );
    assert_eq!(read_all(&b, &a, 0).unwrap(), all, "0 reads from the start");
    assert!(read_all(&b, &region("ap-south"), 1).unwrap().is_empty());
}

fn read_log_respects_max_entries_and_max_bytes<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let a = region("us-east");
    append(&b, &a, 1..=20, Durability::Fsync).unwrap();
    let read = |from, n, bytes| seqs(&b.read_log(&a, from, n, bytes).unwrap());

    assert_eq!(read(1, 3, usize::MAX), vec![1, 2, 3]);
    assert_eq!(read(18, 5, usize::MAX), vec![18, 19, 20]);
    assert!(read(1, 0, usize::MAX).is_empty(), "at most 0 entries");

    // The first entry is returned whatever the byte budget.
    assert_eq!(read(5, 10, 0), vec![5]);
    assert_eq!(read(5, 10, 1), vec![5]);
    let (l5, l6, l7) = (
        encoded_len(&entry(&a, 5)),
        encoded_len(&entry(&a, 6)),
        encoded_len(&entry(&a, 7)),
    );
    assert_ne!(l5, l6, "entries of unequal sizes make the check meaningful");
    assert_eq!(
        read(5, 10, l5 + l6),
        vec![5, 6],
        "exactly two entries' bytes"
    );
    assert_eq!(read(5, 10, l5 + l6 - 1), vec![5]);
    assert_eq!(read(5, 10, l5 + l6 + l7), vec![5, 6, 7]);
    assert_eq!(read(5, 2, l5 + l6 + l7), vec![5, 6], "entries bind first");
    let total: usize = (1..=20).map(|s| encoded_len(&entry(&a, s))).sum();
    assert_eq!(read(1, 100, total).len(), 20);
    assert_eq!(read(1, 100, total - 1).len(), 19);
}

fn invalid_commits_are_rejected_and_change_nothing<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let (a, c, peer) = (region("us-east"), region("eu-west"), region("ap-south"));
    b.commit(
        &CommitBatch {
            states: vec![("t".into(), b"k".to_vec(), state(1, 4))],
            log: (1..=3).map(|s| entry(&a, s)).collect(),
            vv: vv(&[(&a, 3)]),
            hlc_floor: Hlc::new(5_000, 0),
            peer_vvs: BTreeMap::from([(peer.clone(), vv(&[(&a, 1)]))]),
        },
        Durability::Fsync,
    )
    .unwrap();
    let before = snapshot(&b, &["t", "u"], &[&a, &c]);

    // Every rejected batch would also write a state, a peer vector and a
    // higher floor, so "changed nothing" covers all parts of a commit.
    let peer_vv = vv(&[(&a, 3)]);
    let bad = |log: Vec<LogEntry>, vv: VersionVector, floor: Hlc| CommitBatch {
        states: vec![
            ("t".into(), b"k".to_vec(), state(9, 4)),
            ("u".into(), b"new".to_vec(), state(9, 4)),
        ],
        log,
        vv,
        hlc_floor: floor,
        peer_vvs: BTreeMap::from([(peer.clone(), peer_vv.clone())]),
    };
    let up = Hlc::new(6_000, 0);
    let cases: Vec<(&str, CommitBatch)> = vec![
        (
            "gap: 5 after 3",
            bad(vec![entry(&a, 5)], vv(&[(&a, 5)]), up),
        ),
        (
            "re-append the last entry",
            bad(vec![entry(&a, 3)], vv(&[(&a, 3)]), up),
        ),
        (
            "re-append an old entry",
            bad(vec![entry(&a, 2)], vv(&[(&a, 3)]), up),
        ),
        (
            "gap inside the batch",
            bad(vec![entry(&a, 4), entry(&a, 6)], vv(&[(&a, 6)]), up),
        ),
        (
            "a new origin must start at 1",
            bad(vec![entry(&c, 2)], vv(&[(&a, 3), (&c, 2)]), up),
        ),
        (
            "valid entries, then a duplicate",
            bad(vec![entry(&a, 4), entry(&a, 4)], vv(&[(&a, 4)]), up),
        ),
        ("seq 0", bad(vec![entry(&c, 0)], vv(&[(&a, 3)]), up)),
        ("version vector goes back", bad(vec![], vv(&[(&a, 2)]), up)),
        (
            "version vector drops an origin",
            bad(vec![], vv(&[(&c, 9)]), up),
        ),
        (
            "entry beyond the batch's version vector",
            bad(vec![entry(&a, 4)], vv(&[(&a, 3)]), up),
        ),
        (
            "HLC floor goes back",
            bad(vec![entry(&a, 4)], vv(&[(&a, 4)]), Hlc::new(4_999, 0)),
        ),
    ];
    for (why, batch) in &cases {
        assert_invalid(b.commit(batch, Durability::Fsync), why);
        assert_eq!(
            snapshot(&b, &["t", "u"], &[&a, &c]),
            before,
            "{why} changed something"
        );
    }

    let long = "t".repeat(TABLE_NAME_BYTES_MAX + 1);
    let mut batch = bad(vec![entry(&a, 4)], vv(&[(&a, 4)]), up);
    batch
        .states
        .push((long.clone(), b"k".to_vec(), state(9, 4)));
    assert_invalid(b.commit(&batch, Durability::Fsync), "table name too long");
    let mut e = entry(&a, 4);
    e.table = long.clone();
    assert_invalid(
        b.commit(&bad(vec![e], vv(&[(&a, 4)]), up), Durability::Fsync),
        "log entry's table name too long",
    );
    assert_eq!(snapshot(&b, &["t", "u"], &[&a, &c]), before);
    // An unstorable table simply holds nothing.
    assert_eq!(b.get(&long, b"k").unwrap(), None);
    assert!(b.scan(&long, None, 10).unwrap().is_empty());

    // The longest allowed name works, and so does the commit the failures
    // were variations of.
    let longest = "t".repeat(TABLE_NAME_BYTES_MAX);
    let mut good = bad(vec![entry(&a, 4)], vv(&[(&a, 4)]), up);
    good.states
        .push((longest.clone(), b"k".to_vec(), state(9, 4)));
    b.commit(&good, Durability::Fsync).unwrap();
    assert_eq!(b.get(&longest, b"k").unwrap(), Some(state(9, 4)));
    assert_eq!(seqs(&read_all(&b, &a, 1).unwrap()), vec![1, 2, 3, 4]);
    assert_eq!(b.meta().unwrap().hlc_floor, up);
}

fn truncated_entries_are_reported_kept_ones_read<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let (a, c) = (region("us-east"), region("eu-west"));
    append(&b, &a, 1..=10, Durability::Fsync).unwrap();
    append(&b, &c, 1..=2, Durability::Fsync).unwrap();

    assert_eq!(b.truncate_log(&a, 0).unwrap(), 1, "nothing to drop");
    assert!(!b.meta().unwrap().log_start.contains_key(&a));
    assert_eq!(b.truncate_log(&a, 4).unwrap(), 5);
    match read_all(&b, &a, 4) {
        Err(StoreError::LogTruncated {
            origin,
            first_available,
            requested,
        }) => assert_eq!((origin, first_available, requested), (a.clone(), 5, 4)),
        other => panic!("expected LogTruncated, got {other:?}"),
    }
    assert!(matches!(
        read_all(&b, &a, 1),
        Err(StoreError::LogTruncated { .. })
    ));
    assert!(matches!(
        read_all(&b, &a, 0),
        Err(StoreError::LogTruncated { .. })
    ));
    assert_eq!(
        seqs(&read_all(&b, &a, 5).unwrap()),
        (5..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&read_all(&b, &a, 7).unwrap()),
        (7..=10).collect::<Vec<_>>()
    );
    assert_eq!(b.meta().unwrap().log_start.get(&a), Some(&5));
    // Other origins are untouched.
    assert_eq!(seqs(&read_all(&b, &c, 1).unwrap()), vec![1, 2]);
    assert!(!b.meta().unwrap().log_start.contains_key(&c));

    // Truncating what is already gone changes nothing.
    assert_eq!(b.truncate_log(&a, 2).unwrap(), 5);
    assert_eq!(b.truncate_log(&a, 4).unwrap(), 5);
    // Entries that were never logged cannot be dropped.
    assert!(matches!(
        b.truncate_log(&a, 11),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        b.truncate_log(&region("ap-south"), 1),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(b.meta().unwrap().log_start.get(&a), Some(&5));

    // Dropping the whole log keeps where it ended: the next append must
    // still continue from there.
    assert_eq!(b.truncate_log(&a, 10).unwrap(), 11);
    assert!(read_all(&b, &a, 11).unwrap().is_empty());
    assert!(matches!(
        read_all(&b, &a, 10),
        Err(StoreError::LogTruncated { .. })
    ));
    assert_invalid(
        append(&b, &a, 12..=12, Durability::Fsync),
        "gap after a full truncation",
    );
    assert_invalid(
        append(&b, &a, 10..=10, Durability::Fsync),
        "re-append after truncation",
    );
    append(&b, &a, 11..=12, Durability::Fsync).unwrap();
    assert_eq!(seqs(&read_all(&b, &a, 11).unwrap()), vec![11, 12]);
}

fn truncation_across_bucket_boundaries<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let a = region("us-east");
    let n = LOG_BUCKET_ENTRIES;
    let end = 2 * n + 100; // more than two buckets
    append_bulk(&b, &a, 1..=end);

    // Reads cross bucket boundaries seamlessly.
    assert_eq!(
        seqs(&b.read_log(&a, n - 2, 5, usize::MAX).unwrap()),
        (n - 2..=n + 2).collect::<Vec<_>>()
    );
    assert_eq!(read_all(&b, &a, 1).unwrap().len() as u64, end);

    // Through the second-to-last entry of bucket 0: the bucket stays, its
    // first entries must still read as collected.
    assert_eq!(b.truncate_log(&a, n - 1).unwrap(), n);
    assert!(matches!(
        read_all(&b, &a, n - 1),
        Err(StoreError::LogTruncated { .. })
    ));
    assert_eq!(
        b.read_log(&a, n, 1, usize::MAX).unwrap(),
        vec![entry(&a, n)]
    );

    // Exactly through the end of bucket 0.
    assert_eq!(b.truncate_log(&a, n).unwrap(), n + 1);
    assert!(matches!(
        read_all(&b, &a, n),
        Err(StoreError::LogTruncated { .. })
    ));
    assert_eq!(
        seqs(&b.read_log(&a, n + 1, 2, usize::MAX).unwrap()),
        vec![n + 1, n + 2]
    );

    // Across all of bucket 1 into bucket 2.
    assert_eq!(b.truncate_log(&a, 2 * n + 50).unwrap(), 2 * n + 51);
    match read_all(&b, &a, n + 1) {
        Err(StoreError::LogTruncated {
            first_available, ..
        }) => assert_eq!(first_available, 2 * n + 51),
        other => panic!("expected LogTruncated, got {other:?}"),
    }
    let rest = read_all(&b, &a, 2 * n + 51).unwrap();
    assert_eq!(seqs(&rest), (2 * n + 51..=end).collect::<Vec<_>>());
    assert_eq!(rest.last(), Some(&entry(&a, end)));
    assert_eq!(b.meta().unwrap().log_start.get(&a), Some(&(2 * n + 51)));

    // Appending continues into bucket 3, and a read spans buckets 2 and 3.
    append_bulk(&b, &a, end + 1..=3 * n + 10);
    assert_eq!(
        seqs(&read_all(&b, &a, 3 * n - 1).unwrap()),
        (3 * n - 1..=3 * n + 10).collect::<Vec<_>>()
    );
    assert_eq!(b.truncate_log(&a, 3 * n + 10).unwrap(), 3 * n + 11);
    assert!(read_all(&b, &a, 3 * n + 11).unwrap().is_empty());
    append(&b, &a, 3 * n + 11..=3 * n + 11, Durability::Fsync).unwrap();
    assert!(matches!(
        read_all(&b, &a, 0),
        Err(StoreError::LogTruncated { .. })
    ));
    assert_eq!(
        seqs(&read_all(&b, &a, 3 * n + 11).unwrap()),
        vec![3 * n + 11]
    );
}

fn meta_round_trips<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    assert_eq!(b.meta().unwrap(), Meta::default());
    let (a, c, d) = (region("us-east"), region("eu-west"), region("ap-south"));

    append(&b, &a, 1..=5, Durability::Fsync).unwrap();
    let vv1 = vv(&[(&a, 5), (&c, 7)]);
    b.commit(
        &CommitBatch {
            vv: vv1.clone(),
            hlc_floor: Hlc::new(1_700_000_000_000, 3),
            peer_vvs: BTreeMap::from([(c.clone(), vv(&[(&a, 2)]))]),
            ..CommitBatch::default()
        },
        Durability::Fsync,
    )
    .unwrap();
    // Peer vectors are learnt incrementally: a commit naming one peer keeps
    // the others and replaces that peer's vector.
    b.commit(
        &CommitBatch {
            vv: vv1.clone(),
            hlc_floor: Hlc::new(1_700_000_000_000, 4),
            peer_vvs: BTreeMap::from([(d.clone(), vv(&[(&c, 1)]))]),
            ..CommitBatch::default()
        },
        Durability::Fsync,
    )
    .unwrap();
    b.commit(
        &CommitBatch {
            vv: vv1.clone(),
            hlc_floor: Hlc::new(1_700_000_000_000, 4),
            peer_vvs: BTreeMap::from([(c.clone(), vv(&[(&a, 4), (&d, 1)]))]),
            ..CommitBatch::default()
        },
        Durability::Fsync,
    )
    .unwrap();
    b.truncate_log(&a, 3).unwrap();

    let expected = Meta {
        vv: vv1,
        hlc_floor: Hlc::new(1_700_000_000_000, 4),
        peer_vvs: BTreeMap::from([
            (c.clone(), vv(&[(&a, 4), (&d, 1)])),
            (d.clone(), vv(&[(&c, 1)])),
        ]),
        log_start: BTreeMap::from([(a.clone(), 4)]),
    };
    assert_eq!(b.meta().unwrap(), expected);
}

fn empty_commit_persists_meta<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let (a, c) = (region("us-east"), region("eu-west"));
    let batch = CommitBatch {
        states: Vec::new(),
        log: Vec::new(),
        // The vector may run ahead of the local log: not every applied
        // origin need be logged here.
        vv: vv(&[(&a, 9)]),
        hlc_floor: Hlc::new(42, 1),
        peer_vvs: BTreeMap::from([(c.clone(), vv(&[(&a, 3)]))]),
    };
    b.commit(&batch, Durability::Fsync).unwrap();
    let meta = b.meta().unwrap();
    assert_eq!(meta.vv, batch.vv);
    assert_eq!(meta.hlc_floor, batch.hlc_floor);
    assert_eq!(meta.peer_vvs, batch.peer_vvs);
    assert!(meta.log_start.is_empty());
    // The log itself is still empty: its first entry is 1.
    assert!(read_all(&b, &a, 1).unwrap().is_empty());
    assert_invalid(
        append(&b, &a, 10..=10, Durability::Fsync),
        "the log, not the vector, sets the next seq",
    );
}

fn commits_without_fsync_are_visible<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let a = region("us-east");
    b.commit(
        &states_batch(&b, vec![("t", b"k", state(1, 3))]),
        Durability::None,
    )
    .unwrap();
    append(&b, &a, 1..=3, Durability::None).unwrap();
    assert_eq!(b.get("t", b"k").unwrap(), Some(state(1, 3)));
    assert_eq!(seqs(&read_all(&b, &a, 1).unwrap()), vec![1, 2, 3]);
    assert_eq!(b.meta().unwrap().vv.get(&a), 3);
}

fn readers_see_whole_commits<B: Backend, G>(make: fn() -> (B, G)) {
    /// Commits raced against the reader; enough to interleave many times.
    const COMMITS: u64 = 200;
    const KEYS: usize = 8;
    let (b, _guard) = make();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("k{i}").into_bytes()).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=COMMITS {
                let batch = states_batch(
                    &b,
                    keys.iter()
                        .map(|k| ("t", k.as_slice(), state(i, 16)))
                        .collect(),
                );
                b.commit(&batch, Durability::None).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut seen = 0u64;
        while !done.load(Ordering::SeqCst) {
            let page = b.scan("t", None, usize::MAX).unwrap();
            assert!(
                page.is_empty() || page.len() == KEYS,
                "half a commit: {}",
                page.len()
            );
            if let Some((_, first)) = page.first() {
                assert!(
                    page.iter().all(|(_, s)| s == first),
                    "keys from different commits"
                );
                assert!(first.last.hlc.as_u64() >= seen, "went back in time");
                seen = first.last.hlc.as_u64();
            }
        }
    });
    let last = b.scan("t", None, usize::MAX).unwrap();
    assert!(last.iter().all(|(_, s)| *s == state(COMMITS, 16)));
}

fn size_grows_with_data<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let before = b.size_bytes().unwrap();
    let keys: Vec<Vec<u8>> = (0..1_000).map(|i: u32| i.to_be_bytes().to_vec()).collect();
    b.commit(
        &states_batch(
            &b,
            keys.iter()
                .map(|k| ("t", k.as_slice(), state(1, 1_000)))
                .collect(),
        ),
        Durability::Fsync,
    )
    .unwrap();
    let after = b.size_bytes().unwrap();
    assert!(
        after >= before + 1_000_000,
        "{before} -> {after} bytes for 1 MB of values"
    );
}

// ---------------------------------------------------------------- redb only

#[test]
fn redb_everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (a, c, d) = (region("us-east"), region("eu-west"), region("ap-south"));
    let n = LOG_BUCKET_ENTRIES;
    let tables = ["t", "tt", ""];
    let before = {
        let b = RedbStore::open(&path).unwrap();
        b.commit(
            &states_batch(
                &b,
                vec![
                    ("t", b"k1", state(1, 10)),
                    ("t", b"k2", state(2, 20)),
                    ("tt", b"k1", state(3, 30)),
                    ("", b"", state(4, 40)),
                ],
            ),
            Durability::Fsync,
        )
        .unwrap();
        append_bulk(&b, &a, 1..=2 * n + 7);
        append(&b, &c, 1..=5, Durability::Fsync).unwrap();
        b.truncate_log(&a, n + 3).unwrap();
        b.truncate_log(&c, 5).unwrap(); // c's log fully collected
                                        // The last commit carries meta only.
        let meta = b.meta().unwrap();
        b.commit(
            &CommitBatch {
                vv: meta.vv.clone(),
                hlc_floor: Hlc::new(1_800_000_000_000, 9),
                peer_vvs: BTreeMap::from([(d.clone(), vv(&[(&a, 100), (&c, 5)]))]),
                ..CommitBatch::default()
            },
            Durability::Fsync,
        )
        .unwrap();
        snapshot(&b, &tables, &[&a, &c])
    }; // dropped: closed

    let b = RedbStore::open(&path).unwrap();
    let after = snapshot(&b, &tables, &[&a, &c]);
    assert_eq!(after, before);
    assert_eq!(after.meta.hlc_floor, Hlc::new(1_800_000_000_000, 9));
    assert_eq!(
        after.meta.log_start,
        BTreeMap::from([(a.clone(), n + 4), (c.clone(), 6)])
    );
    assert_eq!(after.logs[0].len() as u64, 2 * n + 7 - (n + 3));
    assert!(matches!(
        read_all(&b, &a, n + 3),
        Err(StoreError::LogTruncated { .. })
    ));

    // Where each log ends survived too, including c's empty one.
    assert_invalid(
        append(&b, &a, 2 * n + 9..=2 * n + 9, Durability::Fsync),
        "gap after reopen",
    );
    assert_invalid(
        append(&b, &c, 5..=5, Durability::Fsync),
        "re-append after reopen",
    );
    append(&b, &a, 2 * n + 8..=2 * n + 8, Durability::Fsync).unwrap();
    append(&b, &c, 6..=6, Durability::Fsync).unwrap();
    drop(b);
    let b = RedbStore::open(&path).unwrap();
    assert_eq!(seqs(&read_all(&b, &c, 6).unwrap()), vec![6]);
    assert_eq!(
        read_all(&b, &a, 2 * n + 8).unwrap(),
        vec![entry(&a, 2 * n + 8)]
    );
}

#[test]
fn redb_empty_commit_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    let batch = CommitBatch {
        vv: vv(&[(&a, 3)]),
        hlc_floor: Hlc::new(77, 0),
        peer_vvs: BTreeMap::from([(region("eu-west"), vv(&[(&a, 1)]))]),
        ..CommitBatch::default()
    };
    RedbStore::open(&path)
        .unwrap()
        .commit(&batch, Durability::Fsync)
        .unwrap();
    let meta = RedbStore::open(&path).unwrap().meta().unwrap();
    assert_eq!(
        meta,
        Meta {
            vv: batch.vv,
            hlc_floor: batch.hlc_floor,
            peer_vvs: batch.peer_vvs,
            log_start: BTreeMap::new(),
        }
    );
}

/// Copies the store's file and both log segments while it is open: what a
/// crash at this moment leaves on disk (commits since the last checkpoint
/// live only in memory and the log). `cut_log_bytes` are cut from the end
/// of `segment`, the one being appended to.
fn crash_image(from: &std::path::Path, to: &std::path::Path, segment: usize, cut_log_bytes: u64) {
    std::fs::copy(from, to).unwrap();
    copy_log(from, to);
    let log = &meridian_store::redb_store::wal_paths(to)[segment];
    let len = std::fs::metadata(log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(log).unwrap();
    f.set_len(len - cut_log_bytes).unwrap();
}

/// Deletes both segments of the store's write-ahead log.
fn remove_log(path: &std::path::Path) {
    for segment in meridian_store::redb_store::wal_paths(path) {
        std::fs::remove_file(segment).unwrap();
    }
}

/// Opens the store at `path` (replaying its log) and checks that table `t`
/// and `origin`'s log are as in `want`; then, the replay being durable in
/// redb, checks that it opens the same without the log.
fn assert_opens_to(path: &std::path::Path, origin: &RegionName, want: &Snapshot) {
    let c = RedbStore::open(path).unwrap();
    assert_eq!(&snapshot(&c, &["t"], &[origin]), want, "with the log");
    drop(c);
    remove_log(path);
    let c = RedbStore::open(path).unwrap();
    assert_eq!(&snapshot(&c, &["t"], &[origin]), want, "without the log");
}

fn copy_log(from: &std::path::Path, to: &std::path::Path) {
    let segments_from = meridian_store::redb_store::wal_paths(from);
    let segments_to = meridian_store::redb_store::wal_paths(to);
    for (from, to) in segments_from.iter().zip(&segments_to) {
        std::fs::copy(from, to).unwrap();
    }
}

/// A store whose background checkpoints wait an hour, so copying its files
/// while it is open takes a consistent crash image, and checkpoints happen
/// only when the test asks.
fn open_without_checkpoints(path: &std::path::Path) -> RedbStore {
    RedbStore::open_with(
        path,
        meridian_store::redb_store::RedbOptions {
            checkpoint_interval: std::time::Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn redb_a_crash_keeps_every_logged_commit_and_a_torn_tail_loses_only_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    let b = open_without_checkpoints(&path);
    // A checkpoint first (with the truncation), then three commits that are
    // durable only through the log's second segment.
    append(&b, &a, 1..=3, Durability::Fsync).unwrap();
    b.truncate_log(&a, 1).unwrap();
    b.checkpoint().unwrap();
    b.commit(
        &states_batch(&b, vec![("t", b"k1", state(1, 10))]),
        Durability::Fsync,
    )
    .unwrap();
    append(&b, &a, 4..=6, Durability::Fsync).unwrap();
    let before_last = snapshot(&b, &["t"], &[&a]);
    b.commit(
        &states_batch(&b, vec![("t", b"k2", state(2, 10))]),
        Durability::Fsync,
    )
    .unwrap();
    let whole = snapshot(&b, &["t"], &[&a]);
    assert_ne!(whole, before_last);

    // The whole log: everything acknowledged is there.
    let image = dir.path().join("whole.redb");
    crash_image(&path, &image, 1, 0);
    assert_opens_to(&image, &a, &whole);

    // A torn last record (the crash came during its append, so it was never
    // acknowledged): the commits before it survive, and the store goes on
    // from there.
    let image = dir.path().join("torn.redb");
    crash_image(&path, &image, 1, 3);
    let c = RedbStore::open(&image).unwrap();
    assert_eq!(snapshot(&c, &["t"], &[&a]), before_last);
    append(&c, &a, 7..=7, Durability::Fsync).unwrap();
    assert_eq!(
        seqs(&read_all(&c, &a, 2).unwrap()),
        (2..=7).collect::<Vec<_>>()
    );
}

#[test]
fn redb_a_crash_during_a_checkpoint_replays_both_log_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    let b = open_without_checkpoints(&path);
    append(&b, &a, 1..=2, Durability::Fsync).unwrap();
    b.checkpoint().unwrap();
    // redb as it is before a checkpoint of 3..=5 commits: the crash comes
    // after the memtable was frozen and the log moved to its other
    // segment, before redb committed.
    let image = dir.path().join("image.redb");
    std::fs::copy(&path, &image).unwrap();
    append(&b, &a, 3..=5, Durability::Fsync).unwrap();
    b.commit(
        &states_batch(&b, vec![("t", b"k", state(1, 10))]),
        Durability::Fsync,
    )
    .unwrap();
    b.checkpoint().unwrap();
    append(&b, &a, 6..=7, Durability::Fsync).unwrap();
    let whole = snapshot(&b, &["t"], &[&a]);
    copy_log(&path, &image);
    let c = RedbStore::open(&image).unwrap();
    assert_eq!(snapshot(&c, &["t"], &[&a]), whole);
    assert_eq!(
        seqs(&read_all(&c, &a, 1).unwrap()),
        (1..=7).collect::<Vec<_>>()
    );
}

/// A checkpoint writes its states in several durable transactions and
/// the metadata in the last. A crash after one of the others — here while
/// newer states of the same keys sit in the active memtable — still opens
/// to every commit, each key at its newest state.
#[test]
fn redb_a_crash_part_way_through_a_checkpoint_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let image = dir.path().join("image.redb");
    let a = region("us-east");
    // The hook, once armed, stops the checkpoint after its first partial
    // transaction until the test says "copy", then copies the files.
    let armed = Arc::new(AtomicBool::new(false));
    let (reached_tx, reached) = mpsc::channel::<()>();
    let (copy, copy_rx) = mpsc::channel::<()>();
    let (copied_tx, copied) = mpsc::channel::<()>();
    let hook = {
        let (armed, path, image) = (armed.clone(), path.clone(), image.clone());
        let (reached_tx, copy_rx, copied_tx) = (
            Mutex::new(reached_tx),
            Mutex::new(copy_rx),
            Mutex::new(copied_tx),
        );
        move || {
            if !armed.swap(false, Ordering::SeqCst) {
                return;
            }
            reached_tx.lock().unwrap().send(()).unwrap();
            copy_rx.lock().unwrap().recv_timeout(WAIT).unwrap();
            std::fs::copy(&path, &image).unwrap();
            copy_log(&path, &image);
            copied_tx.lock().unwrap().send(()).unwrap();
        }
    };
    let b = RedbStore::open_with(
        &path,
        meridian_store::redb_store::RedbOptions {
            checkpoint_interval: Duration::from_millis(20),
            checkpoint_txn_pages: 2,
            after_partial_checkpoint: Some(Arc::new(hook)),
        },
    )
    .unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let batch_of = |b: &RedbStore, n: u64, which: &[usize]| {
        states_batch(
            b,
            which
                .iter()
                .map(|&i| ("t", keys[i].as_bytes(), state(n * 100 + i as u64, 10)))
                .collect(),
        )
    };
    let all: Vec<usize> = (0..10).collect();
    b.commit(&batch_of(&b, 1, &all), Durability::Fsync).unwrap();
    append(&b, &a, 1..=3, Durability::Fsync).unwrap();
    armed.store(true, Ordering::SeqCst);
    // Ten states in one commit: whatever memtable holds it is checkpointed
    // in five transactions.
    b.commit(&batch_of(&b, 2, &all), Durability::Fsync).unwrap();
    reached
        .recv_timeout(WAIT)
        .expect("a checkpoint ran part-way");
    // Newer states of some keys, after the freeze: in the active memtable
    // and the log's other segment.
    b.commit(&batch_of(&b, 3, &[0, 3, 4, 9]), Durability::Fsync)
        .unwrap();
    append(&b, &a, 4..=5, Durability::Fsync).unwrap();
    let want = snapshot(&b, &["t"], &[&a]);
    assert_eq!(want.tables[0].len(), 10);
    copy.send(()).unwrap();
    copied.recv_timeout(WAIT).unwrap();
    drop(b);
    assert_opens_to(&image, &a, &want);
}

/// Unlogged commits cannot be replayed, so a memtable holding any is
/// checkpointed in one transaction (a crash keeps all of them or none);
/// a memtable of logged commits alone is split.
#[test]
fn redb_a_memtable_with_unlogged_commits_is_checkpointed_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let partials = Arc::new(AtomicUsize::new(0));
    let b = RedbStore::open_with(
        &dir.path().join("store.redb"),
        meridian_store::redb_store::RedbOptions {
            checkpoint_interval: std::time::Duration::from_secs(3600),
            checkpoint_txn_pages: 1,
            after_partial_checkpoint: Some({
                let partials = partials.clone();
                Arc::new(move || {
                    partials.fetch_add(1, Ordering::SeqCst);
                })
            }),
        },
    )
    .unwrap();
    let states = |n: u64| {
        (0..5u64)
            .map(|i| (format!("k{i}"), state(n * 10 + i, 10)))
            .collect::<Vec<_>>()
    };
    let commit = |n: u64, durability: Durability| {
        let states = states(n);
        b.commit(
            &states_batch(
                &b,
                states
                    .iter()
                    .map(|(k, s)| ("t", k.as_bytes(), s.clone()))
                    .collect(),
            ),
            durability,
        )
        .unwrap();
    };
    commit(1, Durability::None);
    b.checkpoint().unwrap();
    assert_eq!(partials.load(Ordering::SeqCst), 0, "split unlogged commits");
    commit(2, Durability::Fsync);
    b.checkpoint().unwrap();
    assert_eq!(
        partials.load(Ordering::SeqCst),
        4,
        "five states, one a transaction"
    );
    assert_eq!(b.scan("t", None, 10).unwrap().len(), 5);
}

#[test]
fn redb_an_fsync_commit_after_unsynced_ones_makes_them_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    let b = open_without_checkpoints(&path);
    append(&b, &a, 1..=3, Durability::None).unwrap();
    append(&b, &a, 4..=4, Durability::Fsync).unwrap();
    let image = dir.path().join("image.redb");
    crash_image(&path, &image, 0, 0);
    let c = RedbStore::open(&image).unwrap();
    assert_eq!(seqs(&read_all(&c, &a, 1).unwrap()), vec![1, 2, 3, 4]);
}

#[test]
fn redb_log_stats_count_logged_commits_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let b = open_without_checkpoints(&dir.path().join("store.redb"));
    let a = region("us-east");
    append(&b, &a, 1..=1, Durability::Fsync).unwrap();
    append(&b, &a, 2..=2, Durability::Fsync).unwrap();
    let s = b.log_stats().expect("redb keeps a log");
    assert_eq!((s.logged_commits, s.checkpoints), (2, 0));
    assert!(s.log_bytes > 0);
    assert!(s.memtable_bytes > 0);
    // A commit holding a row over the logged-row limit checkpoints the two before it,
    // then goes to redb directly: two checkpoints, nothing left to replay.
    b.commit(
        &states_batch(&b, vec![("t", b"big", state(1, 2 * 1024 * 1024))]),
        Durability::Fsync,
    )
    .unwrap();
    let s = b.log_stats().unwrap();
    assert_eq!(
        (
            s.logged_commits,
            s.checkpoints,
            s.log_bytes,
            s.memtable_bytes
        ),
        (2, 2, 0, 0)
    );
    assert!(MemStore::new().log_stats().is_none());
}

/// Reads while the background checkpoint moves memtables into redb every
/// few milliseconds: scans see whole commits, never older ones after newer
/// ones, the log reads contiguously from its start, and truncations made
/// meanwhile reach redb.
#[test]
fn redb_reads_stay_whole_while_checkpoints_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const KEYS: usize = 40;
    const COMMITS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    let b = RedbStore::open_with(
        &path,
        meridian_store::redb_store::RedbOptions {
            checkpoint_interval: std::time::Duration::from_millis(2),
            // Every state its own transaction: readers also meet
            // checkpoints that are part-way through.
            checkpoint_txn_pages: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("k{i:03}").into_bytes()).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=COMMITS {
                let mut batch = states_batch(
                    &b,
                    keys.iter()
                        .map(|k| ("t", k.as_slice(), state(i, 16)))
                        .collect(),
                );
                batch.log.push(entry(&a, i));
                batch.vv.advance(&a, i);
                b.commit(&batch, Durability::Fsync).unwrap();
                if i % 50 == 0 {
                    b.truncate_log(&a, i - 20).unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut seen = 0u64;
        let mut seen_many = 0u64;
        let mut reads = 0u32;
        while !done.load(Ordering::SeqCst) || reads < 10 {
            reads += 1;
            let page = b.scan("t", None, usize::MAX).unwrap();
            assert!(page.is_empty() || page.len() == KEYS, "half a commit");
            if let Some((_, first)) = page.first() {
                assert!(
                    page.iter().all(|(_, s)| s == first),
                    "keys from different commits"
                );
                assert!(first.last.hlc.as_u64() >= seen, "went back in time");
                seen = first.last.hlc.as_u64();
            }
            let wanted: Vec<(&str, &[u8])> = keys.iter().map(|k| ("t", k.as_slice())).collect();
            let states = b.get_many(&wanted).unwrap();
            if let Some(Some(first)) = states.first() {
                assert!(
                    states.iter().all(|s| s.as_ref() == Some(first)),
                    "get_many mixed commits"
                );
                assert!(
                    first.last.hlc.as_u64() >= seen_many,
                    "get_many went back in time"
                );
                seen_many = first.last.hlc.as_u64();
            }
            let meta = b.meta().unwrap();
            let start = meta.log_start.get(&a).copied().unwrap_or(1);
            match read_all(&b, &a, start) {
                Ok(entries) => {
                    let got = seqs(&entries);
                    let expected: Vec<u64> = (start..start + got.len() as u64).collect();
                    assert_eq!(
                        got, expected,
                        "the log must read contiguously from its start"
                    );
                    assert!(
                        start + got.len() as u64 > meta.vv.get(&a),
                        "entries missing"
                    );
                }
                // A truncation between meta and the read.
                Err(StoreError::LogTruncated { .. }) => {}
                Err(e) => panic!("read_log failed: {e}"),
            }
        }
    });
    let stats = b.log_stats().unwrap();
    assert!(stats.checkpoints > 0, "no checkpoint ran");
    let whole = snapshot(&b, &["t"], &[&a]);
    assert_eq!(whole.meta.log_start.get(&a), Some(&(COMMITS - 20 + 1)));
    drop(b);
    // Closing checkpointed everything, truncations included.
    remove_log(&path);
    let c = RedbStore::open(&path).unwrap();
    assert_eq!(snapshot(&c, &["t"], &[&a]), whole);
}

/// Commits as fast as the writer can make them, with the checkpoint thread
/// woken only by full memtables: a full memtable is frozen and the writer
/// waits for the previous checkpoint if it is still running, so memory
/// stays under two memtables, and nothing is lost.
#[test]
fn redb_a_writer_ahead_of_checkpoints_stalls_at_two_memtables() {
    use meridian_store::memtable::MEMTABLE_FLUSH_BYTES;
    const KEYS_PER_COMMIT: u32 = 4096;
    const COMMITS: u32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let b = open_without_checkpoints(&path);
    let mut most = 0;
    for c in 0..COMMITS {
        let keys: Vec<Vec<u8>> = (0..KEYS_PER_COMMIT)
            .map(|i| (c * KEYS_PER_COMMIT + i).to_be_bytes().to_vec())
            .collect();
        let batch = states_batch(
            &b,
            keys.iter()
                .map(|k| ("t", k.as_slice(), state(u64::from(c) + 1, 256)))
                .collect(),
        );
        b.commit(&batch, Durability::Fsync).unwrap();
        most = most.max(b.log_stats().unwrap().memtable_bytes);
    }
    let stats = b.log_stats().unwrap();
    let written = u64::from(COMMITS * KEYS_PER_COMMIT) * 256;
    assert!(
        written > 2 * MEMTABLE_FLUSH_BYTES as u64,
        "the test must outrun two memtables"
    );
    assert!(
        stats.checkpoints >= 1,
        "the writer never waited for a checkpoint"
    );
    assert!(
        most <= 2 * MEMTABLE_FLUSH_BYTES as u64 + 4 * 1024 * 1024,
        "memtables grew to {most} bytes"
    );
    let all = b.scan("t", None, usize::MAX).unwrap();
    assert_eq!(all.len() as u32, COMMITS * KEYS_PER_COMMIT);
    drop(b);
    let c = RedbStore::open(&path).unwrap();
    assert_eq!(
        c.scan("t", None, usize::MAX).unwrap().len() as u32,
        COMMITS * KEYS_PER_COMMIT
    );
}

fn set_layout(path: &std::path::Path, layout: u32) {
    let db = ::redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let meta: ::redb::TableDefinition<&str, &[u8]> = ::redb::TableDefinition::new("meta");
        let mut t = txn.open_table(meta).unwrap();
        t.insert(
            "layout_version",
            postcard::to_stdvec(&layout).unwrap().as_slice(),
        )
        .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn redb_upgrades_layout_1_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let a = region("us-east");
    append(
        &RedbStore::open(&path).unwrap(),
        &a,
        1..=2,
        Durability::Fsync,
    )
    .unwrap();
    // A file from before the write-ahead log opens, keeps its data, and is
    // marked layout 3 so an old build cannot open it and miss the log.
    set_layout(&path, 1);
    let b = RedbStore::open(&path).unwrap();
    assert_eq!(seqs(&read_all(&b, &a, 1).unwrap()), vec![1, 2]);
    drop(b);
    let db = ::redb::Database::create(&path).unwrap();
    let txn = ::redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta: ::redb::TableDefinition<&str, &[u8]> = ::redb::TableDefinition::new("meta");
    let t = txn.open_table(meta).unwrap();
    let layout: u32 =
        postcard::from_bytes(t.get("layout_version").unwrap().unwrap().value()).unwrap();
    assert_eq!(layout, 3);
    drop((t, txn, db));
    set_layout(&path, 4);
    match RedbStore::open(&path) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("layout 4"), "{m}"),
        other => panic!("a newer layout must be refused, got {other:?}"),
    }
}

#[test]
fn redb_refuses_a_second_opener_and_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let _first = RedbStore::open(&path).unwrap();
    // Two nodes pointed at one data directory must not both write.
    assert!(matches!(RedbStore::open(&path), Err(StoreError::Io(_))));

    let foreign = dir.path().join("foreign.redb");
    std::fs::write(&foreign, vec![0x5a; 64 * 1024]).unwrap();
    let err = RedbStore::open(&foreign).expect_err("not a redb file");
    assert!(
        matches!(err, StoreError::Corrupt(_) | StoreError::Io(_)),
        "{err:?}"
    );

    assert!(RedbStore::open(&dir.path().join("missing/dir/store.redb")).is_err());
}

fn withholding_a_table_keeps_sequences_and_drops_its_data<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let a = region("us-east");
    append(&b, &a, 1..=20, Durability::Fsync).unwrap();
    // Five entries of another table, then states in both.
    let meta = b.meta().unwrap();
    let other: Vec<LogEntry> = (21..=25)
        .map(|seq| LogEntry {
            table: "u".into(),
            ..entry(&a, seq)
        })
        .collect();
    let mut batch = states_batch(
        &b,
        vec![
            ("t", b"k1".as_slice(), state(1, 10)),
            ("t", b"k2".as_slice(), state(2, 10)),
            ("u", b"k1".as_slice(), state(3, 10)),
        ],
    );
    batch.log = other.clone();
    batch.vv = vv(&[(&a, 25)]);
    batch.hlc_floor = meta.hlc_floor;
    b.commit(&batch, Durability::Fsync).unwrap();
    b.truncate_log(&a, 5).unwrap();
    let before = b.meta().unwrap();

    // Only through 12: a holder may still need the later ones whole.
    let (rewritten, dropped) = b.withhold_table("t", &vv(&[(&a, 12)])).unwrap();
    assert!(
        rewritten >= 7,
        "every kept entry of t through 12: {rewritten}"
    );
    assert_eq!(dropped, 2);
    let log = read_all(&b, &a, 6).unwrap();
    assert_eq!(
        log[..7],
        (6..=12)
            .map(|s| entry(&a, s).withheld())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        log[7..15],
        (13..=20).map(|s| entry(&a, s)).collect::<Vec<_>>()
    );
    // Later, everything.
    let (rewritten, dropped) = b.withhold_table("t", &vv(&[(&a, 25)])).unwrap();
    assert_eq!((rewritten, dropped), (8, 0));
    let log = read_all(&b, &a, 6).unwrap();
    assert_eq!(seqs(&log), (6..=25).collect::<Vec<_>>(), "sequences stay");
    for e in &log[..15] {
        assert_eq!(*e, entry(&a, e.seq).withheld());
        assert!(e.key.is_empty());
    }
    assert_eq!(&log[15..], other.as_slice(), "other tables untouched");
    assert_eq!(b.get("t", b"k1").unwrap(), None);
    assert!(b.scan("t", None, 10).unwrap().is_empty());
    assert_eq!(b.get("u", b"k1").unwrap(), Some(state(3, 10)));
    assert_eq!(
        b.meta().unwrap(),
        before,
        "vectors and log bounds unchanged"
    );
    // Again: nothing left to do.
    assert_eq!(b.withhold_table("t", &vv(&[(&a, 25)])).unwrap(), (0, 0));
    // Appends go on after it.
    append(&b, &a, 26..=26, Durability::Fsync).unwrap();
    assert_eq!(seqs(&read_all(&b, &a, 26).unwrap()), vec![26]);
}

/// A state larger than the write-ahead log takes (redb writes it directly)
/// is read back at once, by `get` and `scan`, whatever the key held before
/// (a checkpointed state, a state still in memory), and a later small
/// state replaces it.
fn rows_too_large_to_log_are_read_back<B: Backend, G>(make: fn() -> (B, G)) {
    let (b, _guard) = make();
    let large = 300 * 1024;
    let put = |states: Vec<(&str, &[u8], KeyState)>| {
        b.commit(&states_batch(&b, states), Durability::Fsync)
            .unwrap()
    };
    put(vec![("t", b"a", state(1, 10)), ("t", b"b", state(1, 10))]);
    put(vec![("t", b"a", state(2, large))]);
    assert_eq!(b.get("t", b"a").unwrap(), Some(state(2, large)));
    assert_eq!(b.get("t", b"b").unwrap(), Some(state(1, 10)));
    put(vec![("t", b"b", state(3, 20))]);
    put(vec![("t", b"b", state(4, large + 1))]);
    put(vec![("t", b"a", state(5, 30))]);
    assert_eq!(b.get("t", b"a").unwrap(), Some(state(5, 30)));
    assert_eq!(b.get("t", b"b").unwrap(), Some(state(4, large + 1)));
    assert_eq!(
        b.scan("t", None, 10).unwrap(),
        vec![
            (b"a".to_vec(), state(5, 30)),
            (b"b".to_vec(), state(4, large + 1)),
        ]
    );
}
