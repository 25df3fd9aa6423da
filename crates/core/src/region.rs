//! Region names: the identity every other layer keys on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest region name accepted. Names travel in every replicated record and on
/// every metric label, so they are kept short.
pub const REGION_NAME_BYTES_MAX: usize = 32;

/// A validated region name: 1 to [`REGION_NAME_BYTES_MAX`] bytes of lowercase
/// ASCII letters, digits and `-`, starting with a letter (`us-east`, `eu-west`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionName(String);

/// Why a string is not a valid region name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid region name: {reason}")]
pub struct InvalidRegionName {
    /// The rejected input.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

impl RegionName {
    /// Checks `name` against the naming rules.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidRegionName> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > REGION_NAME_BYTES_MAX {
            Some("it is longer than 32 bytes")
        } else if !name.as_bytes()[0].is_ascii_lowercase() {
            Some("it must start with a lowercase letter")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Some("only lowercase letters, digits and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidRegionName { name, reason }),
            None => Ok(RegionName(name)),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RegionName {
    type Error = InvalidRegionName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RegionName::new(value)
    }
}

impl From<RegionName> for String {
    fn from(value: RegionName) -> Self {
        value.0
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment, so names line up in tables.
        f.pad(&self.0)
    }
}

impl std::str::FromStr for RegionName {
    type Err = InvalidRegionName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cloud_style_names() {
        for name in ["us-east", "eu-west", "ap-south-1", "r1"] {
            assert_eq!(RegionName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_bad_names_with_reason() {
        for (name, reason) in [
            ("", "it is empty"),
            ("US-East", "it must start with a lowercase letter"),
            ("1east", "it must start with a lowercase letter"),
            (
                "us_east",
                "only lowercase letters, digits and '-' are allowed",
            ),
            (
                "a23456789012345678901234567890123",
                "it is longer than 32 bytes",
            ),
        ] {
            assert_eq!(RegionName::new(name).unwrap_err().reason, reason, "{name}");
        }
    }
}
