//! Convergence digests: a hash of everything a table shows to readers.
//!
//! Two regions with equal digests serve identical data. What a reader can
//! see goes in — key, type, value, expiry — so local-only differences (a
//! purged incarnation, a pending one, tombstones) never make converged
//! regions look different. One thing beyond the visible value goes in too: a
//! counter's per-origin shares. Different shares can sum to the same value
//! (each region missing a different peer's increments) and would then look
//! converged while increments are still in flight; the shares themselves are
//! identical once every region holds every increment.

use meridian_core::record::Kind;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::backend::{Backend, StoreError};

/// Keys read per scan page while hashing.
const SCAN_PAGE_KEYS: usize = 1024;

/// A table's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDigest {
    /// Keys visible at the time of hashing.
    pub keys: u64,
    /// SHA-256 over the visible contents, hex.
    pub sha256: String,
}

#[derive(Serialize)]
enum Visible<'a> {
    String(Vec<u8>),
    /// A counter: its value and each origin's `(increments, decrements)`.
    Counter(Vec<u8>, Vec<(&'a str, u64, u64)>),
    Hash(Vec<(&'a [u8], &'a [u8])>),
    Set(Vec<&'a [u8]>),
}

/// Calls `f` with every stored `(key, state)` of `table` in key order, a
/// page at a time, until it returns `false`.
fn for_each_state(
    backend: &dyn Backend,
    table: &str,
    mut f: impl FnMut(&[u8], &meridian_core::record::KeyState) -> bool,
) -> Result<(), StoreError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = backend.scan(table, after.as_deref(), SCAN_PAGE_KEYS)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        let next = last.clone();
        for (key, state) in &page {
            if !f(key, state) {
                return Ok(());
            }
        }
        after = Some(next);
    }
}

/// The bytes a digest hashes for one key: what a reader sees of it
/// (`None` when it reads as absent), length-prefixed.
fn visible_record(
    key: &[u8],
    state: &meridian_core::record::KeyState,
    now_ms: u64,
) -> Option<Vec<u8>> {
    if state.is_absent(now_ms) {
        return None;
    }
    let visible = match state.kind()? {
        Kind::String if !state.counter.is_empty() => Visible::Counter(
            state.bytes().unwrap_or_default(),
            state
                .counter
                .iter()
                .map(|(origin, c)| (origin.as_str(), c.p, c.n))
                .collect(),
        ),
        Kind::String => Visible::String(state.bytes().unwrap_or_default()),
        Kind::Hash => Visible::Hash(state.hash_fields()),
        Kind::Set => Visible::Set(state.set_members()),
    };
    let record = postcard::to_stdvec(&(key, visible, state.expires_at_ms()))
        .expect("visible records always encode");
    let mut out = (record.len() as u64).to_le_bytes().to_vec();
    out.extend(record);
    Some(out)
}

