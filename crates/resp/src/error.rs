//! Error replies as types: [`ErrorKind`], what a caller can act on, and
//! [`ErrorReply`], the kind with the exact Redis error line clients see.
//!
//! Every error the endpoint answers is made here, by a named constructor
//! that picks both the kind and the line's code word (`ERR`, `TRYAGAIN`,
//! `WRONGTYPE`, ...), so the lines stay byte-identical to Redis's (and to
//! what Meridian always sent) while callers match on the kind: the HTTP
//! edge chooses a status with one `match` on [`ErrorReply::kind`].
//!
//! An error reply crosses regions inside a forwarded command's answer as
//! its line only (the wire format predates kinds), so [`ErrorReply::from_line`]
//! reads the kind back from a line this module made — the one place a
//! line is read, paired with the constructors by the round-trip test below.

use std::fmt::Display;

use meridian_core::RegionName;
use meridian_tables::WriteRefused;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::proto::ProtocolError;

/// Redis's type error.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Redis's integer error.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's syntax error.
pub const SYNTAX: &str = "ERR syntax error";
/// Redis's overflow error.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
/// Redis's answer to a wrong password.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// What starts the message of a write the storage engine did not store.
const NOT_STORED: &str = "write not stored: ";
/// What a residency refusal says after the table's name.
const PINNED_TO: &str = " is pinned to ";
/// What a conflict-policy refusal says after the table's name.
const RESOLVES_AS: &str = " resolves conflicts as ";
/// What starts the message of an internal error.
const INTERNAL: &str = "internal error: ";
/// What starts the message of a failed read of the store.
const STORAGE: &str = "storage error: ";

/// What kind of error a reply is: what the client (or the HTTP edge) can
/// do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `TRYAGAIN`: nothing is wrong with the request; the region could not
    /// serve it now (a mode change, a token not applied yet, a region not
    /// reached, a global ack not met). Retrying may succeed.
    Retry,
    /// `READONLY`: a single-master table's write in a region that is not
    /// its home and cannot forward.
    ReadOnly,
    /// `WRONGTYPE`: the key holds another kind of value.
    WrongType,
    /// `ERR`: refused by the table's policy — residency (pinned to other
    /// regions) or conflict policy (the command's kind is not allowed).
    Refused,
    /// `ERR write not stored`: the storage engine failed the write.
    NotStored,
    /// `ERR` (or `NOPROTO`): the request is wrong — unknown command, arity,
    /// syntax, an argument out of range, a reply over the limit.
    Invalid,
    /// `NOAUTH` or `WRONGPASS`: authenticate first, or again.
    NoAuth,
    /// `ERR internal error` or `ERR storage error`: the endpoint or the
    /// store failed; not the request's fault.
    Internal,
}

/// An error reply: its kind and its line (code word first, no CR/LF
/// needed: encoding replaces them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    kind: ErrorKind,
    line: String,
}

impl ErrorReply {
    /// `code what` of `kind`: every constructor ends here.
    fn coded(kind: ErrorKind, code: &str, what: impl Display) -> Self {
        ErrorReply {
            kind,
            line: format!("{code} {what}"),
        }
    }

    /// A fixed line of `kind`.
    fn fixed(kind: ErrorKind, line: &str) -> Self {
        ErrorReply {
            kind,
            line: line.to_string(),
        }
    }

    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The Redis error line, as sent (without the leading `-`).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The line, owned.
    pub fn into_line(self) -> String {
        self.line
    }

    /// `TRYAGAIN what`.
    pub fn retry(what: impl Display) -> Self {
        Self::coded(ErrorKind::Retry, "TRYAGAIN", what)
    }

    /// `READONLY what`.
    pub fn read_only(what: impl Display) -> Self {
        Self::coded(ErrorKind::ReadOnly, "READONLY", what)
    }

    /// Redis's `WRONGTYPE` line.
    pub fn wrong_type() -> Self {
        Self::fixed(ErrorKind::WrongType, WRONGTYPE)
    }

    /// `table` is pinned to `allowed`; `here` holds none of its data.
    pub fn not_pinned_here(table: &str, allowed: &[String], here: &RegionName) -> Self {
        Self::coded(
            ErrorKind::Refused,
            "ERR",
            format_args!(
                "table `{table}`{PINNED_TO}{}; this region ({here}) does not hold its data",
                allowed.join(", ")
            ),
        )
    }

    /// `table`'s conflict policy `policy` does not allow command `cmd`;
    /// `use_` lists the commands it does allow.
    pub fn policy_forbids(table: &str, policy: &str, cmd: &str, use_: &str) -> Self {
        Self::coded(
            ErrorKind::Refused,
            "ERR",
            format_args!(
                "table `{table}`{RESOLVES_AS}{policy}; '{cmd}' is not allowed there (use {use_}, or key commands)"
            ),
        )
    }

    /// `ERR write not stored: why`.
    pub fn not_stored(why: impl Display) -> Self {
        Self::coded(
            ErrorKind::NotStored,
            "ERR",
            format_args!("{NOT_STORED}{why}"),
        )
    }

    /// `ERR what`: a request that is wrong.
    pub fn invalid(what: impl Display) -> Self {
        Self::coded(ErrorKind::Invalid, "ERR", what)
    }

    /// Redis's error for an expire time out of range in command `cmd`.
    pub fn invalid_expire(cmd: &str) -> Self {
        Self::invalid(format_args!("invalid expire time in '{cmd}' command"))
    }

    /// Redis's syntax error.
    pub fn syntax() -> Self {
        Self::fixed(ErrorKind::Invalid, SYNTAX)
    }

