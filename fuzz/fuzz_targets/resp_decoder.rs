//! Fuzzes the RESP request decoder: any bytes, delivered whole or split at
//! a fuzzer-chosen point, must decode to the same requests and the same
//! error (or need more bytes), never panic, and never return an empty
//! request or one over the limits.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use meridian_resp::proto::{Limits, RequestDecoder};

const LIMITS: Limits = Limits {
    bulk_bytes_max: 4096,
    array_len_max: 128,
    inline_bytes_max: 512,
};

type Outcome = (Vec<Vec<Vec<u8>>>, Option<String>);

fn run(chunks: &[&[u8]], authenticated: bool) -> Outcome {
    let mut d = RequestDecoder::new(LIMITS, authenticated);
    let mut buf = BytesMut::new();
    let mut reqs = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "an empty request was returned");
                    assert!(args.len() <= LIMITS.array_len_max);
                    assert!(args.iter().all(|a| a.len() <= LIMITS.bulk_bytes_max));
                    reqs.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.0.starts_with("ERR Protocol error: "), "{}", e.0);
                    return (reqs, Some(e.0));
                }
            }
        }
    }
    (reqs, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let cut = (first as usize).min(input.len());
    let authenticated = first & 1 == 0;
    let whole = run(&[input], authenticated);
    let split = run(&[&input[..cut], &input[cut..]], authenticated);
    assert_eq!(whole, split, "split at {cut} changed the outcome");
});
