//! `Identity::from_certificate_der` never panics on arbitrary bytes, and any identity it
//! extracts is valid (re-parses to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::identity::Identity;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = Identity::from_certificate_der(data) {
        assert_eq!(Identity::parse(identity.as_str()).unwrap(), identity);
    }
});
