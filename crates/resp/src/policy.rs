//! Which table a key is in and what this region may do with it: a write
//! needs the table's mode to accept it here and its conflict policy to
//! allow the command's kind; a read needs the table's data here; a command
//! on another region's keys is routed there ([`Shared::route`]).
//!
//! Reads the topology as the table modes apply it now; refusals are typed
//! [`ErrorReply`]s with Redis-style lines.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bytes::Bytes;
use meridian_core::config::{ConflictPolicy, PinnedOutside, Table, TableMode};
use meridian_core::record::KeyState;
use meridian_core::{RegionName, Topology};

use crate::cmd::{now_ms, Handler, Spec, DEFAULT_TABLE};
use crate::error::ErrorReply;
use crate::plan::WriteKind;
use crate::reply::Reply;
use crate::shared::Shared;

impl Shared {
    /// The table `key` belongs to, checked for a write of `kind` by
    /// command `cmd` in this region: the table's mode must accept writes
    /// here and its conflict policy must allow the kind.
    pub fn table_for_write(&self, key: &[u8], kind: WriteKind, cmd: &str) -> Result<String, Reply> {
        self.modes
            .with_topology(|topology| self.write_table(topology, key, kind, cmd))
    }

    fn write_table(
        &self,
        topology: &Topology,
        key: &[u8],
        kind: WriteKind,
        cmd: &str,
    ) -> Result<String, Reply> {
        let Some(table) = topology.table_for_key(key) else {
            return Ok(DEFAULT_TABLE.to_string());
        };
        self.mode_accepts_write(table)?;
        if let Some(refused) = policy_forbids(table, kind, cmd) {
            return Err(Reply::Error(refused));
        }
        Ok(table.name.clone())
    }

    /// Whether `table`'s mode lets this region decide its writes.
    fn mode_accepts_write(&self, table: &Table) -> Result<(), Reply> {
        let refused = match &table.mode {
            TableMode::MultiMaster => return Ok(()),
            TableMode::SingleMaster { home } if *home == self.region => return Ok(()),
            // A node that forwards sent this command here because the view
            // it was routed by had this region as home: the table moved
            // since, and a retry is routed to the new home.
            TableMode::SingleMaster { home } if self.remote.is_some() => {
                ErrorReply::retry(format_args!(
                    "table `{}` moved to home {home} while this command was routed; retry",
                    table.name
                ))
            }
            TableMode::SingleMaster { home } => ErrorReply::read_only(format_args!(
                "table `{}` is single_master with home {home}; this region ({}) does not accept its writes",
                table.name, self.region
            )),
            TableMode::Pinned { regions, .. } if regions.contains(&self.region) => return Ok(()),
            TableMode::Pinned { .. } => return Err(self.not_pinned_here(table)),
        };
        Err(Reply::Error(refused))
    }

    /// The name of the table `key` belongs to.
    pub fn table_name_for(&self, key: &[u8]) -> String {
        self.modes.with_topology(|topology| {
            topology
                .table_for_key(key)
                .map_or(DEFAULT_TABLE, |t| t.name.as_str())
                .to_string()
        })
    }

    /// Where a command on keys runs: here (`None`), or at another region
    /// this endpoint forwards it to — the home of a single-master table
    /// (writes only; reads are local), or the nearest allowed region of a
    /// pinned table whose policy is `outside = "forward"` (reads and
    /// writes: this region holds none of its data). A pinned table that
    /// refuses is refused here, by name. A command whose keys need
    /// different regions is refused.
    pub fn route(&self, spec: &Spec, args: &[Bytes]) -> Result<Option<RegionName>, Reply> {
        self.modes
            .with_topology(|topology| self.route_in(topology, spec, args))
    }

