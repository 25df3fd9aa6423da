//! The commands and what every command shares: lookup, arity and
//! authentication checks (in Redis's order, with Redis's messages) and
//! argument parsing. The table itself is [`COMMANDS`] (`table.rs`); the
//! commands live by family (`connection`, `server`, `meridian`, `keys`,
//! `strings`, `hashes`, `sets`); the key → table mapping with each table's
//! policy is [`crate::policy`].
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

use meridian_core::record::{KeyState, Kind};
use meridian_core::{PhysicalClock, SystemClock};

use crate::error::ErrorReply;
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

mod connection;
mod hashes;
mod keys;
mod meridian;
pub(crate) mod server;
mod sets;
mod strings;
mod table;

pub use crate::error::{NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
// Write plans lived here before `plan.rs` held them.
pub use crate::plan::{WriteDecide, WriteKind, WritePlan};
pub use meridian_core::config::DEFAULT_TABLE;
pub use table::COMMANDS;

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
        return Err(Reply::Error(ErrorReply::no_auth(
            "Authentication required.",
        )));
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
        return Err(Reply::Error(ErrorReply::invalid(format_args!(
            "unknown command '{}', with args beginning with: {shown}",
            truncate(&String::from_utf8_lossy(&args[0]), 128)
        ))));
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
    Reply::Error(ErrorReply::invalid(format_args!(
        "wrong number of arguments for '{name}' command"
    )))
}

/// Redis's answer to an unknown subcommand `sub` of `cmd`.
pub(crate) fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    Reply::err(format!(
        "unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
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
pub fn expect_kind(state: Option<&KeyState>, want: Kind) -> Result<(), ErrorReply> {
    match state.and_then(KeyState::kind) {
        Some(k) if k != want => Err(ErrorReply::wrong_type()),
        _ => Ok(()),
    }
}

/// An integer argument.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Reply::Error(ErrorReply::not_integer()))
}

/// Whether an argument equals `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
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
            Err(Reply::Error(e)) => e.into_line(),
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
