//! The command table and what every command shares: lookup, arity and
//! authentication checks (in Redis's order, with Redis's messages), the
//! key → table mapping with each table's policy, and argument parsing.
//!
//! A command is one of:
//! - a **read** ([`Handler::Read`]): runs against the local store;
//! - a **write** ([`Handler::Write`]): parses its arguments into a
//!   [`WritePlan`] whose decision runs on the storage engine's writer
//!   thread against the keys' current states, so read-modify-write commands
//!   (`INCR`, `SET NX`, `MSETNX`) are atomic without locks;
//! - a **connection** command ([`Handler::Conn`]) that changes the session;
//! - `WAIT` and `QUIT`, which the connection runs itself.

use bytes::Bytes;
use std::borrow::Cow;
use std::collections::BTreeSet;

use meridian_core::config::{ConflictPolicy, PinnedOutside, TableMode};
use meridian_core::record::{KeyState, Kind};
use meridian_core::{Op, PhysicalClock, RegionName, SystemClock, Topology};

use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

mod hashes;
mod keys;
pub(crate) mod server;
mod sets;
mod strings;

pub use meridian_core::config::DEFAULT_TABLE;

/// Redis's type error.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Redis's integer error.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's syntax error.
pub const SYNTAX: &str = "ERR syntax error";
/// Redis's overflow error.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// What a write decides against the current states of its keys (in
/// order; `None` for a key never written) at `now` (ms since the epoch):
/// an op per key (or none) and the reply to send once durable, or a refusal
/// (a full Redis error line) that writes nothing.
pub type WriteDecide =
    Box<dyn FnOnce(&[Option<KeyState>], u64) -> Result<(Vec<Option<Op>>, Reply), String> + Send>;

/// A write, ready for the storage engine.
pub struct WritePlan {
    /// `(table, key)` per key the write touches.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The decision.
    pub decide: WriteDecide,
}

/// What kind of value a write produces: the table's conflict policy must
/// allow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Whole string values (`SET`, `APPEND`): last writer wins.
    String,
    /// Counter deltas (`INCR`): a PN-counter.
    Counter,
    /// Hash fields: last writer wins per field.
    Hash,
    /// Set members: add-wins.
    Set,
    /// The key as a whole (`DEL`, `EXPIRE`): any table.
    Key,
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Reads the local store.
    Read(fn(&Shared, &Session, &[Bytes]) -> Reply),
    /// Plans a write (the plan names its kind when it maps its keys to
    /// tables: [`Shared::table_for_write`]).
    Write(fn(&Shared, &[Bytes]) -> Result<WritePlan, Reply>),
    /// Changes or reports the connection.
    Conn(fn(&Shared, &mut Session, &[Bytes]) -> Reply),
    /// `WAIT numregions timeout`.
    Wait,
    /// `QUIT`.
    Quit,
}

/// One command's entry.
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n words (name included), `-n` at least n.
    pub arity: i32,
    /// Flags as `COMMAND` lists them.
    pub flags: &'static [&'static str],
    /// First key's position (0: no keys).
    pub first_key: i32,
    /// Last key's position (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// How it runs.
    pub handler: Handler,
}

impl Spec {
    /// Whether the command touches keys (and so waits for the session's
    /// token first).
    pub fn keyed(&self) -> bool {
        self.first_key > 0
    }

    /// Whether the command may run before authentication.
    fn no_auth(&self) -> bool {
        self.flags.contains(&"no-auth")
    }
}

const R: &[&str] = &["readonly", "fast"];
const RS: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write", "fast"];
const CONN: &[&str] = &["loading", "stale", "fast"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $h:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            handler: $h,
        }
    };
}

use Handler::{Conn, Read, Write};

