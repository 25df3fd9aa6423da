//! What can be wrong with a topology config: [`ConfigError`], one problem
//! naming the field and the fix, and [`ConfigErrors`], every problem of one
//! file at once, as the operator sees them.
//!
//! The texts are the operator's interface: tests match them, so they change
//! only with intent. Finding the problems is [`super::validate`]'s job.

use std::fmt;
use std::net::SocketAddr;

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
    /// An `[edge]` setting outside its accepted range.
    #[error("{field}: {value} is out of range; {expected}")]
    EdgeOutOfRange {
        /// Field path.
        field: String,
        /// The value given.
        value: u64,
        /// What is accepted.
        expected: &'static str,
    },
    /// A `[[routes]]` row or backend that cannot be used.
    #[error("{field}: {problem}")]
    InvalidRoute {
        /// Field path.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
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
