//! One client's command path, shared by Redis connections and the admin
//! data API: routing (forwarding to another region), the session's token
//! wait, strong reads' commit points, and write acknowledgement.
//!
//! A Redis connection pipelines writes (see [`crate::server`]) and calls
//! these pieces one by one; [`Shared::execute`] runs one command start to
//! finish for callers without a connection.

use std::time::Duration;

use bytes::Bytes;
use meridian_core::config::WriteAck;
use meridian_core::{RegionName, VersionVector};
use meridian_store::db::LocalReply;
use tokio::sync::oneshot;

use crate::cmd::{self, Handler, Spec};
use crate::error::ErrorReply;
use crate::plan::settle;
use crate::remote::{CommitPoint, ForwardRequest, RemoteError, FORWARD_TIMEOUT};
use crate::reply::Reply;
use crate::session::{Consistency, Session};
use crate::shared::Shared;
use crate::stats::RespStats;

/// How many times a strong read follows a moved home before giving up.
pub const COMMIT_POINT_HOPS_MAX: usize = 3;

/// A command's outcome.
#[derive(Debug)]
pub struct Executed {
    /// The reply.
    pub reply: Reply,
    /// The write it made (`origin:seq`), if any.
    pub write: Option<VersionVector>,
}

impl From<Reply> for Executed {
    fn from(reply: Reply) -> Self {
        Executed { reply, write: None }
    }
}

/// Why a forwarded command got no answer, for the client (retryable).
fn unreachable_error(spec: &Spec, region: &RegionName, e: &RemoteError) -> ErrorReply {
    if !matches!(spec.handler, Handler::Write(_)) {
        ErrorReply::retry(format_args!(
            "read not answered by region {region}, which serves its keys: {}",
            e.message
        ))
    } else if e.outcome_unknown {
        ErrorReply::retry(format_args!(
            "write forwarded to region {region}, which serves its keys, got no answer: {}; it may or may not have been applied",
            e.message
        ))
    } else {
        ErrorReply::retry(format_args!(
            "write not forwarded to the home region {region}: {}; nothing was written",
            e.message
        ))
    }
}

impl Shared {
    /// Where a keyed command runs, and this region's precondition for
    /// running it here: `Ok(Some(region))` to forward it there; `Ok(None)`
    /// once this region has applied the session's token (reads at
    /// `eventual` do not wait).
    pub async fn prepare(
        &self,
        session: &mut Session,
        spec: &Spec,
        args: &[Bytes],
    ) -> Result<Option<RegionName>, Reply> {
        if matches!(spec.handler, Handler::Write(_) | Handler::Read(_)) && spec.keyed() {
            if let Some(region) = self.route(spec, args)? {
                return Ok(Some(region));
            }
        }
        let eventual_read = session.consistency == Consistency::Eventual
            && matches!(spec.handler, Handler::Read(_));
        if spec.keyed() && !eventual_read {
            self.await_token(session).await?;
        }
        Ok(None)
    }

    /// Runs a read command here under the session's consistency (strong:
    /// after the home's commit point; session and strong: the token then
    /// covers what was read).
    pub async fn read(&self, session: &mut Session, spec: &Spec, args: &[Bytes]) -> Reply {
        let Handler::Read(f) = spec.handler else {
            return Reply::Error(ErrorReply::internal(format_args!(
                "'{}' is not a read",
                spec.name
            )));
        };
        if session.consistency == Consistency::Strong && spec.keyed() {
            if let Err(reply) = self.await_commit_points(session, spec, args).await {
                return reply;
            }
        }
        let reply = f(self, session, args);
        if session.consistency != Consistency::Eventual {
            // Monotonic reads: a client that carries its token to another
            // region never reads older data there.
            session.token.merge_applied(&self.db);
        }
        reply
    }

    /// Waits for a queued write, then records it in the session (its
    /// token covers the write and what it built on) and holds the reply
    /// until `ack` is met.
    pub async fn finish_write(
        &self,
        session: &mut Session,
        commit: LocalReply,
        reply: oneshot::Receiver<Reply>,
        ack: WriteAck,
    ) -> Executed {
        let (reply, write) = settle(&self.region, commit, reply).await;
        let Some(write) = write else {
            return reply.into();
        };
        // Everything this region had applied when the write committed: a
        // reader elsewhere must wait for what the write may have built on.
        session.token.merge_applied(&self.db);
        session.last_write.merge(&write);
        Executed {
            reply: self.acknowledge(session, &write, ack, reply).await,
            write: Some(write),
        }
    }

