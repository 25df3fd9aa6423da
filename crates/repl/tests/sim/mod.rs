//! A deterministic simulation of the replication protocol.
//!
//! Three nodes, each a real [`Engine`] over a [`MemStore`] (its "disk",
//! which survives crashes) with a manual clock, and a real [`Replicator`].
//! The harness plays the driver's part synchronously and replaces the
//! network with a seeded one that delays (so reorders), drops and
//! duplicates messages, and cuts links. Clients write at random; nodes crash
//! (sometimes between a commit and its acknowledgement) and restart. At the
//! end everything heals and the simulation runs until quiet.
//!
//! Everything random comes from one seed: a failing seed replays exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_core::record::KeyState;
use meridian_core::{LogEntry, Op, RegionName, VersionVector};
use meridian_repl::machine::{Command, Event, ReplConfig, Replicator};
use meridian_repl::runtime::ReplMessage;
use meridian_store::db::{DbConfig, Engine, Request, Response};
use meridian_store::{Backend, Durability, MemStore};

pub mod invariants;

/// Fault rates and sizes of one run.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Percent of messages dropped while faults are on.
    pub drop_pct: u8,
    /// Percent of messages delivered twice.
    pub dup_pct: u8,
    /// Per-step chance (per mille) of cutting or healing a random link.
    pub partition_permille: u16,
    /// Per-step chance (per mille) of crashing a random node.
    pub crash_permille: u16,
}

/// Simulated time between steps.
pub const STEP_MS: u64 = 5;
/// Steps with faults on.
pub const FAULTY_STEPS: u64 = 600;
/// Longest the healed system may take to go quiet (simulated).
pub const QUIET_LIMIT_MS: u64 = 120_000;
/// Keys written; few, so writes collide.
pub const KEYS: u8 = 6;

type Clock = Box<dyn Fn() -> u64 + Send>;

pub struct Node {
    pub store: Arc<MemStore>,
    pub engine: Option<Engine<Clock>>,
    pub machine: Option<Replicator>,
    skew_ms: i64,
}

struct InFlight {
    from: usize,
    to: usize,
    msg: Vec<u8>,
}

/// One acknowledged client write.
#[derive(Clone, Debug)]
pub struct Acked {
    pub origin: usize,
    pub seq: u64,
}

pub struct Sim {
    pub seed: u64,
    pub rng: fastrand::Rng,
    pub now_ms: u64,
    clock: Arc<AtomicU64>,
    pub nodes: Vec<Node>,
    net: BinaryHeap<Reverse<(u64, u64, usize)>>,
    in_flight: BTreeMap<usize, InFlight>,
    next_msg: usize,
    pub cut: BTreeSet<(usize, usize)>,
    link_up: BTreeMap<(usize, usize), bool>,
    pub faults: Faults,
    pub faults_on: bool,
    pub acked: Vec<Acked>,
    /// Every entry any origin committed, in commit order per origin.
    pub committed: BTreeMap<usize, Vec<LogEntry>>,
    /// What happened, to show the run exercised the faults.
    pub counts: Counts,
}

/// Fault and protocol events of a run (summed over seeds by the tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub writes: u64,
    pub crashes: u64,
    pub crashes_before_ack: u64,
    pub partitions: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub truncations: u64,
    pub relayed: u64,
    pub retransmitted: u64,
    pub gaps: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.writes += o.writes;
        self.crashes += o.crashes;
        self.crashes_before_ack += o.crashes_before_ack;
        self.partitions += o.partitions;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.truncations += o.truncations;
        self.relayed += o.relayed;
        self.retransmitted += o.retransmitted;
        self.gaps += o.gaps;
    }
}

pub fn region(i: usize) -> RegionName {
    RegionName::new(["a", "b", "c"][i]).unwrap()
}

fn repl_config(i: usize) -> ReplConfig {
    let mut c = ReplConfig::new(region(i), (0..3).map(region).collect());
    // Small numbers so windows, relays, retransmission and GC all happen.
    c.batch_entries_max = 4;
    c.window_entries_max = 16;
    c.relay_after = Duration::from_millis(300);
    c.retransmit_after = Duration::from_millis(500);
    c.gc_min_entries = 4;
    c
}

