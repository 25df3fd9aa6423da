//! Server commands: `COMMAND`, `CONFIG GET` and `INFO`, with the `INFO`
//! sections and `CONFIG` parameters read off the shared state.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{arity_error, is, unknown_subcommand, COMMANDS};
use crate::glob;
use crate::reply::Reply;
use crate::session::Session;
use crate::shared::Shared;

/// The Redis version Meridian answers as: the command set and replies
/// follow Redis 7.2, and clients pick features by this number.
pub const REDIS_VERSION: &str = "7.2.0";

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
            "persistence" => shared.info_persistence(),
            "stats" => shared.info_stats(),
            "replication" => shared.info_replication(),
            "keyspace" => match super::keys::keyspace(shared) {
                Ok(Some(line)) => vec![("db0".into(), line)],
                Ok(None) => vec![],
                Err(r) => return r,
            },
            _ => unreachable!("sections come from DEFAULT"),
        };
        let _ = write!(text, "# {}\r\n", section_title(section));
        for (k, v) in lines {
            let _ = write!(text, "{k}:{v}\r\n");
        }
        text.push_str("\r\n");
    }
    Reply::Verbatim(text)
}

/// `Server` for `server`: how `INFO` titles a section.
fn section_title(section: &str) -> String {
    let mut c = section.chars();
    let first = c
        .next()
        .expect("section names are not empty")
        .to_ascii_uppercase();
    format!("{first}{}", c.as_str())
}

impl Shared {
    /// `INFO persistence`.
    pub fn info_persistence(&self) -> Vec<(String, String)> {
        vec![
            ("loading".into(), "0".into()),
            ("durability".into(), self.durability.clone()),
            (
                "aof_enabled".into(),
                if self.durability == "fsync" { "1" } else { "0" }.into(),
            ),
        ]
    }

    /// `INFO replication`: this region's role, then the node's lines.
    pub fn info_replication(&self) -> Vec<(String, String)> {
        let mut l = vec![
            ("role".to_string(), "master".to_string()),
            ("meridian_role".into(), "active-active".into()),
            ("region".into(), self.region.to_string()),
        ];
        l.extend(self.cluster.replication());
        l
    }

    /// `INFO server`.
    pub fn info_server(&self) -> Vec<(String, String)> {
        let up = self.started.elapsed().as_secs();
        vec![
            ("redis_version".into(), REDIS_VERSION.into()),
            ("meridian_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("redis_mode".into(), "standalone".into()),
            ("arch_bits".into(), (usize::BITS).to_string()),
            ("process_id".into(), std::process::id().to_string()),
            ("tcp_port".into(), self.addr.port().to_string()),
            ("uptime_in_seconds".into(), up.to_string()),
            ("uptime_in_days".into(), (up / 86_400).to_string()),
        ]
    }

    /// `INFO clients`.
    pub fn info_clients(&self) -> Vec<(String, String)> {
        vec![
            (
                "connected_clients".into(),
                self.stats.connected.load(Ordering::Relaxed).to_string(),
            ),
            ("maxclients".into(), self.resp.connections_max.to_string()),
            (
                "blocked_clients".into(),
                self.stats.blocked.load(Ordering::Relaxed).to_string(),
            ),
        ]
    }

    /// `INFO stats`.
    pub fn info_stats(&self) -> Vec<(String, String)> {
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        vec![
            (
                "total_connections_received".into(),
                n(&s.connections_received),
            ),
            ("total_commands_processed".into(), n(&s.commands_processed)),
            ("rejected_connections".into(), n(&s.rejected_connections)),
            ("total_error_replies".into(), n(&s.error_replies)),
            ("protocol_errors".into(), n(&s.protocol_errors)),
            ("auth_failures".into(), n(&s.auth_failures)),
        ]
    }

    /// `CONFIG GET` parameters.
    pub fn config_params(&self) -> Vec<(&'static str, String)> {
        let r = &self.resp;
        vec![
            ("maxclients", r.connections_max.to_string()),
            ("proto-max-bulk-len", r.bulk_bytes_max.to_string()),
            ("databases", "1".into()),
            (
                "appendonly",
                if self.durability == "fsync" {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ),
            (
                "appendfsync",
                if self.durability == "fsync" {
                    "always"
                } else {
                    "no"
                }
                .into(),
            ),
            ("save", String::new()),
            ("timeout", "0".into()),
            ("port", self.addr.port().to_string()),
            ("bind", self.addr.ip().to_string()),
            ("maxmemory", "0".into()),
            (
                "requirepass",
                if r.auth_required() { "********" } else { "" }.into(),
            ),
        ]
    }
}
