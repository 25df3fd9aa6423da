//! The purger: drops expired keys' contents locally once no write to them
//! can still arrive.
//!
//! Entry point: [`spawn_purger`]. It reads the closed timestamps of
//! [`crate::closed`] to know up to when every origin's writes are here, pages
//! through each table and asks the `Db` to purge what expired before then.
//! Purging is not replicated — every region purges on its own at the same
//! deadline — so nothing here touches the wire. `PurgePass` is the pure
//! part: where a sweep is in one table and which keys of a page are due.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use meridian_core::record::KeyState;
use meridian_core::{PhysicalClock, SystemClock};
use meridian_store::db::Db;
use tokio_util::sync::CancellationToken;

use crate::closed::ClosedTimestamps;

/// How often the purge sweep runs.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Keys examined per table per sweep: bounds the sweep's cost (a million
/// keys are covered every 100 s) and the size of one purge request.
pub const PURGE_SCAN_KEYS_MAX: usize = 10_000;

/// Sweeps `tables` for expired keys and purges them locally once closed
/// timestamps show no write to them can still arrive. Not replicated: every
/// region purges on its own at the same deadline. A table whose last whole
/// pass met no key with an expiry rests until a state with an expiry is
/// committed anywhere (`DbStats::expiring_states`): a table without TTLs
/// costs no decoding.
pub fn spawn_purger(
    db: Db,
    closed: ClosedTimestamps,
    tables: Vec<String>,
    shutdown: CancellationToken,
) {
    tokio::spawn(run_purger(db, closed, tables, shutdown));
}

async fn run_purger(
    db: Db,
    closed: ClosedTimestamps,
    tables: Vec<String>,
    shutdown: CancellationToken,
) {
    let mut passes: BTreeMap<String, PurgePass> = tables
        .iter()
        .map(|t| (t.clone(), PurgePass::default()))
        .collect();
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(closed_ms) = closed.closed_ms() else {
            continue;
        };
        // Our own writes are all here: cap at our clock.
        let closed_ms = closed_ms.min(SystemClock.now_ms());
        let expiring_states = db.stats().expiring_states.load(Ordering::Relaxed);
        for (table, pass) in passes.iter_mut() {
            if pass.rests_at(expiring_states) {
                continue;
            }
            pass.start_if_between(expiring_states);
            sweep_page(&db, table, pass, closed_ms).await;
        }
    }
}

/// Reads the next page of `table` and purges what in it expired before
/// `closed_ms`. A failed read leaves the pass where it was, for the next
/// sweep to retry.
async fn sweep_page(db: &Db, table: &str, pass: &mut PurgePass, closed_ms: u64) {
    let (db2, t, after) = (db.clone(), table.to_string(), pass.cursor.clone());
    let page =
        tokio::task::spawn_blocking(move || db2.scan(&t, after.as_deref(), PURGE_SCAN_KEYS_MAX))
            .await;
    let Ok(Ok(page)) = page else { return };
    let expired = pass.take_page(page, closed_ms);
    if expired.is_empty() {
        return;
    }
    match db.purge(table, expired, closed_ms).await {
        Ok(n) if n > 0 => tracing::debug!(%table, purged = n, "purged expired keys"),
        Ok(_) => {}
        Err(e) => tracing::warn!(%table, error = %e, "purging expired keys failed"),
    }
}

/// Where the purger is in one table.
#[derive(Debug, Default, PartialEq)]
struct PurgePass {
    /// The last key of the previous page; `None` between passes.
    cursor: Option<Vec<u8>>,
    /// `DbStats::expiring_states` when this pass started.
    started_at: u64,
    /// This pass met a key with an expiry (expired or not).
    saw_expiry: bool,
    /// The pass that ended at this count found no key with an expiry: the
    /// table is skipped until the count moves.
    resting_at: Option<u64>,
}

impl PurgePass {
    /// Whether the table rests: no state with an expiry was committed since
    /// a whole pass found none.
    fn rests_at(&self, expiring_states: u64) -> bool {
        self.resting_at == Some(expiring_states)
    }

    /// Starts a pass unless one is under way.
    fn start_if_between(&mut self, expiring_states: u64) {
        if self.cursor.is_none() {
            // A pass starts: what it must cover is everything committed up
            // to this count.
            self.started_at = expiring_states;
            self.saw_expiry = false;
            self.resting_at = None;
        }
    }

    /// Takes in one scanned page: moves the cursor past it and returns the
    /// keys whose expiry lies before `closed_ms` (purged ones excepted).
    fn take_page(&mut self, page: Vec<(Vec<u8>, KeyState)>, closed_ms: u64) -> Vec<Vec<u8>> {
        self.cursor = if page.len() < PURGE_SCAN_KEYS_MAX {
            None
        } else {
            page.last().map(|(k, _)| k.clone())
        };
        let expired = page
            .into_iter()
            .filter(|(_, s)| !s.purged && s.expires_at_ms().is_some())
            .inspect(|_| self.saw_expiry = true)
            .filter(|(_, s)| s.expires_at_ms().is_some_and(|at| at < closed_ms))
            .map(|(k, _)| k)
            .collect();
        if self.cursor.is_none() && !self.saw_expiry {
            // A whole pass without a key that will expire: nothing to do
            // until a state with an expiry is committed.
            self.resting_at = Some(self.started_at);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::record::Expiry;
    use meridian_core::{Hlc, RegionName, Version};

    fn version() -> Version {
        Version {
            hlc: Hlc::new(1, 0),
            origin: RegionName::new("us-east").unwrap(),
        }
    }

    fn persistent() -> KeyState {
        KeyState::from_put(version(), b"v".to_vec())
    }

    fn expiring_at(at_ms: u64) -> KeyState {
        KeyState {
            expiry: Some(Expiry {
                at_ms: Some(at_ms),
                version: version(),
            }),
            ..persistent()
        }
    }

    #[test]
    fn a_page_yields_only_keys_expired_before_the_closed_time() {
        let mut pass = PurgePass::default();
        pass.start_if_between(7);
        let purged = KeyState {
            purged: true,
            ..expiring_at(10)
        };
        let page = vec![
            (b"a".to_vec(), expiring_at(10)),
            (b"b".to_vec(), expiring_at(100)),
            (b"c".to_vec(), persistent()),
            (b"d".to_vec(), purged),
        ];
        assert_eq!(pass.take_page(page, 50), vec![b"a".to_vec()]);
        assert_eq!(pass.cursor, None, "a short page ends the pass");
        assert!(pass.saw_expiry);
        assert!(!pass.rests_at(7), "a table with expiries keeps being swept");
    }

    #[test]
    fn a_whole_pass_without_expiries_rests_until_the_count_moves() {
        let mut pass = PurgePass::default();
        pass.start_if_between(3);
        let page = vec![(b"a".to_vec(), persistent())];
        assert!(pass.take_page(page, 50).is_empty());
        assert!(pass.rests_at(3));
        assert!(!pass.rests_at(4));
        pass.start_if_between(4);
        assert_eq!(pass.resting_at, None);
    }
}
