//! The two cookies the app uses: `meridian-session` (which session) and
//! `meridian-token` (the caller's causal token, carried from region to
//! region so a read waits for what the caller already saw), parsed from a
//! request's `Cookie` headers and written as `Set-Cookie` values.
//!
//! A causal token is `region:seq,region:seq`; a comma is not allowed in a
//! cookie value (RFC 6265 `cookie-octet`), so the cookie carries it as
//! `%2C` and reading turns it back.

use axum::http::header::COOKIE;
use axum::http::HeaderMap;

use crate::names;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "meridian-session";

/// The token cookie's name.
pub const TOKEN_COOKIE: &str = "meridian-token";

/// Longest token accepted, bytes: a token holds one `region:seq` (at most
/// 32 + 1 + 20 bytes) per region, so 2 KiB is over thirty regions, and
/// nothing larger is sent on to Redis.
pub const TOKEN_BYTES_MAX: usize = 2_048;

/// The app's cookies in one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cookies {
    /// The session id, if it has the shape of one (anything else is as if
    /// absent: it cannot name a session).
    pub session: Option<String>,
    /// The causal token as sent, decoded; `None` when absent or empty.
    pub token: Option<String>,
}

/// Why a token cookie is refused (a 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the {TOKEN_COOKIE} cookie is longer than {TOKEN_BYTES_MAX} bytes")]
pub struct TokenTooLong;

impl Cookies {
    /// Reads every `Cookie` header; the first cookie of each name counts
    /// (browsers send the most specific path first).
    pub fn from_headers(headers: &HeaderMap) -> Result<Cookies, TokenTooLong> {
        let mut out = Cookies::default();
        let mut session_seen = false;
        for value in headers.get_all(COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for (name, value) in pairs(text) {
                if name == SESSION_COOKIE && !session_seen {
                    session_seen = true;
                    out.session = names::is_session_id(value).then(|| value.to_string());
                } else if name == TOKEN_COOKIE && out.token.is_none() {
                    if value.len() > TOKEN_BYTES_MAX {
                        return Err(TokenTooLong);
                    }
                    out.token = Some(decode_token(value)).filter(|t| !t.is_empty());
                }
            }
        }
        Ok(out)
    }
}

/// `name=value` pairs of one `Cookie` header, trimmed, quotes dropped.
fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name.trim(), value))
    })
}

/// A token as a cookie value.
pub fn encode_token(token: &str) -> String {
    token.replace(',', "%2C")
}

/// A cookie value back to a token (a raw comma, from a lenient client, is
/// accepted as it is).
pub fn decode_token(value: &str) -> String {
    value.replace("%2C", ",").replace("%2c", ",")
}

/// `Set-Cookie` for a new session: not readable by scripts, and not sent
/// on cross-site sub-requests. No `Max-Age`: the server-side key's TTL is
/// what ends the session.
pub fn session_set_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax")
}

/// `Set-Cookie` for the caller's latest causal token.
pub fn token_set_cookie(token: &str) -> String {
    format!("{TOKEN_COOKIE}={}; Path=/", encode_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn both_cookies_are_found_among_others() {
        let c = Cookies::from_headers(&headers(&[&format!(
            "theme=dark; meridian-session={ID};meridian-token=us-east:3%2Ceu-west:7; x=\"y\""
        )]))
        .unwrap();
        assert_eq!(c.session.as_deref(), Some(ID));
        assert_eq!(c.token.as_deref(), Some("us-east:3,eu-west:7"));
    }

    #[test]
    fn cookies_spread_over_headers_and_quoted_values_are_read() {
        let c = Cookies::from_headers(&headers(&[
            &format!("meridian-session=\"{ID}\""),
            "meridian-token=us-east:1,eu-west:2",
        ]))
        .unwrap();
        assert_eq!(c.session.as_deref(), Some(ID));
        assert_eq!(c.token.as_deref(), Some("us-east:1,eu-west:2"));
    }

    #[test]
    fn the_first_of_a_name_counts_and_junk_is_ignored() {
        let c = Cookies::from_headers(&headers(&[&format!(
            "meridian-session=nonsense; meridian-session={ID}; novalue; =x; meridian-token="
        )]))
        .unwrap();
        assert_eq!(
            c.session, None,
            "a malformed first session cookie wins, as nothing"
        );
        assert_eq!(c.token, None, "an empty token is no token");
        assert_eq!(
            Cookies::from_headers(&HeaderMap::new()),
            Ok(Cookies::default())
        );
    }

    #[test]
    fn an_oversized_token_is_refused() {
        let long = format!("meridian-token={}", "a".repeat(TOKEN_BYTES_MAX + 1));
        assert_eq!(Cookies::from_headers(&headers(&[&long])), Err(TokenTooLong));
    }

    #[test]
    fn set_cookie_values_round_trip_the_token() {
        assert_eq!(
            session_set_cookie(ID),
            format!("meridian-session={ID}; Path=/; HttpOnly; SameSite=Lax")
        );
        let set = token_set_cookie("us-east:3,eu-west:7");
        assert_eq!(set, "meridian-token=us-east:3%2Ceu-west:7; Path=/");
        let sent = set.split(';').next().unwrap();
        let c = Cookies::from_headers(&headers(&[sent])).unwrap();
        assert_eq!(c.token.as_deref(), Some("us-east:3,eu-west:7"));
    }
}
