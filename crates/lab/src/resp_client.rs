//! A small Redis-protocol client for Meridian's own tools (`chaos run`):
//! one connection, one command at a time, every call bounded in time and
//! every reply bounded in size.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest bulk reply accepted.
pub const REPLY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest array reply accepted.
pub const REPLY_ITEMS_MAX: usize = 1 << 20;

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+...`
    Simple(String),
    /// `-...`: the whole error line.
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

/// One connection.
pub struct RespConn {
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

impl RespConn {
    /// Connects to `addr`; every later call waits at most `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            stream: BufReader::new(stream),
            timeout,
        })
    }

    /// Sends one command and reads its reply. An error reply is a value;
    /// `Err` means the connection is unusable (I/O, timeout, bad framing).
    pub async fn call(&mut self, args: &[&str]) -> anyhow::Result<Value> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            self.stream.get_mut().write_all(&out).await?;
            self.read_value().await
        })
        .await
        .with_context(|| format!("no reply within {} ms", timeout.as_millis()))?
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.stream)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            bail!("connection closed");
        }
        if !line.ends_with(b"\r\n") {
            bail!("reply line without CRLF");
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    async fn read_value(&mut self) -> anyhow::Result<Value> {
        // Arrays nest; an explicit stack keeps the future unboxed.
        let mut stack: Vec<(usize, Vec<Value>)> = Vec::new();
        loop {
            let line = self.line().await?;
            let (kind, rest) = line.split_at(1.min(line.len()));
            let mut value = match kind {
                "+" => Value::Simple(rest.to_string()),
                "-" => Value::Error(rest.to_string()),
                ":" => Value::Int(rest.parse().context("bad integer reply")?),
                "$" => {
                    let n: i64 = rest.parse().context("bad bulk length")?;
                    if n < 0 {
                        Value::Bulk(None)
                    } else if n as usize > REPLY_BYTES_MAX {
                        bail!("bulk reply of {n} bytes exceeds {REPLY_BYTES_MAX}");
                    } else {
                        let mut buf = vec![0; n as usize + 2];
                        self.stream.read_exact(&mut buf).await?;
                        buf.truncate(n as usize);
                        Value::Bulk(Some(buf))
                    }
                }
                "*" => {
                    let n: i64 = rest.parse().context("bad array length")?;
                    if n < 0 {
                        Value::Array(None)
                    } else if n as usize > REPLY_ITEMS_MAX {
                        bail!("array reply of {n} items exceeds {REPLY_ITEMS_MAX}");
                    } else if n == 0 {
                        Value::Array(Some(Vec::new()))
                    } else {
                        stack.push((n as usize, Vec::with_capacity(n as usize)));
                        continue;
                    }
                }
                _ => bail!("unexpected reply line {line:?}"),
            };
            loop {
                let Some((want, items)) = stack.last_mut() else {
                    return Ok(value);
                };
                items.push(value);
                if items.len() < *want {
                    break;
                }
                let (_, items) = stack.pop().expect("just looked");
                value = Value::Array(Some(items));
            }
        }
    }
}
