//! `Policy::from_toml_str` never panics on any text. What it refuses is placed at a line and
//! column (both from 1) that exist in the text; what it accepts is accepted again the same way,
//! passes strict lints exactly when it has no lints, evaluates a TCP connection and an HTTP
//! request without panicking, and denies them both when it has no ALLOW rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::authz::policy::{Action, LintLevel, LoadOptions, Policy, Verdict};
use tower_mesh::authz::{Attributes, HttpAttributes};
use tower_mesh::identity::Identity;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_toml_str(text) {
        Ok(policy) => {
            let again = Policy::from_toml_str(text).expect("accepted twice");
            assert_eq!(again.rules().len(), policy.rules().len());
            assert_eq!(again.lints(), policy.lints());
            let strict = LoadOptions::new().lint_level(LintLevel::Deny);
            assert_eq!(
                Policy::from_toml_str_with(text, &strict).is_ok(),
                policy.lints().is_empty()
            );
            let mut names: Vec<&str> = policy.rules().map(|r| r.name().as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), policy.rules().len(), "rule names are unique");

            let peer = Identity::parse("spiffe://td/ns/x/sa/y").expect("a valid identity");
            // The fuzz crate does not depend on `http`: `Default` gives an empty `HeaderMap`
            // and `Method::GET`, their types inferred from `HttpAttributes`.
            let (headers, method) = (Default::default(), Default::default());
            let requests = [
                Attributes::default(),
                Attributes {
                    peer: Some(&peer),
                    source: Some([10, 0, 0, 1].into()),
                    port: Some(8080),
                    http: Some(HttpAttributes {
                        method: &method,
                        path: "/admin/x",
                        host: Some("api.example.com"),
                        headers: &headers,
                    }),
                    ..Attributes::default()
                },
            ];
            let has_allow = policy.rules().any(|r| r.action() == Action::Allow);
            for attrs in &requests {
                let d = policy.evaluate(attrs);
                if !has_allow {
                    assert_eq!(d.verdict(), Verdict::Deny);
                }
            }
        }
        Err(e) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(e.line() >= 1 && e.line() <= lines.len(), "{e}");
            let line_chars = lines[e.line() - 1].chars().count();
            assert!(e.column() >= 1 && e.column() <= line_chars + 1, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
});
