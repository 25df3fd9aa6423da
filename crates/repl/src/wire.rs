//! The replication wire format: [`ReplMessage`], what replicators (and
//! calls between regions) put inside mesh frames, and its one encoding.
//!
//! Owns only the message shapes and their postcard encoding; what each
//! message makes a region do lives in [`crate::runtime`] (entries, acks,
//! resends), [`crate::anti_entropy`] (digests and buckets) and
//! [`crate::calls`] (calls and answers). Changing a variant changes the
//! protocol between regions of different versions.

use meridian_core::record::KeyState;
use meridian_core::{Hlc, LogEntry, RegionName, VersionVector};
use serde::{Deserialize, Serialize};

/// What travels between replicators, inside mesh frames.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReplMessage {
    /// Entries of one or more origins, each origin's in sequence.
    Entries(Vec<LogEntry>),
    /// The sender's applied vector and its HLC floor at that commit (a
    /// closed-timestamp claim, see [`crate::closed`]).
    Ack {
        /// Applied vector.
        vv: VersionVector,
        /// HLC floor when `vv` was committed.
        hlc: Hlc,
    },
    /// Anti-entropy: send me your per-bucket digests of `table`.
    DigestRequest {
        /// Table.
        table: String,
    },
    /// Per-bucket digests, taken while the sender's vector was `vv`.
    DigestReply {
        /// Table.
        table: String,
        /// The sender's applied vector around the digests.
        vv: VersionVector,
        /// One SHA-256 per bucket.
        buckets: Vec<[u8; 32]>,
    },
    /// Anti-entropy: send me your states of one bucket.
    BucketRequest {
        /// Table.
        table: String,
        /// Bucket.
        bucket: u8,
    },
    /// States of one bucket (bounded; a larger bucket is finished in later
    /// rounds).
    BucketReply {
        /// Table.
        table: String,
        /// `(key, state)` pairs.
        states: Vec<(Vec<u8>, KeyState)>,
    },
    /// The sender needs `origin`'s entries from `from_seq` again.
    Resend {
        /// The origin.
        origin: RegionName,
        /// First sequence needed.
        from_seq: u64,
    },
    /// A request for the node's call handler (see [`crate::calls`]).
    Call {
        /// The caller's id, echoed in the answer.
        id: u64,
        /// Opaque to replication.
        body: Vec<u8>,
    },
    /// The answer to a [`ReplMessage::Call`], or why there is none.
    Answer {
        /// The call's id.
        id: u64,
        /// The handler's answer.
        result: Result<Vec<u8>, String>,
    },
}

/// The frame payload carrying `msg`.
pub(crate) fn encode(msg: &ReplMessage) -> Vec<u8> {
    postcard::to_stdvec(msg).expect("replication messages always encode")
}

/// The message in a frame payload; an error for bytes no peer of this
/// version would send (the caller drops the frame).
pub(crate) fn decode(payload: &[u8]) -> Result<ReplMessage, postcard::Error> {
    postcard::from_bytes(payload)
}
