//! Topology config: what an operator writes (TOML), and the validated
//! [`Topology`] every other layer reads.
//!
//! Loading is two steps. [`TopologyConfig::from_toml`] parses the text into the
//! raw, documented serde structs (unknown fields are rejected, so a typo never
//! silently falls back to a default). [`TopologyConfig::validate`] then checks
//! every cross-field rule and returns either a [`Topology`] or every problem at
//! once as [`ConfigErrors`], each naming the field and how to fix it.
//!
//! This module reads no files: the binary resolves `secret_file` before
//! validation (architecture invariant: only `bin` touches files and env).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::geo::{self, Location};
use crate::region::RegionName;

/// Shortest cluster secret accepted, in bytes. 16 bytes of randomness is the
/// least that makes HMAC challenge–response unguessable.
pub const SECRET_BYTES_MIN: usize = 16;

/// Largest emulated one-way delay, in ms. Nothing on Earth is further than
/// ~340 ms RTT by fibre; 10 s leaves room for satellite and fault scenarios.
pub const ONE_WAY_DELAY_MS_MAX: f64 = 10_000.0;

/// The whole topology file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyConfig {
    /// Cluster-wide identity and secrets.
    pub cluster: ClusterConfig,
    /// One entry per region, at least one.
    pub regions: Vec<RegionConfig>,
    /// Inter-region link emulation and latency profile.
    #[serde(default)]
    pub wan: WanConfig,
    /// Replicated tables; keys that match no prefix go to the default table.
    #[serde(default)]
    pub tables: Vec<TableConfig>,
    /// The Redis-protocol endpoint: authentication and limits.
    #[serde(default)]
    pub resp: RespConfig,
}

/// The table of keys that match no configured key prefix.
pub const DEFAULT_TABLE: &str = "default";

/// Meridian's replicated record of run-time table mode changes (no key
/// prefix reaches it; see `meridian_resp::modes`).
pub const CONTROL_TABLE: &str = "_meridian_tables";

/// Default largest bulk string (a key, a value, an argument): 16 MiB.
pub const RESP_BULK_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
/// Default longest command (arguments per request).
pub const RESP_ARRAY_LEN_DEFAULT: usize = 1024 * 1024;
/// Default largest inline command line (`PING\r\n`): 64 KiB, as Redis.
pub const RESP_INLINE_BYTES_DEFAULT: usize = 64 * 1024;
/// Default reply bytes a connection may leave unread before it is closed.
pub const RESP_REPLY_BYTES_DEFAULT: usize = 256 * 1024 * 1024;
/// Default simultaneous client connections per node.
pub const RESP_CONNECTIONS_DEFAULT: usize = 10_000;

/// `[resp]`: the Redis-protocol endpoint. Every limit has a name here and in
/// the error a client sees when it crosses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespConfig {
    /// Password of the `default` user (`AUTH password`). Unset, with no
    /// `users`: connections need no authentication, as Redis by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirepass: Option<String>,
    /// Named users (`AUTH name password`). Any user set means every
    /// connection must authenticate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<RespUser>,
    /// Largest bulk string accepted, bytes (`proto-max-bulk-len`).
    #[serde(default = "default_bulk_bytes")]
    pub bulk_bytes_max: usize,
    /// Most arguments in one command.
    #[serde(default = "default_array_len")]
    pub array_len_max: usize,
    /// Longest inline command line, bytes.
    #[serde(default = "default_inline_bytes")]
    pub inline_bytes_max: usize,
    /// Reply bytes a client may leave unread before it is disconnected.
    #[serde(default = "default_reply_bytes")]
    pub reply_bytes_max: usize,
    /// Simultaneous client connections (`maxclients`).
    #[serde(default = "default_connections")]
    pub connections_max: usize,
}

/// `[[resp.users]]`: a named user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespUser {
    /// User name, as given to `AUTH name password`.
    pub name: String,
    /// Its password.
    pub password: String,
}

