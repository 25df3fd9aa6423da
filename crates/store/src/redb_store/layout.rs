//! The on-disk layout of a [`super::RedbStore`] file: its tables, how keys
//! and values are encoded, and the metadata blobs (see the layout in
//! [`super`]).
//!
//! Owns the table definitions, key encoding (data keys, log bucket names),
//! postcard encoding and decoding with their error texts, redb's errors
//! mapped onto [`StoreError`], and the row writers every redb transaction
//! of the store uses ([`insert_rows`], [`insert_entries`], [`put_meta`]),
//! and [`StoredMeta`], everything in `meta` decoded.
//! Does not decide when anything is written: checkpoints, commits and the
//! open do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meridian_core::{Hlc, RegionName, VersionVector};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Meta, StoreError};
use crate::contract::TABLE_NAME_BYTES_MAX;
use crate::wal::Rows;

/// Log entries per bucket table. Truncation works in whole buckets, so this
/// bounds how many collected entries stay on disk per origin (at ~150 bytes
/// an entry, about 600 KiB), while keeping the number of tables small: a
/// million-entry log is 245 tables, and a typical read of a few hundred
/// entries opens one or two.
pub const LOG_BUCKET_ENTRIES: u64 = 4096;

/// The layout this code writes and reads; stored in `meta` so a future
/// layout change is detected at open instead of misread.
///
/// Layout 2 adds the write-ahead log: commits since the last checkpoint are
/// only in `<file>.wal`, which a layout-1 build would ignore (losing them)
/// and, upgraded again, replay over newer data. Layout 3 adds the log's
/// second segment, `<file>.wal.1`, which a layout-2 build would ignore.
/// Opening a layout-1 or 2 file upgrades it (nothing to convert: no `lsn`
/// yet means 0, and a layout-2 log is the first segment); older builds
/// refuse a newer layout.
pub(super) const LAYOUT_VERSION: u32 = 3;

pub(super) const META_LAYOUT: &str = "layout_version";
pub(super) const META_VV: &str = "vv";
pub(super) const META_HLC_FLOOR: &str = "hlc_floor";
pub(super) const META_PEER_VVS: &str = "peer_vvs";
pub(super) const META_LOG_START: &str = "log_start";
pub(super) const META_LOG_END: &str = "log_end";
pub(super) const META_LSN: &str = "lsn";

pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A read-only view of [`DATA`].
pub(super) type DataTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens [`DATA`] as of redb's latest commit.
pub(super) fn open_data(db: &Database) -> Result<Arc<DataTable>, StoreError> {
    let txn = db.begin_read().map_err(from_redb)?;
    Ok(Arc::new(txn.open_table(DATA).map_err(from_redb)?))
}

/// Everything in `meta`, decoded.
#[derive(Clone, Default)]
pub(super) struct StoredMeta {
    pub(super) meta: Meta,
    pub(super) log_end: BTreeMap<RegionName, u64>,
}

impl StoredMeta {
    pub(super) fn log_start(&self, origin: &RegionName) -> u64 {
        self.meta.log_start.get(origin).copied().unwrap_or(1)
    }

    pub(super) fn log_end(&self, origin: &RegionName) -> u64 {
        self.log_end.get(origin).copied().unwrap_or(0)
    }

    /// Takes in what a commit changes besides keys and entries.
    pub(super) fn apply(&mut self, rows: &Rows, new_ends: BTreeMap<RegionName, u64>) {
        self.meta.vv = rows.vv.clone();
        self.meta.hlc_floor = rows.hlc_floor;
        for (peer, vv) in &rows.peer_vvs {
            self.meta.peer_vvs.insert(peer.clone(), vv.clone());
        }
        self.log_end.extend(new_ends);
    }
}

/// Both segments of the write-ahead log of the store at `path`:
/// `<path>.wal` and `<path>.wal.1`.
pub fn wal_paths(path: &Path) -> [PathBuf; 2] {
    let mut first = path.as_os_str().to_owned();
    first.push(".wal");
    let mut second = first.clone();
    second.push(".1");
    [PathBuf::from(first), PathBuf::from(second)]
}

/// Writes one commit's encoded rows into `txn`: key states and log
/// entries (the metadata is [`put_meta`]'s).
pub(super) fn insert_rows(txn: &WriteTransaction, rows: &Rows) -> Result<(), StoreError> {
    let mut data = txn.open_table(DATA).map_err(from_redb)?;
    for (key, value) in &rows.states {
        data.insert(key.as_slice(), value.as_slice())
            .map_err(from_redb)?;
    }
    drop(data);
    // Entries are in sequence order per origin.
    let mut i = 0;
    while i < rows.log.len() {
        let origin = &rows.log[i].0;
        let run = rows.log[i..]
            .iter()
            .take_while(|(o, _, _)| o == origin)
            .count();
        insert_entries(
            txn,
            origin,
            rows.log[i..i + run]
                .iter()
                .map(|(_, seq, bytes)| (*seq, bytes.as_slice())),
        )?;
        i += run;
    }
    Ok(())
}

