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

use std::time::Instant;

use bytes::Bytes;

use crate::cmd::{self, Handler};
use crate::error::ErrorReply;
use crate::plan::settle;
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

// The forwarding types lived here before `remote.rs` held them; their old
// paths still name them.
pub use crate::remote::{
    BoxFuture, CommitPoint, ForwardAnswer, ForwardRequest, Remote, RemoteError, FORWARD_TIMEOUT,
    FORWARD_WAIT_MAX,
};

impl Shared {
    /// Runs a write forwarded from another region (this region is the
    /// home of its keys' table) and answers it.
    pub async fn run_forwarded(&self, request: ForwardRequest) -> ForwardAnswer {
        let unwritten = |reply: Reply| ForwardAnswer {
            reply,
            token: self.db.applied(),
            write: None,
        };
        if let Err(e) = self.forwarded_may_run(&request).await {
            return unwritten(Reply::Error(e));
        }
        let args: Vec<Bytes> = request.args.into_iter().map(Bytes::from).collect();
        if args.is_empty() {
            return unwritten(Reply::err("empty forwarded command"));
        }
        // The forwarding region authenticated the client.
        let spec = match cmd::lookup_authenticated(&args) {
            Ok(spec) => spec,
            Err(reply) => return unwritten(reply),
        };
        let plan = match spec.handler {
            Handler::Write(plan) => plan,
            Handler::Read(read) => {
                // A pinned table's read from a region that holds none of
                // its data; reading checks that this region holds it.
                let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                let session = Session::new(0, unspecified, unspecified, true);
                return unwritten(read(self, &session, &args));
            }
            _ => {
                return unwritten(Reply::err(format!(
                    "'{}' is not a read or write of keys; it is not forwarded",
                    spec.name
                )))
            }
        };
        // Planning checks the table's mode again: a home that moved away
        // refuses instead of writing what it no longer owns.
        let plan = match plan(self, &args) {
            Ok(plan) => plan,
            Err(reply) => return unwritten(reply),
        };
        let (commit, reply) = match self.queue_plan(plan).await {
            Ok(x) => x,
            Err(reply) => return unwritten(reply),
        };
        let (reply, write) = settle(&self.region, commit, reply).await;
        ForwardAnswer {
            reply,
            token: self.db.applied(),
            write,
        }
    }

    /// Waits (within [`FORWARD_WAIT_MAX`]) for what a forwarded command
    /// must come after — the client's token, a mode change the sender
    /// already applied — and refuses one routed by an older mode.
    async fn forwarded_may_run(&self, request: &ForwardRequest) -> Result<(), ErrorReply> {
        let deadline = Instant::now() + FORWARD_WAIT_MAX;
        let left = || deadline.saturating_duration_since(Instant::now());
        if !self.db.covers(&request.after) && !self.db.wait_for(&request.after, left()).await {
            return Err(ErrorReply::retry(format_args!(
                "region {} has not applied the client's token {} within {} ms; nothing was written",
                self.region,
                request.after.to_token(),
                FORWARD_WAIT_MAX.as_millis()
            )));
        }
        for (table, epoch) in &request.epochs {
            let here = self.modes.view().epoch(table);
            if here > *epoch {
                return Err(ErrorReply::retry(format_args!(
                    "table `{table}` changed mode (epoch {epoch} → {here}) before this request reached {}; retry",
                    self.region
                )));
            }
            // The sender learned a change this region is about to apply.
            if here < *epoch && !self.modes.wait_epoch(table, *epoch, left()).await {
                return Err(ErrorReply::retry(format_args!(
                    "region {} has not applied epoch {epoch} of table `{table}` within {} ms; nothing was written",
                    self.region,
                    FORWARD_WAIT_MAX.as_millis()
                )));
            }
        }
        Ok(())
    }
}