/// Every command, in `COMMAND`'s order.
pub static COMMANDS: &[Spec] = &[
    // connection and server
    spec!("ping", -1, CONN, 0, 0, 0, Conn(server::ping)),
    spec!("echo", 2, CONN, 0, 0, 0, Conn(server::echo)),
    spec!(
        "hello",
        -1,
        &["no-auth", "loading", "stale", "fast"],
        0,
        0,
        0,
        Conn(server::hello)
    ),
    spec!(
        "auth",
        -2,
        &["no-auth", "loading", "stale", "fast"],
        0,
        0,
        0,
        Conn(server::auth)
    ),
    spec!("client", -2, CONN, 0, 0, 0, Conn(server::client)),
    spec!("select", 2, CONN, 0, 0, 0, Conn(server::select)),
    spec!(
        "quit",
        -1,
        &["no-auth", "loading", "stale", "fast"],
        0,
        0,
        0,
        Handler::Quit
    ),
    spec!(
        "command",
        -1,
        &["loading", "stale"],
        0,
        0,
        0,
        Conn(server::command)
    ),
    spec!(
        "config",
        -2,
        &["admin", "loading", "stale"],
        0,
        0,
        0,
        Conn(server::config)
    ),
    spec!(
        "info",
        -1,
        &["loading", "stale"],
        0,
        0,
        0,
        Conn(server::info)
    ),
    spec!("dbsize", 1, RS, 0, 0, 0, Read(keys::dbsize)),
    spec!("wait", 3, &["noscript"], 0, 0, 0, Handler::Wait),
    spec!("meridian.token", 1, CONN, 0, 0, 0, Conn(server::token)),
    spec!("meridian.after", -2, CONN, 0, 0, 0, Conn(server::after)),
    spec!(
        "meridian.consistency",
        -1,
        CONN,
        0,
        0,
        0,
        Conn(server::consistency)
    ),
    spec!("meridian.ack", -1, CONN, 0, 0, 0, Conn(server::ack)),
    // keys
    spec!("type", 2, R, 1, 1, 1, Read(keys::type_)),
    spec!("exists", -2, R, 1, -1, 1, Read(keys::exists)),
    spec!("del", -2, &["write"], 1, -1, 1, Write(keys::del)),
    spec!("unlink", -2, WD, 1, -1, 1, Write(keys::del)),
    spec!("scan", -2, RS, 0, 0, 0, Read(keys::scan)),
    spec!("keys", 2, RS, 0, 0, 0, Read(keys::keys)),
    spec!("expire", -3, WD, 1, 1, 1, Write(keys::expire)),
    spec!("pexpire", -3, WD, 1, 1, 1, Write(keys::pexpire)),
    spec!("expireat", -3, WD, 1, 1, 1, Write(keys::expireat)),
    spec!("pexpireat", -3, WD, 1, 1, 1, Write(keys::pexpireat)),
    spec!("persist", 2, WD, 1, 1, 1, Write(keys::persist)),
    spec!("ttl", 2, R, 1, 1, 1, Read(keys::ttl)),
    spec!("pttl", 2, R, 1, 1, 1, Read(keys::pttl)),
    // strings
    spec!("get", 2, R, 1, 1, 1, Read(strings::get)),
    spec!(
        "set",
        -3,
        &["write", "denyoom"],
        1,
        1,
        1,
        Write(strings::set)
    ),
    spec!(
        "setex",
        4,
        &["write", "denyoom"],
        1,
        1,
        1,
        Write(strings::setex)
    ),
    spec!(
        "psetex",
        4,
        &["write", "denyoom"],
        1,
        1,
        1,
        Write(strings::psetex)
    ),
    spec!("setnx", 3, W, 1, 1, 1, Write(strings::setnx)),
    spec!("getset", 3, W, 1, 1, 1, Write(strings::getset)),
    spec!("getdel", 2, WD, 1, 1, 1, Write(strings::getdel)),
    spec!("getex", -2, WD, 1, 1, 1, Write(strings::getex)),
    spec!("mget", -2, R, 1, -1, 1, Read(strings::mget)),
    spec!(
        "mset",
        -3,
        &["write", "denyoom"],
        1,
        -1,
        2,
        Write(strings::mset)
    ),
    spec!(
        "msetnx",
        -3,
        &["write", "denyoom"],
        1,
        -1,
        2,
        Write(strings::msetnx)
    ),
    spec!("append", 3, W, 1, 1, 1, Write(strings::append)),
    spec!("strlen", 2, R, 1, 1, 1, Read(strings::strlen)),
    spec!("incr", 2, W, 1, 1, 1, Write(strings::incr)),
    spec!("incrby", 3, W, 1, 1, 1, Write(strings::incrby)),
    spec!("decr", 2, W, 1, 1, 1, Write(strings::decr)),
    spec!("decrby", 3, W, 1, 1, 1, Write(strings::decrby)),
    // hashes
    spec!("hset", -4, W, 1, 1, 1, Write(hashes::hset)),
    spec!("hmset", -4, W, 1, 1, 1, Write(hashes::hmset)),
    spec!("hget", 3, R, 1, 1, 1, Read(hashes::hget)),
    spec!("hmget", -3, R, 1, 1, 1, Read(hashes::hmget)),
    spec!("hgetall", 2, RS, 1, 1, 1, Read(hashes::hgetall)),
    spec!("hdel", -3, WD, 1, 1, 1, Write(hashes::hdel)),
    spec!("hexists", 3, R, 1, 1, 1, Read(hashes::hexists)),
    spec!("hlen", 2, R, 1, 1, 1, Read(hashes::hlen)),
    spec!("hkeys", 2, RS, 1, 1, 1, Read(hashes::hkeys)),
    spec!("hvals", 2, RS, 1, 1, 1, Read(hashes::hvals)),
    spec!("hincrby", 4, W, 1, 1, 1, Write(hashes::hincrby)),
    // sets
    spec!("sadd", -3, W, 1, 1, 1, Write(sets::sadd)),
    spec!("srem", -3, WD, 1, 1, 1, Write(sets::srem)),
    spec!("smembers", 2, RS, 1, 1, 1, Read(sets::smembers)),
    spec!("sismember", 3, R, 1, 1, 1, Read(sets::sismember)),
    spec!("scard", 2, R, 1, 1, 1, Read(sets::scard)),
];

