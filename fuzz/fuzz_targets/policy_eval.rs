//! `Policy::evaluate` never panics on any request, built from the fuzzer's bytes (peer, source,
//! port, method, path, host, headers) against a policy also built from them (rules of random
//! actions and fields, some values arbitrary text). Deny by default holds: a policy without
//! ALLOW rules denies every request; a request is allowed only by a named ALLOW rule;
//! `is_allowed` is the verdict in enforce mode, always `true` in audit mode.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tower_mesh::authz::policy::{Action, Mode, Policy, Verdict};
use tower_mesh::authz::{Attributes, HttpAttributes};
use tower_mesh::identity::Identity;

/// Reads the input front to back; past its end every read is zero or empty.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }

    fn take(&mut self, max: usize) -> &'a [u8] {
        let n = (usize::from(self.byte()) % (max + 1)).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.take(max)).into_owned()
    }
}

/// The fuzz crate does not depend on `http`: its `Method` is reached by inference from
/// [`HttpAttributes::method`], through the conversion `http` implements.
fn method<M: for<'b> TryFrom<&'b [u8]> + Default>(bytes: &[u8]) -> M {
    M::try_from(bytes).unwrap_or_default()
}

/// As [`method`], for the `HeaderMap` of [`HttpAttributes::headers`]: the pairs that are a
/// valid header name and value, in order.
fn header_map<M, N, V>(pairs: Vec<(&[u8], &[u8])>) -> M
where
    M: FromIterator<(N, V)>,
    N: for<'b> TryFrom<&'b [u8]>,
    V: for<'b> TryFrom<&'b [u8]>,
{
    pairs
        .into_iter()
        .filter_map(|(n, v)| Some((N::try_from(n).ok()?, V::try_from(v).ok()?)))
        .collect()
}

const FIELDS: &[(&str, &[&str])] = &[
    (
        "from.principals",
        &[
            "*",
            "spiffe://td/ns/x/*",
            "spiffe://td/ns/x/sa/y",
            "*.svc.local",
            "a.svc.local",
        ],
    ),
    (
        "from.not_principals",
        &["*", "spiffe://td/*", "a.svc.local"],
    ),
    ("from.request_principals", &["*", "iss/sub", "iss/*"]),
    ("from.not_request_principals", &["*"]),
    (
        "from.source_blocks",
        &["10.0.0.0/8", "0.0.0.0/0", "::/0", "192.168.1.5"],
    ),
    ("from.not_source_blocks", &["10.0.0.0/8", "2001:db8::/32"]),
    ("to.methods", &["GET", "POST", "PURGE"]),
    ("to.not_methods", &["GET", "DELETE"]),
    (
        "to.paths",
        &["*", "/", "/a", "/a/**", "/b/*", "/*", "/pkg.S/*", "/a/b"],
    ),
    ("to.not_paths", &["/a/**", "/x"]),
    ("to.hosts", &["*", "a.com", "*.a.com", "[::1]", "B.com:80"]),
    ("to.not_hosts", &["a.com", "*.b.com"]),
    ("when.headers.x-a", &["1", "2*", "*"]),
    ("when.claims.groups", &["admins"]),
];

fn policy(input: &mut Bytes<'_>) -> Option<Policy> {
    let mut text = String::new();
    if input.byte() & 1 == 1 {
        text.push_str("mode = \"audit\"\n");
    }
    for i in 0..input.byte() % 8 {
        let action = if input.byte() & 1 == 1 {
            "deny"
        } else {
            "allow"
        };
        text.push_str(&format!(
            "[[rules]]\nname = \"r{i}\"\naction = \"{action}\"\n"
        ));
        for (field, values) in FIELDS {
            match input.byte() % 8 {
                0 => text.push_str(&format!("{field} = {:?}\n", input.pick(values))),
                1 => text.push_str(&format!(
                    "{field} = [{:?}, {:?}]\n",
                    input.pick(values),
                    input.pick(values)
                )),
                // Arbitrary text as a value: mostly refused, which is fine.
                2 if input.byte() % 4 == 0 => {
                    text.push_str(&format!("{field} = {:?}\n", input.text(12)));
                }
                _ => {}
            }
        }
        if input.byte() % 8 == 0 {
            text.push_str(&format!(
                "to.ports = [{}]\n",
                u16::from(input.byte()) * 256 + 1
            ));
        }
    }
    Policy::from_toml_str(&text).ok()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let Some(policy) = policy(&mut input) else {
        return;
    };

    let peer = match input.byte() % 4 {
        0 => None,
        1 => Identity::parse(&format!("spiffe://td/{}", input.text(24))).ok(),
        2 => Identity::parse(&input.text(24)).ok(),
        _ => Some(Identity::parse("spiffe://td/ns/x/sa/y").expect("a valid identity")),
    };
    let source: Option<IpAddr> = match input.byte() % 3 {
        0 => None,
        1 => Some(
            <[u8; 4]>::try_from(input.take(4))
                .unwrap_or([10, 0, 0, 1])
                .into(),
        ),
        _ => Some(
            <[u8; 16]>::try_from(input.take(16))
                .unwrap_or([0; 16])
                .into(),
        ),
    };
    let port = (input.byte() & 1 == 1).then(|| u16::from_be_bytes([input.byte(), input.byte()]));
    let method = match input.byte() % 4 {
        0 => method(b"POST"),
        1 => method(input.take(8)),
        _ => method(b"GET"),
    };
    let path = match input.byte() % 3 {
        0 => input.text(32),
        _ => format!("/{}", input.text(32)),
    };
    let host = (input.byte() % 4 != 0).then(|| input.text(16));
    let mut pairs = Vec::new();
    for _ in 0..input.byte() % 4 {
        let name: &[u8] = if input.byte() & 1 == 1 {
            b"x-a"
        } else {
            input.take(6)
        };
        pairs.push((name, input.take(6)));
    }
    let headers = header_map(pairs);
    let tcp = input.byte() % 4 == 0;
    let attrs = Attributes {
        peer: peer.as_ref(),
        request_principal: None,
        source,
        port,
        http: (!tcp).then(|| HttpAttributes {
            method: &method,
            path: &path,
            host: host.as_deref(),
            headers: &headers,
        }),
    };

    let d = policy.evaluate(&attrs);
    if !policy.rules().any(|r| r.action() == Action::Allow) {
        assert_eq!(d.verdict(), Verdict::Deny);
    }
    if d.verdict() == Verdict::Allow {
        let name = d.rule().expect("an allow names its rule");
        let rule = policy
            .rules()
            .find(|r| r.name() == name)
            .expect("a rule of the policy");
        assert_eq!(rule.action(), Action::Allow);
        assert!(!d.needs_authentication());
    }
    assert_eq!(
        d.is_allowed(),
        d.verdict() == Verdict::Allow || policy.mode() == Mode::Audit
    );
});
