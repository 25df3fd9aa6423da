//! Work that must happen at another region: writes to a single-master
//! table made outside its home are forwarded there, and strong reads ask
//! the home how far its commits go.
//!
//! The endpoint does not know how regions talk; the node lends it a
//! [`Remote`]. A forwarded write is the command itself (its arguments)
//! plus the connection's causal token: the home first waits until it has
//! applied the token (the write must come after everything the client has
//! seen), then plans, decides and commits the command exactly as a local
//! client's, and answers with the reply and the token that covers the write.
//! The forwarding connection merges that token into its own, so its next
//! read waits until the write has replicated back (read-your-writes).
//!
//! Forwarded writes of one connection go one at a time, in order: two
//! pipelined writes to one key must reach the home in the order sent.
//!
//! A pinned table whose policy is `outside = "forward"` is served the same
//! way from regions outside its allowed ones: its reads and writes run at
//! the nearest allowed region, after the client's token, and only the
//! reply comes back (the data is never stored outside).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use meridian_core::{RegionName, VersionVector};
use serde::{Deserialize, Serialize};

use crate::cmd::{self, Handler};
use crate::reply::Reply;
use crate::server::{settle, Shared};
use crate::session::Session;

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
    /// Runs `request` at `home` (see [`Shared::run_forwarded`]).
    fn forward(
        &self,
        home: &RegionName,
        request: ForwardRequest,
        timeout: Duration,
    ) -> BoxFuture<Result<ForwardAnswer, RemoteError>>;

    /// `home`'s applied version vector, as of when it answers, if it is
    /// still `table`'s home (see [`Shared::commit_point_for`]).
    fn commit_point(
        &self,
        home: &RegionName,
        table: &str,
        timeout: Duration,
    ) -> BoxFuture<Result<CommitPoint, RemoteError>>;
}

impl Shared {
    /// Runs a write forwarded from another region (this region is the
    /// home of its keys' table) and answers it.
    pub async fn run_forwarded(&self, request: ForwardRequest) -> ForwardAnswer {
        let refuse = |reply: Reply| ForwardAnswer {
            reply,
            token: self.db.applied(),
            write: None,
        };
        let deadline = std::time::Instant::now() + FORWARD_WAIT_MAX;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        if !self.db.covers(&request.after) && !self.db.wait_for(&request.after, left()).await {
            return refuse(Reply::Error(format!(
                "TRYAGAIN region {} has not applied the client's token {} within {} ms; nothing was written",
                self.region,
                request.after.to_token(),
                FORWARD_WAIT_MAX.as_millis()
            )));
        }
        for (table, epoch) in &request.epochs {
            let here = self.modes.view().epoch(table);
            if here > *epoch {
                return refuse(Reply::Error(format!(
                    "TRYAGAIN table `{table}` changed mode (epoch {epoch} → {here}) before this request reached {}; retry",
                    self.region
                )));
            }
            // The sender learned a change this region is about to apply.
            if here < *epoch && !self.modes.wait_epoch(table, *epoch, left()).await {
                return refuse(Reply::Error(format!(
                    "TRYAGAIN region {} has not applied epoch {epoch} of table `{table}` within {} ms; nothing was written",
                    self.region,
                    FORWARD_WAIT_MAX.as_millis()
                )));
            }
        }
        let args: Vec<Bytes> = request.args.into_iter().map(Bytes::from).collect();
        if args.is_empty() {
            return refuse(Reply::err("empty forwarded command"));
        }
        // The forwarding region authenticated the client.
        let spec = match cmd::lookup_authenticated(&args) {
            Ok(spec) => spec,
            Err(reply) => return refuse(reply),
        };
        let plan = match spec.handler {
            Handler::Write(plan) => plan,
            Handler::Read(read) => {
                // A pinned table's read from a region that holds none of
                // its data; reading checks that this region holds it.
                let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                let session = Session::new(0, unspecified, unspecified, true);
                return ForwardAnswer {
                    reply: read(self, &session, &args),
                    token: self.db.applied(),
                    write: None,
                };
            }
            _ => {
                return refuse(Reply::err(format!(
                    "'{}' is not a read or write of keys; it is not forwarded",
                    spec.name
                )))
            }
        };
        // Planning checks the table's mode again: a home that moved away
        // refuses instead of writing what it no longer owns.
        let plan = match plan(self, &args) {
            Ok(plan) => plan,
            Err(reply) => return refuse(reply),
        };
        let (commit, reply) = match self.queue_plan(plan).await {
            Ok(x) => x,
            Err(reply) => return refuse(reply),
        };
        let (reply, write) = settle(&self.region, commit, reply).await;
        ForwardAnswer {
            reply,
            token: self.db.applied(),
            write,
        }
    }
}