/// Finds the command for `args` and checks it may run now, in Redis's
/// order: unknown command, arity, authentication.
pub fn lookup(session: &Session, args: &[Bytes]) -> Result<&'static Spec, Reply> {
    // Pipelines mostly repeat a command: try the last one first.
    let spec = match session.last_spec {
        Some(last) if last.name.as_bytes().eq_ignore_ascii_case(&args[0]) => {
            check_arity(last, args)?
        }
        _ => lookup_authenticated(args)?,
    };
    if !session.authenticated && !spec.no_auth() {
        return Err(Reply::Error("NOAUTH Authentication required.".into()));
    }
    Ok(spec)
}

/// Finds the command for `args` and checks its arity (for a client that
/// authenticated elsewhere: a write forwarded from another region).
pub fn lookup_authenticated(args: &[Bytes]) -> Result<&'static Spec, Reply> {
    let Some(spec) = COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(&args[0]))
    else {
        let mut shown = String::new();
        for a in args[1..].iter() {
            let a = String::from_utf8_lossy(a);
            shown.push_str(&format!("'{}' ", truncate(&a, 128)));
        }
        return Err(Reply::Error(format!(
            "ERR unknown command '{}', with args beginning with: {shown}",
            truncate(&String::from_utf8_lossy(&args[0]), 128)
        )));
    };
    check_arity(spec, args)
}

fn check_arity(spec: &'static Spec, args: &[Bytes]) -> Result<&'static Spec, Reply> {
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || n < -spec.arity {
        return Err(arity_error(spec.name));
    }
    Ok(spec)
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("name", &self.name).finish()
    }
}

impl Spec {
    /// The keys among `args`, by the command's key positions.
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let last = if self.last_key < 0 {
            args.len() as i32 + self.last_key
        } else {
            self.last_key
        };
        // No keys: an empty range (a command without keys has step 0).
        let (first, last) = if self.first_key <= 0 || self.step <= 0 {
            (1, 0)
        } else {
            (self.first_key, last.min(args.len() as i32 - 1))
        };
        (first..=last)
            .step_by(self.step.max(1) as usize)
            .map(move |i| &args[i as usize][..])
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Redis's arity error for `name` (`client|setname` for subcommands).
pub fn arity_error(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Wall-clock milliseconds, the time TTLs are judged by.
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// The key's state if it is live (not absent, deleted or expired).
pub fn live(state: Option<&KeyState>, now: u64) -> Option<&KeyState> {
    state.filter(|s| !s.is_absent(now))
}

/// Refuses a live key of another type than `want`.
pub fn expect_kind(state: Option<&KeyState>, want: Kind) -> Result<(), String> {
    match state.and_then(KeyState::kind) {
        Some(k) if k != want => Err(WRONGTYPE.to_string()),
        _ => Ok(()),
    }
}

/// An integer argument.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Reply::Error(NOT_INTEGER.into()))
}

/// Whether an argument equals `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

impl Shared {
    /// The table `key` belongs to, checked for a write of `kind` by
    /// command `cmd` in this region: the table's mode must accept writes
    /// here and its conflict policy must allow the kind.
    pub fn table_for_write(&self, key: &[u8], kind: WriteKind, cmd: &str) -> Result<String, Reply> {
        self.modes
            .with_topology(|topology| self.write_table(topology, key, kind, cmd))
    }

