//! Authorization policy evaluation at 10, 100 and 1,000 rules (target: ≤ 1 µs at 100 rules,
//! and no super-linear growth with the number of rules).
//!
//! The policies are shaped like a mesh's: one ALLOW rule per service path (`/svcN/**`, with
//! principals of the caller's namespace and methods), every fifth rule by host instead, every
//! tenth a DENY rule for the service's `/admin` subtree, and two rules the index cannot narrow
//! (a wildcard host, a `not_paths`), consulted by every request.
//!
//! Groups (`authz/evaluate/<case>/<rules>`):
//!
//! - `allow`: a request matching a path-indexed ALLOW rule in the middle of the file;
//! - `by-host`: a request matching a host-indexed ALLOW rule;
//! - `deny`: a request denied by a DENY rule;
//! - `default`: a request no rule matches (denied by default after its candidates);
//! - `tcp`: a TCP connection (no HTTP part), denied by the first DENY rule: on TCP every DENY
//!   rule is a candidate (Istio's TCP rule makes their HTTP fields match);
//! - `tcp-worst`: a TCP connection no DENY rule matches, so all of them are consulted: linear
//!   in the DENY rules, once per connection.
//!
//! Run with `cargo bench --features authz --bench authz`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use tower_mesh::authz::policy::{Policy, Verdict};
use tower_mesh::authz::{Attributes, HttpAttributes};
use tower_mesh::identity::Identity;

const SIZES: [usize; 3] = [10, 100, 1_000];

fn policy_text(rules: usize) -> String {
    let mut text = String::new();
    let indexed = rules.saturating_sub(2);
    for i in 0..indexed {
        let ns = i % 20;
        if i % 10 == 5 {
            text += &format!(
                "[[rules]]\nname = \"deny-{i}\"\naction = \"deny\"\n\
                 from.not_principals = [\"spiffe://td/ns/ops/*\"]\n\
                 to.paths = [\"/svc{i}/admin/**\"]\n"
            );
        } else if i % 5 == 4 {
            text += &format!(
                "[[rules]]\nname = \"host-{i}\"\naction = \"allow\"\n\
                 from.principals = [\"spiffe://td/ns/ns{ns}/*\"]\n\
                 to.hosts = [\"svc{i}.example.com\"]\nto.methods = [\"GET\", \"POST\"]\n"
            );
        } else {
            text += &format!(
                "[[rules]]\nname = \"allow-{i}\"\naction = \"allow\"\n\
                 from.principals = [\"spiffe://td/ns/ns{ns}/*\", \"spiffe://td/ns/shared/sa/gw\"]\n\
                 to.methods = [\"GET\", \"POST\"]\nto.paths = [\"/svc{i}/**\", \"/pkg.Svc{i}/*\"]\n\
                 when.headers.x-tenant = [\"acme\", \"beta-*\"]\n"
            );
        }
    }
    text += "[[rules]]\nname = \"wild\"\naction = \"allow\"\nfrom.principals = [\"spiffe://td/ns/ops/*\"]\n\
             to.hosts = [\"*.ops.example.com\"]\n";
    text += "[[rules]]\nname = \"neg\"\naction = \"allow\"\nfrom.principals = [\"spiffe://td/ns/root/sa/x\"]\n\
             to.not_paths = [\"/secret/**\"]\n";
    text
}

struct Request {
    peer: Identity,
    source: IpAddr,
    method: Method,
    path: String,
    host: String,
    headers: HeaderMap,
    tcp: bool,
}

impl Request {
    fn new(peer: &str, path: &str, host: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("beta-7"));
        headers.insert("user-agent", HeaderValue::from_static("bench/1"));
        Request {
            peer: Identity::parse(peer).unwrap(),
            source: "10.1.2.3".parse().unwrap(),
            method: Method::GET,
            path: path.to_owned(),
            host: host.to_owned(),
            headers,
            tcp: false,
        }
    }

    fn attrs(&self) -> Attributes<'_> {
        Attributes {
            peer: Some(&self.peer),
            request_principal: None,
            source: Some(self.source),
            port: Some(8080),
            http: (!self.tcp).then(|| HttpAttributes {
                method: &self.method,
                path: &self.path,
                host: Some(&self.host),
                headers: &self.headers,
            }),
        }
    }
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("authz/evaluate");
    for rules in SIZES {
        let policy = Policy::from_toml_str(&policy_text(rules)).unwrap();
        assert_eq!(policy.rules().len(), rules);
        // Rules near the middle: path-indexed ALLOW (i % 10 == 1), by host (4), DENY (5).
        let mid = (rules / 2 / 10) * 10 + 1;
        let ns = mid % 20;
        let host_rule = (rules / 2 / 10) * 10 + 4;
        let deny_rule = (rules / 2 / 10) * 10 + 5;
        let peer = format!("spiffe://td/ns/ns{ns}/sa/client");
        let cases = [
            (
                "allow",
                Request::new(&peer, &format!("/svc{mid}/items/42"), "api.example.com"),
                Verdict::Allow,
            ),
            (
                "by-host",
                Request::new(
                    &format!("spiffe://td/ns/ns{}/sa/client", host_rule % 20),
                    "/v1/items",
                    &format!("svc{host_rule}.example.com"),
                ),
                Verdict::Allow,
            ),
            (
                "deny",
                Request::new(
                    &peer,
                    &format!("/svc{deny_rule}/admin/users"),
                    "api.example.com",
                ),
                Verdict::Deny,
            ),
            (
                "default",
                Request::new(&peer, "/nowhere/x", "api.example.com"),
                Verdict::Deny,
            ),
            (
                "tcp",
                Request {
                    tcp: true,
                    ..Request::new(&peer, "/", "api.example.com")
                },
                Verdict::Deny,
            ),
            (
                "tcp-worst",
                Request {
                    tcp: true,
                    ..Request::new("spiffe://td/ns/ops/sa/x", "/", "api.example.com")
                },
                Verdict::Deny,
            ),
        ];
        for (name, request, expected) in &cases {
            let attrs = request.attrs();
            let d = policy.evaluate(&attrs);
            assert_eq!(d.verdict(), *expected, "{name} at {rules} rules: {d:?}");
            group.bench_with_input(BenchmarkId::new(*name, rules), &attrs, |b, attrs| {
                b.iter(|| policy.evaluate(black_box(attrs)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