/// Hashes `table` as readers see it at `now_ms`.
pub fn table_digest(
    backend: &dyn Backend,
    table: &str,
    now_ms: u64,
) -> Result<TableDigest, StoreError> {
    let mut hasher = Sha256::new();
    let mut keys = 0u64;
    for_each_state(backend, table, |key, state| {
        if let Some(record) = visible_record(key, state, now_ms) {
            hasher.update(&record);
            keys += 1;
        }
        true
    })?;
    Ok(TableDigest {
        keys,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Buckets of [`bucket_digests`]: keys fall into one by the first byte of
/// their SHA-256, so ranges compare independently of key distribution.
pub const DIGEST_BUCKETS: usize = 256;

/// The bucket a key belongs to.
pub fn bucket_of(key: &[u8]) -> u8 {
    Sha256::digest(key)[0]
}

/// Per-bucket digests of what `table` shows readers: two regions can find
/// which key ranges differ without exchanging the keys.
pub fn bucket_digests(
    backend: &dyn Backend,
    table: &str,
    now_ms: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut hashers: Vec<Sha256> = (0..DIGEST_BUCKETS).map(|_| Sha256::new()).collect();
    for_each_state(backend, table, |key, state| {
        if let Some(record) = visible_record(key, state, now_ms) {
            hashers[bucket_of(key) as usize].update(&record);
        }
        true
    })?;
    Ok(hashers.into_iter().map(|h| h.finalize().into()).collect())
}

/// Every stored state of `table` in one bucket, at most `limit`.
pub fn bucket_states(
    backend: &dyn Backend,
    table: &str,
    bucket: u8,
    limit: usize,
) -> Result<Vec<(Vec<u8>, meridian_core::record::KeyState)>, StoreError> {
    let mut out = Vec::new();
    for_each_state(backend, table, |key, state| {
        if bucket_of(key) == bucket {
            out.push((key.to_vec(), state.clone()));
        }
        out.len() < limit
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CommitBatch, Durability};
    use crate::mem::MemStore;
    use meridian_core::record::KeyState;
    use meridian_core::{Hlc, RegionName, Version, VersionVector};

    fn state(v: u64, value: &[u8]) -> KeyState {
        let version = Version {
            hlc: Hlc::from_u64(v),
            origin: RegionName::new("a").unwrap(),
        };
        KeyState::from_put(version, value.to_vec())
    }

    fn store(states: Vec<(&str, KeyState)>) -> MemStore {
        let m = MemStore::new();
        let batch = CommitBatch {
            states: states
                .into_iter()
                .map(|(k, s)| ("t".to_string(), k.as_bytes().to_vec(), s))
                .collect(),
            vv: VersionVector::new(),
            ..CommitBatch::default()
        };
        m.commit(&batch, Durability::None).unwrap();
        m
    }

    #[test]
    fn one_changed_key_changes_exactly_its_bucket() {
        let a = store(vec![
            ("k1", state(1, b"x")),
            ("k2", state(2, b"y")),
            ("k3", state(3, b"z")),
        ]);
        let b = store(vec![
            ("k1", state(1, b"x")),
            ("k2", state(2, b"CHANGED")),
            ("k3", state(3, b"z")),
        ]);
        let (da, db) = (
            bucket_digests(&a, "t", 0).unwrap(),
            bucket_digests(&b, "t", 0).unwrap(),
        );
        assert_eq!(da.len(), DIGEST_BUCKETS);
        let differing: Vec<usize> = (0..DIGEST_BUCKETS).filter(|i| da[*i] != db[*i]).collect();
        assert_eq!(differing, vec![bucket_of(b"k2") as usize]);
        let states = bucket_states(&b, "t", bucket_of(b"k2"), 10).unwrap();
        assert!(states
            .iter()
            .any(|(k, s)| k == b"k2" && s.bytes().unwrap() == b"CHANGED"));
    }

    #[test]
    fn equal_visible_data_gives_equal_digests_whatever_the_versions() {
        let a = store(vec![("k1", state(1, b"x")), ("k2", state(2, b"y"))]);
        let b = store(vec![("k1", state(7, b"x")), ("k2", state(9, b"y"))]);
        let c = store(vec![("k1", state(1, b"x")), ("k2", state(2, b"z"))]);
        let (da, db, dc) = (
            table_digest(&a, "t", 0).unwrap(),
            table_digest(&b, "t", 0).unwrap(),
            table_digest(&c, "t", 0).unwrap(),
        );
        assert_eq!(da, db);
        assert_ne!(da, dc);
        assert_eq!(da.keys, 2);
        assert_eq!(table_digest(&a, "other", 0).unwrap().keys, 0);
    }

    #[test]
    fn counters_with_equal_sums_but_different_shares_differ() {
        let counter = |shares: &[(&str, u64)]| {
            let mut s = KeyState::from_put(
                Version {
                    hlc: Hlc::from_u64(1),
                    origin: RegionName::new("a").unwrap(),
                },
                b"0".to_vec(),
            );
            for (origin, p) in shares {
                s.counter
                    .entry(RegionName::new(*origin).unwrap())
                    .or_default()
                    .p = *p;
            }
            s
        };
        // Each region misses a different peer's last 10 increments: all
        // read 80, but they have not converged.
        let a = store(vec![("n", counter(&[("a", 30), ("b", 20), ("c", 30)]))]);
        let b = store(vec![("n", counter(&[("a", 30), ("b", 30), ("c", 20)]))]);
        let c = store(vec![("n", counter(&[("a", 30), ("b", 20), ("c", 30)]))]);
        let (da, db, dc) = (
            table_digest(&a, "t", 0).unwrap(),
            table_digest(&b, "t", 0).unwrap(),
            table_digest(&c, "t", 0).unwrap(),
        );
        assert_eq!(
            a.get("t", b"n").unwrap().unwrap().bytes(),
            Some(b"80".to_vec())
        );
        assert_eq!(
            b.get("t", b"n").unwrap().unwrap().bytes(),
            Some(b"80".to_vec())
        );
        assert_ne!(da, db);
        assert_eq!(da, dc);
    }
}
