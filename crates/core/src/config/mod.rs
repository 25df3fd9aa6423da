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
//!
//! # Layout
//! - `file`: the serde structs an operator writes ([`TopologyConfig`] and its
//!   sections), their defaults, TOML in and out.
//! - `edge`: `[edge]` and `[[routes]]`, the edge proxy's settings and
//!   their defaults.
//! - `link`: a link's conditions in operator units ([`LinkFigures`]) and in
//!   emulator units ([`LinkConditions`]), and the one range check between.
//! - `validate`: [`TopologyConfig::validate`], every cross-field rule.
//! - `error`: [`ConfigError`] and [`ConfigErrors`], what the operator reads.
//! - `topology`: the validated [`Topology`] and its lookups.
//!
//! Every item is re-exported here: `meridian_core::config::X` is its path.

mod edge;
mod error;
mod file;
mod link;
mod topology;
mod validate;

pub use edge::{
    BackendConfig, BalancePolicy, EdgeConfig, HealthCheckConfig, OutlierConfig, RegionProbeConfig,
    RouteConfig, BACKENDS_MAX, ROUTES_MAX,
};
pub use error::{ConfigError, ConfigErrors};
pub use file::{
    ClusterConfig, ConflictPolicy, LinkConfig, PinnedOutside, RegionConfig, RespConfig, RespUser,
    TableConfig, TableModeConfig, TopologyConfig, WanConfig, WriteAckConfig,
    RESP_ARRAY_LEN_DEFAULT, RESP_BULK_BYTES_DEFAULT, RESP_CONNECTIONS_DEFAULT,
    RESP_INLINE_BYTES_DEFAULT, RESP_REPLY_BYTES_DEFAULT,
};
pub use link::{LinkConditions, LinkFigures, ONE_WAY_DELAY_MS_MAX};
pub use topology::{Region, Table, TableMode, Topology, WriteAck, CONTROL_TABLE, DEFAULT_TABLE};
pub use validate::SECRET_BYTES_MIN;

#[cfg(test)]
mod tests;
