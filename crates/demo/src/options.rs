//! The app's options: [`DemoArgs`] as the command line gives them, and
//! [`DemoArgs::resolve`], which fills what is missing from the environment
//! into a checked [`DemoOptions`] or an [`OptionsError`] naming the flag and
//! the variable to set.
//!
//! The crate reads no environment itself (only the binary does, as
//! ARCHITECTURE.md requires): `resolve` takes a lookup function, so the
//! tests give it a map.

use std::net::SocketAddr;

use crate::names::{self, NAME_RULE};

/// Default lifetime of a login session, seconds: one hour, long enough for a
/// demo walk-through, short enough that abandoned sessions go away.
pub const SESSION_TTL_S_DEFAULT: u64 = 3_600;

/// Longest session lifetime accepted: a week. Longer sessions are a
/// security smell, and the bound keeps `EX` far from overflow.
pub const SESSION_TTL_S_MAX: u64 = 7 * 24 * 3_600;

/// Default time a session-consistent request waits for this region to apply
/// the caller's causal token (`MERIDIAN.AFTER`): two seconds covers the
/// emulated WAN's longest round trip several times over.
pub const SESSION_WAIT_MS_DEFAULT: u64 = 2_000;

/// Longest wait accepted: Meridian's own `MERIDIAN.AFTER` limit.
pub const SESSION_WAIT_MS_MAX: u64 = 30_000;

/// Where the listen port comes from when `--listen` is not given (the
/// convention of platforms that start apps: `PORT`).
pub const ENV_PORT: &str = "PORT";
/// The region's name.
pub const ENV_REGION: &str = "MERIDIAN_REGION";
/// The region's Redis endpoint, `HOST:PORT`.
pub const ENV_REDIS: &str = "MERIDIAN_REDIS";
/// This instance's name.
pub const ENV_INSTANCE: &str = "MERIDIAN_INSTANCE";

/// `meridian demo-app`'s command line. Every value left out is taken from
/// the environment (see [`DemoArgs::resolve`]).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on [default: 127.0.0.1:$PORT].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This app's region, as it reports it [default: $MERIDIAN_REGION].
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// This instance's name, sent in `x-meridian-instance`
    /// [default: $MERIDIAN_INSTANCE, else the process id].
    #[arg(long, value_name = "I")]
    pub instance: Option<String>,
    /// The region's Meridian Redis endpoint, HOST:PORT [default: $MERIDIAN_REDIS].
    #[arg(long, value_name = "HOST:PORT")]
    pub redis: Option<String>,
    /// Lifetime of a login session, seconds (at most a week).
    #[arg(long, default_value_t = SESSION_TTL_S_DEFAULT)]
    pub session_ttl_s: u64,
    /// How long a request waits for this region to apply the caller's
    /// causal token before it answers 503, ms (at most 30000).
    #[arg(long, default_value_t = SESSION_WAIT_MS_DEFAULT)]
    pub session_wait_ms: u64,
}

/// What [`crate::run`] needs, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// The region the app reports (`/whoami`, answers).
    pub region: String,
    /// The instance name (`x-meridian-instance`, answers).
    pub instance: String,
    /// The region's Redis endpoint, `HOST:PORT`.
    pub redis: String,
    /// Lifetime of a login session, seconds.
    pub session_ttl_s: u64,
    /// Longest wait for the caller's causal token, ms.
    pub session_wait_ms: u64,
}

