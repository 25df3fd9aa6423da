//! The write-ahead log in front of [`crate::RedbStore`].
//!
//! A durable redb commit writes every B-tree page the commit changed, at
//! random places in the file, and fsyncs it: 1–2 ms on our disks, and while
//! it runs the writer thread cannot start the next group commit. Instead each
//! commit appends one record to this log — the commit's rows, already
//! encoded for redb — and fdatasyncs it (one small sequential write, about
//! 0.2 ms), then commits to redb without fsync. Readers open redb read
//! transactions, which see those commits, and only after the log record is
//! durable: nothing is readable that a crash could take back.
//!
//! Every [`CHECKPOINT_INTERVAL`] or [`WAL_CHECKPOINT_BYTES`] of log, and for
//! any commit over [`LOGGED_COMMIT_BYTES_MAX`] (large values would be
//! written twice), a commit is made durable in redb itself (a
//! *checkpoint*) instead, and the log
//! starts again at offset 0, overwriting the old records in place so the
//! file's blocks stay allocated and a later fdatasync has no metadata to
//! write.
//!
//! # Records
//! `[body length u32 LE][CRC-32 of body u32 LE][body]`; body =
//! `[lsn u64 LE][rows]`. The log sequence number (lsn) counts every commit
//! of the store, checkpoints included, and redb's `meta` holds the lsn of
//! the last commit it contains. Rows: key states, log entries and the
//! commit's metadata (see `Rows::to_record`).
//!
//! # Recovery
//! Reading starts at offset 0 and follows records while each is whole, its
//! CRC holds and its lsn is one more than the previous record's. The first
//! record that breaks the chain ends the log: a torn tail (a crash during an
//! append, never acknowledged) or a record left from before the last
//! checkpoint (older lsn). Records above redb's durable lsn are written into
//! redb again, in order, and made durable before the store opens. A log whose
//! chain starts above the next lsn redb needs means records are missing:
//! the store refuses to open ([`StoreError::Corrupt`]) rather than lose them.
//!
//! Limits: a record holds at most [`RECORD_BYTES_MAX`] (a group commit is
//! bounded well below it by the writer's batch limits); a failed fdatasync
//! poisons the log — every later commit is refused with an I/O error until
//! the node restarts — because after a failed fsync the kernel may have
//! dropped the dirty pages and a retry could report success for bytes that
//! are gone. The refused record may still be on disk, so the store then
//! commits its lsn durably to redb (without its rows): recovery skips it
//! rather than replay a write that was refused.
//!
//! Not detected: damage inside the log that breaks the chain looks like its
//! end, so acknowledged commits after it would be lost silently (a per-epoch
//! salt in each record would let recovery tell the two apart).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meridian_core::{Hlc, RegionName, VersionVector};

use crate::backend::StoreError;

/// Time between checkpoints under a steady stream of commits. Bounds how
/// much log a restart replays and how many pages a checkpoint writes.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Log bytes after which the next commit is a checkpoint, whatever the time.
/// Bounds how much a checkpoint writes at once (and stalls the writer).
pub const WAL_CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

/// A commit whose rows are larger than this is a checkpoint itself rather
/// than logged: its bytes would otherwise be written twice (log, then
/// redb), and one large durable redb commit costs about what its log
/// record would.
pub const LOGGED_COMMIT_BYTES_MAX: usize = 1024 * 1024;

/// The largest record the log writes or reads: a body longer than this is
/// refused when written and ends the chain when read.
pub const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Length and CRC.
const HEADER_BYTES: usize = 8;

/// One commit's rows, encoded as redb stores them: what a log record holds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rows {
    /// `(data key, encoded key state)`.
    pub states: Vec<(Vec<u8>, Vec<u8>)>,
    /// `(origin, seq, encoded log entry)`, in commit order.
    pub log: Vec<(RegionName, u64, Vec<u8>)>,
    /// The version vector after the commit.
    pub vv: VersionVector,
    /// The HLC floor after the commit.
    pub hlc_floor: Hlc,
    /// Peers' vectors the commit records.
    pub peer_vvs: BTreeMap<RegionName, VersionVector>,
}

