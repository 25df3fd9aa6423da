//! How the endpoint reaches other regions: the [`Remote`] trait the node
//! implements, and the data that crosses regions — a forwarded command
//! ([`ForwardRequest`], [`ForwardAnswer`]), a home's commit point
//! ([`CommitPoint`]) and why a region could not be asked ([`RemoteError`]).
//!
//! Only types and limits: forwarding itself is [`crate::forward`] (the
//! serving side) and [`crate::exec`] (the sending side).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use meridian_core::{RegionName, VersionVector};
use serde::{Deserialize, Serialize};

use crate::reply::Reply;

/// How long a forwarded write or a commit-point query waits for the home.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the serving region waits, in all, for what a forwarded command
/// must come after (the client's token, a mode change the sender already
/// applied): under [`FORWARD_TIMEOUT`] by more than the slowest default
/// round trip, so a refusal ("nothing was written") reaches the sender
/// before it gives up and has to answer "may or may not have been applied".
pub const FORWARD_WAIT_MAX: Duration = Duration::from_millis(3_500);

/// A write command sent to its table's home.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// The command and its arguments, as the client sent them.
    pub args: Vec<Vec<u8>>,
    /// The client's causal token: the home applies the write after it.
    pub after: VersionVector,
    /// The forwarding region's epochs of the keys' tables (see
    /// [`crate::modes`]): the home refuses a write routed by an older mode.
    pub epochs: Vec<(String, u64)>,
}

/// The home's answer to a [`ForwardRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForwardAnswer {
    /// The reply for the client.
    pub reply: Reply,
    /// What the home had applied when the write committed (the client's
    /// new causal token).
    pub token: VersionVector,
    /// The write itself, `home:seq`, if the command wrote anything.
    pub write: Option<VersionVector>,
}

/// A home's answer to a strong read's question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitPoint {
    /// What the home had applied.
    Applied(VersionVector),
    /// The asked region is no longer the table's home.
    Moved {
        /// Where the table went.
        home: RegionName,
        /// The epoch of that move.
        epoch: u64,
    },
}

/// Why a region could not be asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// What happened.
    pub message: String,
    /// Whether the request may have run anyway (no answer in time, as
    /// opposed to never sent).
    pub outcome_unknown: bool,
}

/// A boxed future, as trait objects return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How the endpoint reaches other regions (the node provides it).
pub trait Remote: Send + Sync + 'static {
    /// Runs `request` at `home` (see [`crate::Shared::run_forwarded`]).
    fn forward(
        &self,
        home: &RegionName,
        request: ForwardRequest,
        timeout: Duration,
    ) -> BoxFuture<Result<ForwardAnswer, RemoteError>>;

    /// `home`'s applied version vector, as of when it answers, if it is
    /// still `table`'s home (see [`crate::Shared::commit_point_for`]).
    fn commit_point(
        &self,
        home: &RegionName,
        table: &str,
        timeout: Duration,
    ) -> BoxFuture<Result<CommitPoint, RemoteError>>;
}
