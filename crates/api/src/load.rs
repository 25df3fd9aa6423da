//! The JSON of `POST /admin/bench/load`: what a node's paced write
//! generator is asked to do, and what it achieved. The generator itself is
//! the node's (`meridian_node::load`); the benchmarks drive it.

use serde::{Deserialize, Serialize};

/// Longest run accepted, so a typo cannot occupy a node for hours.
pub const DURATION_MS_MAX: u64 = 15 * 60 * 1000;

/// Highest rate accepted.
pub const RATE_PER_S_MAX: u64 = 1_000_000;

/// What to generate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Writes per second.
    pub rate_per_s: u64,
    /// How long.
    pub duration_ms: u64,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Distinct keys written, cycled (`{prefix}{i}`).
    pub keys: u64,
    /// Key prefix; make it unique per region to avoid conflicts.
    pub key_prefix: String,
    /// Table.
    #[serde(default = "default_table")]
    pub table: String,
}

fn default_table() -> String {
    crate::data::DEFAULT_TABLE.to_string()
}

/// What happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Writes acknowledged.
    pub written: u64,
    /// Writes refused (storage errors).
    pub failed: u64,
    /// Ticks at which the generator could not issue what was due because
    /// its limit of writes in flight was reached.
    pub behind: u64,
    /// Achieved writes per second.
    pub achieved_per_s: f64,
    /// Local write latency, ms.
    pub local_p50_ms: f64,
    /// Local write latency, ms.
    pub local_p99_ms: f64,
    /// Local write latency, ms.
    pub local_max_ms: f64,
}

impl LoadSpec {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_per_s == 0 || self.rate_per_s > RATE_PER_S_MAX {
            return Err(format!("rate_per_s must be 1..={RATE_PER_S_MAX}"));
        }
        if self.duration_ms == 0 || self.duration_ms > DURATION_MS_MAX {
            return Err(format!("duration_ms must be 1..={DURATION_MS_MAX}"));
        }
        if self.value_bytes > crate::data::VALUE_BYTES_MAX {
            return Err(format!(
                "value_bytes must be at most {}",
                crate::data::VALUE_BYTES_MAX
            ));
        }
        if self.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        Ok(())
    }
}