/// Why the options do not resolve; each names what to set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// A required value was given neither as a flag nor in the environment.
    #[error("{what} is required: give {flag} or set {env}")]
    Missing {
        /// What the value is.
        what: &'static str,
        /// The flag that gives it.
        flag: &'static str,
        /// The environment variable that gives it.
        env: &'static str,
    },
    /// A value was given but is not usable.
    #[error("{source_name} = {value:?}: {reason}")]
    Invalid {
        /// The flag or variable it came from.
        source_name: String,
        /// The value as given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl DemoArgs {
    /// Fills what the command line left out from `env` (`PORT`,
    /// `MERIDIAN_REGION`, `MERIDIAN_REDIS`, `MERIDIAN_INSTANCE`; an empty
    /// variable counts as unset) and checks every value. `pid` names the
    /// instance when nothing else does.
    pub fn resolve(
        self,
        env: impl Fn(&str) -> Option<String>,
        pid: u32,
    ) -> Result<DemoOptions, OptionsError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let listen = resolve_listen(self.listen, env(ENV_PORT))?;
        let (region, region_from) =
            pick(self.region, "--region", ENV_REGION, &env).ok_or(OptionsError::Missing {
                what: "the region",
                flag: "--region",
                env: ENV_REGION,
            })?;
        check_name(&region, region_from)?;
        let (redis, redis_from) =
            pick(self.redis, "--redis", ENV_REDIS, &env).ok_or(OptionsError::Missing {
                what: "the region's Redis endpoint",
                flag: "--redis",
                env: ENV_REDIS,
            })?;
        check_host_port(&redis, redis_from)?;
        let (instance, instance_from) = pick(self.instance, "--instance", ENV_INSTANCE, &env)
            .unwrap_or_else(|| (pid.to_string(), "the process id"));
        check_name(&instance, instance_from)?;
        in_range(self.session_ttl_s, 1..=SESSION_TTL_S_MAX, "--session-ttl-s")?;
        in_range(
            self.session_wait_ms,
            0..=SESSION_WAIT_MS_MAX,
            "--session-wait-ms",
        )?;
        Ok(DemoOptions {
            listen,
            region,
            instance,
            redis,
            session_ttl_s: self.session_ttl_s,
            session_wait_ms: self.session_wait_ms,
        })
    }
}

/// The flag's value, else the variable's, with the name of where it came
/// from.
fn pick(
    flag_value: Option<String>,
    flag: &'static str,
    var: &'static str,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<(String, &'static str)> {
    match flag_value {
        Some(v) => Some((v, flag)),
        None => env(var).map(|v| (v, var)),
    }
}

/// `--listen`, else `127.0.0.1:$PORT`: loopback, because the edge in front
/// of the app is what faces clients.
fn resolve_listen(
    listen: Option<String>,
    port: Option<String>,
) -> Result<SocketAddr, OptionsError> {
    if let Some(addr) = listen {
        return addr.parse().map_err(|_| OptionsError::Invalid {
            source_name: "--listen".into(),
            value: addr,
            reason: "not an IP:PORT socket address".into(),
        });
    }
    let Some(port) = port else {
        return Err(OptionsError::Missing {
            what: "the listen address",
            flag: "--listen",
            env: ENV_PORT,
        });
    };
    match port.parse::<u16>() {
        Ok(p) => Ok(SocketAddr::from(([127, 0, 0, 1], p))),
        Err(_) => Err(OptionsError::Invalid {
            source_name: ENV_PORT.into(),
            value: port,
            reason: "not a port number (0 to 65535)".into(),
        }),
    }
}

/// Region and instance names go into answers and a header: the same rule
/// as the app's inputs keeps them printable and short.
fn check_name(value: &str, from: &str) -> Result<(), OptionsError> {
    if names::is_name(value) {
        return Ok(());
    }
    Err(OptionsError::Invalid {
        source_name: from.into(),
        value: value.into(),
        reason: format!("must be {NAME_RULE}"),
    })
}

/// `HOST:PORT` with a non-empty host and a numeric port (`[::1]:6379` too).
fn check_host_port(value: &str, from: &str) -> Result<(), OptionsError> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        && !value.contains(['/', '@', ' ']);
    if ok {
        return Ok(());
    }
    Err(OptionsError::Invalid {
        source_name: from.into(),
        value: value.into(),
        reason: "must be HOST:PORT, e.g. 127.0.0.1:7001".into(),
    })
}

