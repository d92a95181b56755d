//! `discover::etcd::decode_value` (values come from whoever can write under the watched prefix)
//! never panics; what it accepts encodes back (`encode_value`) to a value that decodes to the
//! same endpoint, and what it refuses is named by its key and value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::discover::etcd::{decode_value, encode_value};

/// Bytes as the error shows them: lossy UTF-8, cut at 512 bytes, `…` when cut.
fn shown(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned();
    if b.len() > 512 {
        s.push('…');
    }
    s
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how long the key is; the rest is the value.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(split).min(rest.len()));
    match decode_value(key, value) {
        Ok(ep) => {
            let again = decode_value(key, &encode_value(&ep)).expect("an encoded endpoint decodes");
            assert_eq!(again, ep);
        }
        Err(e) => {
            assert_eq!(e.key(), shown(key));
            assert_eq!(e.value(), shown(value));
            assert!(!e.to_string().is_empty());
        }
    }
});