fn default_bulk_bytes() -> usize {
    RESP_BULK_BYTES_DEFAULT
}
fn default_array_len() -> usize {
    RESP_ARRAY_LEN_DEFAULT
}
fn default_inline_bytes() -> usize {
    RESP_INLINE_BYTES_DEFAULT
}
fn default_reply_bytes() -> usize {
    RESP_REPLY_BYTES_DEFAULT
}
fn default_connections() -> usize {
    RESP_CONNECTIONS_DEFAULT
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            requirepass: None,
            users: Vec::new(),
            bulk_bytes_max: RESP_BULK_BYTES_DEFAULT,
            array_len_max: RESP_ARRAY_LEN_DEFAULT,
            inline_bytes_max: RESP_INLINE_BYTES_DEFAULT,
            reply_bytes_max: RESP_REPLY_BYTES_DEFAULT,
            connections_max: RESP_CONNECTIONS_DEFAULT,
        }
    }
}

impl RespConfig {
    /// Whether connections must authenticate before other commands.
    pub fn auth_required(&self) -> bool {
        self.requirepass.is_some() || !self.users.is_empty()
    }
}

/// `[cluster]`: identity, secrets, master region.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name; peers of another cluster are refused. Default `meridian`.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// Shared secret every region proves knowledge of on each peer link
    /// (HMAC challenge–response). At least 16 bytes. Exactly one of `secret`
    /// and `secret_file` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// File holding the secret (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Bearer token for the admin API's fault-injection and mutating
    /// endpoints. Unset: those endpoints answer 401 to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Region that homes the control-plane tables. Default: the first region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_region: Option<String>,
}

fn default_cluster_name() -> String {
    "meridian".to_string()
}

/// `[[regions]]`: one region's listeners.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Region name (`us-east`): lowercase letters, digits, `-`.
    pub name: String,
    /// Where this region's node listens for peer links.
    pub peer: SocketAddr,
    /// Address other regions dial to reach `peer` (behind NAT or a load
    /// balancer). Default: `peer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_peer: Option<SocketAddr>,
    /// Redis-protocol listener.
    pub resp: SocketAddr,
    /// Admin HTTP listener (health, status, metrics, faults).
    pub admin: SocketAddr,
    /// S3 API listener (later issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<SocketAddr>,
    /// Authoritative DNS listener (later issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<SocketAddr>,
    /// Edge proxy listener (later issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<SocketAddr>,
    /// Where the region is, for derived latencies and GeoDNS. Default: the
    /// catalogue's city for known region names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `[wan]`: link emulation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanConfig {
    /// Route every inter-region byte through an emulated link (latency,
    /// jitter, bandwidth, loss, partitions). Default `false`: production nodes
    /// talk directly; `meridian up` turns it on.
    #[serde(default)]
    pub emulate: bool,
    /// Latency rows; pairs without a row use the default profile (published
    /// RTTs, else distance-derived from the regions' locations).
    #[serde(default)]
    pub links: Vec<LinkConfig>,
}

/// `[[wan.links]]`: conditions between two regions, the same both ways.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Round-trip time in ms; each direction is delayed by half of it.
    pub rtt_ms: f64,
    /// Extra random delay per chunk, uniform in 0..=jitter_ms, in ms.
    /// Default 0. Byte order is always kept, as TCP would.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Bandwidth cap per direction in megabits per second. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbit: Option<f64>,
    /// Segment loss in percent, 0 to <100, emulated as TCP would see it: a
    /// lost segment arrives one retransmission timeout late. Default 0.
    #[serde(default)]
    pub loss_pct: f64,
}

/// `[[tables]]`: a replicated table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name: lowercase letters, digits, `_`, `-`.
    pub name: String,
    /// Key prefixes routed to this table (`session:`); the longest match wins.
    #[serde(default)]
    pub key_prefixes: Vec<String>,
    /// Who accepts writes. Default `multi_master`.
    #[serde(default)]
    pub mode: TableModeConfig,
    /// How concurrent versions merge. Default `lww`.
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// When a write is acknowledged: `local` (default: once durable in the
    /// region that took it) or `global` (once `ack_regions` regions have
    /// applied it). Clients can override it per connection.
    #[serde(default)]
    pub write_ack: WriteAckConfig,
    /// For `write_ack = "global"`: how many regions, the writer's own
    /// included, must have applied a write before it is acknowledged.
    /// Default: every region.
    #[serde(default)]
    pub ack_regions: Option<usize>,
}

