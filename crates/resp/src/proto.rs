//! Request framing: the RESP multibulk form every client library sends
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and the inline form health checkers
//! and telnet users type (`PING\r\n`).
//!
//! The decoder is incremental: it keeps how far it got, so a 16 MiB value
//! arriving in 4 KiB reads is scanned once, not once per read. Every length
//! a client announces is checked against a named limit *before* anything is
//! allocated for it. The error texts are Redis's own, so a client sees the
//! same message from Meridian as from `redis-server`; after a protocol
//! error the server answers it and closes the connection, as Redis does.

use bytes::{Buf, Bytes, BytesMut};

/// Limits on what one request may announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (`resp.bulk_bytes_max`).
    pub bulk_bytes_max: usize,
    /// Most arguments (`resp.array_len_max`).
    pub array_len_max: usize,
    /// Longest inline line, and longest `*N`/`$N` header line.
    pub inline_bytes_max: usize,
}

/// Before authentication, Redis accepts only tiny requests, so an
/// unauthenticated peer cannot make the server buffer much.
pub const UNAUTHENTICATED_ARRAY_LEN_MAX: usize = 10;
/// Largest bulk string before authentication.
pub const UNAUTHENTICATED_BULK_BYTES_MAX: usize = 16 * 1024;

/// Bytes reserved ahead for an announced bulk string at most; larger
/// values grow the buffer as their bytes arrive, so a client that announces
/// 16 MiB and sends nothing costs nothing.
const RESERVE_AHEAD_MAX: usize = 1024 * 1024;

/// A malformed request. The connection answers it and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: &str) -> Self {
        ProtocolError(format!("ERR Protocol error: {what}"))
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Idle,
    /// Inside `*N`: `remaining` arguments to read.
    Args { remaining: usize },
    /// Inside `$len`: the argument's bytes (and CRLF) are awaited.
    Bulk { remaining: usize, len: usize },
}

/// Incremental request decoder.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
    args: Vec<Bytes>,
    /// Whether the connection is authenticated (or needs no auth).
    pub authenticated: bool,
}

impl RequestDecoder {
    /// A decoder for a new connection.
    pub fn new(limits: Limits, authenticated: bool) -> Self {
        RequestDecoder {
            limits,
            state: State::Idle,
            args: Vec::new(),
            authenticated,
        }
    }