impl Rows {
    /// The record body for commit `lsn`:
    /// `lsn u64 | n u32 | n × (len u32, key, len u32, state) | m u32 |
    /// m × (len u8, origin, seq u64, len u32, entry) | len u32, postcard of
    /// (vv, hlc_floor, peer_vvs)`, integers little-endian.
    pub fn to_record(&self, lsn: u64) -> Result<Vec<u8>, StoreError> {
        let tail = postcard::to_stdvec(&(&self.vv, &self.hlc_floor, &self.peer_vvs))
            .map_err(|e| StoreError::Invalid(format!("cannot encode a commit's metadata: {e}")))?;
        let size = self.rows_len() + 4 + tail.len();
        if size > RECORD_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "a commit of {size} bytes exceeds the write-ahead log's record limit of {RECORD_BYTES_MAX}"
            )));
        }
        let mut out = Vec::with_capacity(HEADER_BYTES + size);
        out.extend_from_slice(&[0; HEADER_BYTES]);
        out.extend_from_slice(&lsn.to_le_bytes());
        put_u32(&mut out, self.states.len());
        for (key, state) in &self.states {
            put_bytes(&mut out, key);
            put_bytes(&mut out, state);
        }
        put_u32(&mut out, self.log.len());
        for (origin, seq, entry) in &self.log {
            let name = origin.as_str().as_bytes();
            // Region names are validated short ASCII; the u8 length is safe.
            debug_assert!(name.len() <= u8::MAX as usize);
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&seq.to_le_bytes());
            put_bytes(&mut out, entry);
        }
        put_bytes(&mut out, &tail);
        let body_len = (out.len() - HEADER_BYTES) as u32;
        let crc = crc32(&out[HEADER_BYTES..]);
        out[0..4].copy_from_slice(&body_len.to_le_bytes());
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Bytes of the record body before the metadata.
    pub fn rows_len(&self) -> usize {
        8 + 4
            + self
                .states
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>()
            + 4
            + self
                .log
                .iter()
                .map(|(o, _, e)| 13 + o.as_str().len() + e.len())
                .sum::<usize>()
    }

    /// Decodes a record body written by [`Rows::to_record`].
    pub fn from_body(body: &[u8]) -> Result<(u64, Rows), String> {
        let mut r = Reader { buf: body, at: 0 };
        let lsn = r.u64()?;
        let mut rows = Rows::default();
        for _ in 0..r.u32()? {
            let key = r.bytes()?.to_vec();
            let state = r.bytes()?.to_vec();
            rows.states.push((key, state));
        }
        for _ in 0..r.u32()? {
            let len = r.take(1)?[0] as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| "a region name is not UTF-8".to_string())?;
            let origin = RegionName::new(name).map_err(|e| e.to_string())?;
            let seq = r.u64()?;
            let entry = r.bytes()?.to_vec();
            rows.log.push((origin, seq, entry));
        }
        let tail = r.bytes()?;
        (rows.vv, rows.hlc_floor, rows.peer_vvs) =
            postcard::from_bytes(tail).map_err(|e| format!("metadata does not decode: {e}"))?;
        if r.at != body.len() {
            return Err(format!("{} bytes after the rows", body.len() - r.at));
        }
        Ok((lsn, rows))
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.at))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The log file and where the next record goes.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next record is written.
    end: u64,
    /// The lsn of the store's last commit (logged or checkpoint).
    pub lsn: u64,
    /// When the last checkpoint finished.
    last_checkpoint: Instant,
    /// Set when an fdatasync failed: nothing more is written.
    poisoned: Option<String>,
    /// A commit without fsync (`Durability::None`) reached redb since the
    /// last checkpoint and is not in this log: the next fsync'd commit must
    /// be a checkpoint, or a crash would keep it and lose what it built on.
    pub unlogged: bool,
}