/// `write_ack` as written in TOML.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteAckConfig {
    /// Acknowledged once durable where it was made.
    #[default]
    Local,
    /// Acknowledged once applied in several regions.
    Global,
}

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

/// Table mode as written in TOML: `"multi_master"`,
/// `{ single_master = { home = "us-east" } }` or
/// `{ pinned = { regions = ["eu-west"] } }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableModeConfig {
    /// Writes accepted in every region.
    #[default]
    MultiMaster,
    /// One home region owns writes; others forward to it.
    SingleMaster {
        /// The home region.
        home: String,
    },
    /// Data residency: entries stay in these regions.
    Pinned {
        /// The allowed regions.
        regions: Vec<String>,
        /// What a region outside `regions` does with a request for the
        /// table's keys: `refuse` (default) or `forward` it to the nearest
        /// allowed region (the request, not the data, crosses the link).
        #[serde(default)]
        outside: PinnedOutside,
    },
}

/// What a region outside a pinned table's allowed regions does with a
/// request for its keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinnedOutside {
    /// Answer with an error naming the allowed regions.
    #[default]
    Refuse,
    /// Run it at the nearest allowed region and relay the reply.
    Forward,
}

/// Conflict policy per table (DESIGN.md §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Last writer wins by `(hlc, origin)`.
    #[default]
    Lww,
    /// Positive–negative counter: concurrent increments all count.
    PnCounter,
    /// Hash with last-writer-wins per field.
    LwwHash,
    /// Add-wins observed-remove set.
    AddWinsSet,
}

/// A link's figures in operator units, as written in `[[wan.links]]` and in
/// the admin API's fault requests. [`LinkFigures::to_conditions`] is the one
/// place their ranges are checked.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkFigures {
    /// Round-trip time in ms.
    pub rtt_ms: f64,
    /// Jitter bound in ms.
    pub jitter_ms: f64,
    /// Bandwidth cap per direction in Mbit/s; `None` for no cap.
    pub bandwidth_mbit: Option<f64>,
    /// Loss in percent, 0 to under 100.
    pub loss_pct: f64,
}

