//! Sticky sessions by cookie: the edge sets `NAME=<instance id in hex>` on
//! the first answer, and later requests carrying it go to that instance
//! while it is eligible; when it is not (down, ejected, gone), the request
//! goes wherever the balancer says and the cookie is re-pinned there.

/// The pinned instance id in a `Cookie` header value, if `name` is set to
/// a well-formed id.
pub fn pinned(cookie_header: &str, name: &str) -> Option<u64> {
    cookie_header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| u64::from_str_radix(v.trim(), 16).ok())
}

/// The `Set-Cookie` value pinning `id`.
pub fn set_cookie(name: &str, id: u64) -> String {
    format!("{name}={id:016x}; Path=/; HttpOnly; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_junk_is_ignored() {
        let v = set_cookie("mstick", 0xabc);
        let pair = v.split(';').next().unwrap();
        assert_eq!(pinned(&format!("a=1; {pair}; b=2"), "mstick"), Some(0xabc));
        assert_eq!(pinned("mstick=zz", "mstick"), None);
        assert_eq!(pinned("other=00ab", "mstick"), None);
        assert_eq!(pinned("", "mstick"), None);
        assert_eq!(pinned("mstick", "mstick"), None);
    }
}