    /// Redis's integer error.
    pub fn not_integer() -> Self {
        Self::fixed(ErrorKind::Invalid, NOT_INTEGER)
    }

    /// Redis's overflow error.
    pub fn overflow() -> Self {
        Self::fixed(ErrorKind::Invalid, OVERFLOW)
    }

    /// `NOPROTO unsupported protocol version`.
    pub fn no_proto() -> Self {
        Self::coded(
            ErrorKind::Invalid,
            "NOPROTO",
            "unsupported protocol version",
        )
    }

    /// `NOAUTH what`.
    pub fn no_auth(what: impl Display) -> Self {
        Self::coded(ErrorKind::NoAuth, "NOAUTH", what)
    }

    /// Redis's `WRONGPASS` line.
    pub fn wrong_pass() -> Self {
        Self::fixed(ErrorKind::NoAuth, WRONGPASS)
    }

    /// `ERR internal error: what`.
    pub fn internal(what: impl Display) -> Self {
        Self::coded(ErrorKind::Internal, "ERR", format_args!("{INTERNAL}{what}"))
    }

    /// `ERR storage error: why` (a read of the store failed).
    pub fn storage(why: impl Display) -> Self {
        Self::coded(ErrorKind::Internal, "ERR", format_args!("{STORAGE}{why}"))
    }

    /// The error a `line` made by this module stands for (a reply that
    /// crossed regions as its line). A line of an unknown shape is
    /// [`ErrorKind::Internal`].
    pub fn from_line(line: String) -> Self {
        let (code, message) = line.split_once(' ').unwrap_or((&line, ""));
        let kind = match code {
            "TRYAGAIN" => ErrorKind::Retry,
            "READONLY" => ErrorKind::ReadOnly,
            "WRONGTYPE" => ErrorKind::WrongType,
            "NOAUTH" | "WRONGPASS" => ErrorKind::NoAuth,
            "NOPROTO" => ErrorKind::Invalid,
            "ERR" => err_kind(message),
            _ => ErrorKind::Internal,
        };
        ErrorReply { kind, line }
    }
}

/// The kind of an `ERR` line's `message` (after `ERR `).
fn err_kind(message: &str) -> ErrorKind {
    if message.starts_with(NOT_STORED) {
        ErrorKind::NotStored
    } else if message.starts_with(INTERNAL) || message.starts_with(STORAGE) {
        ErrorKind::Internal
    } else if message.starts_with("table `")
        && (message.contains(PINNED_TO) || message.contains(RESOLVES_AS))
    {
        ErrorKind::Refused
    } else {
        ErrorKind::Invalid
    }
}

impl Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl From<WriteRefused> for ErrorReply {
    /// Every refusal by a table's mode is retryable; its text carries the code.
    fn from(why: WriteRefused) -> Self {
        ErrorReply {
            kind: ErrorKind::Retry,
            line: why.to_string(),
        }
    }
}

impl From<ProtocolError> for ErrorReply {
    fn from(e: ProtocolError) -> Self {
        ErrorReply {
            kind: ErrorKind::Invalid,
            line: e.0,
        }
    }
}

impl Serialize for ErrorReply {
    /// As its line: the wire form a forwarded answer has always had.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.line)
    }
}

impl<'de> Deserialize<'de> for ErrorReply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ErrorReply::from_line)
    }
}

impl PartialEq<&str> for ErrorReply {
    fn eq(&self, other: &&str) -> bool {
        self.line == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_reads_back_from_its_line() {
        let here: RegionName = "eu-west".parse().unwrap();
        let cases = [
            (ErrorReply::retry("retry"), ErrorKind::Retry),
            (ErrorReply::read_only("table `t` ..."), ErrorKind::ReadOnly),
            (ErrorReply::wrong_type(), ErrorKind::WrongType),
            (
                ErrorReply::not_pinned_here("vault", &["us-east".into()], &here),
                ErrorKind::Refused,
            ),
            (
                ErrorReply::policy_forbids("c", "pn_counter", "set", "INCR"),
                ErrorKind::Refused,
            ),
            (ErrorReply::not_stored("disk full"), ErrorKind::NotStored),
            (ErrorReply::invalid("syntax error"), ErrorKind::Invalid),
            (ErrorReply::invalid("table `x` is odd"), ErrorKind::Invalid),
            (ErrorReply::syntax(), ErrorKind::Invalid),
            (ErrorReply::not_integer(), ErrorKind::Invalid),
            (ErrorReply::overflow(), ErrorKind::Invalid),
            (ErrorReply::no_proto(), ErrorKind::Invalid),
            (
                ErrorReply::no_auth("Authentication required."),
                ErrorKind::NoAuth,
            ),
            (ErrorReply::wrong_pass(), ErrorKind::NoAuth),
            (
                ErrorReply::internal("no reply decided"),
                ErrorKind::Internal,
            ),
            (ErrorReply::storage("io"), ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(ErrorReply::from_line(e.line().to_string()), e, "{e}");
        }
        assert_eq!(
            ErrorReply::not_pinned_here("vault", &["us-east".into()], &here),
            "ERR table `vault` is pinned to us-east; this region (eu-west) does not hold its data"
        );
        assert_eq!(
            ErrorReply::not_stored("the storage engine stopped"),
            "ERR write not stored: the storage engine stopped"
        );
        assert_eq!(
            ErrorReply::from_line("internal error: 2 ops decided for 1 keys".into()).kind(),
            ErrorKind::Internal
        );
    }
}