impl Wal {
    /// Opens (creating) the log at `path` and reads its chain of records.
    /// Returns the log, positioned at offset 0 with `lsn` = `durable_lsn`,
    /// and the records above `durable_lsn` for the caller to replay; after
    /// replaying them it calls [`Wal::checkpointed`].
    pub fn open(path: &Path, durable_lsn: u64) -> Result<(Wal, Vec<Rows>), StoreError> {
        let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        if created {
            // The new directory entry must survive a power loss too.
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let chain = read_chain(&bytes);
        let mut replay = Vec::new();
        let mut first = None;
        for body in chain {
            let lsn = u64::from_le_bytes(body[..8].try_into().expect("read_chain checks 8 bytes"));
            first.get_or_insert(lsn);
            // Records redb already holds are not decoded: only their place
            // in the chain matters.
            if lsn > durable_lsn {
                let (_, rows) = Rows::from_body(body).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "{}: commit {lsn} has a valid checksum but does not decode: {e}",
                        path.display()
                    ))
                })?;
                replay.push((lsn, rows));
            }
        }
        if let Some(first) = first {
            if first > durable_lsn + 1 {
                return Err(StoreError::Corrupt(format!(
                    "{}: the write-ahead log starts at commit {first}, but the store holds commits only through {durable_lsn}: commits in between are missing",
                    path.display()
                )));
            }
        }
        tracing::info!(
            path = %path.display(),
            durable_lsn,
            replay = replay.len(),
            "write-ahead log opened"
        );
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            end: 0,
            lsn: durable_lsn,
            last_checkpoint: Instant::now(),
            poisoned: None,
            unlogged: false,
        };
        Ok((wal, replay.into_iter().map(|(_, rows)| rows).collect()))
    }

    /// Whether the next commit should be a checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        self.end >= WAL_CHECKPOINT_BYTES || self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
    }

    /// Refuses every commit, logged or not, once the log is poisoned.
    pub fn refuse_if_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(why) => Err(StoreError::Io(why.clone())),
            None => Ok(()),
        }
    }

    /// Whether an fdatasync (or taking a record back) failed.
    pub fn poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Appends `record` (from [`Rows::to_record`]) and fdatasyncs it. On
    /// error nothing counts as written: the next append overwrites the
    /// same place.
    pub fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.refuse_if_poisoned()?;
        let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", self.path.display()));
        self.file.write_all_at(record, self.end).map_err(io)?;
        if let Err(e) = self.file.sync_data() {
            let why = format!(
                "{}: fdatasync failed ({e}); the write-ahead log refuses further commits until the node restarts",
                self.path.display()
            );
            self.poisoned = Some(why.clone());
            return Err(StoreError::Io(why));
        }
        self.end += record.len() as u64;
        Ok(())
    }

    /// Takes back the record just appended (of `len` bytes), after redb
    /// refused the commit it logs: its header is zeroed and synced, so
    /// recovery stops before it.
    pub fn void_last(&mut self, len: usize) -> Result<(), StoreError> {
        self.end -= len as u64;
        let result = self
            .file
            .write_all_at(&[0; HEADER_BYTES], self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            let why = format!(
                "{}: could not take back a logged commit that redb refused ({e}); the write-ahead log refuses further commits until the node restarts",
                self.path.display()
            );
            self.poisoned = Some(why.clone());
            return Err(StoreError::Io(why));
        }
        Ok(())
    }

    /// Commit `lsn` reached redb without a checkpoint, through a log record
    /// (`logged`) or not at all (`Durability::None`).
    pub fn committed(&mut self, lsn: u64, logged: bool) {
        self.lsn = lsn;
        self.unlogged |= !logged;
    }

    /// Everything through `lsn` is durable in redb: the log starts over.
    pub fn checkpointed(&mut self, lsn: u64) {
        self.lsn = lsn;
        self.end = 0;
        self.last_checkpoint = Instant::now();
        self.unlogged = false;
    }

    /// Bytes of log written since the last checkpoint.
    pub fn len(&self) -> u64 {
        self.end
    }
}

