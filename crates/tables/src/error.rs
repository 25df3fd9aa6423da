//! Why a mode change was not made ([`ChangeError`]) and why a write was
//! refused by its table's mode ([`WriteRefused`]).
//!
//! Each variant is something a caller acts on; its `Display` is the exact
//! text clients have always been given (the HTTP edge and the Redis endpoint
//! send it on unchanged). A [`ChangeError`] crosses regions as that text
//! (the coordinator answers the region that took the change), so it
//! serializes as its text and [`ChangeError::from_text`] rebuilds the
//! variant — the one place a text is read back into a kind.

use meridian_core::RegionName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The code that starts every retryable text, as Redis's cluster errors do.
const TRYAGAIN: &str = "TRYAGAIN ";

/// What [`ChangeError::UnknownTable`] says around the table's name.
const UNKNOWN_TABLE: (&str, &str) = (
    "unknown table `",
    "`; only configured [[tables]] have a mode to change",
);

/// What starts the texts of a change that failed in the store.
const NOT_STORED: &str = "mode change ";

/// A mode change that was not made (or not confirmed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Try again (later, or elsewhere): this region does not coordinate
    /// the table, or a moved table's new home has not confirmed it yet.
    /// Holds the text after `TRYAGAIN `.
    #[error("TRYAGAIN {0}")]
    Retry(String),
    /// No such configured table.
    #[error("unknown table `{0}`; only configured [[tables]] have a mode to change")]
    UnknownTable(String),
    /// The mode cannot be set (an unknown region, a pinned table without
    /// regions). Holds the whole text.
    #[error("{0}")]
    Invalid(String),
    /// The change was not stored, or stored and not read back; the
    /// storage engine failed. Holds the text after `mode change `.
    #[error("mode change {0}")]
    NotStored(String),
}

impl ChangeError {
    /// A retryable refusal: `what` is the text after `TRYAGAIN `.
    pub fn retry(what: impl Into<String>) -> Self {
        ChangeError::Retry(what.into())
    }

    /// The region asked does not coordinate `table`.
    pub fn not_coordinator(here: &RegionName, table: &str, coordinator: &RegionName) -> Self {
        Self::retry(format!(
            "region {here} does not coordinate table `{table}`; {coordinator} does"
        ))
    }

    /// The move of `table` to `home` is committed here, unconfirmed there.
    pub fn not_confirmed(table: &str, home: &RegionName, epoch: u64, timeout_ms: u128) -> Self {
        Self::retry(format!(
            "table `{table}` moved to {home} (epoch {epoch}, committed here), but {home} has not confirmed applying it within {timeout_ms} ms; it takes writes once it does"
        ))
    }

    /// The storage engine did not store the record.
    pub fn not_stored(why: impl std::fmt::Display) -> Self {
        ChangeError::NotStored(format!("not stored: {why}"))
    }

    /// The record was stored and re-reading the control table failed.
    pub fn not_reread(why: impl std::fmt::Display) -> Self {
        ChangeError::NotStored(format!("stored, re-reading it failed: {why}"))
    }

    /// Rebuilds the error from its text (an answer from another region):
    /// the inverse of `Display`.
    pub fn from_text(text: &str) -> Self {
        if let Some(rest) = text.strip_prefix(TRYAGAIN) {
            return ChangeError::Retry(rest.to_string());
        }
        let (before, after) = UNKNOWN_TABLE;
        if let Some(table) = text
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
        {
            return ChangeError::UnknownTable(table.to_string());
        }
        if let Some(rest) = text.strip_prefix(NOT_STORED) {
            return ChangeError::NotStored(rest.to_string());
        }
        ChangeError::Invalid(text.to_string())
    }
}

impl Serialize for ChangeError {
    /// As its text: the wire form regions have always exchanged.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChangeError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(ChangeError::from_text(&text))
    }
}

/// Why a write planned under a table's mode may not be decided now; every
/// case is retryable (the retry is routed by the mode now in force).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    /// The table is fenced here for a change this region is making.
    #[error("TRYAGAIN table `{table}` is changing mode in this region; retry in a moment")]
    Fenced {
        /// The table.
        table: String,
    },
    /// The table's epoch moved since the write was stamped.
    #[error("TRYAGAIN table `{table}` changed mode (epoch {stamped} → {now}; writes now go to {writer}); retry")]
    EpochMoved {
        /// The table.
        table: String,
        /// The epoch the write was planned under.
        stamped: u64,
        /// The epoch in force.
        now: u64,
        /// Where writes go now: a home, or `every region`.
        writer: String,
    },
    /// The table is single-master with another home now.
    #[error("TRYAGAIN table `{table}` is single_master with home {home} now; retry")]
    NotHome {
        /// The table.
        table: String,
        /// Its home.
        home: RegionName,
    },
    /// The table is pinned to regions that no longer include this one.
    #[error("TRYAGAIN table `{table}` is no longer pinned to {here}; retry")]
    NotPinnedHere {
        /// The table.
        table: String,
        /// This region.
        here: RegionName,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_errors_read_back_from_their_text() {
        let us: RegionName = "us-east".parse().unwrap();
        let eu: RegionName = "eu-west".parse().unwrap();
        for e in [
            ChangeError::not_coordinator(&us, "ledger", &eu),
            ChangeError::not_confirmed("ledger", &eu, 3, 50),
            ChangeError::UnknownTable("no`pe".into()),
            ChangeError::Invalid("unknown region `x`".into()),
            ChangeError::Invalid("a pinned table needs at least one allowed region".into()),
            ChangeError::not_stored("disk full"),
            ChangeError::not_reread("disk gone"),
        ] {
            assert_eq!(ChangeError::from_text(&e.to_string()), e, "{e}");
        }
        assert_eq!(
            ChangeError::not_coordinator(&us, "ledger", &eu).to_string(),
            "TRYAGAIN region us-east does not coordinate table `ledger`; eu-west does"
        );
        assert_eq!(
            ChangeError::not_stored("nothing written").to_string(),
            "mode change not stored: nothing written"
        );
    }
}
