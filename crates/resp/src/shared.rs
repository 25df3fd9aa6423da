//! What every connection of a node's endpoint shares ([`Shared`]): the
//! storage engine, the table modes, limits, counters, SCAN cursors and
//! the node's handles (cluster facts for `INFO`, the reach into other
//! regions).
//!
//! It owns no loop and no command: the listener and connections
//! ([`crate::server`]), the command path ([`crate::exec`]), write plans
//! ([`crate::plan`]) and the commands ([`crate::cmd`]) all sit above it and
//! use it. Counters live in [`crate::stats`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::config::{RespConfig, WriteAck};
use meridian_core::{RegionName, Topology, VersionVector};
use meridian_store::db::Db;

use crate::modes::Modes;
use crate::proto::Limits;
use crate::remote::Remote;
use crate::stats::RespStats;

/// SCAN cursors a node keeps; the oldest is forgotten first.
pub const CURSORS_MAX: usize = 10_000;

/// How long a write acknowledged globally waits for the regions it needs,
/// unless the connection set another timeout (`MERIDIAN.ACK`).
pub const GLOBAL_ACK_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// What the node tells the endpoint about the cluster, for `INFO`.
pub trait ClusterInfo: Send + Sync + 'static {
    /// `# Replication` lines after `role`: regions, links, lag.
    fn replication(&self) -> Vec<(String, String)>;
    /// `# Memory` lines.
    fn memory(&self) -> Vec<(String, String)>;
}

/// SCAN positions by cursor id.
#[derive(Default)]
pub struct Cursors {
    next: u64,
    order: VecDeque<u64>,
    positions: HashMap<u64, (usize, Vec<u8>)>,
}

impl Cursors {
    /// Stores a position and returns its cursor (never 0).
    pub fn put(&mut self, pos: (usize, Vec<u8>)) -> u64 {
        // Ids are not guessable in order from other connections' ids, and
        // never 0 (the start cursor).
        self.next = self.next.wrapping_add(0x9E37_79B9_7F4A_7C15) | 1;
        let id = self.next & ((1 << 53) - 1);
        if self.order.len() >= CURSORS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.positions.remove(&old);
            }
        }
        self.order.push_back(id);
        self.positions.insert(id, pos);
        id
    }

    /// The position of a cursor, if it is still known. It stays known: a
    /// client may retry the same SCAN call.
    pub fn get(&self, id: u64) -> Option<(usize, Vec<u8>)> {
        self.positions.get(&id).cloned()
    }
}

/// What every connection of the node shares.
pub struct Shared {
    /// The storage engine.
    pub db: Db,
    /// Table modes now: the topology with run-time changes (see
    /// [`crate::modes`]).
    pub modes: Arc<Modes>,
    /// This region.
    pub region: RegionName,
    /// Auth and limits.
    pub resp: RespConfig,
    /// Framing limits, from `resp`.
    pub limits: SharedLimits,
    /// `fsync` or `none`, for `INFO persistence`.
    pub durability: String,
    /// Cluster facts for `INFO`.
    pub cluster: Arc<dyn ClusterInfo>,
    /// SCAN cursors.
    pub cursors: Mutex<Cursors>,
    /// Counters.
    pub stats: Arc<RespStats>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Other regions, for forwarded writes and strong reads (`None`: a
    /// single-master table's writes outside its home are refused).
    pub remote: Option<Arc<dyn Remote>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) started: Instant,
}

/// The limits connections apply.
#[derive(Clone, Copy, Debug)]
pub struct SharedLimits {
    /// Largest bulk string.
    pub bulk_bytes_max: usize,
    /// Largest reply.
    pub reply_bytes_max: usize,
    /// Framing.
    pub proto: Limits,
}

impl Shared {
    /// State for a node's endpoint, with the table modes it applies (read
    /// from the store before anything is served).
    pub fn new(
        db: Db,
        modes: Arc<Modes>,
        region: RegionName,
        durability: String,
        cluster: Arc<dyn ClusterInfo>,
        addr: SocketAddr,
    ) -> Self {
        let resp = modes.topology().resp.clone();
        let limits = SharedLimits {
            bulk_bytes_max: resp.bulk_bytes_max,
            reply_bytes_max: resp.reply_bytes_max,
            proto: Limits {
                bulk_bytes_max: resp.bulk_bytes_max,
                array_len_max: resp.array_len_max,
                inline_bytes_max: resp.inline_bytes_max,
            },
        };
        Shared {
            db,
            modes,
            region,
            resp,
            limits,
            durability,
            cluster,
            cursors: Mutex::new(Cursors::default()),
            stats: Arc::default(),
            addr,
            remote: None,
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        }
    }

    /// The topology as this region applies it now (tables, modes,
    /// policies, regions).
    pub fn topology(&self) -> Arc<Topology> {
        self.modes.topology()
    }

    /// The same endpoint, forwarding through `remote`.
    pub fn with_remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// How writes to these tables are acknowledged by default: the
    /// strictest of their tables' settings.
    pub fn table_ack<'a>(&self, tables: impl Iterator<Item = &'a str>) -> WriteAck {
        self.modes.with_topology(|topology| {
            let mut ack = WriteAck::Local;
            for name in tables {
                if let Some(t) = topology.tables.iter().find(|t| t.name == name) {
                    ack = match (ack, t.write_ack) {
                        (WriteAck::Global { regions: a }, WriteAck::Global { regions: b }) => {
                            WriteAck::Global { regions: a.max(b) }
                        }
                        (WriteAck::Local, other) => other,
                        (global, WriteAck::Local) => global,
                    };
                }
            }
            ack
        })
    }

    /// Waits until `regions` regions — this one and peers — have applied
    /// `write`, for at most `timeout`; returns how many have.
    pub async fn wait_applied(
        &self,
        write: &VersionVector,
        regions: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let here = self.db.covers(write) || self.db.wait_for(write, timeout).await;
        if !here {
            return self.db.peers_covering(write);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let peers = regions.saturating_sub(1);
        let have = if peers == 0 {
            self.db.peers_covering(write)
        } else {
            self.db
                .wait_for_peers(write, peers, Some(left.max(Duration::from_millis(1))))
                .await
        };
        1 + have
    }
}
