//! Anti-entropy: regions that applied the same writes compare per-bucket
//! digests of each table and repair the buckets that differ.
//!
//! Entry points: [`spawn_anti_entropy`] starts the rounds (one digest
//! request per table to the next reachable peer), and
//! `anti_entropy_message` answers the four anti-entropy messages of
//! [`ReplMessage`] as [`crate::runtime`] hands them over. A round that finds
//! differing digests under equal version vectors asks for those buckets'
//! states and joins them into the store. Log shipping itself is not here:
//! anti-entropy only catches what shipping should never have missed.

use std::time::Duration;

use meridian_core::record::KeyState;
use meridian_core::{PhysicalClock, RegionName, SystemClock, VersionVector};
use meridian_store::db::Db;
use meridian_wan::PeerMesh;
use tokio_util::sync::CancellationToken;

use crate::residency::Residency;
use crate::wire::{encode, ReplMessage};

/// Differing buckets repaired per table per round; the rest wait for the
/// next round, so one round's cost stays bounded.
pub const ANTI_ENTROPY_BUCKETS_PER_ROUND: usize = 16;

/// Encoded bytes of states in one bucket reply.
pub const ANTI_ENTROPY_REPLY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Per-bucket digests of `table` with the vector they were taken at; `None`
/// when writes landed meanwhile (the digests would describe no one state).
async fn digests_at_rest(db: &Db, table: &str) -> Option<(VersionVector, Vec<[u8; 32]>)> {
    let before = db.applied();
    let (backend, t) = (db.backend().clone(), table.to_string());
    let buckets = tokio::task::spawn_blocking(move || {
        meridian_store::digest::bucket_digests(backend.as_ref(), &t, SystemClock.now_ms())
    })
    .await
    .ok()?
    .ok()?;
    (db.applied() == before).then_some((before, buckets))
}