    fn write_table(
        &self,
        topology: &Topology,
        key: &[u8],
        kind: WriteKind,
        cmd: &str,
    ) -> Result<String, Reply> {
        let Some(table) = topology.table_for_key(key) else {
            return Ok(DEFAULT_TABLE.to_string());
        };
        match &table.mode {
            TableMode::MultiMaster => {}
            TableMode::SingleMaster { home } if *home == self.region => {}
            // A node that forwards sent this command here because the view
            // it was routed by had this region as home: the table moved
            // since, and a retry is routed to the new home.
            TableMode::SingleMaster { home } if self.remote.is_some() => {
                return Err(Reply::Error(format!(
                    "TRYAGAIN table `{}` moved to home {home} while this command was routed; retry",
                    table.name
                )))
            }
            TableMode::SingleMaster { home } => {
                return Err(Reply::Error(format!(
                    "READONLY table `{}` is single_master with home {home}; this region ({}) does not accept its writes",
                    table.name, self.region
                )))
            }
            TableMode::Pinned { regions, .. } if regions.contains(&self.region) => {}
            TableMode::Pinned { .. } => return Err(self.not_pinned_here(table)),
        }
        let allowed = match table.conflict {
            ConflictPolicy::Lww => true,
            ConflictPolicy::PnCounter => matches!(kind, WriteKind::Counter | WriteKind::Key),
            ConflictPolicy::LwwHash => matches!(kind, WriteKind::Hash | WriteKind::Key),
            ConflictPolicy::AddWinsSet => matches!(kind, WriteKind::Set | WriteKind::Key),
        };
        if !allowed {
            let (policy, use_) = match table.conflict {
                ConflictPolicy::PnCounter => ("pn_counter", "INCR, INCRBY, DECR, DECRBY"),
                ConflictPolicy::LwwHash => ("lww_hash", "HSET, HDEL, HINCRBY"),
                ConflictPolicy::AddWinsSet => ("add_wins_set", "SADD, SREM"),
                ConflictPolicy::Lww => unreachable!("lww allows every kind"),
            };
            return Err(Reply::Error(format!(
                "ERR table `{}` resolves conflicts as {policy}; '{cmd}' is not allowed there (use {use_}, or key commands)",
                table.name
            )));
        }
        Ok(table.name.clone())
    }

    /// The name of the table `key` belongs to.
    pub fn table_name_for(&self, key: &[u8]) -> String {
        self.modes.with_topology(|topology| {
            topology
                .table_for_key(key)
                .map_or(DEFAULT_TABLE, |t| t.name.as_str())
                .to_string()
        })
    }

    /// Where a command on keys runs: here (`None`), or at another region
    /// this endpoint forwards it to — the home of a single-master table
    /// (writes only; reads are local), or the nearest allowed region of a
    /// pinned table whose policy is `outside = "forward"` (reads and
    /// writes: this region holds none of its data). A pinned table that
    /// refuses is refused here, by name. A command whose keys need
    /// different regions is refused.
    pub fn route(&self, spec: &Spec, args: &[Bytes]) -> Result<Option<RegionName>, Reply> {
        self.modes
            .with_topology(|topology| self.route_in(topology, spec, args))
    }

    fn route_in(
        &self,
        topology: &Topology,
        spec: &Spec,
        args: &[Bytes],
    ) -> Result<Option<RegionName>, Reply> {
        let write = matches!(spec.handler, Handler::Write(_));
        let mut target: Option<RegionName> = None;
        let mut here = false;
        for key in spec.keys(args) {
            let Some(table) = topology.table_for_key(key) else {
                here = true;
                continue;
            };
            let there = match &table.mode {
                TableMode::SingleMaster { home } if write && *home != self.region => home.clone(),
                TableMode::Pinned { regions, outside } if !regions.contains(&self.region) => {
                    if *outside == PinnedOutside::Refuse || self.remote.is_none() {
                        return Err(self.not_pinned_here(table));
                    }
                    self.nearest(regions)
                }
                _ => {
                    here = true;
                    continue;
                }
            };
            if target.as_ref().is_some_and(|t| *t != there) {
                here = true; // two targets: refused below
            }
            target = Some(there);
        }
        match (target, here) {
            (None, _) => Ok(None),
            (Some(_), _) if self.remote.is_none() => Ok(None),
            (Some(t), false) => Ok(Some(t)),
            (Some(_), true) => Err(Reply::err(
                "the keys of this command belong to tables served by different regions; send one command per table",
            )),
        }
    }

