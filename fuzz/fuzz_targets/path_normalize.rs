//! `Normalizer::normalize` never panics under any combination of options; what it accepts is
//! a fixed point with nothing left to merge, resolve or decode (no `//`, no `.` or `..`
//! segment, no escaped slash or backslash, no escape of an unreserved character, escapes in
//! uppercase hex), keeps the query verbatim and always converts to an `http` `PathAndQuery`
//! with the same path and query; what it refuses names a prefix of the path, bounded.
//! `normalize_host` never panics and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::authz::{
    Backslashes, DuplicateSlashes, EscapedSlashes, Normalizer, PathCase, normalize_host,
};

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let mut n = Normalizer::new();
    if options & 1 != 0 {
        n = n.escaped_slashes(EscapedSlashes::Decode);
    }
    if options & 2 != 0 {
        n = n.backslashes(Backslashes::TreatAsSlash);
    }
    if options & 4 != 0 {
        n = n.duplicate_slashes(DuplicateSlashes::Reject);
    }
    if options & 8 != 0 {
        n = n.case(PathCase::Lowercase);
    }

    match n.normalize(s) {
        Ok(path) => {
            let p = path.as_str();
            assert!(p.starts_with('/') && path.path_and_query().is_ascii());
            assert!(path.path_and_query().len() <= s.len());
            for bad in ["//", "/./", "/../", "\\", "%2F", "%2f", "%5C", "%5c"] {
                assert!(!p.contains(bad), "{s:?} -> {p:?}");
            }
            assert!(!p.ends_with("/.") && !p.ends_with("/.."), "{s:?} -> {p:?}");
            for seg in p.split('/') {
                let head = seg.split(';').next().unwrap_or_default();
                assert!(head != "." && head != "..", "{s:?} -> {p:?}");
            }
            let bytes = p.as_bytes();
            for (i, _) in p.match_indices('%') {
                let hex = &bytes[i + 1..i + 3];
                assert!(hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')));
                let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
                assert!(
                    !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                    "{s:?}"
                );
            }
            assert_eq!(path.query(), s.split_once('?').map(|(_, q)| q));
            assert_eq!(n.normalize(path.path_and_query()).as_ref(), Ok(&path));
            let forwarded = path.clone().into_path_and_query();
            assert_eq!(forwarded.path(), p);
            assert_eq!(forwarded.query(), path.query());
        }
        Err(e) => {
            let shown = e.path().trim_end_matches('…');
            assert!(s.starts_with(shown) && !shown.contains('?'));
            assert!(e.path().len() <= 256 + '…'.len_utf8());
        }
    }

    if let Some(host) = normalize_host(s) {
        assert!(!host.is_empty() && host.len() <= 253);
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
        assert_eq!(normalize_host(&host).as_deref(), Some(host.as_str()));
    }
});
