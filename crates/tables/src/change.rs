//! The coordinator's side of a mode change: who may change a table
//! ([`Modes::coordinator`]), whether the change makes sense anywhere
//! ([`Modes::check`]), and the change itself ([`Modes::change`]) — the
//! record written, and for a single-master table's new home, the planned
//! switchover (fence, write, wait for the new home).
//!
//! How a change reaches its coordinator is the node's business.

use std::time::Instant;

use meridian_core::config::TableMode;
use meridian_core::{LogEntry, Op, RegionName, VersionVector};
use meridian_store::db::Db;
use serde::{Deserialize, Serialize};

use crate::error::ChangeError;
use crate::modes::Modes;
use crate::spec::{ModeRecord, ModeSpec};
use crate::CONTROL_TABLE;

/// What a finished change reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// The table.
    pub table: String,
    /// Its mode now.
    pub mode: ModeSpec,
    /// The new epoch.
    pub epoch: u64,
    /// The region that made the change (the old coordinator).
    pub decided_by: RegionName,
    /// For a move: from fencing the old home until the new home had the
    /// record (its acknowledgement arrived back), in ms — the longest any
    /// write to the table had to wait or retry.
    pub unavailable_ms: Option<f64>,
}

impl Modes {
    /// The region that may change `table` now.
    pub fn coordinator(&self, table: &str) -> RegionName {
        let view = self.view();
        view.home(table)
            .unwrap_or_else(|| view.topology.master_region.clone())
    }

    /// Whether any region could change `table` to `mode` (the table is
    /// configured, the regions it names exist) — checked before a change
    /// is sent to the coordinator.
    pub fn check(&self, table: &str, mode: &ModeSpec) -> Result<(), ChangeError> {
        let view = self.view();
        if !view.topology.tables.iter().any(|t| t.name == table) {
            return Err(ChangeError::UnknownTable(table.to_string()));
        }
        let named: Vec<&RegionName> = match mode {
            ModeSpec::MultiMaster => Vec::new(),
            ModeSpec::SingleMaster { home } => vec![home],
            ModeSpec::Pinned { regions, .. } => {
                if regions.is_empty() {
                    return Err(ChangeError::Invalid(
                        "a pinned table needs at least one allowed region".into(),
                    ));
                }
                regions.iter().collect()
            }
        };
        if let Some(unknown) = named.iter().find(|r| view.topology.region(r).is_none()) {
            return Err(ChangeError::Invalid(format!("unknown region `{unknown}`")));
        }
        Ok(())
    }

