//! The topology file as an operator writes it: the documented serde
//! structs of `[cluster]`, `[[regions]]`, `[wan]`, `[[tables]]` and
//! `[resp]` (and `[edge]`, `[[routes]]` from `edge.rs`), their defaults, and TOML in and out.
//!
//! Entry type: [`TopologyConfig`] ([`TopologyConfig::from_toml`],
//! [`TopologyConfig::to_toml`]). Unknown fields are rejected, so a typo never
//! silently falls back to a default. Cross-field rules are not checked here:
//! that is [`super::validate`], which turns this into a [`super::Topology`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::edge::{BackendConfig, EdgeConfig, RouteConfig};
use super::error::{ConfigError, ConfigErrors};
use crate::geo::Location;

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
    /// The regional edge proxy: pools, checks, retries, limits.
    #[serde(default)]
    pub edge: EdgeConfig,
    /// What the edge does per path prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

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
    /// Edge proxy listener (HTTP): the region's front door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<SocketAddr>,
    /// App instances behind the edge, configured statically (more can be
    /// registered at run time through the admin API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
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
}
