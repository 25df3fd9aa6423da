//! The command table ([`COMMANDS`]): each command's name, arity, flags,
//! key positions and handler, in `COMMAND`'s order. Only data: lookup and
//! checks are in [`super`].

use super::Handler::{self, Conn, Read, Write};
use super::{connection, hashes, keys, meridian, server, sets, strings, Spec};

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

/// Every command, in `COMMAND`'s order.
pub static COMMANDS: &[Spec] = &[
    // connection and server
    spec!("ping", -1, CONN, 0, 0, 0, Conn(connection::ping)),
    spec!("echo", 2, CONN, 0, 0, 0, Conn(connection::echo)),
    spec!(
        "hello",
        -1,
        &["no-auth", "loading", "stale", "fast"],
        0,
        0,
        0,
        Conn(connection::hello)
    ),
    spec!(
        "auth",
        -2,
        &["no-auth", "loading", "stale", "fast"],
        0,
        0,
        0,
        Conn(connection::auth)
    ),
    spec!("client", -2, CONN, 0, 0, 0, Conn(connection::client)),
    spec!("select", 2, CONN, 0, 0, 0, Conn(connection::select)),
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
    spec!("meridian.token", 1, CONN, 0, 0, 0, Conn(meridian::token)),
    spec!("meridian.after", -2, CONN, 0, 0, 0, Conn(meridian::after)),
    spec!(
        "meridian.consistency",
        -1,
        CONN,
        0,
        0,
        0,
        Conn(meridian::consistency)
    ),
    spec!("meridian.ack", -1, CONN, 0, 0, 0, Conn(meridian::ack)),
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
