//! `discover::file::parse_endpoints` never panics on any text, in either format; what it accepts
//! has unique addresses and is parsed the same way twice; what it refuses is placed at a line and
//! column (both from 1) that exist in the text.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tower_mesh::discover::file::{Format, parse_endpoints};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Json, Format::Toml] {
        match parse_endpoints(text, format) {
            Ok(endpoints) => {
                let mut seen = HashSet::new();
                assert!(endpoints.iter().all(|ep| seen.insert(ep.addr())));
                assert!(endpoints.iter().all(|ep| ep.weight().get() >= 1));
                assert_eq!(parse_endpoints(text, format), Ok(endpoints));
            }
            Err(e) => {
                let lines: Vec<&str> = text.split('\n').collect();
                assert!(e.line() >= 1 && e.line() <= lines.len(), "{e}");
                let line_chars = lines[e.line() - 1].chars().count();
                assert!(e.column() >= 1 && e.column() <= line_chars + 1, "{e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
