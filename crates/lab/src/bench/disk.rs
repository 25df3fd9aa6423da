//! The disk's own durable-write latency while a benchmark loads it: the
//! physical floor under every durable acknowledgement on this machine.
//!
//! During each lag run a thread writes 4 KiB and fdatasyncs it every
//! [`PROBE_INTERVAL`], overwriting one preallocated block of a file in the
//! cluster directory (so no metadata changes: the cheapest durable write
//! there is). Its latency under the same load is what any store that
//! acknowledges only durable writes must wait for at least once per write,
//! so the report sets the local-write and lag figures beside it.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Time between probe writes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(2);

/// Bytes per probe write.
const PROBE_BYTES: usize = 4096;

/// One run's probe figures.
#[derive(Serialize, Clone, Debug)]
pub struct DiskProbe {
    /// The run's writes/s per region.
    pub rate_per_region: u64,
    /// Probe writes made.
    pub samples: u64,
    /// Write + fdatasync latency, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Longest, ms.
    pub max_ms: f64,
}

/// A probe running on its own thread for a fixed time.
pub struct Running {
    handle: JoinHandle<std::io::Result<Vec<f64>>>,
    path: PathBuf,
    rate_per_region: u64,
}

/// Starts probing `dir`'s disk for `duration` (at least one write).
pub fn start(dir: &Path, duration: Duration, rate_per_region: u64) -> Running {
    let path = dir.join("disk-probe.bin");
    let file_path = path.clone();
    let handle = std::thread::Builder::new()
        .name("bench-disk-probe".into())
        .spawn(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&file_path)?;
            let block = vec![0x5au8; PROBE_BYTES];
            file.write_all_at(&block, 0)?;
            file.sync_all()?;
            let end = Instant::now() + duration;
            let mut out = Vec::with_capacity((duration.as_millis() / 2) as usize + 1);
            // At least one write, however slow the disk (or the file's
            // creation) was.
            loop {
                let t = Instant::now();
                file.write_all_at(&block, 0)?;
                file.sync_data()?;
                out.push(t.elapsed().as_secs_f64() * 1e3);
                if Instant::now() >= end {
                    break;
                }
                std::thread::sleep(PROBE_INTERVAL);
            }
            Ok(out)
        })
        .expect("spawning a thread");
    Running {
        handle,
        path,
        rate_per_region,
    }
}

impl Running {
    /// Waits for the probe to end and summarises it.
    pub fn finish(self) -> anyhow::Result<DiskProbe> {
        let samples = self
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("the disk probe panicked"))?
            .map_err(|e| anyhow::anyhow!("disk probe on {}: {e}", self.path.display()))?;
        let _ = std::fs::remove_file(&self.path);
        Ok(summarise(self.rate_per_region, samples))
    }
}

fn summarise(rate_per_region: u64, mut ms: Vec<f64>) -> DiskProbe {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            ms[((ms.len() - 1) as f64 * p).round() as usize]
        }
    };
    DiskProbe {
        rate_per_region,
        samples: ms.len() as u64,
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_probe_measures_real_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = start(dir.path(), Duration::from_millis(100), 7)
            .finish()
            .unwrap();
        assert_eq!(p.rate_per_region, 7);
        // How many fit in 100 ms is the disk's business (30 ms fdatasyncs
        // were seen under a full test run); at least one always does.
        assert!(p.samples >= 1, "{p:?}");
        assert!(
            p.p50_ms > 0.0 && p.p50_ms <= p.p99_ms && p.p99_ms <= p.max_ms,
            "{p:?}"
        );
        assert!(!dir.path().join("disk-probe.bin").exists());
    }

    #[test]
    fn quantiles_pick_ranked_samples() {
        let p = summarise(1, (1..=100).rev().map(f64::from).collect());
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (51.0, 99.0, 100.0));
        assert!(summarise(1, vec![]).p50_ms.is_nan());
    }
}
