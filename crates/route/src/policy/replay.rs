//! The two headers edges and apps speak: `meridian-replay: region=NAME`
//! (an app asks the edge to replay the request in another region, as
//! fly.io's `fly-replay`) and `x-meridian-hop` (the regions a forwarded
//! request has passed, so it never loops). Both are parsed strictly: a
//! malformed value is an error the edge reports, never a guess.

use meridian_core::RegionName;

/// Longest header value either parser reads, bytes.
pub const HEADER_VALUE_BYTES_MAX: usize = 1024;

/// Why a replay or hop header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Longer than [`HEADER_VALUE_BYTES_MAX`].
    #[error("header value of {0} bytes is longer than {HEADER_VALUE_BYTES_MAX}")]
    TooLong(usize),
    /// Not `region=NAME`.
    #[error("expected `region=NAME`, got `{0}`")]
    Syntax(String),
    /// The name is not a region name.
    #[error("`{0}` is not a region name")]
    BadRegion(String),
}

/// Parses `region=NAME` (spaces around tolerated; further `;key=value`
/// parameters ignored, so apps can add their own).
pub fn parse_replay(value: &[u8]) -> Result<RegionName, HeaderError> {
    if value.len() > HEADER_VALUE_BYTES_MAX {
        return Err(HeaderError::TooLong(value.len()));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| HeaderError::Syntax(String::from_utf8_lossy(value).into_owned()))?;
    let first = text.split(';').next().unwrap_or_default().trim();
    let Some((key, name)) = first.split_once('=') else {
        return Err(HeaderError::Syntax(text.to_string()));
    };
    if !key.trim().eq_ignore_ascii_case("region") {
        return Err(HeaderError::Syntax(text.to_string()));
    }
    let name = name.trim();
    RegionName::new(name).map_err(|_| HeaderError::BadRegion(name.to_string()))
}

/// Parses the hop header: region names separated by commas.
pub fn parse_hops(value: &[u8]) -> Result<Vec<RegionName>, HeaderError> {
    if value.len() > HEADER_VALUE_BYTES_MAX {
        return Err(HeaderError::TooLong(value.len()));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| HeaderError::Syntax(String::from_utf8_lossy(value).into_owned()))?;
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| RegionName::new(s).map_err(|_| HeaderError::BadRegion(s.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_values() {
        assert_eq!(parse_replay(b"region=eu-west").unwrap().as_str(), "eu-west");
        assert_eq!(
            parse_replay(b" Region = ap-south ; state=x")
                .unwrap()
                .as_str(),
            "ap-south"
        );
        assert!(matches!(
            parse_replay(b"eu-west"),
            Err(HeaderError::Syntax(_))
        ));
        assert!(matches!(
            parse_replay(b"app=eu-west"),
            Err(HeaderError::Syntax(_))
        ));
        assert!(matches!(
            parse_replay(b"region=EU WEST"),
            Err(HeaderError::BadRegion(_))
        ));
        assert!(matches!(
            parse_replay(b"region="),
            Err(HeaderError::BadRegion(_))
        ));
        assert!(matches!(
            parse_replay(&[0xff, 0xfe]),
            Err(HeaderError::Syntax(_))
        ));
        assert!(matches!(
            parse_replay(&[b'a'; 2000]),
            Err(HeaderError::TooLong(2000))
        ));
    }

    #[test]
    fn hop_values() {
        let hops = parse_hops(b"us-east, eu-west").unwrap();
        assert_eq!(hops.len(), 2);
        assert!(parse_hops(b"").unwrap().is_empty());
        assert!(parse_hops(b"us-east,,").unwrap().len() == 1);
        assert!(parse_hops(b"us east").is_err());
    }

    /// Every byte string either parses or is refused; nothing panics.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(42);
        let alphabet = b"region=;, -abcXYZ09\xff\x00";
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let v: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if let Ok(r) = parse_replay(&v) {
                assert!(!r.as_str().is_empty());
            }
            let _ = parse_hops(&v);
        }
    }
}
