//! Fuzzes the edge's two header parsers, `parse_replay`
//! (`meridian-replay: region=NAME`) and `parse_hops` (`x-meridian-hop`),
//! with the same bytes. Checked on every input:
//!
//! - neither panics: each parses or returns a `HeaderError`;
//! - a value longer than `HEADER_VALUE_BYTES_MAX` is refused as `TooLong`
//!   by both, and a shorter one never is;
//! - a parsed replay region is a valid `RegionName` that appears in the
//!   value, and `region=NAME` parses back to the same name;
//! - `parse_hops` returns at most one name per comma-separated piece (the
//!   value's commas + 1), each a valid `RegionName` found in the value,
//!   and the names joined by commas parse back to the same list.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::RegionName;
use meridian_route::policy::replay::{
    parse_hops, parse_replay, HeaderError, HEADER_VALUE_BYTES_MAX,
};

/// Whether `needle` occurs in `value` (both are short: a naive scan).
fn contains(value: &[u8], needle: &str) -> bool {
    value.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn check_length_rule<T>(value: &[u8], outcome: &Result<T, HeaderError>) {
    let too_long = value.len() > HEADER_VALUE_BYTES_MAX;
    match outcome {
        Err(HeaderError::TooLong(n)) => {
            assert!(too_long, "{} bytes refused as too long", value.len());
            assert_eq!(*n, value.len());
        }
        _ => assert!(!too_long, "{} bytes were not refused", value.len()),
    }
}

fn check_replay(value: &[u8]) {
    let outcome = parse_replay(value);
    check_length_rule(value, &outcome);
    match outcome {
        Ok(region) => {
            let name = region.as_str();
            assert!(
                RegionName::new(name).is_ok(),
                "`{name}` is not a region name"
            );
            assert!(contains(value, name), "`{name}` is not in the value");
            let again = parse_replay(format!("region={name}").as_bytes());
            assert_eq!(again.as_ref(), Ok(&region));
        }
        // The message is what the edge reports: building it must not panic.
        Err(e) => drop(e.to_string()),
    }
}

fn check_hops(value: &[u8]) {
    let outcome = parse_hops(value);
    check_length_rule(value, &outcome);
    match outcome {
        Ok(hops) => {
            let pieces = value.iter().filter(|&&b| b == b',').count() + 1;
            assert!(
                hops.len() <= pieces,
                "{} names from {pieces} pieces",
                hops.len()
            );
            for hop in &hops {
                assert!(RegionName::new(hop.as_str()).is_ok());
                assert!(contains(value, hop.as_str()), "`{hop}` is not in the value");
            }
            let joined = hops
                .iter()
                .map(RegionName::as_str)
                .collect::<Vec<_>>()
                .join(",");
            // No longer than the value: each name is a piece of it.
            assert_eq!(parse_hops(joined.as_bytes()).as_ref(), Ok(&hops));
        }
        Err(e) => drop(e.to_string()),
    }
}

fuzz_target!(|value: &[u8]| {
    check_replay(value);
    check_hops(value);
});