impl LinkFigures {
    /// Checks the ranges; errors name `field` (e.g. `wan.links[0]`) as prefix.
    pub fn to_conditions(&self, field: &str) -> Result<LinkConditions, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut check = |name: &str, value: f64, ok: bool, expected: &'static str| {
            if !ok || !value.is_finite() {
                errors.push(ConfigError::OutOfRange {
                    field: format!("{field}.{name}"),
                    value,
                    expected,
                });
            }
        };
        check(
            "rtt_ms",
            self.rtt_ms,
            self.rtt_ms >= 0.0 && self.rtt_ms / 2.0 <= ONE_WAY_DELAY_MS_MAX,
            "a round-trip time is 0 to 20000 ms",
        );
        check(
            "jitter_ms",
            self.jitter_ms,
            (0.0..=ONE_WAY_DELAY_MS_MAX).contains(&self.jitter_ms),
            "jitter is 0 to 10000 ms",
        );
        check(
            "loss_pct",
            self.loss_pct,
            (0.0..100.0).contains(&self.loss_pct),
            "loss is 0 to just under 100 percent; use a partition for 100",
        );
        if let Some(bw) = self.bandwidth_mbit {
            check(
                "bandwidth_mbit",
                bw,
                bw > 0.0,
                "a bandwidth cap is above 0 Mbit/s; omit it for no cap",
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(LinkConditions {
            one_way_delay: Duration::from_secs_f64(self.rtt_ms / 2.0 / 1000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
            // Mbit/s → bytes/s, at least 1 so a tiny cap still moves.
            bandwidth_bytes_per_sec: self
                .bandwidth_mbit
                .map(|bw| ((bw * 1_000_000.0 / 8.0) as u64).max(1)),
            loss: self.loss_pct / 100.0,
        })
    }
}

impl From<LinkConditions> for LinkFigures {
    fn from(c: LinkConditions) -> Self {
        LinkFigures {
            rtt_ms: c.one_way_delay.as_secs_f64() * 2000.0,
            jitter_ms: c.jitter.as_secs_f64() * 1000.0,
            bandwidth_mbit: c
                .bandwidth_bytes_per_sec
                .map(|b| b as f64 * 8.0 / 1_000_000.0),
            loss_pct: c.loss * 100.0,
        }
    }
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

/// Link conditions for one direction of an inter-region link.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkConditions {
    /// Fixed propagation delay.
    pub one_way_delay: Duration,
    /// Upper bound of the extra random delay per chunk.
    pub jitter: Duration,
    /// Bandwidth cap in bytes per second; `None` is unlimited.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// Probability in `[0, 1)` that a chunk is lost once and retransmitted.
    pub loss: f64,
}

impl LinkConditions {
    /// A link that adds nothing.
    pub const IDEAL: LinkConditions = LinkConditions {
        one_way_delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth_bytes_per_sec: None,
        loss: 0.0,
    };

    /// Symmetric conditions from a round-trip time.
    pub fn from_rtt_ms(rtt_ms: f64) -> Self {
        LinkConditions {
            one_way_delay: Duration::from_secs_f64(rtt_ms / 2.0 / 1000.0),
            ..LinkConditions::IDEAL
        }
    }
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
    /// Proxy listen address.
    pub proxy: Option<SocketAddr>,
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

/// One thing wrong with a config, naming the field and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax, a wrong type or an unknown field.
    #[error("config does not parse: {message}")]
    Parse {
        /// The parser's message, with line and column.
        message: String,
    },
    /// `regions` is empty.
    #[error("regions: no region is defined; add at least one [[regions]] entry")]
    NoRegions,
    /// A region name breaks the naming rules.
    #[error("{field}: {source}; use lowercase letters, digits and '-', like `us-east`")]
    InvalidRegionName {
        /// Field path.
        field: String,
        /// The rule it breaks.
        source: crate::region::InvalidRegionName,
    },
    /// Two regions share a name.
    #[error("{field}: region `{name}` is defined twice; give each region a unique name")]
    DuplicateRegion {
        /// Field path of the second definition.
        field: String,
        /// The repeated name.
        name: String,
    },
    /// Two listeners share an address.
    #[error(
        "{field}: address {addr} is also used by {other_field}; give each listener its own port"
    )]
    DuplicateAddress {
        /// Field path of the later listener.
        field: String,
        /// Field path of the first listener.
        other_field: String,
        /// The shared address.
        addr: SocketAddr,
    },
    /// A listener has port 0.
    #[error("{field}: port 0 is not allowed; peers and clients must know where to connect, so choose a fixed port")]
    PortZero {
        /// Field path.
        field: String,
    },
    /// Neither `secret` nor `secret_file`.
    #[error("cluster.secret: missing; set cluster.secret (at least 16 bytes, e.g. from `openssl rand -hex 32`) or cluster.secret_file")]
    MissingSecret,
    /// Both `secret` and `secret_file`.
    #[error("cluster.secret_file: set together with cluster.secret; keep only one of them")]
    SecretTwice,
    /// The secret is too short.
    #[error("cluster.secret: {len} bytes is too short; use at least 16 bytes of randomness")]
    WeakSecret {
        /// Its length.
        len: usize,
    },
    /// The cluster name is empty or has odd characters.
    #[error("cluster.name: `{name}` is not usable; use 1 to 64 letters, digits, '-' or '_'")]
    InvalidClusterName {
        /// The rejected name.
        name: String,
    },
    /// A reference to a region that is not defined.
    #[error(
        "{field}: unknown region `{name}`; define it under [[regions]] or use one of: {known}"
    )]
    UnknownRegion {
        /// Field path.
        field: String,
        /// The unknown name.
        name: String,
        /// The defined regions, comma-separated.
        known: String,
    },
    /// A latency, jitter or bandwidth that is negative, not finite or too big.
    #[error("{field}: {value} is out of range; {expected}")]
    OutOfRange {
        /// Field path.
        field: String,
        /// The value given.
        value: f64,
        /// What is accepted.
        expected: &'static str,
    },
    /// A link from a region to itself.
    #[error("{field}: a link from `{name}` to itself; a link joins two different regions")]
    SelfLink {
        /// Field path.
        field: String,
        /// The region.
        name: String,
    },
    /// Two rows for the same pair.
    #[error("{field}: the link {a}–{b} is already given by {other_field}; keep one row per pair")]
    DuplicateLink {
        /// Field path of the later row.
        field: String,
        /// Field path of the earlier row.
        other_field: String,
        /// One end.
        a: String,
        /// Other end.
        b: String,
    },
    /// Emulation is on but a pair has no latency.
    #[error("wan.links: no latency for {a}–{b}; add a [[wan.links]] row for the pair or give both regions a `location`")]
    MissingLatency {
        /// One end.
        a: String,
        /// Other end.
        b: String,
    },
    /// A location off the globe.
    #[error("{field}: latitude must be within −90..=90 and longitude within −180..=180")]
    InvalidLocation {
        /// Field path.
        field: String,
    },
    /// A table name breaks the naming rules.
    #[error("{field}: table name `{name}` is not usable; use 1 to 64 lowercase letters, digits, '_' or '-', not starting with '_' (reserved for Meridian's own tables)")]
    InvalidTableName {
        /// Field path.
        field: String,
        /// The rejected name.
        name: String,
    },
    /// Two tables share a name.
    #[error("{field}: table `{name}` is defined twice; give each table a unique name")]
    DuplicateTable {
        /// Field path.
        field: String,
        /// The repeated name.
        name: String,
    },
    /// A `[resp]` limit outside its accepted range.
    #[error("{field}: {value} is out of range; {expected}")]
    LimitOutOfRange {
        /// Field path.
        field: String,
        /// The value given.
        value: usize,
        /// What is accepted.
        expected: &'static str,
    },
    /// A Redis user that cannot log in or shadows another.
    #[error("{field}: {problem}")]
    InvalidUser {
        /// Field path.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// An empty key prefix.
    #[error("{field}: an empty key prefix would match every key; remove it (unmatched keys already go to the default table)")]
    EmptyPrefix {
        /// Field path.
        field: String,
    },
    /// Two tables claim the same prefix.
    #[error("{field}: prefix `{prefix}` is also claimed by {other_field}; each prefix maps to one table")]
    DuplicatePrefix {
        /// Field path.
        field: String,
        /// Field path of the first claim.
        other_field: String,
        /// The prefix.
        prefix: String,
    },
    /// `ack_regions` on a table whose writes are acknowledged locally.
    #[error("{field}: ack_regions only applies with write_ack = \"global\"; set that or remove ack_regions")]
    AckRegionsWithoutGlobal {
        /// Field path.
        field: String,
    },
    /// A pinned table with no regions.
    #[error("{field}: a pinned table needs at least one allowed region")]
    EmptyPinnedRegions {
        /// Field path.
        field: String,
    },
}

