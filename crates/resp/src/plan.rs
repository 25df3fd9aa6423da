//! Writes as plans ([`WritePlan`]): the keys a write touches and the
//! decision the storage engine's writer runs against their current states,
//! so read-modify-write commands (`INCR`, `SET NX`, `MSETNX`) are atomic
//! without locks. Also the path of a plan through the engine: queued under
//! its tables' epochs (`Shared::queue_plan`) and settled into a reply
//! and a write token (`settle`).
//!
//! Commands build plans ([`crate::cmd`]); connections and the command path
//! ([`crate::server`], [`crate::exec`]) queue and settle them.

use meridian_core::record::KeyState;
use meridian_core::{Op, RegionName, VersionVector};
use meridian_store::db::{DbError, DecideMany, LocalReply};
use tokio::sync::oneshot;

use crate::error::ErrorReply;
use crate::reply::Reply;
use crate::shared::Shared;

/// What a write decides against the current states of its keys (in
/// order; `None` for a key never written) at `now` (ms since the epoch):
/// an op per key (or none) and the reply to send once durable, or a refusal
/// that writes nothing.
pub type WriteDecide = Box<
    dyn FnOnce(&[Option<KeyState>], u64) -> Result<(Vec<Option<Op>>, Reply), ErrorReply> + Send,
>;

/// A write, ready for the storage engine.
pub struct WritePlan {
    /// `(table, key)` per key the write touches.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The decision.
    pub decide: WriteDecide,
}

/// What kind of value a write produces: the table's conflict policy must
/// allow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Whole string values (`SET`, `APPEND`): last writer wins.
    String,
    /// Counter deltas (`INCR`): a PN-counter.
    Counter,
    /// Hash fields: last writer wins per field.
    Hash,
    /// Set members: add-wins.
    Set,
    /// The key as a whole (`DEL`, `EXPIRE`): any table.
    Key,
}

impl Shared {
    /// A single-key write plan for `key`.
    pub fn plan_one(
        &self,
        key: &[u8],
        kind: WriteKind,
        cmd: &str,
        decide: impl FnOnce(Option<&KeyState>, u64) -> Result<(Option<Op>, Reply), ErrorReply>
            + Send
            + 'static,
    ) -> Result<WritePlan, Reply> {
        let table = self.table_for_write(key, kind, cmd)?;
        Ok(WritePlan {
            keys: vec![(table, key.to_vec())],
            decide: Box::new(move |states, now| {
                let (op, reply) = decide(states[0].as_ref(), now)?;
                Ok((vec![op], reply))
            }),
        })
    }

    /// Queues a write plan at the engine: the commit to wait for and the
    /// reply its decision chose (a refusal's typed reply too: the engine
    /// carries only its line).
    pub(crate) async fn queue_plan(
        &self,
        plan: WritePlan,
    ) -> Result<(LocalReply, oneshot::Receiver<Reply>), Reply> {
        let (tx, rx) = oneshot::channel();
        let decide = plan.decide;
        let stamp = self
            .modes
            .stamp(plan.keys.iter().map(|(table, _)| table.as_str()));
        let modes = self.modes.clone();
        let here = self.region.clone();
        let decide: DecideMany = Box::new(move |states, now| {
            // Decided under the mode it was planned in, or not at all.
            let refused = match modes.refuse(&stamp, &here) {
                Some(why) => ErrorReply::from(why),
                None => match decide(states, now) {
                    Ok((ops, reply)) => {
                        let _ = tx.send(reply);
                        return Ok(ops);
                    }
                    Err(refused) => refused,
                },
            };
            let line = refused.line().to_string();
            let _ = tx.send(Reply::Error(refused));
            Err(line)
        });
        let commit = self
            .db
            .submit_many(plan.keys, decide)
            .await
            .map_err(|e| Reply::Error(ErrorReply::not_stored(e)))?;
        Ok((commit, rx))
    }
}

/// Waits for a write queued in `region`: its reply, and the write itself as
/// a token, `region:seq` of its newest entry (`None` if it wrote nothing or
/// failed).
pub(crate) async fn settle(
    region: &RegionName,
    commit: LocalReply,
    mut reply: oneshot::Receiver<Reply>,
) -> (Reply, Option<VersionVector>) {
    match commit.await {
        Ok(Ok(outcomes)) => {
            let write = outcomes
                .iter()
                .filter_map(|o| o.entry.as_ref().map(|e| e.seq))
                .max()
                .map(|seq| {
                    let mut write = VersionVector::new();
                    write.advance(region, seq);
                    write
                });
            let reply = reply
                .try_recv()
                .unwrap_or_else(|_| Reply::Error(ErrorReply::internal("no reply decided")));
            (reply, write)
        }
        Ok(Err(DbError::Rejected(line))) => (Reply::Error(refusal(&mut reply, line)), None),
        Ok(Err(e)) => (Reply::Error(ErrorReply::not_stored(e)), None),
        Err(_) => (
            Reply::Error(ErrorReply::not_stored("the storage engine stopped")),
            None,
        ),
    }
}

/// The typed refusal the decision sent for the engine's rejection `line`,
/// or (the engine refused on its own) the line read back.
fn refusal(reply: &mut oneshot::Receiver<Reply>, line: String) -> ErrorReply {
    match reply.try_recv() {
        Ok(Reply::Error(e)) if e.line() == line => e,
        _ => ErrorReply::from_line(line),
    }
}