/// The bodies of the chain of records from offset 0: each whole, its CRC
/// matching and its lsn one above the previous one.
fn read_chain(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut prev: Option<u64> = None;
    while bytes.len() - at >= HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + HEADER_BYTES;
        if !(8..=RECORD_BYTES_MAX).contains(&len) || bytes.len() - start < len {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32(body) != crc {
            break;
        }
        let lsn = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        if prev.is_some_and(|p| lsn != p + 1) {
            break;
        }
        prev = Some(lsn);
        out.push(body);
        at = start + len;
    }
    out
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), eight bytes per
/// step ("slicing by 8") so checksumming a group commit's record costs
/// little next to writing it.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = CRC_TABLES[7][(lo & 0xff) as usize]
            ^ CRC_TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ CRC_TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ CRC_TABLES[4][(lo >> 24) as usize]
            ^ CRC_TABLES[3][c[4] as usize]
            ^ CRC_TABLES[2][c[5] as usize]
            ^ CRC_TABLES[1][c[6] as usize]
            ^ CRC_TABLES[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = CRC_TABLES[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u8) -> Rows {
        let us = RegionName::new("us-east").unwrap();
        let mut vv = VersionVector::default();
        vv.advance_to_at_least(&us, n as u64);
        Rows {
            states: vec![(vec![3, b'a', b'b', b'c', n], vec![n; 40])],
            log: vec![(us, n as u64, vec![n; 25])],
            vv,
            hlc_floor: Hlc::default(),
            peer_vvs: BTreeMap::new(),
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Slicing and the byte loop agree across the 8-byte boundary.
        let long: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut bytewise = !0u32;
        for &b in &long {
            bytewise = CRC_TABLES[0][((bytewise ^ b as u32) & 0xff) as usize] ^ (bytewise >> 8);
        }
        assert_eq!(crc32(&long), !bytewise);
    }

    #[test]
    fn a_record_round_trips() {
        let r = rows(7);
        let rec = r.to_record(42).unwrap();
        let (lsn, back) = Rows::from_body(&rec[HEADER_BYTES..]).unwrap();
        assert_eq!(lsn, 42);
        assert_eq!(back, r);
    }

    #[test]
    fn the_chain_stops_at_a_torn_tail_a_bad_crc_or_an_older_record() {
        let a = rows(1).to_record(5).unwrap();
        let b = rows(2).to_record(6).unwrap();
        let c = rows(3).to_record(7).unwrap();
        let mut log = [a.clone(), b.clone(), c.clone()].concat();
        assert_eq!(read_chain(&log).len(), 3);
        // Torn tail: the last record is cut short.
        assert_eq!(read_chain(&log[..log.len() - 3]).len(), 2);
        // A flipped byte in the second record ends the chain before it.
        let at = a.len() + HEADER_BYTES + 12;
        log[at] ^= 1;
        assert_eq!(read_chain(&log).len(), 1);
        // A record from before a checkpoint (older lsn) after newer ones.
        let old = rows(9).to_record(2).unwrap();
        assert_eq!(read_chain(&[a, b, old].concat()).len(), 2);
    }

    #[test]
    fn open_replays_only_records_above_the_durable_lsn_and_refuses_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.wal");
        let log = [
            rows(1).to_record(5).unwrap(),
            rows(2).to_record(6).unwrap(),
            rows(3).to_record(7).unwrap(),
        ]
        .concat();
        std::fs::write(&path, &log).unwrap();
        let (_, replay) = Wal::open(&path, 5).unwrap();
        assert_eq!(replay, vec![rows(2), rows(3)]);
        let (_, replay) = Wal::open(&path, 9).unwrap();
        assert!(replay.is_empty());
        match Wal::open(&path, 3) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("missing"), "{m}"),
            other => panic!("a gap must be refused, got {:?}", other.map(|(_, r)| r)),
        }
    }
}