    /// Changes `table` to `mode`; this region must be its coordinator. A
    /// single-master table's new home gets it by a planned switchover.
    pub async fn change(
        &self,
        db: &Db,
        table: &str,
        mode: ModeSpec,
    ) -> Result<ChangeReport, ChangeError> {
        let _one = self.changing.lock().await;
        let me = db.region().clone();
        self.check(table, &mode)?;
        let view = self.view();
        let config = view
            .topology
            .tables
            .iter()
            .find(|t| t.name == table)
            .expect("checked above");
        let coordinator = self.coordinator(table);
        if coordinator != me {
            return Err(ChangeError::not_coordinator(&me, table, &coordinator));
        }
        let report = |epoch, unavailable_ms| ChangeReport {
            table: table.to_string(),
            mode: mode.clone(),
            epoch,
            decided_by: me.clone(),
            unavailable_ms,
        };
        if ModeSpec::from(&config.mode) == mode {
            return Ok(report(view.epoch(table), None));
        }
        let epoch = view.epoch(table) + 1;
        let moving_from_here =
            matches!(&config.mode, TableMode::SingleMaster { home } if *home == me);
        let started = Instant::now();
        if moving_from_here {
            // From here on no write to the table is decided here; those
            // decided before are ahead of the record in this region's log.
            self.fenced
                .lock()
                .expect("fence lock is never poisoned")
                .insert(table.to_string(), view.epoch(table));
        }
        let record = ModeRecord {
            mode: mode.clone(),
            epoch,
        };
        let entry = self.write_record(db, table, &record).await?;
        let mut unavailable_ms = None;
        if let (true, ModeSpec::SingleMaster { home }) = (moving_from_here, &mode) {
            if *home != me {
                self.await_new_home(db, table, home, epoch, &entry).await?;
                unavailable_ms = Some(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok(report(epoch, unavailable_ms))
    }

    /// Writes `table`'s mode record and re-reads the modes, lifting the
    /// table's fence once this region applies it; the record's log entry.
    async fn write_record(
        &self,
        db: &Db,
        table: &str,
        record: &ModeRecord,
    ) -> Result<LogEntry, ChangeError> {
        let value = record.encode().into_bytes();
        let written = db
            .write(
                CONTROL_TABLE,
                table.as_bytes(),
                Box::new(move |_, _| {
                    Ok(Some(Op::Put {
                        value,
                        expires_at_ms: None,
                    }))
                }),
            )
            .await;
        let refreshed = self.refresh(db);
        // Lifted once this region applies the new epoch (or nothing was
        // written); if the re-read failed the fence stays until the view
        // moves past it.
        if written.is_err() || refreshed.is_ok() {
            self.fenced
                .lock()
                .expect("fence lock is never poisoned")
                .remove(table);
        }
        let entry = written
            .map_err(ChangeError::not_stored)?
            .entry
            .ok_or_else(|| ChangeError::not_stored("nothing written"))?;
        refreshed.map_err(ChangeError::not_reread)?;
        Ok(entry)
    }

    /// Waits until the new `home` has applied the move record `entry`
    /// (at most the move timeout).
    async fn await_new_home(
        &self,
        db: &Db,
        table: &str,
        home: &RegionName,
        epoch: u64,
        entry: &LogEntry,
    ) -> Result<(), ChangeError> {
        let mut token = VersionVector::new();
        token.advance(db.region(), entry.seq);
        if db.wait_for_peer(home, &token, self.move_ack_timeout).await {
            Ok(())
        } else {
            Err(ChangeError::not_confirmed(
                table,
                home,
                epoch,
                self.move_ack_timeout.as_millis(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::setup;

    #[tokio::test]
    async fn a_write_stamped_before_a_change_is_refused_after_it() {
        let (modes, db) = setup();
        let stamp = modes.stamp(["ledger", "default", "vault"].into_iter());
        assert_eq!(
            stamp,
            vec![("ledger".to_string(), 0), ("vault".to_string(), 0)],
            "every configured table, not the default one"
        );
        let us: RegionName = "us-east".parse().unwrap();
        assert_eq!(modes.refuse(&stamp, &us), None);
        let eu: RegionName = "eu-west".parse().unwrap();
        let report = modes
            .change(&db, "ledger", ModeSpec::SingleMaster { home: eu.clone() })
            .await;
        // No peer acknowledges in this test: the change is committed and
        // the caller told the new home has not confirmed it yet.
        let err = report.unwrap_err().to_string();
        assert!(
            err.starts_with("TRYAGAIN") && err.contains("committed here"),
            "{err}"
        );
        assert_eq!(modes.view().epoch("ledger"), 1);
        assert_eq!(modes.coordinator("ledger"), eu);
        let why = modes
            .refuse(&stamp, &us)
            .expect("the old stamp is refused")
            .to_string();
        assert!(
            why.contains("epoch 0 → 1") && why.contains("eu-west"),
            "{why}"
        );
        // A fresh stamp is fine at the new home, and refused at the old
        // one (a command routed by the view before the change, stamped
        // after it); this region is no longer the coordinator.
        let fresh = modes.stamp(["ledger"].into_iter());
        assert_eq!(modes.refuse(&fresh, &eu), None);
        let why = modes
            .refuse(&fresh, &us)
            .expect("the old home is refused")
            .to_string();
        assert!(why.contains("home eu-west now"), "{why}");
        let pinned = modes.stamp(["vault"].into_iter());
        assert_eq!(modes.refuse(&pinned, &us), None);
        let why = modes
            .refuse(&pinned, &eu)
            .expect("outside the pinned regions")
            .to_string();
        assert!(why.contains("no longer pinned to eu-west"), "{why}");
        let e = modes
            .change(&db, "ledger", ModeSpec::MultiMaster)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("eu-west does"), "{e}");
        // The record survives a re-read from the store.
        let again = Modes::new(modes.base.clone());
        again.refresh(&db).unwrap();
        assert_eq!(again.view().epoch("ledger"), 1);
        assert_eq!(modes.check("vault", &ModeSpec::MultiMaster), Ok(()));
        assert!(modes
            .check("vault", &"pinned:nowhere-1".parse().unwrap())
            .unwrap_err()
            .to_string()
            .contains("unknown region"));
        assert!(modes
            .check("nope", &ModeSpec::MultiMaster)
            .unwrap_err()
            .to_string()
            .contains("unknown table"));
    }
}