impl Sim {
    pub fn new(seed: u64, faults: Faults) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let nodes = (0..3)
            .map(|_| Node {
                store: Arc::new(MemStore::new()),
                engine: None,
                machine: None,
                skew_ms: rng.i64(-200..200),
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng,
            now_ms: 0,
            clock,
            nodes,
            net: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            next_msg: 0,
            cut: BTreeSet::new(),
            link_up: BTreeMap::new(),
            faults,
            faults_on: true,
            acked: Vec::new(),
            committed: BTreeMap::new(),
            counts: Counts::default(),
        };
        for i in 0..3 {
            sim.start(i);
        }
        sim.refresh_links();
        sim
    }

    fn start(&mut self, i: usize) {
        let base = self.clock.clone();
        let skew = self.nodes[i].skew_ms;
        let physical: Clock = Box::new(move || (base.load(Ordering::Relaxed) as i64 + skew) as u64);
        let config = DbConfig {
            region: region(i),
            durability: Durability::Fsync,
            max_offset_ms: 500,
        };
        let store: Arc<dyn Backend> = self.nodes[i].store.clone();
        let engine = Engine::open(store, config, physical).expect("engine opens");
        let meta = self.nodes[i].store.meta().unwrap();
        let truncated = meta
            .log_start
            .iter()
            .map(|(o, s)| (o.clone(), s - 1))
            .collect();
        let machine = Replicator::new(
            repl_config(i),
            engine.vv().clone(),
            &meta.peer_vvs,
            truncated,
        );
        self.nodes[i].engine = Some(engine);
        self.nodes[i].machine = Some(machine);
        let vv = self.nodes[i].engine.as_ref().unwrap().vv().clone();
        self.event(i, Event::LocalVv(vv));
    }

    pub fn crash(&mut self, i: usize) {
        if let Some(m) = &self.nodes[i].machine {
            for p in (0..3).filter(|p| *p != i) {
                let c = m.counters(&region(p)).cloned().unwrap_or_default();
                self.counts.relayed += c.relayed;
                self.counts.retransmitted += c.retransmitted;
            }
        }
        self.counts.crashes += 1;
        self.nodes[i].engine = None;
        self.nodes[i].machine = None;
        self.refresh_links();
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some()
    }

