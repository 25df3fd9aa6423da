//! The Redis client the tools' workloads use (`chaos run`, the consistency
//! and scale benchmarks): the `redis` crate, one connection per
//! [`RespConn`] (a Meridian session — its read-your-writes token — is per
//! connection), every call bounded in time.
//!
//! Replies are turned into the small [`Value`] the workloads match on, and
//! an error reply is a value, never an `Err`: the workloads record refusals
//! (`TRYAGAIN`, `READONLY`, …) as outcomes, while `Err` means the
//! connection is unusable (I/O, timeout, closed).
//!
//! Reply sizes are not bounded by the `redis` crate; the workloads talk only
//! to their own cluster's nodes, whose replies are bounded by
//! `resp.reply_bytes_max`.

use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+...`
    Simple(String),
    /// `-...`: the whole error line, code first (`TRYAGAIN table ...`).
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` (`None`: nil array).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// A bulk or simple string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

impl From<redis::Value> for Value {
    fn from(v: redis::Value) -> Value {
        match v {
            redis::Value::Nil => Value::Bulk(None),
            redis::Value::Int(n) => Value::Int(n),
            redis::Value::BulkString(b) => Value::Bulk(Some(b)),
            redis::Value::SimpleString(s) => Value::Simple(s),
            redis::Value::Okay => Value::Simple("OK".into()),
            redis::Value::Array(items) | redis::Value::Set(items) => {
                Value::Array(Some(items.into_iter().map(Value::from).collect()))
            }
            redis::Value::ServerError(e) => Value::Error(error_line(e.code(), e.details())),
            // RESP3-only shapes; the workloads speak RESP2.
            other => Value::Error(format!("ERR unexpected reply {other:?}")),
        }
    }
}

/// `CODE detail`, as the server sent it.
fn error_line(code: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{code} {d}"),
        None => code.to_string(),
    }
}

/// One connection.
pub struct RespConn {
    conn: MultiplexedConnection,
    timeout: Duration,
}

impl RespConn {
    /// Connects to `addr` (`host:port`); every later call waits at most
    /// `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(format!("redis://{addr}/"))
            .with_context(|| format!("bad Redis address {addr}"))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(RespConn { conn, timeout })
    }

    /// Sends one command and reads its reply. An error reply is a value;
    /// `Err` means the connection is unusable (I/O, timeout, closed).
    pub async fn call(&mut self, args: &[&str]) -> anyhow::Result<Value> {
        let Some((name, rest)) = args.split_first() else {
            anyhow::bail!("empty command");
        };
        let mut cmd = redis::cmd(name);
        for a in rest {
            cmd.arg(*a);
        }
        match cmd.query_async::<redis::Value>(&mut self.conn).await {
            Ok(v) => Ok(Value::from(v)),
            Err(e) if e.is_timeout() => {
                anyhow::bail!("no reply within {} ms", self.timeout.as_millis())
            }
            Err(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
            {
                Err(e).context("connection lost")
            }
            Err(e) => match e.code() {
                Some(code) => Ok(Value::Error(error_line(code, e.detail()))),
                None => Err(e).context("unusable reply"),
            },
        }
    }
}
