//! What the writer asks of the engine and what it answers: one
//! [`Request`] per change, one [`Response`] per request, in order.
//!
//! Owns the request vocabulary (local writes and their decisions,
//! replicated entries, purges, repairs, acks) and the outcomes the callers
//! of [`crate::writer::Db`] receive. Does not merge or commit anything
//! ([`crate::engine::Engine`] does) nor queue anything (the writer does).

use meridian_core::record::KeyState;
use meridian_core::{LogEntry, Op, RegionName, VersionVector};

use crate::error::DbError;

/// What a local write decides, given the key's current state and the time.
pub type Decide = Box<dyn FnOnce(Option<&KeyState>, u64) -> Result<Option<Op>, String> + Send>;

/// What a multi-key local write decides, given each key's current state (in
/// the order asked) and the time: one op (or none) per key, or a refusal
/// that writes nothing.
pub type DecideMany =
    Box<dyn FnOnce(&[Option<KeyState>], u64) -> Result<Vec<Option<Op>>, String> + Send>;

/// The result of a local write.
#[derive(Clone, Debug)]
pub struct LocalOutcome {
    /// The key's state before.
    pub before: Option<KeyState>,
    /// The key's state after (same as before when nothing was written).
    pub after: Option<KeyState>,
    /// The logged entry; `None` when the decision wrote nothing.
    pub entry: Option<LogEntry>,
}

/// The result of applying replicated entries.
#[derive(Clone, Debug, Default)]
pub struct RemoteOutcome {
    /// Entries newly applied.
    pub applied: u64,
    /// Entries skipped because they were already applied.
    pub duplicates: u64,
    /// Set when the entries skipped ahead of what is applied: the next
    /// sequence this node needs from that origin.
    pub gap: Option<(RegionName, u64)>,
}

/// A change for the [`Engine`](crate::engine::Engine).
pub enum Request {
    /// A local write: `decide` picks the op from the key's current state.
    Local {
        /// Table.
        table: String,
        /// Key.
        key: Vec<u8>,
        /// The decision.
        decide: Decide,
    },
    /// A local write to several keys at once (`MSET`, `DEL a b`): all in
    /// the same commit, decided together, so all or none are written.
    LocalMany {
        /// `(table, key)` pairs; a key may repeat (its later op sees the
        /// earlier one's result).
        keys: Vec<(String, Vec<u8>)>,
        /// The decision.
        decide: DecideMany,
    },
    /// Replicated entries.
    Remote {
        /// Entries, each origin's in sequence.
        entries: Vec<LogEntry>,
    },
    /// Local purge of expired keys (not replicated).
    Purge {
        /// Table.
        table: String,
        /// Keys to consider.
        keys: Vec<Vec<u8>>,
        /// Time up to which every origin's writes are here.
        closed_ms: u64,
    },
    /// Drop the data of a table this region gave up (see
    /// [`crate::writer::Db::drop_withheld`]).
    Withhold {
        /// Table.
        table: String,
        /// The regions that hold it.
        holders: Vec<RegionName>,
    },
    /// Anti-entropy repair: join a peer's states into ours (not logged; the
    /// peer's writes are already in its log or were collected everywhere).
    Join {
        /// Table.
        table: String,
        /// The peer's `(key, state)` pairs.
        states: Vec<(Vec<u8>, KeyState)>,
    },
    /// Fault injection: lose one key's local state (it reads as absent),
    /// as a damaged disk would. Not logged, not replicated.
    Forget {
        /// Table.
        table: String,
        /// Key.
        key: Vec<u8>,
    },
    /// Advance the HLC to now and persist it, so an idle region can claim
    /// "all my writes up to now are in my vector" (closed timestamps).
    AdvanceClock,
    /// A peer's acknowledged vector, persisted with the batch.
    PeerAck {
        /// The peer.
        peer: RegionName,
        /// Its vector.
        vv: VersionVector,
    },
}

/// The engine's answer to one [`Request`], in request order.
#[derive(Debug)]
pub enum Response {
    /// To a local write (boxed: key states are large next to the others).
    Local(Box<Result<LocalOutcome, DbError>>),
    /// To a multi-key local write: one outcome per key, in order.
    LocalMany(Box<Result<Vec<LocalOutcome>, DbError>>),
    /// To replicated entries.
    Remote(Result<RemoteOutcome, DbError>),
    /// To a purge, join or forget: how many keys it changed.
    Count(Result<u64, DbError>),
    /// To a peer ack (nothing to say).
    Noted,
}
