//! A table mode as it is set at run time ([`ModeSpec`]) and as it is stored
//! in the control table with its epoch ([`ModeRecord`]): their text forms
//! and the conversions to and from the config's `TableMode`.
//!
//! Pure values: no view, no store.

use std::collections::BTreeSet;

use meridian_core::config::{PinnedOutside, TableMode};
use meridian_core::RegionName;
use serde::{Deserialize, Serialize};

/// A table mode that can be set at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSpec {
    /// Writes accepted in every region.
    MultiMaster,
    /// Writes owned by `home`.
    SingleMaster {
        /// The home region.
        home: RegionName,
    },
    /// Data residency: entries only in `regions`.
    Pinned {
        /// The allowed regions, at least one.
        regions: BTreeSet<RegionName>,
        /// What other regions do with requests for the table's keys.
        #[serde(default)]
        outside: PinnedOutside,
    },
}

/// One table's mode change, as stored in [`crate::CONTROL_TABLE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeRecord {
    /// The mode.
    pub mode: ModeSpec,
    /// Its epoch: 1 for the first change of the configured mode.
    pub epoch: u64,
}

impl ModeRecord {
    /// `multi_master@7`, `single_master:eu-west@8` or
    /// `pinned:forward:eu-west,us-east@9`.
    pub fn encode(&self) -> String {
        format!("{}@{}", self.mode, self.epoch)
    }

    /// The inverse of [`ModeRecord::encode`].
    pub fn decode(text: &str) -> Option<ModeRecord> {
        let (mode, epoch) = text.rsplit_once('@')?;
        Some(ModeRecord {
            mode: mode.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

impl std::fmt::Display for ModeSpec {
    /// `multi_master`, `single_master:HOME` or `pinned:refuse|forward:R1,R2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModeSpec::MultiMaster => write!(f, "multi_master"),
            ModeSpec::SingleMaster { home } => write!(f, "single_master:{home}"),
            ModeSpec::Pinned { regions, outside } => {
                let regions: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
                let outside = match outside {
                    PinnedOutside::Refuse => "refuse",
                    PinnedOutside::Forward => "forward",
                };
                write!(f, "pinned:{outside}:{}", regions.join(","))
            }
        }
    }
}

impl std::str::FromStr for ModeSpec {
    type Err = String;

    /// The inverse of `Display`; `pinned:R1,R2` means `outside = refuse`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown mode `{text}`; use multi_master, single_master:REGION or pinned[:refuse|:forward]:REGION[,REGION...]"
            )
        };
        match text.split_once(':') {
            None if text == "multi_master" => Ok(ModeSpec::MultiMaster),
            Some(("single_master", home)) => Ok(ModeSpec::SingleMaster {
                home: parse_region(home)?,
            }),
            Some(("pinned", rest)) => {
                let (outside, list) = match rest.split_once(':') {
                    Some(("refuse", list)) => (PinnedOutside::Refuse, list),
                    Some(("forward", list)) => (PinnedOutside::Forward, list),
                    Some(_) => return Err(bad()),
                    None => (PinnedOutside::Refuse, rest),
                };
                let regions = list
                    .split(',')
                    .map(parse_region)
                    .collect::<Result<BTreeSet<_>, _>>()?;
                Ok(ModeSpec::Pinned { regions, outside })
            }
            _ => Err(bad()),
        }
    }
}

/// One region name of a mode's text.
fn parse_region(text: &str) -> Result<RegionName, String> {
    text.parse()
        .map_err(|e| format!("bad region `{text}`: {e}"))
}

impl From<&TableMode> for ModeSpec {
    fn from(mode: &TableMode) -> Self {
        match mode {
            TableMode::MultiMaster => ModeSpec::MultiMaster,
            TableMode::SingleMaster { home } => ModeSpec::SingleMaster { home: home.clone() },
            TableMode::Pinned { regions, outside } => ModeSpec::Pinned {
                regions: regions.clone(),
                outside: *outside,
            },
        }
    }
}

impl From<&ModeSpec> for TableMode {
    fn from(mode: &ModeSpec) -> Self {
        match mode {
            ModeSpec::MultiMaster => TableMode::MultiMaster,
            ModeSpec::SingleMaster { home } => TableMode::SingleMaster { home: home.clone() },
            ModeSpec::Pinned { regions, outside } => TableMode::Pinned {
                regions: regions.clone(),
                outside: *outside,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        for r in [
            ModeRecord {
                mode: ModeSpec::MultiMaster,
                epoch: 7,
            },
            ModeRecord {
                mode: ModeSpec::SingleMaster {
                    home: "eu-west".parse().unwrap(),
                },
                epoch: 8,
            },
        ] {
            assert_eq!(ModeRecord::decode(&r.encode()), Some(r));
        }
        let pinned = ModeRecord::decode("pinned:forward:us-east,eu-west@9").unwrap();
        assert_eq!(pinned.encode(), "pinned:forward:eu-west,us-east@9");
        assert_eq!(
            ModeRecord::decode("pinned:eu-west@3")
                .unwrap()
                .mode
                .to_string(),
            "pinned:refuse:eu-west"
        );
        for bad in [
            "",
            "multi_master",
            "single_master@1",
            "pinned@2",
            "multi_master@x",
        ] {
            assert_eq!(ModeRecord::decode(bad), None, "{bad}");
        }
    }
}
