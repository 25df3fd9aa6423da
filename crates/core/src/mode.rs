//! [`ModeSpec`]: a table mode as it is changed at run time, named in
//! `meridian table set-mode`, stored in the control table and sent between
//! regions and over HTTP. The configured form is [`TableMode`]; the two
//! convert both ways.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::{PinnedOutside, TableMode};
use crate::RegionName;

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
                home: home
                    .parse()
                    .map_err(|e| format!("bad region `{home}`: {e}"))?,
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
                    .map(|r| {
                        r.parse::<RegionName>()
                            .map_err(|e| format!("bad region `{r}`: {e}"))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?;
                Ok(ModeSpec::Pinned { regions, outside })
            }
            _ => Err(bad()),
        }
    }
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