    /// The region of `regions` with the shortest emulated link from here.
    fn nearest(&self, regions: &BTreeSet<RegionName>) -> RegionName {
        regions
            .iter()
            .min_by_key(|r| self.topology().link(&self.region, r).one_way_delay)
            .expect("validated pinned tables have at least one region")
            .clone()
    }

    /// The table `key` belongs to, checked for a read in this region.
    pub fn table_for_read(&self, key: &[u8]) -> Result<Cow<'static, str>, Reply> {
        self.modes.with_topology(|topology| {
            let Some(table) = topology.table_for_key(key) else {
                return Ok(Cow::Borrowed(DEFAULT_TABLE));
            };
            match &table.mode {
                TableMode::Pinned { regions, .. } if !regions.contains(&self.region) => {
                    Err(self.not_pinned_here(table))
                }
                _ => Ok(Cow::Owned(table.name.clone())),
            }
        })
    }

    fn not_pinned_here(&self, table: &meridian_core::config::Table) -> Reply {
        let TableMode::Pinned { regions, .. } = &table.mode else {
            unreachable!("only pinned tables are refused for residency")
        };
        let allowed: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        Reply::Error(format!(
            "ERR table `{}` is pinned to {}; this region ({}) does not hold its data",
            table.name,
            allowed.join(", "),
            self.region
        ))
    }

    /// Tables this region holds, in scan order: the configured ones, then
    /// the default table.
    pub fn readable_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .topology()
            .tables
            .iter()
            .filter(|t| match &t.mode {
                TableMode::Pinned { regions, .. } => regions.contains(&self.region),
                _ => true,
            })
            .map(|t| t.name.clone())
            .collect();
        out.push(DEFAULT_TABLE.to_string());
        out
    }

    /// A live key's state, for a read.
    pub fn read_live(&self, key: &[u8]) -> Result<Option<KeyState>, Reply> {
        let table = self.table_for_read(key)?;
        let state = self
            .db
            .get(&table, key)
            .map_err(|e| Reply::err(format!("storage error: {e}")))?;
        Ok(state.filter(|s| !s.is_absent(now_ms())))
    }

    /// A single-key write plan for `key`.
    pub fn plan_one(
        &self,
        key: &[u8],
        kind: WriteKind,
        cmd: &str,
        decide: impl FnOnce(Option<&KeyState>, u64) -> Result<(Option<Op>, Reply), String>
            + Send
            + 'static,
    ) -> Result<WritePlan, Reply> {
        let table = self.table_for_write(key, kind, cmd)?;
        Ok(WritePlan {
            keys: vec![(table, key.to_vec())],
            decide: Box::new(move |states, now| {
                let (op, reply) = decide(states[0].as_ref(), now)?;
                Ok((vec![op], reply))
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn error(r: Result<&'static Spec, Reply>) -> String {
        match r {
            Err(Reply::Error(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_found_by_the_commands_positions() {
        let session = Session::new(
            1,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            true,
        );
        let keys = |words: &[&str]| -> Vec<Vec<u8>> {
            let a = args(words);
            let spec = lookup(&session, &a).unwrap();
            spec.keys(&a).map(<[u8]>::to_vec).collect()
        };
        let b = |w: &[&str]| -> Vec<Vec<u8>> { w.iter().map(|k| k.as_bytes().to_vec()).collect() };
        assert_eq!(keys(&["GET", "k"]), b(&["k"]));
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), b(&["a", "b"]));
        assert_eq!(keys(&["DEL", "a", "b", "c"]), b(&["a", "b", "c"]));
        assert_eq!(keys(&["HSET", "h", "f", "v", "g", "w"]), b(&["h"]));
        assert!(keys(&["PING"]).is_empty());
        assert!(keys(&["DBSIZE"]).is_empty());
    }

    #[test]
    fn the_last_command_tried_first_is_checked_like_any_other() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut session = Session::new(1, addr, addr, true);
        let get = lookup(&session, &args(&["GET", "k"])).unwrap();
        session.last_spec = Some(get);
        assert_eq!(lookup(&session, &args(&["gEt", "k"])).unwrap().name, "get");
        assert_eq!(
            error(lookup(&session, &args(&["GET"]))),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            error(lookup(&session, &args(&["GET", "a", "b"]))),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            lookup(&session, &args(&["SET", "k", "v"])).unwrap().name,
            "set"
        );
        assert!(error(lookup(&session, &args(&["GETX", "k"])))
            .starts_with("ERR unknown command 'GETX'"));
        session.authenticated = false;
        assert_eq!(
            error(lookup(&session, &args(&["GET", "k"]))),
            "NOAUTH Authentication required."
        );
    }
}
