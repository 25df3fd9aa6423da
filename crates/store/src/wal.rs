//! The write-ahead log in front of [`crate::RedbStore`].
//!
//! A durable redb commit writes every B-tree page the commit changed, at
//! random places in the file, and fsyncs it: milliseconds to tens of
//! milliseconds on our disks. Instead each commit appends one record to
//! this log — the commit's rows, already encoded for redb — and
//! fdatasyncs it (one small sequential write), then puts the rows in the
//! store's memtable ([`crate::memtable`]), where readers find them. Nothing
//! is readable before its record is durable, so nothing readable can be
//! taken back by a crash.
//!
//! The log has two segments, `<file>.wal` and `<file>.wal.1`. When the
//! store freezes its memtable to checkpoint it into redb (once a second, or
//! sooner when it grows), the log moves to the start of the other segment:
//! the segment left behind logs exactly the frozen memtable, and is no
//! longer needed once that checkpoint is durable — which the store waits
//! for before it freezes again, so a segment is only ever overwritten when
//! everything in it is in redb. Records are written over old ones in
//! place, so a segment's blocks stay allocated and a later fdatasync has no
//! metadata to write.
//!
//! # Records
//! `[body length u32 LE][CRC-32 of body u32 LE][body]`; body =
//! `[lsn u64 LE][rows]`. The log sequence number (lsn) counts every commit
//! of the store, logged or not, and redb's `meta` holds the lsn of the last
//! commit it contains. Rows: key states, log entries and the commit's
//! metadata (see `Rows::to_record`).
//!
//! # Recovery
//! Each segment is read from offset 0 following records while each is
//! whole, its CRC holds and its lsn is one more than the previous record's.
//! The first record that breaks the chain ends that segment: a torn tail (a
//! crash during an append, never acknowledged) or a record left from before
//! the segment was reused (older lsn). The records of both segments above
//! redb's durable lsn must continue it without a gap; they are written into
//! redb again, in order, and made durable before the store opens. A gap
//! means records are missing: the store refuses to open
//! ([`StoreError::Corrupt`]) rather than lose them.
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
//! Not detected: damage inside the newer segment that breaks its chain
//! looks like its end, so acknowledged commits after it would be lost
//! silently (a per-segment salt in each record would let recovery tell the
//! two apart). Damage inside the older segment is detected: the newer
//! segment's records then do not continue the chain.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use meridian_core::{Hlc, RegionName, VersionVector};

