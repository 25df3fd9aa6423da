//! Connection commands: `PING`, `ECHO`, `SELECT`, `AUTH`, `HELLO` and
//! `CLIENT` — the session's protocol, identity and authentication.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::server::REDIS_VERSION;
use super::{arity_error, int_arg, is, unknown_subcommand};
use crate::error::ErrorReply;
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

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
        _ => return Reply::Error(ErrorReply::syntax()),
    };
    if check_password(shared, user, password) {
        session.authenticated = true;
        session.user = String::from_utf8_lossy(user).into_owned();
        Reply::Ok
    } else {
        shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        Reply::Error(ErrorReply::wrong_pass())
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`.
pub fn hello(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let mut proto = session.proto;
    if let Some(v) = args.get(1) {
        match int_arg(v) {
            Err(_) => return Reply::err("Protocol version is not an integer or out of range"),
            Ok(v @ (2 | 3)) => proto = v as u8,
            Ok(_) => return Reply::Error(ErrorReply::no_proto()),
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
            return Reply::Error(ErrorReply::wrong_pass());
        }
        session.authenticated = true;
        session.user = String::from_utf8_lossy(user).into_owned();
    }
    if !session.authenticated {
        return Reply::Error(ErrorReply::no_auth("HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
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
