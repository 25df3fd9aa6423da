//! A two-region topology with a single-master and a pinned table, and an
//! in-memory store in its first region, for the unit tests.

use std::sync::Arc;
use std::time::Duration;

use meridian_core::config::TopologyConfig;
use meridian_store::db::{Db, DbConfig};
use meridian_store::{Durability, MemStore};

use crate::Modes;

const TOPOLOGY: &str = r#"
[cluster]
name = "t"
secret = "0123456789abcdef0123"

[[regions]]
name = "us-east"
peer = "127.0.0.1:7001"
resp = "127.0.0.1:6001"
admin = "127.0.0.1:8001"

[[regions]]
name = "eu-west"
peer = "127.0.0.1:7002"
resp = "127.0.0.1:6002"
admin = "127.0.0.1:8002"

[[tables]]
name = "ledger"
key_prefixes = ["ledger:"]
mode = { single_master = { home = "us-east" } }

[[tables]]
name = "vault"
key_prefixes = ["vault:"]
mode = { pinned = { regions = ["us-east"] } }
"#;

/// Modes of [`TOPOLOGY`] (a move waits 50 ms for its new home) and a store
/// in `us-east`.
pub(crate) fn setup() -> (Modes, Db) {
    let topology = TopologyConfig::from_toml(TOPOLOGY)
        .unwrap()
        .validate()
        .unwrap();
    let db = Db::start(
        Arc::new(MemStore::new()),
        DbConfig {
            region: "us-east".parse().unwrap(),
            durability: Durability::None,
            max_offset_ms: 500,
        },
        meridian_core::SystemClock,
    )
    .unwrap();
    (
        Modes::new(Arc::new(topology)).with_move_ack_timeout(Duration::from_millis(50)),
        db,
    )
}
