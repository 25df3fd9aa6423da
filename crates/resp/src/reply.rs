//! Replies and their encoding in RESP2 or RESP3 (chosen per connection by
//! `HELLO`). Types RESP2 lacks fall back as Redis does: maps become flat
//! arrays, sets arrays, booleans integers, doubles and verbatim strings
//! bulk strings, and null is `$-1` (or `*-1` for a missing array).

use bytes::{BufMut, BytesMut};

use crate::error::ErrorReply;

/// One reply.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple string (no CR or LF inside).
    Simple(String),
    /// An error: its kind and its line, which starts with its code (`ERR`,
    /// `WRONGTYPE`, ...); see [`crate::error`].
    Error(ErrorReply),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// A missing value (`GET` of an absent key).
    Nil,
    /// A missing array (a `WAIT`-less timeout, RESP2 `*-1`).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3), a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3), an array in RESP2.
    Set(Vec<Reply>),
    /// A double (RESP3), a bulk string in RESP2.
    Double(f64),
    /// A boolean (RESP3), 1 or 0 in RESP2.
    Bool(bool),
    /// Verbatim text (RESP3 `=`, format `txt`), a bulk string in RESP2.
    Verbatim(String),
}

impl Reply {
    /// An error reply with Redis's generic code: a request that is wrong
    /// ([`ErrorReply::invalid`]).
    pub fn err(msg: impl std::fmt::Display) -> Reply {
        Reply::Error(ErrorReply::invalid(msg))
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    /// Bulk strings from byte slices.
    pub fn bulks<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Reply {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.to_vec())).collect())
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding for protocol version `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        let resp3 = proto >= 3;
        match self {
            Reply::Ok => out.put_slice(b"+OK\r\n"),
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => {
                // An error line must not break the framing.
                let clean: String = e
                    .line()
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                line(out, b'-', clean.as_bytes())
            }
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                line(
                    out,
                    if resp3 { b'~' } else { b'*' },
                    items.len().to_string().as_bytes(),
                );
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    line(out, b'%', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => line(out, b':', if *b { b"1" } else { b"0" }),
            Reply::Verbatim(s) if resp3 => {
                line(out, b'=', (s.len() + 4).to_string().as_bytes());
                out.put_slice(b"txt:");
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(s) => bulk(out, s.as_bytes()),
        }
    }

    /// Encoded size, without encoding (for reply limits).
    pub fn encoded_len(&self) -> usize {
        match self {
            Reply::Bulk(b) => b.len() + 16,
            Reply::Array(items) | Reply::Set(items) => {
                16 + items.iter().map(Reply::encoded_len).sum::<usize>()
            }
            Reply::Map(pairs) => {
                16 + pairs
                    .iter()
                    .map(|(k, v)| k.encoded_len() + v.encoded_len())
                    .sum::<usize>()
            }
            Reply::Simple(s) | Reply::Verbatim(s) => s.len() + 16,
            Reply::Error(e) => e.line().len() + 16,
            _ => 24,
        }
    }
}

fn line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(tag);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    line(out, b'$', b.len().to_string().as_bytes());
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if d.is_nan() {
        "nan".to_string()
    } else {
        format!("{d}")
    }
}

impl From<ErrorReply> for Reply {
    fn from(e: ErrorReply) -> Self {
        Reply::Error(e)
    }
}