    /// Takes the next complete request from `buf`: its arguments, never
    /// empty. `Ok(None)` means more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'*' {
                        match self.inline(buf)? {
                            Some(args) if args.is_empty() => continue,
                            other => return Ok(other),
                        }
                    }
                    let Some(n) = self.header(buf, "too big mbulk count string")? else {
                        return Ok(None);
                    };
                    self.check_array_len(n)?;
                    if n <= 0 {
                        // `*0` and `*-1` are empty requests: skipped.
                        continue;
                    }
                    let n = n as usize;
                    self.args = Vec::with_capacity(n.min(1024));
                    self.state = State::Args { remaining: n };
                }
                State::Args { remaining } => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::new(&format!(
                            "expected '$', got '{}'",
                            first as char
                        )));
                    }
                    let Some(len) = self.header(buf, "too big bulk count string")? else {
                        return Ok(None);
                    };
                    self.check_bulk_len(len)?;
                    let len = len as usize;
                    buf.reserve((len + 2).min(RESERVE_AHEAD_MAX));
                    self.state = State::Bulk { remaining, len };
                }
                State::Bulk { remaining, len } => {
                    if buf.len() < len + 2 {
                        return Ok(None);
                    }
                    let arg = buf.split_to(len).freeze();
                    // Redis skips the two bytes after a bulk without looking
                    // at them; so do we, to answer every input as it does.
                    buf.advance(2);
                    self.args.push(arg);
                    if remaining == 1 {
                        self.state = State::Idle;
                        return Ok(Some(std::mem::take(&mut self.args)));
                    }
                    self.state = State::Args {
                        remaining: remaining - 1,
                    };
                }
            }
        }
    }

    /// Refuses a request of more than the allowed `n` arguments (fewer
    /// before authentication).
    fn check_array_len(&self, n: i64) -> Result<(), ProtocolError> {
        let max = if self.authenticated {
            self.limits.array_len_max as i64
        } else {
            UNAUTHENTICATED_ARRAY_LEN_MAX as i64
        };
        if n > max {
            return Err(ProtocolError::new(if self.authenticated {
                "invalid multibulk length"
            } else {
                "unauthenticated multibulk length"
            }));
        }
        Ok(())
    }

    /// Refuses a negative or too long bulk string (shorter ones before
    /// authentication).
    fn check_bulk_len(&self, len: i64) -> Result<(), ProtocolError> {
        let max = if self.authenticated {
            self.limits.bulk_bytes_max as i64
        } else {
            UNAUTHENTICATED_BULK_BYTES_MAX as i64
        };
        if len < 0 || len > max {
            return Err(ProtocolError::new(if self.authenticated || len < 0 {
                "invalid bulk length"
            } else {
                "unauthenticated bulk length"
            }));
        }
        Ok(())
    }

    /// Reads a `*N` / `$N` header line; `None` when incomplete.
    fn header(&self, buf: &mut BytesMut, too_big: &str) -> Result<Option<i64>, ProtocolError> {
        let Some(cr) = buf.iter().position(|&b| b == b'\r') else {
            if buf.len() > self.limits.inline_bytes_max {
                return Err(ProtocolError::new(too_big));
            }
            return Ok(None);
        };
        if cr > self.limits.inline_bytes_max {
            return Err(ProtocolError::new(too_big));
        }
        if buf.len() < cr + 2 {
            return Ok(None);
        }
        let what = if buf[0] == b'*' {
            "invalid multibulk length"
        } else {
            "invalid bulk length"
        };
        let n = parse_i64(&buf[1..cr]).ok_or_else(|| ProtocolError::new(what))?;
        buf.advance(cr + 2);
        Ok(Some(n))
    }

    /// Reads an inline command line; `Some(empty)` for a blank line.
    fn inline(&self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > self.limits.inline_bytes_max {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(None);
        };
        if nl > self.limits.inline_bytes_max {
            return Err(ProtocolError::new("too big inline request"));
        }
        let line = buf.split_to(nl + 1);
        let mut line = &line[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let args =
            split_inline(line).ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        let max = if self.authenticated {
            self.limits.array_len_max
        } else {
            UNAUTHENTICATED_ARRAY_LEN_MAX
        };
        if args.len() > max {
            return Err(ProtocolError::new("invalid multibulk length"));
        }
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }
}

/// A strict decimal integer, as Redis's `string2ll`: optional `-`, digits,
/// no leading `+`, no spaces, no leading zeros.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
        || (neg && digits == b"0")
    {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    s.parse().ok()
}

/// Splits an inline line into arguments the way `redis-cli` and Redis do:
/// spaces separate, `"..."` allows escapes (`\n`, `\xHH`, ...), `'...'`
/// is literal but for `\'`. `None` for unbalanced quotes.
pub fn split_inline(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && separator(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match quote {
                Some(b'"') => {
                    if let Some((byte, len)) = double_quoted_escape(line, i) {
                        arg.push(byte);
                        i += len;
                        continue;
                    }
                    if c == b'"' {
                        // A closing quote must end the argument.
                        if line.get(i + 1).is_some_and(|n| !separator(*n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    arg.push(c);
                }
                Some(_) => {
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        arg.push(b'\'');
                        i += 2;
                        continue;
                    }
                    if c == b'\'' {
                        if line.get(i + 1).is_some_and(|n| !separator(*n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    arg.push(c);
                }
                None => match c {
                    c if separator(c) => break,
                    b'"' | b'\'' => quote = Some(c),
                    _ => arg.push(c),
                },
            }
            i += 1;
        }
        args.push(arg);
    }
}

/// The escape at `line[i]` inside double quotes, if one starts there:
/// the byte it stands for and its length (`\\x41` is 4, `\\n` is 2).
fn double_quoted_escape(line: &[u8], i: usize) -> Option<(u8, usize)> {
    if line[i] != b'\\' {
        return None;
    }
    if i + 3 < line.len() && line[i + 1] == b'x' {
        let hex = |b: u8| (b as char).to_digit(16);
        if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
            return Some(((h * 16 + l) as u8, 4));
        }
    }
    if i + 1 < line.len() {
        let byte = match line[i + 1] {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => 8,
            b'a' => 7,
            other => other,
        };
        return Some((byte, 2));
    }
    None
}

/// Bytes that separate inline arguments. The same set ends an argument
/// and is skipped between arguments (a mismatch once looped forever on a
/// NUL byte: found by the fuzzer).
fn separator(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

#[cfg(test)]
mod tests;
