//! The rules that keep a write to the mode it was planned under: a write
//! is stamped with its tables' epochs when it is planned ([`Modes::stamp`])
//! and refused just before it is decided if the mode moved
//! ([`Modes::refuse`]).

use meridian_core::RegionName;

use crate::error::WriteRefused;
use crate::modes::Modes;

impl Modes {
    /// The epochs of the configured tables among `tables` (the ones whose
    /// mode can change), as a write planned now is stamped.
    pub fn stamp<'a>(&self, tables: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
        let view = self.view();
        let mut out: Vec<(String, u64)> = Vec::new();
        for t in tables {
            let changeable = view.topology.tables.iter().any(|x| x.name == t);
            if changeable && !out.iter().any(|(n, _)| n == t) {
                out.push((t.to_string(), view.epoch(t)));
            }
        }
        out
    }

    /// Why a write stamped `stamp` may not be decided in region `here`
    /// now, if it may not. The mode now in force decides, whatever view
    /// the command was routed by: a view published between routing and
    /// stamping moves the epoch before the stamp reads it, so the epoch
    /// alone cannot tell.
    pub fn refuse(&self, stamp: &[(String, u64)], here: &RegionName) -> Option<WriteRefused> {
        if stamp.is_empty() {
            return None;
        }
        let view = self.view();
        let fenced = self.fenced.lock().expect("fence lock is never poisoned");
        for (table, epoch) in stamp {
            if fenced.get(table) == Some(&view.epoch(table)) {
                return Some(WriteRefused::Fenced {
                    table: table.clone(),
                });
            }
            let now = view.epoch(table);
            if now != *epoch {
                let writer = view
                    .home(table)
                    .map_or("every region".to_string(), |h| h.to_string());
                return Some(WriteRefused::EpochMoved {
                    table: table.clone(),
                    stamped: *epoch,
                    now,
                    writer,
                });
            }
            if let Some(why) = view.refuses_writes(table, here) {
                return Some(why);
            }
        }
        None
    }
}
