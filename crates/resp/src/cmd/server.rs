//! Connection and server commands: `PING`, `HELLO`, `AUTH`, `CLIENT`,
//! `COMMAND`, `CONFIG GET`, `INFO`, and Meridian's session tokens.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use meridian_core::config::WriteAck;
use meridian_core::VersionVector;

use super::{arity_error, int_arg, is, COMMANDS, NOT_INTEGER, SYNTAX};
use crate::glob;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{Consistency, Session, ACK_TIMEOUT_MS_MAX, SESSION_WAIT_MS_MAX};

/// The Redis version Meridian answers as: the command set and replies
/// follow Redis 7.2, and clients pick features by this number.
pub const REDIS_VERSION: &str = "7.2.0";

/// `PING [message]`.
pub fn ping(_: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    match args.len() {
        1 => Reply::Simple("PONG".into()),
        2 => Reply::Bulk(args[1].to_vec()),
        _ => arity_error("ping"),
    }
}

/// `ECHO message`.
pub fn echo(_: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].to_vec())
}

/// `SELECT index`: only database 0 exists.
pub fn select(_: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    match int_arg(&args[1]) {
        Err(r) => r,
        Ok(0) => Reply::Ok,
        Ok(_) => Reply::err("DB index is out of range"),
    }
}

/// Equal in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a user and password against `[resp]`.
fn check_password(shared: &Shared, user: &[u8], password: &[u8]) -> bool {
    let cfg = &shared.resp;
    if user == b"default" {
        return match &cfg.requirepass {
            Some(p) => ct_eq(p.as_bytes(), password),
            // `default` has no password unless named in `users`.
            None => match cfg.users.iter().find(|u| u.name == "default") {
                Some(u) => ct_eq(u.password.as_bytes(), password),
                None => true,
            },
        };
    }
    cfg.users
        .iter()
        .find(|u| u.name.as_bytes() == user)
        .is_some_and(|u| ct_eq(u.password.as_bytes(), password))
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `AUTH [username] password`.
pub fn auth(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let (user, password): (&[u8], &[u8]) = match args.len() {
        2 => {
            if !shared.resp.auth_required() {
                return Reply::err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            (b"default", &args[1])
        }
        3 => (&args[1], &args[2]),
        _ => return Reply::Error(SYNTAX.into()),
    };
    if check_password(shared, user, password) {
        session.authenticated = true;
        session.user = String::from_utf8_lossy(user).into_owned();
        Reply::Ok
    } else {
        shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        Reply::Error(WRONGPASS.into())
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`.
pub fn hello(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let mut proto = session.proto;
    if let Some(v) = args.get(1) {
        match int_arg(v) {
            Err(_) => return Reply::err("Protocol version is not an integer or out of range"),
            Ok(v @ (2 | 3)) => proto = v as u8,
            Ok(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
        }
    }
    let mut creds = None;
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "AUTH") && i + 2 < args.len() {
            creds = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if is(&args[i], "SETNAME") && i + 1 < args.len() {
            name = Some(&args[i + 1]);
            i += 2;
        } else {
            return Reply::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if let Some((user, password)) = creds {
        if !check_password(shared, user, password) {
            shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Reply::Error(WRONGPASS.into());
        }
        session.authenticated = true;
        session.user = String::from_utf8_lossy(user).into_owned();
    }
    if !session.authenticated {
        return Reply::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(n) = name {
        if let Err(r) = check_client_name(n) {
            return r;
        }
        session.name = (!n.is_empty()).then(|| n.to_vec());
    }
    session.proto = proto;
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (Reply::text("proto"), Reply::Int(proto as i64)),
        (Reply::text("id"), Reply::Int(session.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(vec![])),
    ])
}

fn check_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// `CLIENT ID | SETNAME | GETNAME | INFO | SETINFO | HELP`.
pub fn client(_: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let want = |n: usize| -> Result<(), Reply> {
        if args.len() == n {
            Ok(())
        } else {
            Err(arity_error(&format!("client|{sub}")))
        }
    };
    let result = match sub.as_str() {
        "id" => want(2).map(|_| Reply::Int(session.id as i64)),
        "getname" => want(2).map(|_| session.name.clone().map_or(Reply::Nil, Reply::Bulk)),
        "setname" => want(3).and_then(|_| {
            check_client_name(&args[2])?;
            session.name = (!args[2].is_empty()).then(|| args[2].to_vec());
            Ok(Reply::Ok)
        }),
        "setinfo" => want(4).and_then(|_| {
            let value = args[3].to_vec();
            if is(&args[2], "LIB-NAME") {
                session.lib_name = Some(value);
            } else if is(&args[2], "LIB-VER") {
                session.lib_ver = Some(value);
            } else {
                return Err(Reply::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&args[2])
                )));
            }
            Ok(Reply::Ok)
        }),
        "info" => want(2).map(|_| Reply::Verbatim(client_line(session))),
        "help" => Ok(Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "    Return the ID of the current connection.",
                "GETNAME",
                "    Return the name of the current connection.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "SETINFO <option> <value>",
                "    Set LIB-NAME or LIB-VER of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
            ]
            .into_iter()
            .map(|l| Reply::Simple(l.into()))
            .collect(),
        )),
        _ => Err(unknown_subcommand(&args[1], "CLIENT")),
    };
    result.unwrap_or_else(|r| r)
}

fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    Reply::err(format!(
        "unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// The `CLIENT INFO` line of a session.
pub fn client_line(s: &Session) -> String {
    let lossy = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} laddr={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 user={} resp={} lib-name={} lib-ver={} cmd={}\n",
        s.id,
        s.addr,
        s.laddr,
        lossy(&s.name),
        s.created.elapsed().as_secs(),
        s.last_command.elapsed().as_secs(),
        s.user,
        s.proto,
        lossy(&s.lib_name),
        lossy(&s.lib_ver),
        s.last_spec.map_or("NULL", |spec| spec.name),
    )
}

fn command_info(spec: &super::Spec) -> Reply {
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// `COMMAND [COUNT | INFO name... | LIST | DOCS]`.
pub fn command(_: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect());
    };
    if is(sub, "COUNT") {
        Reply::Int(COMMANDS.len() as i64)
    } else if is(sub, "LIST") {
        Reply::Array(COMMANDS.iter().map(|c| Reply::text(c.name)).collect())
    } else if is(sub, "INFO") {
        Reply::Array(
            args[2..]
                .iter()
                .map(|n| {
                    let n = String::from_utf8_lossy(n).to_ascii_lowercase();
                    COMMANDS
                        .iter()
                        .find(|c| c.name == n)
                        .map_or(Reply::NilArray, command_info)
                })
                .collect(),
        )
    } else if is(sub, "DOCS") {
        // Documentation is not served; clients treat an empty answer as
        // "no hints".
        Reply::Map(vec![])
    } else {
        unknown_subcommand(sub, "COMMAND")
    }
}

/// `CONFIG GET pattern [pattern ...]` (the topology file is the config;
/// `CONFIG SET` is refused).
pub fn config(shared: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if is(sub, "GET") {
        if args.len() < 3 {
            return arity_error("config|get");
        }
        let params = shared.config_params();
        let mut out = Vec::new();
        for (name, value) in &params {
            if args[2..]
                .iter()
                .any(|p| glob::matches(p, name.as_bytes(), true))
            {
                out.push((Reply::text(*name), Reply::text(value.clone())));
            }
        }
        Reply::Map(out)
    } else if is(sub, "SET") {
        Reply::err("CONFIG SET is not supported: Meridian is configured by its topology file ([resp] section)")
    } else if is(sub, "RESETSTAT") {
        Reply::Ok
    } else {
        unknown_subcommand(sub, "CONFIG")
    }
}

/// `INFO [section ...]`.
pub fn info(shared: &Shared, _: &mut Session, args: &[Bytes]) -> Reply {
    const DEFAULT: &[&str] = &[
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "keyspace",
    ];
    let mut wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "default" || w == "all" || w == "everything")
    {
        wanted = DEFAULT.iter().map(|s| s.to_string()).collect();
    }
    let mut text = String::new();
    for section in DEFAULT.iter().filter(|s| wanted.iter().any(|w| w == *s)) {
        let lines = match *section {
            "server" => shared.info_server(),
            "clients" => shared.info_clients(),
            "memory" => shared.cluster.memory(),
            "persistence" => vec![
                ("loading".into(), "0".into()),
                ("durability".into(), shared.durability.clone()),
                (
                    "aof_enabled".into(),
                    if shared.durability == "fsync" {
                        "1"
                    } else {
                        "0"
                    }
                    .into(),
                ),
            ],
            "stats" => shared.info_stats(),
            "replication" => {
                let mut l = vec![
                    ("role".to_string(), "master".to_string()),
                    ("meridian_role".into(), "active-active".into()),
                    ("region".into(), shared.region.to_string()),
                ];
                l.extend(shared.cluster.replication());
                l
            }
            "keyspace" => match super::keys::keyspace(shared) {
                Ok(Some(line)) => vec![("db0".into(), line)],
                Ok(None) => vec![],
                Err(r) => return r,
            },
            _ => unreachable!("sections come from DEFAULT"),
        };
        let title = {
            let mut c = section.chars();
            let first = c
                .next()
                .expect("section names are not empty")
                .to_ascii_uppercase();
            format!("{first}{}", c.as_str())
        };
        let _ = write!(text, "# {title}\r\n");
        for (k, v) in lines {
            let _ = write!(text, "{k}:{v}\r\n");
        }
        text.push_str("\r\n");
    }
    Reply::Verbatim(text)
}

/// `MERIDIAN.TOKEN`: this connection's causal token, to carry to another
/// region (`MERIDIAN.AFTER` there).
pub fn token(_: &Shared, session: &mut Session, _: &[Bytes]) -> Reply {
    Reply::text(session.token.to_token())
}

/// `MERIDIAN.AFTER token [timeout_ms]`: later commands on this connection
/// that touch keys first wait until this region has applied `token`, and
/// fail with `TRYAGAIN` after `timeout_ms` (default 1000, at most 30000).
pub fn after(_: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return arity_error("meridian.after");
    }
    let token = match VersionVector::parse_token(&String::from_utf8_lossy(&args[1])) {
        Ok(t) => t,
        Err(e) => return Reply::err(format!("invalid token: {e}")),
    };
    if let Some(t) = args.get(2) {
        match int_arg(t) {
            Ok(ms) if (0..=SESSION_WAIT_MS_MAX as i64).contains(&ms) => session.wait_ms = ms as u64,
            Ok(_) => return Reply::err(format!("timeout_ms must be 0 to {SESSION_WAIT_MS_MAX}")),
            Err(_) => return Reply::Error(NOT_INTEGER.into()),
        }
    }
    session.token.merge(&token);
    Reply::Ok
}

/// `MERIDIAN.CONSISTENCY [eventual|session|strong]`: shows or sets how far
/// this connection's reads may lag (see [`Consistency`]).
pub fn consistency(_: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    match args.len() {
        1 => Reply::text(session.consistency.name()),
        2 => {
            let level = [
                Consistency::Eventual,
                Consistency::Session,
                Consistency::Strong,
            ]
            .into_iter()
            .find(|c| is(&args[1], c.name()));
            match level {
                Some(c) => {
                    session.consistency = c;
                    Reply::Ok
                }
                None => Reply::err("consistency must be eventual, session or strong"),
            }
        }
        _ => arity_error("meridian.consistency"),
    }
}

/// `MERIDIAN.ACK [local | global [regions] [timeout_ms] | table]`: shows or
/// sets when this connection's writes are acknowledged. `global` waits
/// until `regions` regions (default all, the writer's included) have
/// applied each write, at most `timeout_ms` (default 5000); `table` goes
/// back to each table's configured default.
pub fn ack(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let all = shared.topology().regions.len();
    if args.len() == 1 {
        return Reply::text(match session.write_ack {
            None => "table".to_string(),
            Some(WriteAck::Local) => "local".to_string(),
            Some(WriteAck::Global { regions }) => {
                format!("global {regions} {}", session.ack_timeout_ms)
            }
        });
    }
    if is(&args[1], "local") || is(&args[1], "table") {
        if args.len() != 2 {
            return Reply::Error(SYNTAX.into());
        }
        session.write_ack = is(&args[1], "local").then_some(WriteAck::Local);
        return Reply::Ok;
    }
    if !is(&args[1], "global") || args.len() > 4 {
        return Reply::Error(SYNTAX.into());
    }
    let regions = match args.get(2).map(|a| int_arg(a)) {
        None => all,
        Some(Ok(n)) if n >= 1 && n as usize <= all => n as usize,
        Some(Ok(_)) => return Reply::err(format!("regions must be 1 to {all}")),
        Some(Err(_)) => return Reply::Error(NOT_INTEGER.into()),
    };
    let timeout = match args.get(3).map(|a| int_arg(a)) {
        None => session.ack_timeout_ms,
        Some(Ok(ms)) if (1..=ACK_TIMEOUT_MS_MAX as i64).contains(&ms) => ms as u64,
        Some(Ok(_)) => return Reply::err(format!("timeout_ms must be 1 to {ACK_TIMEOUT_MS_MAX}")),
        Some(Err(_)) => return Reply::Error(NOT_INTEGER.into()),
    };
    session.write_ack = Some(WriteAck::Global { regions });
    session.ack_timeout_ms = timeout;
    Reply::Ok
}
