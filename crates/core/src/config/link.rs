//! One inter-region link's conditions, in operator units
//! ([`LinkFigures`]: ms, Mbit/s, percent, as `[[wan.links]]` rows and the
//! admin API's fault requests give them) and in the units the emulator
//! applies ([`LinkConditions`]: durations, bytes per second, a probability).
//!
//! [`LinkFigures::to_conditions`] is the one place their ranges are
//! checked. Which pairs have a link, and defaults for those without a row,
//! are [`super::validate`]'s business.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// Largest emulated one-way delay, in ms. Nothing on Earth is further than
/// ~340 ms RTT by fibre; 10 s leaves room for satellite and fault scenarios.
pub const ONE_WAY_DELAY_MS_MAX: f64 = 10_000.0;

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
