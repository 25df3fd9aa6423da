//! The endpoint's counters ([`RespStats`]): connections, commands, error
//! replies, and requests to other regions ([`RemoteStats`]). `INFO stats`
//! and [`crate::metrics::RespMetrics`] read them; nothing here decides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use meridian_core::RegionName;

use crate::remote::RemoteError;

/// Counters for `INFO stats` and `/metrics`.
#[derive(Default, Debug)]
pub struct RespStats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused at `connections_max`.
    pub rejected_connections: AtomicU64,
    /// Commands run.
    pub commands_processed: AtomicU64,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Connections closed for a protocol error.
    pub protocol_errors: AtomicU64,
    /// Failed `AUTH`/`HELLO AUTH`.
    pub auth_failures: AtomicU64,
    /// Connections open now.
    pub connected: AtomicUsize,
    /// Connections blocked in `WAIT` now.
    pub blocked: AtomicUsize,
    /// Commands forwarded to other regions, per region.
    pub forwarded: Mutex<BTreeMap<RegionName, RemoteStats>>,
    /// Strong reads' commit-point questions, per home region.
    pub commit_points: Mutex<BTreeMap<RegionName, RemoteStats>>,
}

/// Requests to one other region: how long they took and how they ended.
#[derive(Default)]
pub struct RemoteStats {
    /// Send to answer, for the requests that got one.
    pub seconds: meridian_store::histogram::Histogram,
    /// Answered (the answer may be an error reply of the command).
    pub answered: u64,
    /// Not sent: link down, queue full, too large.
    pub not_sent: u64,
    /// Sent, no answer in time (a write's outcome is unknown).
    pub no_answer: u64,
}

impl std::fmt::Debug for RemoteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStats")
            .field("answered", &self.answered)
            .field("not_sent", &self.not_sent)
            .field("no_answer", &self.no_answer)
            .finish_non_exhaustive()
    }
}

impl RespStats {
    /// Records one request to `region` in `map`.
    pub fn record_remote(
        map: &Mutex<BTreeMap<RegionName, RemoteStats>>,
        region: &RegionName,
        took: Duration,
        outcome: Result<(), bool>,
    ) {
        let mut map = map.lock().expect("stats lock is never poisoned");
        let s = map.entry(region.clone()).or_default();
        match outcome {
            Ok(()) => {
                s.answered += 1;
                s.seconds.observe(took.as_secs_f64());
            }
            Err(true) => s.no_answer += 1,
            Err(false) => s.not_sent += 1,
        }
    }

    /// Records in `map` a request to `region` sent at `sent` that ended
    /// with `answer`.
    pub fn record_answer<T>(
        map: &Mutex<BTreeMap<RegionName, RemoteStats>>,
        region: &RegionName,
        sent: Instant,
        answer: &Result<T, RemoteError>,
    ) {
        let outcome = answer.as_ref().map(|_| ()).map_err(|e| e.outcome_unknown);
        Self::record_remote(map, region, sent.elapsed(), outcome);
    }
}
