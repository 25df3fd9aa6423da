//! A table mode as it is stored in the control table with its epoch
//! ([`ModeRecord`]) and its text form. The mode itself, [`ModeSpec`], is
//! core's vocabulary (tools name it too); it is re-exported here.
//!
//! Pure values: no view, no store.

pub use meridian_core::ModeSpec;

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