/// Writes the metadata after commit `lsn` into `txn`: the vector, floor,
/// peers' vectors, log ends and the lsn (`log_start` only changes with
/// truncations, which checkpoints write).
pub(super) fn put_meta(
    txn: &WriteTransaction,
    stored: &StoredMeta,
    lsn: u64,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(from_redb)?;
    put_encoded(&mut meta, META_VV, &stored.meta.vv)?;
    put_encoded(&mut meta, META_HLC_FLOOR, &stored.meta.hlc_floor)?;
    put_encoded(&mut meta, META_PEER_VVS, &stored.meta.peer_vvs)?;
    put_encoded(&mut meta, META_LOG_END, &stored.log_end)?;
    put_encoded(&mut meta, META_LSN, &lsn)?;
    Ok(())
}

/// Inserts `origin`'s entries, in sequence order, each bucket table opened
/// once for its run.
pub(super) fn insert_entries<'a>(
    txn: &WriteTransaction,
    origin: &RegionName,
    entries: impl Iterator<Item = (u64, &'a [u8])>,
) -> Result<(), StoreError> {
    let mut open: Option<(u64, redb::Table<'_, u64, &'static [u8]>)> = None;
    for (seq, bytes) in entries {
        // Seq 0 never exists; check_commit rejects it, replay never sees it.
        let bucket = bucket_of(seq.max(1));
        let table = match &mut open {
            Some((b, table)) if *b == bucket => table,
            _ => {
                let name = log_table_name(origin, bucket);
                let table = txn.open_table(log_table(&name)).map_err(from_redb)?;
                &mut open.insert((bucket, table)).1
            }
        };
        let old = table.insert(seq, bytes).map_err(from_redb)?;
        debug_assert!(old.is_none(), "{origin}/{seq} was stored twice");
    }
    Ok(())
}

pub(super) fn bucket_of(seq: u64) -> u64 {
    debug_assert!(seq >= 1, "sequences start at 1");
    (seq - 1) / LOG_BUCKET_ENTRIES
}

/// The last sequence bucket `bucket` can hold.
pub(super) fn bucket_last_seq(bucket: u64) -> u64 {
    (bucket + 1) * LOG_BUCKET_ENTRIES
}

pub(super) fn log_table_name(origin: &RegionName, bucket: u64) -> String {
    // Region names are `[a-z0-9-]`, so `/` cannot be confused with them.
    format!("log/{origin}/{bucket:010}")
}

pub(super) fn log_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

pub(super) fn data_prefix(table: &str) -> Vec<u8> {
    debug_assert!(table.len() <= TABLE_NAME_BYTES_MAX);
    let mut k = Vec::with_capacity(1 + table.len());
    k.push(table.len() as u8);
    k.extend_from_slice(table.as_bytes());
    k
}

pub(super) fn data_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + table.len() + key.len());
    put_data_key(&mut k, table, key);
    k
}

/// Replaces `buf` with the data key of `table`/`key` (see the layout).
pub(super) fn put_data_key(buf: &mut Vec<u8>, table: &str, key: &[u8]) {
    debug_assert!(table.len() <= TABLE_NAME_BYTES_MAX);
    buf.clear();
    buf.push(table.len() as u8);
    buf.extend_from_slice(table.as_bytes());
    buf.extend_from_slice(key);
}

/// Maps redb's errors onto what the caller can act on: damaged files stop
/// the node, a value redb cannot hold rejects the batch, everything else
/// (failing or full disk, lock held by another process) is an I/O error.
pub(super) fn from_redb(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(m) => StoreError::Corrupt(m),
        redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }
        // Every table a read opens exists by construction.
        | redb::Error::TableDoesNotExist(_) => StoreError::Corrupt(e.to_string()),
        redb::Error::ValueTooLarge(_) => StoreError::Invalid(e.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

pub(super) fn missing_bucket(origin: &RegionName, name: &str, e: redb::TableError) -> StoreError {
    match e {
        redb::TableError::TableDoesNotExist(_) => {
            StoreError::Corrupt(format!("log of {origin}: bucket table {name} is missing"))
        }
        other => from_redb(other),
    }
}

pub(super) fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    // Most states and entries fit in 256 bytes: one allocation, not a
    // doubling series.
    postcard::to_extend(value, Vec::with_capacity(256))
        .map_err(|e| StoreError::Invalid(format!("cannot encode {what}: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl fmt::Display,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} does not decode: {e}")))
}

pub(super) fn get_decoded<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(from_redb)? {
        Some(v) => decode(v.value(), format_args!("meta `{key}`")).map(Some),
        None => Ok(None),
    }
}

pub(super) fn put_encoded<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(value, key)?;
    table.insert(key, bytes.as_slice()).map_err(from_redb)?;
    Ok(())
}

pub(super) fn load_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<StoredMeta, StoreError> {
    Ok(StoredMeta {
        meta: Meta {
            vv: get_decoded::<VersionVector>(table, META_VV)?.unwrap_or_default(),
            hlc_floor: get_decoded::<Hlc>(table, META_HLC_FLOOR)?.unwrap_or_default(),
            peer_vvs: get_decoded(table, META_PEER_VVS)?.unwrap_or_default(),
            log_start: get_decoded(table, META_LOG_START)?.unwrap_or_default(),
        },
        log_end: get_decoded(table, META_LOG_END)?.unwrap_or_default(),
    })
}