    /// Runs one command start to finish, as a connection without
    /// pipelining would: for the admin data API. `WAIT` and `QUIT` need a
    /// connection and are refused.
    pub async fn execute(&self, session: &mut Session, args: &[Bytes]) -> Executed {
        let spec = match cmd::lookup(session, args) {
            Ok(spec) => spec,
            Err(reply) => return reply.into(),
        };
        match self.prepare(session, spec, args).await {
            Ok(Some(region)) => return self.forward(session, spec, &region, args).await,
            Ok(None) => {}
            Err(reply) => return reply.into(),
        }
        match spec.handler {
            Handler::Write(plan) => {
                let plan = match plan(self, args) {
                    Ok(plan) => plan,
                    Err(reply) => return reply.into(),
                };
                let ack = session
                    .ack_for(self.table_ack(plan.keys.iter().map(|(table, _)| table.as_str())));
                match self.queue_plan(plan).await {
                    Ok((commit, reply)) => self.finish_write(session, commit, reply, ack).await,
                    Err(reply) => reply.into(),
                }
            }
            Handler::Read(_) => self.read(session, spec, args).await.into(),
            Handler::Conn(f) => f(self, session, args).into(),
            Handler::Wait | Handler::Quit => {
                Reply::err(format!("'{}' needs a Redis connection", spec.name)).into()
            }
        }
    }

    /// Holds a committed write's reply until it is acknowledged by `ack`:
    /// at once for a local ack; for a global one, once enough regions have
    /// applied it — or an error saying how far it got (the write stays
    /// committed and keeps replicating).
    pub async fn acknowledge(
        &self,
        session: &Session,
        write: &VersionVector,
        ack: WriteAck,
        reply: Reply,
    ) -> Reply {
        let WriteAck::Global { regions } = ack else {
            return reply;
        };
        if reply.is_error() {
            return reply;
        }
        let regions = regions.min(self.topology().regions.len());
        let timeout = Duration::from_millis(session.ack_timeout_ms);
        let have = self.wait_applied(write, regions, timeout).await;
        if have >= regions {
            return reply;
        }
        Reply::Error(ErrorReply::retry(format_args!(
            "write {} committed but applied in only {have} of the {regions} regions its global acknowledgement needs within {} ms; it is not lost and keeps replicating",
            write.to_token(),
            session.ack_timeout_ms
        )))
    }