use crate::backend::StoreError;

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
    fn rows_len(&self) -> usize {
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

    /// The largest encoded key state or log entry.
    pub fn largest_row(&self) -> usize {
        let states = self.states.iter().map(|(_, v)| v.len());
        let entries = self.log.iter().map(|(_, _, e)| e.len());
        states.chain(entries).max().unwrap_or(0)
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

/// The two log segments and where the next record goes.
pub(crate) struct Wal {
    files: [File; 2],
    paths: [PathBuf; 2],
    /// The segment records are appended to.
    current: usize,
    /// Where the next record is written in the current segment.
    end: u64,
    /// The lsn of the store's last commit (logged, unlogged or written to
    /// redb directly).
    pub lsn: u64,
    /// The highest lsn committed without a log record
    /// (`Durability::None`): until a checkpoint holds it, the next fsync'd
    /// commit must not be logged, or a crash would replay it on top of a
    /// store that lost what it built on.
    pub unlogged_lsn: u64,
    /// Set when an fdatasync failed: nothing more is written.
    poisoned: Option<String>,
}

impl Wal {
    /// Opens (creating) the two segments and reads each one's chain of
    /// records. Returns the log, positioned at the start of the first
    /// segment with `lsn` = `durable_lsn`, and the records above
    /// `durable_lsn` in lsn order for the caller to replay; they must
    /// continue `durable_lsn` without a gap, or the store is
    /// [`StoreError::Corrupt`] (commits in between are missing).
    pub fn open(paths: [PathBuf; 2], durable_lsn: u64) -> Result<(Wal, Vec<Rows>), StoreError> {
        let mut files = Vec::with_capacity(2);
        let mut replay = Vec::new();
        for path in &paths {
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
            for body in read_chain(&bytes) {
                let lsn =
                    u64::from_le_bytes(body[..8].try_into().expect("read_chain checks 8 bytes"));
                // Records redb already holds are not decoded: a segment
                // reused after a checkpoint starts with newer ones.
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
            files.push(file);
        }
        replay.sort_by_key(|(lsn, _)| *lsn);
        for (expected, (lsn, _)) in (durable_lsn + 1..).zip(&replay) {
            if *lsn != expected {
                return Err(StoreError::Corrupt(format!(
                    "{}: the write-ahead log holds commit {lsn} but not commit {expected}, and the store holds commits only through {durable_lsn}: commits in between are missing",
                    paths[0].display()
                )));
            }
        }
        tracing::info!(
            path = %paths[0].display(),
            durable_lsn,
            replay = replay.len(),
            "write-ahead log opened"
        );
        let [a, b]: [File; 2] = files.try_into().expect("two segments");
        let wal = Wal {
            files: [a, b],
            paths,
            current: 0,
            end: 0,
            lsn: durable_lsn,
            unlogged_lsn: 0,
            poisoned: None,
        };
        Ok((wal, replay.into_iter().map(|(_, rows)| rows).collect()))
    }

    /// Refuses every commit, logged or not, once the log is poisoned.
    pub fn refuse_if_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(why) => Err(StoreError::Io(why.clone())),
            None => Ok(()),
        }
    }

    /// Whether an fdatasync failed.
    pub fn poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Appends `record` (from [`Rows::to_record`]) to the current segment
    /// and fdatasyncs it. On error nothing counts as written: the next
    /// append overwrites the same place.
    pub fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.refuse_if_poisoned()?;
        let path = &self.paths[self.current];
        let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
        let file = &self.files[self.current];
        file.write_all_at(record, self.end).map_err(io)?;
        if let Err(e) = file.sync_data() {
            let why = format!(
                "{}: fdatasync failed ({e}); the write-ahead log refuses further commits until the node restarts",
                path.display()
            );
            self.poisoned = Some(why.clone());
            return Err(StoreError::Io(why));
        }
        self.end += record.len() as u64;
        Ok(())
    }

    /// Later records go to the start of the other segment. The caller
    /// guarantees that everything that segment holds is durable in redb
    /// (its memtable was checkpointed), so overwriting it loses nothing;
    /// the segment being left stays until the memtable it logs is
    /// checkpointed too. Returns the bytes logged in the segment left.
    pub fn rotate(&mut self) -> u64 {
        let left = self.end;
        self.current ^= 1;
        self.end = 0;
        left
    }

    /// Bytes logged in the current segment.
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
    use std::path::Path;

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

    fn segments(dir: &Path, a: &[u8], b: &[u8]) -> [PathBuf; 2] {
        let paths = [dir.join("w.wal"), dir.join("w.wal.1")];
        std::fs::write(&paths[0], a).unwrap();
        std::fs::write(&paths[1], b).unwrap();
        paths
    }

    #[test]
    fn open_replays_only_records_above_the_durable_lsn_and_refuses_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let log = [
            rows(1).to_record(5).unwrap(),
            rows(2).to_record(6).unwrap(),
            rows(3).to_record(7).unwrap(),
        ]
        .concat();
        let paths = segments(dir.path(), &log, &[]);
        let (_, replay) = Wal::open(paths.clone(), 5).unwrap();
        assert_eq!(replay, vec![rows(2), rows(3)]);
        let (_, replay) = Wal::open(paths.clone(), 9).unwrap();
        assert!(replay.is_empty());
        match Wal::open(paths, 3) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("missing"), "{m}"),
            other => panic!("a gap must be refused, got {:?}", other.map(|(_, r)| r)),
        }
    }

    #[test]
    fn open_joins_both_segments_in_lsn_order_and_refuses_a_gap_between_them() {
        let dir = tempfile::tempdir().unwrap();
        // The older segment logs 5..=6 (its memtable not yet checkpointed),
        // the newer one 7..=8 over two stale records from before.
        let older = [rows(1).to_record(5).unwrap(), rows(2).to_record(6).unwrap()].concat();
        let newer = [
            rows(3).to_record(7).unwrap(),
            rows(4).to_record(8).unwrap(),
            rows(8).to_record(2).unwrap(),
            rows(9).to_record(3).unwrap(),
        ]
        .concat();
        let paths = segments(dir.path(), &newer, &older);
        let (_, replay) = Wal::open(paths.clone(), 4).unwrap();
        assert_eq!(replay, vec![rows(1), rows(2), rows(3), rows(4)]);
        // The older segment checkpointed: only the newer one replays.
        let (_, replay) = Wal::open(paths, 6).unwrap();
        assert_eq!(replay, vec![rows(3), rows(4)]);
        // Damage in the older segment is not taken for its end: the newer
        // segment's records would not continue the chain.
        let mut damaged = older.clone();
        let second = older.len() - 10;
        damaged[second] ^= 1;
        let paths = segments(dir.path(), &newer, &damaged);
        match Wal::open(paths, 4) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("not commit 6"), "{m}"),
            other => panic!("a gap must be refused, got {:?}", other.map(|(_, r)| r)),
        }
    }
}