/// Answers one anti-entropy message from `peer`; other messages are
/// ignored. A pinned table is compared only between regions that both
/// hold it.
pub(crate) async fn anti_entropy_message(
    db: Db,
    mesh: PeerMesh,
    residency: Residency,
    peer: RegionName,
    msg: ReplMessage,
) {
    let Some(table) = table_of(&msg) else { return };
    if !residency.holds(&peer, table) || !residency.holds(db.region(), table) {
        tracing::warn!(%peer, %table, "anti-entropy for a pinned table refused: one side may not hold it");
        return;
    }
    match msg {
        ReplMessage::DigestRequest { table } => {
            if let Some((vv, buckets)) = digests_at_rest(&db, &table).await {
                let _ = mesh.send(
                    &peer,
                    encode(&ReplMessage::DigestReply { table, vv, buckets }),
                );
            }
        }
        ReplMessage::DigestReply { table, vv, buckets } => {
            compare_digests(&db, &mesh, &peer, table, vv, buckets).await;
        }
        ReplMessage::BucketRequest { table, bucket } => {
            let (backend, t) = (db.backend().clone(), table.clone());
            let states = tokio::task::spawn_blocking(move || {
                meridian_store::digest::bucket_states(backend.as_ref(), &t, bucket, usize::MAX)
            })
            .await;
            let Ok(Ok(states)) = states else { return };
            let states = bounded_reply(states);
            let _ = mesh.send(&peer, encode(&ReplMessage::BucketReply { table, states }));
        }
        ReplMessage::BucketReply { table, states } => match db.join_states(&table, states).await {
            Ok(n) if n > 0 => tracing::warn!(%peer, %table, keys = n, "anti-entropy repaired keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(%peer, %table, error = %e, "anti-entropy repair failed"),
        },
        _ => {}
    }
}

/// The table an anti-entropy message is about; `None` for other messages.
fn table_of(msg: &ReplMessage) -> Option<&str> {
    match msg {
        ReplMessage::DigestRequest { table }
        | ReplMessage::DigestReply { table, .. }
        | ReplMessage::BucketRequest { table, .. }
        | ReplMessage::BucketReply { table, .. } => Some(table),
        _ => None,
    }
}

/// Compares `peer`'s digests of `table`, taken at `vv`, with ours and asks
/// for the states of the first buckets that differ.
async fn compare_digests(
    db: &Db,
    mesh: &PeerMesh,
    peer: &RegionName,
    table: String,
    vv: VersionVector,
    buckets: Vec<[u8; 32]>,
) {
    // Only regions that applied the same writes should agree; otherwise the
    // difference is replication still in flight.
    let Some((mine_vv, mine)) = digests_at_rest(db, &table).await else {
        return;
    };
    if mine_vv != vv {
        return;
    }
    let Some(differing) = differing_buckets(&mine, &buckets) else {
        return;
    };
    if differing.is_empty() {
        return;
    }
    tracing::warn!(%peer, %table, buckets = differing.len(), "anti-entropy: data differs despite equal version vectors; repairing");
    for bucket in differing.into_iter().take(ANTI_ENTROPY_BUCKETS_PER_ROUND) {
        let _ = mesh.send(
            peer,
            encode(&ReplMessage::BucketRequest {
                table: table.clone(),
                bucket,
            }),
        );
    }
}

/// The buckets whose digests differ; `None` when the two sides bucket the
/// table differently (nothing to compare).
fn differing_buckets(mine: &[[u8; 32]], theirs: &[[u8; 32]]) -> Option<Vec<u8>> {
    if mine.len() != theirs.len() {
        return None;
    }
    Some(
        (0..mine.len())
            .filter(|i| mine[*i] != theirs[*i])
            .map(|i| i as u8)
            .collect(),
    )
}

/// The leading states of a bucket that fit one reply
/// ([`ANTI_ENTROPY_REPLY_BYTES_MAX`]); a larger bucket is finished in later
/// rounds.
fn bounded_reply(states: Vec<(Vec<u8>, KeyState)>) -> Vec<(Vec<u8>, KeyState)> {
    let mut bytes = 0usize;
    states
        .into_iter()
        .take_while(|s| {
            bytes += postcard::to_stdvec(s).map(|b| b.len()).unwrap_or(0);
            bytes <= ANTI_ENTROPY_REPLY_BYTES_MAX
        })
        .collect()
}

/// Every `interval`, asks the next reachable peer (round robin) for its
/// bucket digests of every table. Repairs follow in `anti_entropy_message`.
pub fn spawn_anti_entropy(
    mesh: PeerMesh,
    me: RegionName,
    tables: Vec<String>,
    residency: Residency,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let mut turn = 0usize;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let up: Vec<RegionName> = mesh
                .status()
                .into_iter()
                .filter(|s| s.outbound_up)
                .map(|s| s.region)
                .collect();
            if up.is_empty() {
                continue;
            }
            let peer = &up[turn % up.len()];
            turn += 1;
            // A pinned table only between regions that both hold it now.
            for table in tables
                .iter()
                .filter(|t| residency.holds(peer, t) && residency.holds(&me, t))
            {
                let _ = mesh.send(
                    peer,
                    encode(&ReplMessage::DigestRequest {
                        table: table.clone(),
                    }),
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::{Hlc, Version};

    #[test]
    fn differing_buckets_are_listed_by_index() {
        let mine = [[0u8; 32], [1; 32], [2; 32]];
        let theirs = [[0u8; 32], [9; 32], [2; 32]];
        assert_eq!(differing_buckets(&mine, &theirs), Some(vec![1]));
        assert_eq!(differing_buckets(&mine, &mine), Some(vec![]));
        assert_eq!(differing_buckets(&mine, &theirs[..2]), None);
    }

    #[test]
    fn a_reply_keeps_every_state_of_a_small_bucket() {
        let state = KeyState::lost(Version {
            hlc: Hlc::new(1, 0),
            origin: RegionName::new("us-east").unwrap(),
        });
        let states = vec![(b"a".to_vec(), state.clone()), (b"b".to_vec(), state)];
        assert_eq!(bounded_reply(states.clone()), states);
    }
}