    fn route_in(
        &self,
        topology: &Topology,
        spec: &Spec,
        args: &[Bytes],
    ) -> Result<Option<RegionName>, Reply> {
        let write = matches!(spec.handler, Handler::Write(_));
        let mut target: Option<RegionName> = None;
        let mut here = false;
        for key in spec.keys(args) {
            let Some(table) = topology.table_for_key(key) else {
                here = true;
                continue;
            };
            let there = match &table.mode {
                TableMode::SingleMaster { home } if write && *home != self.region => home.clone(),
                TableMode::Pinned { regions, outside } if !regions.contains(&self.region) => {
                    if *outside == PinnedOutside::Refuse || self.remote.is_none() {
                        return Err(self.not_pinned_here(table));
                    }
                    self.nearest(regions)
                }
                _ => {
                    here = true;
                    continue;
                }
            };
            if target.as_ref().is_some_and(|t| *t != there) {
                here = true; // two targets: refused below
            }
            target = Some(there);
        }
        match (target, here) {
            (None, _) => Ok(None),
            (Some(_), _) if self.remote.is_none() => Ok(None),
            (Some(t), false) => Ok(Some(t)),
            (Some(_), true) => Err(Reply::err(
                "the keys of this command belong to tables served by different regions; send one command per table",
            )),
        }
    }

    /// The region of `regions` with the shortest emulated link from here.
    fn nearest(&self, regions: &BTreeSet<RegionName>) -> RegionName {
        regions
            .iter()
            .min_by_key(|r| self.topology().link(&self.region, r).one_way_delay)
            .expect("validated pinned tables have at least one region")
            .clone()
    }

    /// The table `key` belongs to, checked for a read in this region.
    pub fn table_for_read(&self, key: &[u8]) -> Result<Cow<'static, str>, Reply> {
        self.modes.with_topology(|topology| {
            let Some(table) = topology.table_for_key(key) else {
                return Ok(Cow::Borrowed(DEFAULT_TABLE));
            };
            match &table.mode {
                TableMode::Pinned { regions, .. } if !regions.contains(&self.region) => {
                    Err(self.not_pinned_here(table))
                }
                _ => Ok(Cow::Owned(table.name.clone())),
            }
        })
    }

    fn not_pinned_here(&self, table: &Table) -> Reply {
        let TableMode::Pinned { regions, .. } = &table.mode else {
            unreachable!("only pinned tables are refused for residency")
        };
        let allowed: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        Reply::Error(ErrorReply::not_pinned_here(
            &table.name,
            &allowed,
            &self.region,
        ))
    }

    /// Tables this region holds, in scan order: the configured ones, then
    /// the default table.
    pub fn readable_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .topology()
            .tables
            .iter()
            .filter(|t| match &t.mode {
                TableMode::Pinned { regions, .. } => regions.contains(&self.region),
                _ => true,
            })
            .map(|t| t.name.clone())
            .collect();
        out.push(DEFAULT_TABLE.to_string());
        out
    }

    /// A live key's state, for a read.
    pub fn read_live(&self, key: &[u8]) -> Result<Option<KeyState>, Reply> {
        let table = self.table_for_read(key)?;
        let state = self
            .db
            .get(&table, key)
            .map_err(|e| Reply::Error(ErrorReply::storage(e)))?;
        Ok(state.filter(|s| !s.is_absent(now_ms())))
    }
}

/// Why `table`'s conflict policy refuses a write of `kind` by `cmd`, if it
/// does.
fn policy_forbids(table: &Table, kind: WriteKind, cmd: &str) -> Option<ErrorReply> {
    let allowed = match table.conflict {
        ConflictPolicy::Lww => true,
        ConflictPolicy::PnCounter => matches!(kind, WriteKind::Counter | WriteKind::Key),
        ConflictPolicy::LwwHash => matches!(kind, WriteKind::Hash | WriteKind::Key),
        ConflictPolicy::AddWinsSet => matches!(kind, WriteKind::Set | WriteKind::Key),
    };
    if allowed {
        return None;
    }
    let (policy, use_) = match table.conflict {
        ConflictPolicy::PnCounter => ("pn_counter", "INCR, INCRBY, DECR, DECRBY"),
        ConflictPolicy::LwwHash => ("lww_hash", "HSET, HDEL, HINCRBY"),
        ConflictPolicy::AddWinsSet => ("add_wins_set", "SADD, SREM"),
        ConflictPolicy::Lww => unreachable!("lww allows every kind"),
    };
    Some(ErrorReply::policy_forbids(&table.name, policy, cmd, use_))
}
