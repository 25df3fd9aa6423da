//! The JSON and query parameters of the node's data routes
//! (`/data/{table}/{key}`, `/conflicts`, `/digest`): what tools and tests
//! send and read. The routes themselves are the node's
//! (`meridian_node::http::data`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The table every key belongs to unless configured otherwise.
pub use meridian_core::config::DEFAULT_TABLE;

/// Largest value accepted, as for the Redis endpoint's bulk strings.
pub const VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most conflicts `GET /conflicts` returns when no `limit` is given.
pub const CONFLICTS_LIMIT_DEFAULT: usize = 100;

/// Parameters every data route takes (`?ttl_ms=&by=&after=&wait_ms=&
/// consistency=&ack=&ack_timeout_ms=`); unknown ones are refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataParams {
    /// `PUT`: expire the value after this many ms.
    pub ttl_ms: Option<u64>,
    /// `incr`: the amount to add (default 1).
    pub by: Option<i64>,
    /// A token (`region:seq[,...]`) to wait for before running.
    pub after: Option<String>,
    /// How long to wait for `after`, ms.
    pub wait_ms: Option<u64>,
    /// `eventual`, `session` or `strong`.
    pub consistency: Option<String>,
    /// `local`, `global` or `global:N`.
    pub ack: Option<String>,
    /// How long a global acknowledgement may take, ms.
    pub ack_timeout_ms: Option<u64>,
}

/// The answer to a write: the write's `origin:seq` and the session's
/// token, which covers the write and everything it built on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Written {
    /// The region that logged the write.
    pub origin: String,
    /// Its sequence in that region's log.
    pub seq: u64,
    /// What a reader elsewhere passes as `after` to see it.
    pub token: String,
    /// `incr`: the counter's value after the write, as decimal text (it may
    /// exceed what JSON numbers carry exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Query of `GET /conflicts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictsQuery {
    /// Most entries returned.
    pub limit: Option<usize>,
}

/// `GET /conflicts`: totals per table and the newest overwritten
/// concurrent writes, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Conflicts {
    /// Concurrent writes overwritten per table since start.
    pub totals: BTreeMap<String, u64>,
    /// The newest of them.
    pub conflicts: Vec<ConflictRecord>,
}

/// One overwritten concurrent write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// Table.
    pub table: String,
    /// Key, lossy UTF-8.
    pub key: String,
    /// The surviving write.
    pub winner: String,
    /// The overwritten write.
    pub loser: String,
    /// Start of the loser's value when it was a string (lossy UTF-8).
    pub loser_value: Option<String>,
    /// When this region detected it, ms since the Unix epoch.
    pub detected_at_ms: u64,
}

/// One table's digest in `GET /digest` (a map from table name to this):
/// regions that applied the same writes have equal digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// Keys visible at the time of hashing.
    pub keys: u64,
    /// SHA-256 over the visible contents, hex.
    pub sha256: String,
}