/// Every problem found in a config, in the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid topology config ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl TopologyConfig {
    /// Parses TOML text into the raw config (no cross-field checks yet).
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError::Parse {
                message: e.to_string().trim_end().to_string(),
            }])
        })
    }

    /// Renders the config as TOML (used by `meridian up` to write its file).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("topology config is always representable as TOML")
    }

    /// Checks every rule and builds the [`Topology`]. `secret_file` must have
    /// been resolved into `secret` by the caller (see the module docs); if it
    /// is still set, it counts as a second secret source.
    pub fn validate(&self) -> Result<Topology, ConfigErrors> {
        let mut v = Validator::default();
        let topology = v.run(self);
        if v.errors.is_empty() {
            Ok(topology.expect("no errors means a topology was built"))
        } else {
            Err(ConfigErrors(v.errors))
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn run(&mut self, c: &TopologyConfig) -> Option<Topology> {
        let secret = self.secret(&c.cluster);
        if !valid_cluster_name(&c.cluster.name) {
            self.errors.push(ConfigError::InvalidClusterName {
                name: c.cluster.name.clone(),
            });
        }
        let regions = self.regions(&c.regions);
        let names: Vec<RegionName> = regions.iter().map(|r| r.name.clone()).collect();
        let master_region = match &c.cluster.master_region {
            Some(m) => self.region_ref("cluster.master_region", m, &names),
            None => names.first().cloned(),
        };
        let links = self.links(&c.wan, &regions);
        let tables = self.tables(&c.tables, &names);
        self.resp(&c.resp);
        if !self.errors.is_empty() {
            return None;
        }
        Some(Topology {
            cluster_name: c.cluster.name.clone(),
            secret: secret?,
            admin_token: c.cluster.admin_token.clone(),
            master_region: master_region?,
            regions,
            emulate_wan: c.wan.emulate,
            links,
            tables,
            resp: c.resp.clone(),
        })
    }

    fn resp(&mut self, c: &RespConfig) {
        let mut limit = |name: &str, value: usize, lo: usize, hi: usize, expected| {
            if value < lo || value > hi {
                self.errors.push(ConfigError::LimitOutOfRange {
                    field: format!("resp.{name}"),
                    value,
                    expected,
                });
            }
        };
        limit(
            "bulk_bytes_max",
            c.bulk_bytes_max,
            1024,
            512 * 1024 * 1024,
            "use 1 KiB up to 512 MiB (Redis's own ceiling)",
        );
        limit(
            "array_len_max",
            c.array_len_max,
            16,
            i32::MAX as usize,
            "use 16 up to 2^31-1 arguments",
        );
        limit(
            "inline_bytes_max",
            c.inline_bytes_max,
            64,
            16 * 1024 * 1024,
            "use 64 bytes up to 16 MiB",
        );
        limit(
            "reply_bytes_max",
            c.reply_bytes_max,
            c.bulk_bytes_max.max(1024),
            usize::MAX,
            "use at least bulk_bytes_max, so any stored value can be read back",
        );
        limit(
            "connections_max",
            c.connections_max,
            1,
            1_000_000,
            "use 1 up to 1,000,000",
        );
        if c.requirepass.as_deref() == Some("") {
            self.errors.push(ConfigError::InvalidUser {
                field: "resp.requirepass".into(),
                problem: "an empty password; remove the line to allow unauthenticated clients, or set a password".into(),
            });
        }
        let mut seen = BTreeSet::new();
        for (i, u) in c.users.iter().enumerate() {
            let field = format!("resp.users[{i}]");
            let problem = if u.name.is_empty() || u.name.chars().any(|ch| ch.is_whitespace()) {
                Some(format!(
                    "user name `{}` is not usable; use a non-empty name without spaces",
                    u.name
                ))
            } else if u.name == "default" && c.requirepass.is_some() {
                Some(
                    "user `default` is also given by resp.requirepass; keep one of them"
                        .to_string(),
                )
            } else if !seen.insert(u.name.clone()) {
                Some(format!("user `{}` is defined twice", u.name))
            } else if u.password.is_empty() {
                Some(format!("user `{}` has an empty password", u.name))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.errors
                    .push(ConfigError::InvalidUser { field, problem });
            }
        }
    }

    fn secret(&mut self, c: &ClusterConfig) -> Option<Vec<u8>> {
        match (&c.secret, &c.secret_file) {
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::SecretTwice);
                None
            }
            (None, _) => {
                self.errors.push(ConfigError::MissingSecret);
                None
            }
            (Some(s), None) if s.len() < SECRET_BYTES_MIN => {
                self.errors.push(ConfigError::WeakSecret { len: s.len() });
                None
            }
            (Some(s), None) => Some(s.as_bytes().to_vec()),
        }
    }

    fn regions(&mut self, raw: &[RegionConfig]) -> Vec<Region> {
        if raw.is_empty() {
            self.errors.push(ConfigError::NoRegions);
        }
        let mut out: Vec<Region> = Vec::new();
        let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let field = format!("regions[{i}]");
            let name = match RegionName::new(r.name.clone()) {
                Ok(n) => n,
                Err(source) => {
                    self.errors.push(ConfigError::InvalidRegionName {
                        field: format!("{field}.name"),
                        source,
                    });
                    continue;
                }
            };
            if out.iter().any(|o| o.name == name) {
                self.errors.push(ConfigError::DuplicateRegion {
                    field: format!("{field}.name"),
                    name: r.name.clone(),
                });
                continue;
            }
            let addrs = [
                ("peer", Some(r.peer)),
                ("resp", Some(r.resp)),
                ("admin", Some(r.admin)),
                ("s3", r.s3),
                ("dns", r.dns),
                ("proxy", r.proxy),
            ];
            for (kind, addr) in addrs {
                let Some(addr) = addr else { continue };
                let f = format!("{field}.{kind}");
                if addr.port() == 0 {
                    self.errors.push(ConfigError::PortZero { field: f });
                    continue;
                }
                if let Some((other, _)) = listeners.iter().find(|(_, a)| addresses_clash(*a, addr))
                {
                    self.errors.push(ConfigError::DuplicateAddress {
                        field: f.clone(),
                        other_field: other.clone(),
                        addr,
                    });
                }
                listeners.push((f, addr));
            }
            if let Some(loc) = r.location {
                if !(-90.0..=90.0).contains(&loc.lat) || !(-180.0..=180.0).contains(&loc.lon) {
                    self.errors.push(ConfigError::InvalidLocation {
                        field: format!("{field}.location"),
                    });
                }
            }
            let location = r
                .location
                .or_else(|| geo::catalogue_region(name.as_str()).map(|c| c.location));
            out.push(Region {
                name,
                peer: r.peer,
                advertise_peer: r.advertise_peer.unwrap_or(r.peer),
                resp: r.resp,
                admin: r.admin,
                s3: r.s3,
                dns: r.dns,
                proxy: r.proxy,
                location,
            });
        }
        out
    }

    fn region_ref(&mut self, field: &str, name: &str, known: &[RegionName]) -> Option<RegionName> {
        match known.iter().find(|k| k.as_str() == name) {
            Some(k) => Some(k.clone()),
            None => {
                self.errors.push(ConfigError::UnknownRegion {
                    field: field.to_string(),
                    name: name.to_string(),
                    known: known
                        .iter()
                        .map(RegionName::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
                None
            }
        }
    }

    fn links(
        &mut self,
        wan: &WanConfig,
        regions: &[Region],
    ) -> BTreeMap<(RegionName, RegionName), LinkConditions> {
        let names: Vec<RegionName> = regions.iter().map(|r| r.name.clone()).collect();
        let mut links = BTreeMap::new();
        let mut seen: BTreeMap<(RegionName, RegionName), String> = BTreeMap::new();
        for (i, l) in wan.links.iter().enumerate() {
            let field = format!("wan.links[{i}]");
            let a = self.region_ref(&format!("{field}.a"), &l.a, &names);
            let b = self.region_ref(&format!("{field}.b"), &l.b, &names);
            let figures = LinkFigures {
                rtt_ms: l.rtt_ms,
                jitter_ms: l.jitter_ms,
                bandwidth_mbit: l.bandwidth_mbit,
                loss_pct: l.loss_pct,
            };
            let conditions = match figures.to_conditions(&field) {
                Ok(c) => Some(c),
                Err(errors) => {
                    self.errors.extend(errors);
                    None
                }
            };
            let (Some(a), Some(b)) = (a, b) else { continue };
            if a == b {
                self.errors.push(ConfigError::SelfLink {
                    field,
                    name: a.to_string(),
                });
                continue;
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if let Some(other) = seen.get(&key) {
                self.errors.push(ConfigError::DuplicateLink {
                    field,
                    other_field: other.clone(),
                    a: key.0.to_string(),
                    b: key.1.to_string(),
                });
                continue;
            }
            seen.insert(key.clone(), field);
            if let Some(conditions) = conditions {
                links.insert(key, conditions);
            }
        }
        if wan.emulate {
            for (i, a) in regions.iter().enumerate() {
                for b in &regions[i + 1..] {
                    let key = if a.name < b.name {
                        (a.name.clone(), b.name.clone())
                    } else {
                        (b.name.clone(), a.name.clone())
                    };
                    if seen.contains_key(&key) {
                        continue;
                    }
                    match geo::default_rtt_ms(
                        a.name.as_str(),
                        a.location,
                        b.name.as_str(),
                        b.location,
                    ) {
                        Some(rtt) => {
                            links.insert(key, LinkConditions::from_rtt_ms(rtt));
                        }
                        None => self.errors.push(ConfigError::MissingLatency {
                            a: a.name.to_string(),
                            b: b.name.to_string(),
                        }),
                    }
                }
            }
        }
        links
    }

    fn tables(&mut self, raw: &[TableConfig], names: &[RegionName]) -> Vec<Table> {
        let mut out: Vec<Table> = Vec::new();
        let mut prefixes: Vec<(String, String)> = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let field = format!("tables[{i}]");
            if !valid_table_name(&t.name) {
                self.errors.push(ConfigError::InvalidTableName {
                    field: format!("{field}.name"),
                    name: t.name.clone(),
                });
            } else if out.iter().any(|o| o.name == t.name) {
                self.errors.push(ConfigError::DuplicateTable {
                    field: format!("{field}.name"),
                    name: t.name.clone(),
                });
            }
            for (j, p) in t.key_prefixes.iter().enumerate() {
                let pf = format!("{field}.key_prefixes[{j}]");
                if p.is_empty() {
                    self.errors.push(ConfigError::EmptyPrefix { field: pf });
                } else if let Some((other, _)) = prefixes.iter().find(|(_, q)| q == p) {
                    self.errors.push(ConfigError::DuplicatePrefix {
                        field: pf,
                        other_field: other.clone(),
                        prefix: p.clone(),
                    });
                } else {
                    prefixes.push((pf, p.clone()));
                }
            }
            let mode = match &t.mode {
                TableModeConfig::MultiMaster => Some(TableMode::MultiMaster),
                TableModeConfig::SingleMaster { home } => self
                    .region_ref(&format!("{field}.mode.single_master.home"), home, names)
                    .map(|home| TableMode::SingleMaster { home }),
                TableModeConfig::Pinned { regions, outside } => {
                    if regions.is_empty() {
                        self.errors.push(ConfigError::EmptyPinnedRegions {
                            field: format!("{field}.mode.pinned.regions"),
                        });
                    }
                    let resolved: Vec<Option<RegionName>> = regions
                        .iter()
                        .enumerate()
                        .map(|(j, r)| {
                            self.region_ref(&format!("{field}.mode.pinned.regions[{j}]"), r, names)
                        })
                        .collect();
                    resolved
                        .into_iter()
                        .collect::<Option<BTreeSet<_>>>()
                        .map(|regions| TableMode::Pinned {
                            regions,
                            outside: *outside,
                        })
                }
            };
            let write_ack = match (t.write_ack, t.ack_regions) {
                (WriteAckConfig::Local, None) => WriteAck::Local,
                (WriteAckConfig::Local, Some(_)) => {
                    self.errors.push(ConfigError::AckRegionsWithoutGlobal {
                        field: format!("{field}.ack_regions"),
                    });
                    WriteAck::Local
                }
                (WriteAckConfig::Global, None) => WriteAck::Global {
                    regions: names.len(),
                },
                (WriteAckConfig::Global, Some(n)) => {
                    if n == 0 || n > names.len() {
                        self.errors.push(ConfigError::LimitOutOfRange {
                            field: format!("{field}.ack_regions"),
                            value: n,
                            expected: "1 to the number of regions (the writer's own region counts)",
                        });
                    }
                    WriteAck::Global { regions: n }
                }
            };
            if let Some(mode) = mode {
                out.push(Table {
                    name: t.name.clone(),
                    key_prefixes: t.key_prefixes.clone(),
                    mode,
                    conflict: t.conflict,
                    write_ack,
                });
            }
        }
        out
    }
}

/// Two listen addresses clash when their ports match and either IP is the
/// wildcard or both IPs are the same.
fn addresses_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn valid_cluster_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_table_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
