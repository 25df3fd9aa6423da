//! [`View`]: the modes one region applies at one moment — the config with
//! every applied change, and each table's epoch — and the residency and
//! home rules read off it.
//!
//! A view is immutable once published; [`crate::Modes`] swaps in a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use meridian_core::config::TableMode;
use meridian_core::{RegionName, Topology};

use crate::error::WriteRefused;

/// The modes a region applies now.
#[derive(Debug)]
pub struct View {
    /// The config with every applied change.
    pub topology: Arc<Topology>,
    /// Each table's epoch (absent: 0, the config's).
    pub epochs: BTreeMap<String, u64>,
}

impl View {
    /// The home of `table` if it is single-master.
    pub fn home(&self, table: &str) -> Option<RegionName> {
        self.topology
            .tables
            .iter()
            .find(|t| t.name == table)
            .and_then(|t| match &t.mode {
                TableMode::SingleMaster { home } => Some(home.clone()),
                _ => None,
            })
    }

    /// `table`'s epoch.
    pub fn epoch(&self, table: &str) -> u64 {
        self.epochs.get(table).copied().unwrap_or(0)
    }

    /// Why region `here` may not decide writes to `table`, if it may not.
    pub fn refuses_writes(&self, table: &str, here: &RegionName) -> Option<WriteRefused> {
        let t = self.topology.tables.iter().find(|t| t.name == table)?;
        match &t.mode {
            TableMode::SingleMaster { home } if home != here => Some(WriteRefused::NotHome {
                table: table.to_string(),
                home: home.clone(),
            }),
            TableMode::Pinned { regions, .. } if !regions.contains(here) => {
                Some(WriteRefused::NotPinnedHere {
                    table: table.to_string(),
                    here: here.clone(),
                })
            }
            _ => None,
        }
    }
}