fn in_range(
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    flag: &str,
) -> Result<(), OptionsError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(OptionsError::Invalid {
        source_name: flag.into(),
        value: value.to_string(),
        reason: format!("must be {} to {}", range.start(), range.end()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn args() -> DemoArgs {
        DemoArgs {
            session_ttl_s: SESSION_TTL_S_DEFAULT,
            session_wait_ms: SESSION_WAIT_MS_DEFAULT,
            ..DemoArgs::default()
        }
    }

    #[test]
    fn the_environment_fills_what_the_flags_leave_out() {
        let opts = args()
            .resolve(
                env(&[
                    ("PORT", "8080"),
                    ("MERIDIAN_REGION", "us-east"),
                    ("MERIDIAN_REDIS", "127.0.0.1:7001"),
                ]),
                4242,
            )
            .unwrap();
        assert_eq!(opts.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(opts.region, "us-east");
        assert_eq!(opts.redis, "127.0.0.1:7001");
        assert_eq!(opts.instance, "4242", "the pid names an unnamed instance");
        assert_eq!(opts.session_ttl_s, 3_600);
    }

    #[test]
    fn flags_win_over_the_environment() {
        let opts = DemoArgs {
            listen: Some("0.0.0.0:9000".into()),
            region: Some("eu-west".into()),
            instance: Some("web-1".into()),
            redis: Some("[::1]:6379".into()),
            ..args()
        }
        .resolve(
            env(&[
                ("PORT", "8080"),
                ("MERIDIAN_REGION", "us-east"),
                ("MERIDIAN_REDIS", "127.0.0.1:7001"),
                ("MERIDIAN_INSTANCE", "from-env"),
            ]),
            1,
        )
        .unwrap();
        assert_eq!(opts.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(opts.region, "eu-west");
        assert_eq!(opts.instance, "web-1");
        assert_eq!(opts.redis, "[::1]:6379");
    }

    #[test]
    fn a_missing_value_names_its_flag_and_variable() {
        let e = args()
            .resolve(env(&[("MERIDIAN_REGION", "us-east")]), 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the listen address is required: give --listen or set PORT"
        );
        let e = args()
            .resolve(env(&[("PORT", "1"), ("MERIDIAN_REDIS", "h:1")]), 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the region is required: give --region or set MERIDIAN_REGION"
        );
        // An empty variable is as good as unset.
        let e = args()
            .resolve(
                env(&[
                    ("PORT", "1"),
                    ("MERIDIAN_REGION", "r"),
                    ("MERIDIAN_REDIS", ""),
                ]),
                1,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the region's Redis endpoint is required: give --redis or set MERIDIAN_REDIS"
        );
    }

    #[test]
    fn bad_values_are_refused_with_where_they_came_from() {
        let base = [
            ("PORT", "8080"),
            ("MERIDIAN_REGION", "us-east"),
            ("MERIDIAN_REDIS", "127.0.0.1:7001"),
        ];
        let with = |k: &'static str, v: &'static str| {
            let mut e: Vec<(&str, &str)> = base.iter().copied().filter(|(n, _)| *n != k).collect();
            e.push((k, v));
            args().resolve(env(&e), 1).unwrap_err().to_string()
        };
        assert!(with("PORT", "http").starts_with("PORT = \"http\": not a port"));
        assert!(with("MERIDIAN_REDIS", "redis://h:1").contains("must be HOST:PORT"));
        assert!(with("MERIDIAN_REDIS", "nohost").contains("must be HOST:PORT"));
        assert!(with("MERIDIAN_REDIS", ":6379").contains("must be HOST:PORT"));
        assert!(with("MERIDIAN_REGION", "us east").starts_with("MERIDIAN_REGION = "));
        assert!(with("MERIDIAN_INSTANCE", "a/b").contains("[A-Za-z0-9_.-]"));
        let e = DemoArgs {
            listen: Some("localhost".into()),
            ..args()
        }
        .resolve(env(&base), 1)
        .unwrap_err();
        assert!(e.to_string().starts_with("--listen = \"localhost\""), "{e}");
        let e = DemoArgs {
            session_ttl_s: 0,
            ..args()
        }
        .resolve(env(&base), 1)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--session-ttl-s = \"0\": must be 1 to 604800"
        );
        let e = DemoArgs {
            session_wait_ms: 30_001,
            ..args()
        }
        .resolve(env(&base), 1)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--session-wait-ms = \"30001\": must be 0 to 30000"
        );
    }
}
