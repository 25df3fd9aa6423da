//! Convergence digests: a hash of everything a table shows to readers.
//!
//! Two regions with equal digests serve identical data. Only what a reader
//! can see goes in — key, type, value, expiry — so local-only differences
//! (a purged incarnation, a pending one, tombstones) never make converged
//! regions look different.

use meridian_core::record::Kind;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::backend::{Backend, StoreError};

/// Keys read per scan page while hashing.
const SCAN_PAGE_KEYS: usize = 1024;

/// A table's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableDigest {
    /// Keys visible at the time of hashing.
    pub keys: u64,
    /// SHA-256 over the visible contents, hex.
    pub sha256: String,
}

#[derive(Serialize)]
enum Visible<'a> {
    String(Vec<u8>),
    Hash(Vec<(&'a [u8], &'a [u8])>),
    Set(Vec<&'a [u8]>),
}

/// Hashes `table` as readers see it at `now_ms`.
pub fn table_digest(
    backend: &dyn Backend,
    table: &str,
    now_ms: u64,
) -> Result<TableDigest, StoreError> {
    let mut hasher = Sha256::new();
    let mut keys = 0u64;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = backend.scan(table, after.as_deref(), SCAN_PAGE_KEYS)?;
        let Some((last, _)) = page.last() else { break };
        let next = last.clone();
        for (key, state) in &page {
            if state.is_absent(now_ms) {
                continue;
            }
            let visible = match state.kind() {
                Some(Kind::String) => Visible::String(state.bytes().unwrap_or_default()),
                Some(Kind::Hash) => Visible::Hash(state.hash_fields()),
                Some(Kind::Set) => Visible::Set(state.set_members()),
                None => continue,
            };
            let record = postcard::to_stdvec(&(key, visible, state.expires_at_ms()))
                .expect("visible records always encode");
            hasher.update((record.len() as u64).to_le_bytes());
            hasher.update(&record);
            keys += 1;
        }
        after = Some(next);
    }
    Ok(TableDigest {
        keys,
        sha256: hex::encode(hasher.finalize()),
    })
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
}
