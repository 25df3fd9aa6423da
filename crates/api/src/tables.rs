//! The JSON of `GET /tables` and `PUT /admin/tables/{table}/mode`.

use std::time::Duration;

use meridian_core::{ModeSpec, RegionName};
use serde::{Deserialize, Serialize};

/// How long a mode change may take end to end: the coordinator's wait for
/// the new home (10 s, the tables crate's `MOVE_ACK_TIMEOUT`; the node
/// asserts the two agree) plus a round trip on the slowest link, with room.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// One table, as `GET /tables` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// As `meridian table set-mode` takes it: `multi_master`,
    /// `single_master:HOME` or `pinned:refuse|forward:R1,R2`.
    pub mode: String,
    /// Epoch of the mode (0: as configured).
    pub epoch: u64,
    /// The region that may change it.
    pub coordinator: String,
}

/// Body of `PUT /admin/tables/{table}/mode`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    /// The new mode.
    pub mode: ModeSpec,
}

/// What a finished change reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// The table.
    pub table: String,
    /// Its mode now.
    pub mode: ModeSpec,
    /// The new epoch.
    pub epoch: u64,
    /// The region that made the change (the old coordinator).
    pub decided_by: RegionName,
    /// For a move: from fencing the old home until the new home had the
    /// record (its acknowledgement arrived back), in ms — the longest any
    /// write to the table had to wait or retry.
    pub unavailable_ms: Option<f64>,
}
