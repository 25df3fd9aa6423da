//! The validated [`Topology`] every other layer reads: regions, links,
//! tables and their modes, with the lookups layers need (a key's table,
//! whether a region holds a table, a pair's link conditions).
//!
//! Entry types: [`Topology`], [`Region`], [`Table`], [`TableMode`],
//! [`WriteAck`]. Only [`super::validate`] builds a `Topology`; nothing here
//! parses or checks operator input.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::edge::{BackendConfig, EdgeConfig, RouteConfig};
use super::file::{ConflictPolicy, PinnedOutside, RespConfig};
use super::link::LinkConditions;
use crate::geo::Location;
use crate::region::RegionName;

/// The table of keys that match no configured key prefix.
pub const DEFAULT_TABLE: &str = "default";

/// Meridian's replicated record of run-time table mode changes (no key
/// prefix reaches it; see `meridian_resp::modes`).
pub const CONTROL_TABLE: &str = "_meridian_tables";

/// Validated write acknowledgement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteAck {
    /// Once durable where it was made (RPO: what had not replicated yet).
    #[default]
    Local,
    /// Once applied in `regions` regions, the writer's included (RPO 0
    /// against losing any `regions − 1` of them).
    Global {
        /// Regions that must have applied the write, 1..=all.
        regions: usize,
    },
}

/// Validated table mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableMode {
    /// Writes accepted in every region.
    MultiMaster,
    /// Writes owned by `home`.
    SingleMaster {
        /// The home region.
        home: RegionName,
    },
    /// Entries confined to `regions`.
    Pinned {
        /// The allowed regions, at least one.
        regions: BTreeSet<RegionName>,
        /// Requests made elsewhere: refused or forwarded.
        outside: PinnedOutside,
    },
}

/// A validated region.
#[derive(Clone, Debug)]
pub struct Region {
    /// Its name.
    pub name: RegionName,
    /// Peer-link listen address.
    pub peer: SocketAddr,
    /// Peer-link address others dial.
    pub advertise_peer: SocketAddr,
    /// Redis-protocol listen address.
    pub resp: SocketAddr,
    /// Admin HTTP listen address.
    pub admin: SocketAddr,
    /// S3 listen address.
    pub s3: Option<SocketAddr>,
    /// DNS listen address.
    pub dns: Option<SocketAddr>,
    /// Edge proxy listen address.
    pub edge: Option<SocketAddr>,
    /// Statically configured app instances behind the edge.
    pub backends: Vec<BackendConfig>,
    /// Location, from the config or the catalogue.
    pub location: Option<Location>,
}

/// A validated table.
#[derive(Clone, Debug)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Key prefixes routed to it.
    pub key_prefixes: Vec<String>,
    /// Who accepts writes.
    pub mode: TableMode,
    /// How concurrent versions merge.
    pub conflict: ConflictPolicy,
    /// When its writes are acknowledged by default.
    pub write_ack: WriteAck,
}

/// The validated topology every layer reads.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The Redis endpoint's authentication and limits (ranges checked).
    pub resp: RespConfig,
    /// Cluster name, part of every peer handshake.
    pub cluster_name: String,
    /// Shared peer-link secret (already resolved from `secret_file`).
    pub secret: Vec<u8>,
    /// Admin token; `None` disables the protected endpoints.
    pub admin_token: Option<String>,
    /// Region homing the control-plane tables.
    pub master_region: RegionName,
    /// Regions in config order.
    pub regions: Vec<Region>,
    /// Whether links are emulated.
    pub emulate_wan: bool,
    /// Conditions per unordered pair (key ordered `a < b`), both directions.
    pub links: BTreeMap<(RegionName, RegionName), LinkConditions>,
    /// Tables in config order.
    pub tables: Vec<Table>,
    /// The edge proxy's settings (ranges checked).
    pub edge: EdgeConfig,
    /// Edge routes in config order (prefixes unique, tables known).
    pub routes: Vec<RouteConfig>,
}

impl Topology {
    /// The region called `name`.
    pub fn region(&self, name: &RegionName) -> Option<&Region> {
        self.regions.iter().find(|r| &r.name == name)
    }

    /// Conditions on the link between `a` and `b` (either order); ideal when
    /// emulation has no row for them.
    pub fn link(&self, a: &RegionName, b: &RegionName) -> LinkConditions {
        let key = if a <= b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        self.links
            .get(&key)
            .copied()
            .unwrap_or(LinkConditions::IDEAL)
    }

    /// The table a key belongs to: the table with the longest key prefix
    /// that starts the key; `None` means the default table.
    pub fn table_for_key(&self, key: &[u8]) -> Option<&Table> {
        self.tables
            .iter()
            .flat_map(|t| t.key_prefixes.iter().map(move |p| (p, t)))
            .filter(|(p, _)| key.starts_with(p.as_bytes()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, t)| t)
    }

    /// Whether `region` may hold `table`'s data: every region may, except
    /// outside a pinned table's allowed regions.
    pub fn holds(&self, region: &RegionName, table: &str) -> bool {
        match self
            .tables
            .iter()
            .find(|t| t.name == table)
            .map(|t| &t.mode)
        {
            Some(TableMode::Pinned { regions, .. }) => regions.contains(region),
            _ => true,
        }
    }

    /// The pinned tables and their allowed regions.
    pub fn residency(&self) -> BTreeMap<String, BTreeSet<RegionName>> {
        self.tables
            .iter()
            .filter_map(|t| match &t.mode {
                TableMode::Pinned { regions, .. } => Some((t.name.clone(), regions.clone())),
                _ => None,
            })
            .collect()
    }

    /// The tables whose data `region` holds, in [`Topology::table_names`]
    /// order.
    pub fn tables_held_by(&self, region: &RegionName) -> Vec<String> {
        self.table_names()
            .into_iter()
            .filter(|t| self.holds(region, t))
            .collect()
    }

    /// Every table name: the configured ones, then [`DEFAULT_TABLE`] and
    /// [`CONTROL_TABLE`].
    pub fn table_names(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| t.name.clone())
            .chain([DEFAULT_TABLE.to_string(), CONTROL_TABLE.to_string()])
            .collect()
    }

    /// Every region but `local`.
    pub fn peers_of<'a>(&'a self, local: &'a RegionName) -> impl Iterator<Item = &'a Region> + 'a {
        self.regions.iter().filter(move |r| &r.name != local)
    }
}