    /// Sends a command to the region that serves its keys (a write to its
    /// table's home, a pinned table's command to an allowed region) and
    /// waits for its answer (see [`crate::forward`]).
    pub async fn forward(
        &self,
        session: &mut Session,
        spec: &Spec,
        home: &RegionName,
        args: &[Bytes],
    ) -> Executed {
        let Some(remote) = self.remote.clone() else {
            return Reply::Error(ErrorReply::internal("no route to other regions")).into();
        };
        let tables: Vec<String> = spec.keys(args).map(|k| self.table_name_for(k)).collect();
        let request = ForwardRequest {
            args: args.iter().map(|a| a.to_vec()).collect(),
            after: session.token.vv().clone(),
            epochs: self.modes.stamp(tables.iter().map(String::as_str)),
        };
        let sent = std::time::Instant::now();
        let answer = remote.forward(home, request, FORWARD_TIMEOUT).await;
        RespStats::record_answer(&self.stats.forwarded, home, sent, &answer);
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                return Reply::Error(unreachable_error(spec, home, &e)).into();
            }
        };
        session.token.merge(&answer.token);
        let Some(write) = answer.write else {
            return answer.reply.into();
        };
        session.last_write.merge(&write);
        let ack = session.ack_for(self.table_ack(tables.iter().map(String::as_str)));
        Executed {
            reply: self.acknowledge(session, &write, ack, answer.reply).await,
            write: Some(write),
        }
    }

    /// A strong read's precondition: this region has applied everything
    /// the home regions of the keys' tables had committed when the read
    /// began. Only single-master tables have one such point.
    pub async fn await_commit_points(
        &self,
        session: &Session,
        spec: &Spec,
        args: &[Bytes],
    ) -> Result<(), Reply> {
        let wait = Duration::from_millis(session.wait_ms);
        for (table, home) in self.strong_read_homes(spec, args)? {
            let Some((point, home)) = self.commit_point_of(session, &table, home).await? else {
                continue;
            };
            if !self.db.covers(&point) && !self.db.wait_for(&point, wait).await {
                return Err(Reply::Error(ErrorReply::retry(format_args!(
                    "this region ({}) has not caught up with the home region {home}'s commit point {} within {} ms",
                    self.region,
                    point.to_token(),
                    session.wait_ms
                ))));
            }
        }
        Ok(())
    }

    /// The homes a strong read of `args` must ask, each with one of its
    /// tables: one table per home is enough to ask with, the answer is the
    /// home's whole applied vector. A key outside a single-master table
    /// refuses the read.
    fn strong_read_homes(
        &self,
        spec: &Spec,
        args: &[Bytes],
    ) -> Result<Vec<(String, RegionName)>, Reply> {
        let mut homes: Vec<(String, RegionName)> = Vec::new();
        let topology = self.topology();
        for key in spec.keys(args) {
            let table = topology.table_for_key(key);
            match table.map(|t| (&t.name, &t.mode)) {
                Some((name, meridian_core::config::TableMode::SingleMaster { home })) => {
                    if !homes.iter().any(|(_, h)| h == home) {
                        homes.push((name.clone(), home.clone()));
                    }
                }
                _ => {
                    return Err(Reply::err(format!(
                        "strong reads need a single_master table; key '{}' is in table `{}`, which accepts writes in several regions (use MERIDIAN.CONSISTENCY session)",
                        String::from_utf8_lossy(key),
                        table.map_or(cmd::DEFAULT_TABLE, |t| t.name.as_str())
                    )))
                }
            }
        }
        Ok(homes)
    }

    /// `table`'s commit point and the home that gave it, starting at
    /// `home`; `None` if this region is the home (every write of the table
    /// commits here, after the writes of any home before: they precede the
    /// move). A home that moved answers with where the table went; it is
    /// followed, after learning the move here, a bounded number of times.
    async fn commit_point_of(
        &self,
        session: &Session,
        table: &str,
        mut home: RegionName,
    ) -> Result<Option<(VersionVector, RegionName)>, Reply> {
        let wait = Duration::from_millis(session.wait_ms);
        let mut hops = 0;
        while home != self.region {
            match self.ask_commit_point(&home, table).await? {
                CommitPoint::Applied(vv) => return Ok(Some((vv, home))),
                CommitPoint::Moved { home: to, epoch } if hops < COMMIT_POINT_HOPS_MAX => {
                    hops += 1;
                    if !self.modes.wait_epoch(table, epoch, wait).await {
                        return Err(Reply::Error(ErrorReply::retry(format_args!(
                            "table `{table}` moved to {to} (epoch {epoch}) and this region ({}) has not applied the move within {} ms",
                            self.region, session.wait_ms
                        ))));
                    }
                    home = to;
                }
                CommitPoint::Moved { home: to, .. } => {
                    return Err(Reply::Error(ErrorReply::retry(format_args!(
                        "table `{table}` keeps moving (last seen going to {to}); retry"
                    ))))
                }
            }
        }
        Ok(None)
    }

    /// Asks `home` for its commit point as `table`'s home, counting the
    /// request in the stats.
    async fn ask_commit_point(&self, home: &RegionName, table: &str) -> Result<CommitPoint, Reply> {
        let Some(remote) = self.remote.clone() else {
            return Err(Reply::Error(ErrorReply::internal(
                "no route to other regions",
            )));
        };
        let sent = std::time::Instant::now();
        let answer = remote.commit_point(home, table, FORWARD_TIMEOUT).await;
        RespStats::record_answer(&self.stats.commit_points, home, sent, &answer);
        answer.map_err(|e| {
            Reply::Error(ErrorReply::retry(format_args!(
                "strong read could not reach the home region {home}: {}",
                e.message
            )))
        })
    }

    /// This region's answer to a strong read elsewhere: its applied vector
    /// if it is `table`'s home, else where the table went. The vector is
    /// taken before the mode is looked at, so a home that has just given
    /// the table away answers with writes it decided (its last ones come
    /// before the move record) and never one from after.
    pub fn commit_point_for(&self, table: &str) -> CommitPoint {
        let applied = self.db.applied();
        let view = self.modes.view();
        match view.home(table) {
            Some(h) if h != self.region => CommitPoint::Moved {
                home: h,
                epoch: view.epoch(table),
            },
            _ => CommitPoint::Applied(applied),
        }
    }

    /// Waits until this region has applied the session's token.
    pub async fn await_token(&self, session: &mut Session) -> Result<(), Reply> {
        let db = &self.db;
        if session.token.applied_by(db) {
            return Ok(());
        }
        let token = session.token.vv();
        let wait = Duration::from_millis(session.wait_ms);
        if db.wait_for(token, wait).await {
            return Ok(());
        }
        Err(Reply::Error(ErrorReply::retry(format_args!(
            "this region ({}) has not applied token {} within {} ms (applied: {}); retry, or read where the write was made",
            self.region,
            token.to_token(),
            session.wait_ms,
            db.applied().to_token()
        ))))
    }
}
