//! `SpiffeId::parse` never panics and accepts only the SPIFFE ID grammar (SPIFFE-ID §2):
//! `spiffe://` + a trust domain of `[a-z0-9._-]` + a non-empty path of non-empty, non-dot
//! segments of `[A-Za-z0-9._-]`, at most 2048 bytes. Accepted IDs round-trip exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::identity::{Identity, SpiffeId};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Every input through the identity parser too (any scheme, DNS names, multi-byte text):
    // it never panics, and what it accepts prints back in a form it accepts again.
    if let Ok(id) = Identity::parse(s) {
        assert_eq!(Identity::parse(id.as_str()).unwrap(), id);
    }
    match SpiffeId::parse(s) {
        Ok(id) => {
            assert_eq!(id.as_str(), s);
            assert!(s.len() <= 2048);
            let rest = s.strip_prefix("spiffe://").expect("scheme");
            let td = id.trust_domain_str();
            assert!(!td.is_empty() && td.len() <= 255);
            assert!(
                td.bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'))
            );
            assert_eq!(format!("{td}{}", id.path()), rest);
            let path = id.path();
            assert!(path.starts_with('/') && path.len() > 1);
            for segment in path[1..].split('/') {
                assert!(!segment.is_empty() && segment != "." && segment != "..");
                assert!(
                    segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                );
            }
            assert_eq!(SpiffeId::parse(id.as_str()).unwrap(), id);
            assert_eq!(Identity::parse(s).unwrap(), Identity::Spiffe(id));
        }
        Err(e) => {
            // The error names the input, cut to a bounded prefix.
            let shown = e.value().trim_end_matches('…');
            assert!(s.starts_with(shown));
            assert!(e.value().len() <= 256 + '…'.len_utf8());
            if s.starts_with("spiffe://") {
                assert!(Identity::parse(s).is_err());
            }
        }
    }
});