    pub fn vv(&self, i: usize) -> Option<VersionVector> {
        self.nodes[i].engine.as_ref().map(|e| e.vv().clone())
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.is_up(a) && self.is_up(b) && !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn refresh_links(&mut self) {
        for a in 0..3 {
            for b in 0..3 {
                if a == b {
                    continue;
                }
                let now = self.connected(a, b);
                let was = self.link_up.insert((a, b), now).unwrap_or(false);
                if now != was && self.is_up(a) {
                    let e = if now {
                        Event::PeerUp(region(b))
                    } else {
                        Event::PeerDown(region(b))
                    };
                    self.event(a, e);
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: &ReplMessage) {
        let bytes = postcard::to_stdvec(msg).unwrap();
        let copies = if self.faults_on && self.rng.u8(..100) < self.faults.dup_pct {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.faults_on && self.rng.u8(..100) < self.faults.drop_pct {
                self.counts.dropped += 1;
                continue;
            }
            let delay = self.rng.u64(1..60);
            let id = self.next_msg;
            self.next_msg += 1;
            self.in_flight.insert(
                id,
                InFlight {
                    from,
                    to,
                    msg: bytes.clone(),
                },
            );
            self.net.push(Reverse((self.now_ms + delay, id as u64, id)));
        }
    }

    /// Feeds an event to node `i`'s machine and executes its commands.
    pub fn event(&mut self, i: usize, event: Event) {
        let Some(machine) = self.nodes[i].machine.as_mut() else {
            return;
        };
        let commands = machine.handle(self.now_ms, event);
        machine.validate();
        for c in commands {
            self.execute(i, c);
        }
    }

    fn execute(&mut self, i: usize, command: Command) {
        match command {
            Command::Ack { peer, vv } => {
                let to = peer_index(&peer);
                // The machine's vector is the engine's latest, so the engine's
                // current floor is the clock that goes with it.
                let hlc = self.nodes[i]
                    .engine
                    .as_ref()
                    .expect("acks come from live nodes")
                    .hlc_floor();
                self.send(i, to, &ReplMessage::Ack { vv, hlc });
            }
            Command::Ship {
                peer,
                origin,
                from_seq,
                max_entries,
            } => {
                let to = peer_index(&peer);
                let entries = self.nodes[i]
                    .store
                    .read_log(&origin, from_seq, max_entries as usize, 1 << 20)
                    .unwrap();
                let event = match entries.last().map(|e| e.seq) {
                    Some(through_seq) if self.link_up[&(i, to)] => {
                        self.send(i, to, &ReplMessage::Entries(entries));
                        Event::Sent {
                            peer,
                            origin,
                            through_seq,
                        }
                    }
                    _ => Event::ShipFailed { peer, origin },
                };
                self.event(i, event);
            }
            Command::Truncate {
                origin,
                through_seq,
            } => {
                self.counts.truncations += 1;
                self.nodes[i]
                    .store
                    .truncate_log(&origin, through_seq)
                    .unwrap();
            }
        }
    }

    fn process(&mut self, i: usize, req: Request) -> Response {
        let engine = self.nodes[i].engine.as_mut().expect("node is up");
        let resp = engine.process(vec![req]).pop().unwrap();
        let vv = engine.vv().clone();
        self.event(i, Event::LocalVv(vv));
        resp
    }

    fn deliver(&mut self, id: usize) {
        let m = self.in_flight.remove(&id).unwrap();
        // Partitions and crashes also lose what was on the wire.
        if !self.connected(m.from, m.to) {
            return;
        }
        let from = region(m.from);
        match postcard::from_bytes::<ReplMessage>(&m.msg).unwrap() {
            ReplMessage::Entries(entries) => {
                if let Response::Remote(Ok(out)) = self.process(m.to, Request::Remote { entries }) {
                    if let Some((origin, from_seq)) = out.gap {
                        self.counts.gaps += 1;
                        self.send(m.to, m.from, &ReplMessage::Resend { origin, from_seq });
                    }
                }
            }
            ReplMessage::Ack { vv, .. } => {
                self.process(
                    m.to,
                    Request::PeerAck {
                        peer: from.clone(),
                        vv: vv.clone(),
                    },
                );
                self.event(m.to, Event::PeerVv { peer: from, vv });
            }
            ReplMessage::Resend { origin, from_seq } => self.event(
                m.to,
                Event::Resend {
                    peer: from,
                    origin,
                    from_seq,
                },
            ),
            // Anti-entropy is not simulated: convergence here must come from
            // the log protocol alone. Calls (forwarding) are not replication.
            ReplMessage::DigestRequest { .. }
            | ReplMessage::DigestReply { .. }
            | ReplMessage::BucketRequest { .. }
            | ReplMessage::BucketReply { .. }
            | ReplMessage::Call { .. }
            | ReplMessage::Answer { .. } => {}
        }
    }

    fn client_write(&mut self) {
        let up: Vec<usize> = (0..3).filter(|i| self.is_up(*i)).collect();
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.usize(..up.len())];
        let key = vec![b'k', b'0' + self.rng.u8(..KEYS)];
        let op_pick = self.rng.u8(..4);
        let value = vec![self.rng.u8(b'a'..=b'z')];
        let delta = self.rng.i64(1..5);
        let decide: meridian_store::db::Decide = Box::new(move |cur: Option<&KeyState>, now| {
            Ok(Some(match op_pick {
                0 => Op::Delete,
                1 if cur.is_none_or(|c| {
                    c.is_absent(now)
                        || c.bytes().is_some_and(|b| {
                            std::str::from_utf8(&b).is_ok_and(|t| t.parse::<i64>().is_ok())
                        })
                }) =>
                {
                    Op::Add {
                        target: KeyState::typed_target(cur, now),
                        delta,
                    }
                }
                _ => Op::Put {
                    value: value.clone(),
                    expires_at_ms: None,
                },
            }))
        });
        let resp = self.process(
            i,
            Request::Local {
                table: "t".into(),
                key,
                decide,
            },
        );
        let Response::Local(out) = resp else {
            unreachable!()
        };
        let entry = (*out)
            .expect("local writes succeed on an in-memory store")
            .entry
            .expect("every decision writes");
        self.committed.entry(i).or_default().push(entry.clone());
        self.counts.writes += 1;
        // Sometimes the node dies after the commit, before the client hears.
        if self.faults_on && self.rng.u16(..1000) < self.faults.crash_permille {
            self.counts.crashes_before_ack += 1;
            self.crash(i);
            return;
        }
        self.acked.push(Acked {
            origin: i,
            seq: entry.seq,
        });
    }

    fn faults_step(&mut self) {
        if self.rng.u16(..1000) < self.faults.partition_permille {
            let a = self.rng.usize(..3);
            let b = (a + 1 + self.rng.usize(..2)) % 3;
            let pair = (a.min(b), a.max(b));
            if !self.cut.remove(&pair) {
                self.cut.insert(pair);
                self.counts.partitions += 1;
            }
            self.refresh_links();
        }
        if self.rng.u16(..1000) < self.faults.crash_permille {
            let i = self.rng.usize(..3);
            if self.is_up(i) {
                self.crash(i);
            } else {
                self.start(i);
                self.refresh_links();
            }
        }
    }

    /// One step: time passes, messages due arrive, ticks, maybe a write and
    /// a fault.
    pub fn step(&mut self, invariants: &mut [Box<dyn invariants::Invariant>]) {
        self.now_ms += STEP_MS;
        self.clock.fetch_add(STEP_MS, Ordering::Relaxed);
        while let Some(Reverse((at, _, id))) = self.net.peek().copied() {
            if at > self.now_ms {
                break;
            }
            self.net.pop();
            self.deliver(id);
        }
        for i in 0..3 {
            self.event(i, Event::Tick);
        }
        if self.faults_on {
            if self.rng.u8(..3) == 0 {
                self.client_write();
            }
            self.faults_step();
        }
        for inv in invariants.iter_mut() {
            inv.on_step(self);
        }
    }

    /// Heals everything and runs until every node has everything and the
    /// network is empty.
    pub fn heal_and_quiesce(&mut self, invariants: &mut [Box<dyn invariants::Invariant>]) {
        self.faults_on = false;
        self.cut.clear();
        for i in 0..3 {
            if !self.is_up(i) {
                self.start(i);
            }
        }
        self.refresh_links();
        let deadline = self.now_ms + QUIET_LIMIT_MS;
        loop {
            self.step(invariants);
            let vvs: Vec<_> = (0..3).map(|i| self.vv(i).unwrap()).collect();
            if vvs.windows(2).all(|w| w[0] == w[1]) && self.net.is_empty() {
                return;
            }
            assert!(
                self.now_ms < deadline,
                "seed {}: not quiet {QUIET_LIMIT_MS} ms after heal; vvs {vvs:?}",
                self.seed
            );
        }
    }
}

fn peer_index(r: &RegionName) -> usize {
    ["a", "b", "c"]
        .iter()
        .position(|n| *n == r.as_str())
        .unwrap()
}

/// Runs one seed with every invariant; panics naming the seed on failure.
/// Returns what happened.
pub fn run(seed: u64, faults: Faults) -> Counts {
    let mut invs = invariants::all();
    let mut sim = Sim::new(seed, faults);
    for _ in 0..FAULTY_STEPS {
        sim.step(&mut invs);
    }
    sim.heal_and_quiesce(&mut invs);
    for inv in invs.iter_mut() {
        inv.at_end(&sim);
    }
    for i in 0..3 {
        sim.crash(i); // folds the live machines' counters in
    }
    sim.counts.crashes -= 3;
    sim.counts
}

/// Seeds to run: `MERIDIAN_SIM_SEED=N` replays one, `MERIDIAN_SIM_SEEDS=N`
/// runs N (default 1000).
pub fn seeds() -> Vec<u64> {
    if let Some(one) = std::env::var("MERIDIAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n = std::env::var("MERIDIAN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    (0..n).collect()
}
