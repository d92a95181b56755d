//! `DnsTarget::from_str` never panics; what it accepts round-trips through `Display`, agrees
//! with the `host`/`srv` constructors and is plain ASCII DNS syntax; what it refuses is an
//! `InvalidTarget` naming the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::discover::dns::{DnsError, DnsTarget};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match s.parse::<DnsTarget>() {
        Ok(target) => {
            assert_eq!(
                target.to_string().parse::<DnsTarget>().ok().as_ref(),
                Some(&target)
            );
            let name = target.name();
            assert!(name.len() <= 254 && name.is_ascii() && !name.is_empty());
            assert!(!name.contains(".."));
            match target.port() {
                Some(port) => {
                    assert_ne!(port, 0);
                    assert_eq!(DnsTarget::host(name, port).ok().as_ref(), Some(&target));
                }
                None => {
                    assert!(name.starts_with('_'));
                    assert_eq!(DnsTarget::srv(name).ok().as_ref(), Some(&target));
                }
            }
        }
        Err(DnsError::InvalidTarget { input, reason }) => {
            assert_eq!(input, s);
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("unexpected error kind for {s:?}: {other:?}"),
    }
});
