//! `authz::policy` from the outside: the SECURITY.md group C cases (C1–C4, C6–C10, C16, C18,
//! C19, and A17's anonymous peer), the file format and its errors (line and column), hot reload
//! of a real file under paused time, and H5 as a property: an empty policy allows nothing.
#![cfg(feature = "authz")]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use tower_mesh::authz::policy::{
    DecidedBy, LintKind, LintLevel, LoadOptions, Mode, Policy, PolicyErrorKind, PolicyFileError,
    SharedPolicy, Verdict, WatchError,
};
use tower_mesh::authz::{Attributes, HttpAttributes};
use tower_mesh::identity::Identity;

const INTERVAL: Duration = Duration::from_secs(1);
/// Virtual time allowed for an expected reload (paused time makes waiting free).
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Owned request attributes, lent out as [`Attributes`].
#[derive(Clone, Debug, Default)]
struct Req {
    peer: Option<Identity>,
    source: Option<IpAddr>,
    port: Option<u16>,
    http: Option<(Method, String, Option<String>, HeaderMap)>,
}

impl Req {
    /// A TCP connection.
    fn tcp() -> Self {
        Req::default()
    }

    /// An HTTP request for `path` to `api.example.com`.
    fn http(method: Method, path: &str) -> Self {
        Req {
            http: Some((
                method,
                path.to_owned(),
                Some("api.example.com".to_owned()),
                HeaderMap::new(),
            )),
            ..Req::default()
        }
    }

    fn from(mut self, peer: &str) -> Self {
        self.peer = Some(Identity::parse(peer).unwrap());
        self
    }

    fn source(mut self, ip: &str) -> Self {
        self.source = Some(ip.parse().unwrap());
        self
    }

    fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    fn host(mut self, host: Option<&str>) -> Self {
        if let Some(http) = &mut self.http {
            http.2 = host.map(str::to_owned);
        }
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        if let Some(http) = &mut self.http {
            http.3.append(name, HeaderValue::from_static(value));
        }
        self
    }

    fn attrs(&self) -> Attributes<'_> {
        Attributes {
            peer: self.peer.as_ref(),
            request_principal: None,
            source: self.source,
            port: self.port,
            http: self
                .http
                .as_ref()
                .map(|(method, path, host, headers)| HttpAttributes {
                    method,
                    path,
                    host: host.as_deref(),
                    headers,
                }),
        }
    }
}

fn policy(text: &str) -> Policy {
    Policy::from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The name of the deciding rule, `None` for the default.
fn decided(policy: &Policy, req: &Req) -> (Verdict, Option<String>) {
    let d = policy.evaluate(&req.attrs());
    assert_eq!(
        d.is_allowed(),
        d.verdict() == Verdict::Allow,
        "enforce mode"
    );
    (d.verdict(), d.rule().map(|r| r.as_str().to_owned()))
}

fn allowed_by(rule: &str) -> (Verdict, Option<String>) {
    (Verdict::Allow, Some(rule.to_owned()))
}

fn denied_by(rule: &str) -> (Verdict, Option<String>) {
    (Verdict::Deny, Some(rule.to_owned()))
}

const DEFAULT_DENY: (Verdict, Option<String>) = (Verdict::Deny, None);

/// The error of a text that must be refused: its line, column and kind.
fn refused(text: &str) -> (usize, usize, PolicyErrorKind) {
    match Policy::from_toml_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => (e.line(), e.column(), e.kind().clone()),
    }
}

const A: &str = "spiffe://td/ns/app/sa/a";
const B: &str = "spiffe://td/ns/app/sa/b";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-mesh-authz-policy-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        // Write-then-rename, as config management does: readers never see half a file.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// C1, C2, C3, C4: the order deny, allow, default deny

#[test]
fn c1_no_policy_denies_http_and_tcp() {
    for p in [Policy::empty(), Policy::default(), policy("")] {
        assert_eq!(p.rules().len(), 0);
        assert_eq!(decided(&p, &Req::http(Method::GET, "/")), DEFAULT_DENY);
        assert_eq!(decided(&p, &Req::tcp()), DEFAULT_DENY);
        assert_eq!(
            decided(&p, &Req::tcp().from(A).source("10.0.0.1").port(80)),
            DEFAULT_DENY
        );
        let d = p.evaluate(&Req::tcp().attrs());
        assert_eq!(d.decided_by(), &DecidedBy::Default);
        assert!(!d.needs_authentication());
    }
}

#[test]
fn c2_declared_but_without_authorizations_denies() {
    // A listener with its policy file, sets defined, but no rule: Linkerd's Server without
    // authorizations.
    let p = policy(
        r#"
        mode = "enforce"
        [principal_sets]
        frontend = ["spiffe://td/ns/web/*"]
        "#,
    );
    assert_eq!(
        decided(
            &p,
            &Req::http(Method::GET, "/").from("spiffe://td/ns/web/sa/x")
        ),
        DEFAULT_DENY
    );
    assert!(matches!(p.lints()[0].kind(), LintKind::UnusedSet { .. }));
}

#[test]
fn c3_allow_exists_and_the_request_matches_none() {
    let p = policy(&format!(
        r#"
        [[rules]]
        name = "a-only"
        action = "allow"
        from.principals = ["{A}"]
        "#
    ));
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/x").from(A)),
        allowed_by("a-only")
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/x").from(B)),
        DEFAULT_DENY
    );
    assert_eq!(decided(&p, &Req::tcp().from(B)), DEFAULT_DENY);
}

#[test]
fn c4_deny_wins_over_allow() {
    let p = policy(&format!(
        r#"
        [[rules]]
        name = "a-on-x"
        action = "allow"
        from.principals = ["{A}"]
        to.paths = ["/x"]

        [[rules]]
        name = "deny-a"
        action = "deny"
        from.principals = ["{A}"]
        "#
    ));
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/x").from(A)),
        denied_by("deny-a")
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/x").from(B)),
        DEFAULT_DENY
    );
}

#[test]
fn the_first_matching_rule_in_file_order_decides() {
    let p = policy(
        r#"
        [[rules]]
        name = "allow-1"
        action = "allow"
        to.paths = ["/a/**"]
        [[rules]]
        name = "deny-1"
        action = "deny"
        to.hosts = ["api.example.com"]
        [[rules]]
        name = "deny-2"
        action = "deny"
        to.paths = ["/a/b"]
        [[rules]]
        name = "allow-2"
        action = "allow"
        "#,
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/a/b")),
        denied_by("deny-1")
    );
    let other_host = Req::http(Method::GET, "/a/b").host(Some("other.example.com"));
    assert_eq!(decided(&p, &other_host), denied_by("deny-2"));
    let other = Req::http(Method::GET, "/a/c").host(Some("other.example.com"));
    assert_eq!(decided(&p, &other), allowed_by("allow-1"));
    let elsewhere = Req::http(Method::GET, "/z").host(Some("other.example.com"));
    assert_eq!(decided(&p, &elsewhere), allowed_by("allow-2"));
}

// ---------------------------------------------------------------------------------------------
// C6, C7: empty vs match-all, AND / OR

#[test]
fn c6_no_rules_deny_all_and_an_empty_rule_allows_all() {
    let none = policy("rules = []");
    assert_eq!(decided(&none, &Req::http(Method::GET, "/")), DEFAULT_DENY);
    assert_eq!(decided(&none, &Req::tcp()), DEFAULT_DENY);

    let all = policy("[[rules]]\nname = \"all\"\naction = \"allow\"\n");
    assert_eq!(
        decided(&all, &Req::http(Method::GET, "/")),
        allowed_by("all")
    );
    assert_eq!(
        decided(&all, &Req::tcp()),
        allowed_by("all"),
        "no `from`: any source"
    );
    assert_eq!(decided(&all, &Req::tcp().from(A)), allowed_by("all"));

    // Empty tables are "not set", as a missing one.
    let empty_tables = policy(
        "[[rules]]\nname = \"all\"\naction = \"allow\"\n[rules.from]\n[rules.to]\n[rules.when]\n",
    );
    assert_eq!(decided(&empty_tables, &Req::tcp()), allowed_by("all"));

    // An empty list would be "not set" in Istio, i.e. match everything: refused here.
    let (line, column, kind) =
        refused("[[rules]]\nname = \"x\"\naction = \"allow\"\nfrom.principals = []\n");
    assert_eq!((line, column), (4, 19));
    assert_eq!(
        kind,
        PolicyErrorKind::EmptyList {
            field: "principals"
        }
    );
}

#[test]
fn c7_fields_are_anded_values_are_ored() {
    let p = policy(&format!(
        r#"
        [[rules]]
        name = "a-or-b-from-n2"
        action = "allow"
        from.principals = ["{A}", "{B}"]
        from.source_blocks = ["10.2.0.0/16"]
        to.methods = ["GET", "HEAD"]
        "#
    ));
    let ok = Req::http(Method::HEAD, "/").from(B).source("10.2.3.4");
    assert_eq!(decided(&p, &ok), allowed_by("a-or-b-from-n2"));
    // One field failing fails the rule.
    assert_eq!(decided(&p, &ok.clone().source("10.1.3.4")), DEFAULT_DENY);
    assert_eq!(
        decided(&p, &Req::http(Method::POST, "/").from(B).source("10.2.3.4")),
        DEFAULT_DENY
    );
    assert_eq!(
        decided(
            &p,
            &Req::http(Method::GET, "/")
                .from("spiffe://td/ns/app/sa/c")
                .source("10.2.3.4")
        ),
        DEFAULT_DENY
    );
}

#[test]
fn positive_and_negative_fields_both_hold() {
    let p = policy(
        r#"
        [[rules]]
        name = "app-but-not-b"
        action = "allow"
        from.principals = ["spiffe://td/ns/app/*"]
        from.not_principals = ["spiffe://td/ns/app/sa/b"]
        to.paths = ["/api/**"]
        "#,
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/api").from(A)),
        allowed_by("app-but-not-b")
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/api").from(B)),
        DEFAULT_DENY
    );
}

// ---------------------------------------------------------------------------------------------
// C8: HTTP fields on TCP

#[test]
fn c8_deny_with_http_fields_denies_all_tcp_and_allow_does_not_match() {
    let p = policy(
        r#"
        [[rules]]
        name = "no-post"
        action = "deny"
        to.methods = ["POST"]
        [[rules]]
        name = "all"
        action = "allow"
        "#,
    );
    assert_eq!(decided(&p, &Req::tcp()), denied_by("no-post"));
    assert_eq!(
        decided(&p, &Req::tcp().from(A).port(9000)),
        denied_by("no-post")
    );
    assert_eq!(decided(&p, &Req::http(Method::GET, "/")), allowed_by("all"));
    assert_eq!(
        decided(&p, &Req::http(Method::POST, "/")),
        denied_by("no-post")
    );

    // The other HTTP fields too, and the non-HTTP fields of the rule still apply.
    for field in [
        r#"to.paths = ["/x"]"#,
        r#"to.not_paths = ["/x"]"#,
        r#"to.hosts = ["a.example"]"#,
        r#"to.not_methods = ["GET"]"#,
        r#"when.headers.x-a = "1""#,
        r#"from.request_principals = ["*"]"#,
        r#"when.claims.groups = ["admins"]"#,
    ] {
        let p = policy(&format!(
            "[[rules]]\nname = \"d\"\naction = \"deny\"\nfrom.principals = [\"{A}\"]\n{field}\n\
             [[rules]]\nname = \"all\"\naction = \"allow\"\n"
        ));
        assert_eq!(decided(&p, &Req::tcp().from(A)), denied_by("d"), "{field}");
        assert_eq!(
            decided(&p, &Req::tcp().from(B)),
            allowed_by("all"),
            "{field}"
        );

        let allow = policy(&format!(
            "[[rules]]\nname = \"a\"\naction = \"allow\"\nfrom.principals = [\"{A}\"]\n{field}\n"
        ));
        assert_eq!(
            decided(&allow, &Req::tcp().from(A)),
            DEFAULT_DENY,
            "{field}"
        );
    }
}

#[test]
fn missing_host_matches_deny_and_fails_allow() {
    let deny = policy(
        "[[rules]]\nname = \"d\"\naction = \"deny\"\nto.hosts = [\"admin.example.com\"]\n\
         [[rules]]\nname = \"all\"\naction = \"allow\"\n",
    );
    let no_host = Req::http(Method::GET, "/").host(None);
    assert_eq!(decided(&deny, &no_host), denied_by("d"));
    let allow = policy("[[rules]]\nname = \"a\"\naction = \"allow\"\nto.hosts = [\"*\"]\n");
    assert_eq!(decided(&allow, &no_host), DEFAULT_DENY);
    // A host that skipped canonicalization (here, with its port) counts as missing.
    let with_port = Req::http(Method::GET, "/").host(Some("admin.example.com:443"));
    assert_eq!(decided(&deny, &with_port), denied_by("d"));
    assert_eq!(decided(&allow, &with_port), DEFAULT_DENY);
    assert_eq!(
        decided(&allow, &Req::http(Method::GET, "/")),
        allowed_by("a")
    );
}

// ---------------------------------------------------------------------------------------------
// C9, C10: every requirement, and references that must resolve

#[test]
fn c9_all_required_authentications() {
    let p = policy(&format!(
        r#"
        [principal_sets]
        mesh = ["{A}"]
        [network_sets]
        internal = ["10.0.0.0/8"]

        [[rules]]
        name = "mesh-and-network"
        action = "allow"
        from.principal_sets = ["mesh"]
        from.network_sets = ["internal"]
        "#
    ));
    assert_eq!(
        decided(&p, &Req::tcp().from(A).source("10.1.2.3")),
        allowed_by("mesh-and-network")
    );
    assert_eq!(
        decided(&p, &Req::tcp().from(A).source("192.168.1.5")),
        DEFAULT_DENY
    );
    assert_eq!(
        decided(&p, &Req::tcp().from(B).source("10.1.2.3")),
        DEFAULT_DENY
    );
    assert_eq!(decided(&p, &Req::tcp().source("10.1.2.3")), DEFAULT_DENY);
    assert!(p.lints().is_empty(), "{:?}", p.lints());
}

#[test]
fn c10_a_dangling_reference_refuses_the_whole_file() {
    for (field, kind, defined) in [
        ("principal_sets", "principal set", "mesh"),
        ("not_principal_sets", "principal set", "mesh"),
        ("network_sets", "network set", "internal"),
        ("not_network_sets", "network set", "internal"),
    ] {
        let text = format!(
            "[principal_sets]\nmesh = [\"{A}\"]\n[network_sets]\ninternal = [\"10.0.0.0/8\"]\n\
             [[rules]]\nname = \"ok\"\naction = \"allow\"\nfrom.principal_sets = [\"mesh\"]\n\
             from.network_sets = [\"internal\"]\n\
             [[rules]]\nname = \"r\"\naction = \"deny\"\nfrom.{field} = [\"{defined}\", \"nope\"]\n"
        );
        let (line, column, error) = refused(&text);
        // Placed at the undefined name.
        let last = text.lines().nth(12).unwrap();
        assert_eq!(
            (line, column),
            (13, last.find("\"nope\"").unwrap() + 1),
            "{field}"
        );
        assert_eq!(
            error,
            PolicyErrorKind::UnknownSet {
                field,
                kind,
                name: "nope".to_owned(),
            }
        );
        // Without the dangling name, the same file loads.
        assert!(
            Policy::from_toml_str(&text.replace(", \"nope\"", "")).is_ok(),
            "{field}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A17: an anonymous peer on a permissive server

#[test]
fn a17_anonymous_peer_is_denied_and_told_to_authenticate() {
    let p = policy(
        r#"[[rules]]
name = "mesh"
action = "allow"
from.principals = ["*"]
"#,
    );
    let d = p.evaluate(&Req::http(Method::GET, "/").attrs());
    assert!(!d.is_allowed());
    assert!(d.needs_peer_identity());
    assert!(
        p.evaluate(&Req::http(Method::GET, "/").from(A).attrs())
            .is_allowed()
    );

    let p = policy(
        r#"
        [[rules]]
        name = "deny-anonymous"
        action = "deny"
        from.not_principals = ["*"]
        [[rules]]
        name = "all"
        action = "allow"
        "#,
    );
    let d = p.evaluate(&Req::http(Method::GET, "/").attrs());
    assert_eq!(d.rule().map(|r| r.as_str()), Some("deny-anonymous"));
    assert!(d.needs_peer_identity());
    assert_eq!(decided(&p, &Req::tcp().from(B)), allowed_by("all"));
}

// ---------------------------------------------------------------------------------------------
// C16: negative-pattern lints, and the ISTIO-SECURITY-2021-005 inputs

#[test]
fn c16_risky_patterns_are_linted_and_refused_when_strict() {
    let allow_not_paths =
        "[[rules]]\nname = \"open\"\naction = \"allow\"\nto.not_paths = [\"/admin/**\"]\n";
    let p = policy(allow_not_paths);
    assert_eq!(p.lints().len(), 1);
    let lint = &p.lints()[0];
    assert_eq!((lint.line(), lint.column()), (4, 16));
    assert_eq!(
        lint.kind(),
        &LintKind::AllowWithNegative {
            rule: "open".to_owned(),
            field: "not_paths"
        }
    );
    let deny_paths =
        "[[rules]]\nname = \"no-admin\"\naction = \"deny\"\nto.paths = [\"/admin/**\"]\n";
    let p = policy(deny_paths);
    assert_eq!(
        p.lints()
            .iter()
            .map(|l| l.kind().clone())
            .collect::<Vec<_>>(),
        [LintKind::DenyWithPositive {
            rule: "no-admin".to_owned(),
            field: "paths"
        }]
    );
    // The recommended patterns are clean.
    assert!(
        policy("[[rules]]\nname = \"p\"\naction = \"allow\"\nto.paths = [\"/public/**\"]\n")
            .lints()
            .is_empty()
    );
    assert!(
        policy("[[rules]]\nname = \"p\"\naction = \"deny\"\nto.not_paths = [\"/public/**\"]\n")
            .lints()
            .is_empty()
    );

    let strict = LoadOptions::new().lint_level(LintLevel::Deny);
    for text in [allow_not_paths, deny_paths] {
        let e = Policy::from_toml_str_with(text, &strict).unwrap_err();
        assert_eq!(e.line(), 4);
        assert!(matches!(e.kind(), PolicyErrorKind::Lint(_)), "{e}");
    }
}

#[test]
fn c16_istio_2021_005_inputs_against_deny_and_allow_policies() {
    // The vulnerable policy: DENY /admin/** with an allow-all.
    let deny = policy(
        "[[rules]]\nname = \"no-admin\"\naction = \"deny\"\nto.paths = [\"/admin/**\"]\n\
         [[rules]]\nname = \"all\"\naction = \"allow\"\n",
    );
    // The recommended one: ALLOW only /public/**.
    let allow =
        policy("[[rules]]\nname = \"public\"\naction = \"allow\"\nto.paths = [\"/public/**\"]\n");

    // What the normalizer yields for //admin, /public/../admin, /public/%2e%2e/admin: /admin.
    for path in ["/admin", "/admin/", "/admin/secret"] {
        assert_eq!(
            decided(&deny, &Req::http(Method::GET, path)),
            denied_by("no-admin"),
            "{path}"
        );
        assert_eq!(
            decided(&allow, &Req::http(Method::GET, path)),
            DEFAULT_DENY,
            "{path}"
        );
    }
    // Case (D7): the DENY policy lets it through (documented: the backend must be
    // case-sensitive too); the ALLOW policy refuses it.
    for path in ["/ADMIN", "/Admin/secret"] {
        assert_eq!(
            decided(&deny, &Req::http(Method::GET, path)),
            allowed_by("all"),
            "{path}"
        );
        assert_eq!(
            decided(&allow, &Req::http(Method::GET, path)),
            DEFAULT_DENY,
            "{path}"
        );
    }
    // A path that skipped the normalizer is never matched byte for byte: it is a missing
    // attribute, so the DENY rule matches and the ALLOW rule does not (fail closed).
    for path in [
        "//admin",
        "/public//../admin",
        "/public/../admin",
        "/public/./../admin",
        "/public/%2e%2e/admin",
        "/public/.%2e/admin",
        "/admin%2Fsecret",
        "/public%2F..%2Fadmin",
        "/public\\..\\admin",
        "/admin#frag",
        "/admin?x=1",
        "/public/..;x/admin",
    ] {
        assert_eq!(
            decided(&deny, &Req::http(Method::GET, path)),
            denied_by("no-admin"),
            "{path}"
        );
        assert_eq!(
            decided(&allow, &Req::http(Method::GET, path)),
            DEFAULT_DENY,
            "{path}"
        );
    }
    // Segment boundaries both ways.
    assert_eq!(
        decided(&deny, &Req::http(Method::GET, "/administrator")),
        allowed_by("all")
    );
    assert_eq!(
        decided(&allow, &Req::http(Method::GET, "/publicity")),
        DEFAULT_DENY
    );
    assert_eq!(
        decided(&allow, &Req::http(Method::GET, "/public/x")),
        allowed_by("public")
    );
}

// ---------------------------------------------------------------------------------------------
// C19: ports are the local listener's

#[test]
fn c19_ports_are_the_local_listeners() {
    let p = policy("[[rules]]\nname = \"http\"\naction = \"allow\"\nto.ports = [80]\n");
    // The listener binds 8080 (a port mapping sends the client's :80 there): no match, and the
    // request is denied rather than silently allowed.
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/").port(8080)),
        DEFAULT_DENY
    );
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/").port(80)),
        allowed_by("http")
    );
    assert_eq!(
        decided(&p, &Req::tcp().port(80)),
        allowed_by("http"),
        "ports are not HTTP fields"
    );
    assert_eq!(
        decided(&p, &Req::tcp()),
        DEFAULT_DENY,
        "no local port: ALLOW does not match"
    );
    let deny = policy(
        "[[rules]]\nname = \"d\"\naction = \"deny\"\nto.not_ports = 8080\n\
         [[rules]]\nname = \"all\"\naction = \"allow\"\n",
    );
    assert_eq!(decided(&deny, &Req::tcp().port(8080)), allowed_by("all"));
    assert_eq!(decided(&deny, &Req::tcp().port(80)), denied_by("d"));
    assert_eq!(
        decided(&deny, &Req::tcp()),
        denied_by("d"),
        "no local port: DENY matches"
    );
}

// ---------------------------------------------------------------------------------------------
// Hosts, headers, audit mode

#[test]
fn hosts_compare_canonically() {
    let p = policy(
        "[[rules]]\nname = \"api\"\naction = \"allow\"\nto.hosts = [\"API.Example.com.:8443\", \"*.internal.example\"]\n",
    );
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com.",
        "a.internal.example",
    ] {
        assert_eq!(
            decided(&p, &Req::http(Method::GET, "/").host(Some(host))),
            allowed_by("api"),
            "{host}"
        );
    }
    for host in [
        "api.example.co",
        "internal.example",
        "xinternal.example",
        "api.example.com.evil",
    ] {
        assert_eq!(
            decided(&p, &Req::http(Method::GET, "/").host(Some(host))),
            DEFAULT_DENY,
            "{host}"
        );
    }
}

#[test]
fn header_conditions() {
    let p = policy(
        "[[rules]]\nname = \"tenant\"\naction = \"allow\"\n[rules.when]\nheaders.X-Tenant = [\"acme\", \"beta-*\"]\n",
    );
    let req = |v| Req::http(Method::GET, "/").header("x-tenant", v);
    assert_eq!(decided(&p, &req("acme")), allowed_by("tenant"));
    assert_eq!(decided(&p, &req("beta-7")), allowed_by("tenant"));
    assert_eq!(decided(&p, &req("acme2")), DEFAULT_DENY);
    assert_eq!(decided(&p, &Req::http(Method::GET, "/")), DEFAULT_DENY);
    // Repeated: every value must pass an ALLOW rule.
    assert_eq!(
        decided(&p, &req("acme").header("x-tenant", "evil")),
        DEFAULT_DENY
    );
}

#[test]
fn audit_mode_reports_denials_but_lets_everything_through() {
    let p = policy(&format!(
        "mode = \"audit\"\n[[rules]]\nname = \"deny-b\"\naction = \"deny\"\nfrom.principals = [\"{B}\"]\n\
         [[rules]]\nname = \"a\"\naction = \"allow\"\nfrom.principals = [\"{A}\"]\n"
    ));
    assert_eq!(p.mode(), Mode::Audit);
    let d = p.evaluate(&Req::tcp().from(B).attrs());
    assert!(d.is_allowed());
    assert_eq!(d.verdict(), Verdict::Deny);
    assert_eq!(d.rule().map(|r| r.as_str()), Some("deny-b"));
    assert_eq!(d.mode(), Mode::Audit);
    let d = p.evaluate(&Req::tcp().attrs());
    assert!(d.is_allowed());
    assert_eq!(
        (d.verdict(), d.decided_by()),
        (Verdict::Deny, &DecidedBy::Default)
    );
    let d = p.evaluate(&Req::tcp().from(A).attrs());
    assert_eq!(d.verdict(), Verdict::Allow);
}

// ---------------------------------------------------------------------------------------------
// The file format and its errors

#[test]
fn the_documented_example_loads() {
    let p = policy(
        r#"
mode = "enforce"

[principal_sets]
frontend = ["spiffe://prod.example/ns/web/*", "*.web.svc.cluster.local"]

[network_sets]
internal = ["10.0.0.0/8", "fd00::/8"]

[[rules]]
name = "deny-debug-from-outside"
action = "deny"
from.not_network_sets = ["internal"]
to.paths = ["/debug/**"]

[[rules]]
name = "frontend-reads-api"
action = "allow"
[rules.from]
principal_sets = ["frontend"]
[rules.to]
methods = ["GET", "HEAD"]
paths = ["/api/**", "/pkg.Catalog/*"]
hosts = ["api.example.com"]
ports = [8080]
[rules.when]
headers."x-tenant" = ["acme", "beta-*"]

[[rules]]
name = "admins"
action = "allow"
from.request_principals = ["https://idp.example/*"]
when.claims.groups = ["admins"]
"#,
    );
    assert_eq!(p.rules().len(), 3);
    let req = Req::http(Method::GET, "/pkg.Catalog/List")
        .from("spiffe://prod.example/ns/web/sa/frontend")
        .port(8080)
        .header("x-tenant", "beta-2");
    assert_eq!(decided(&p, &req), allowed_by("frontend-reads-api"));
    let outside = Req::http(Method::GET, "/debug/pprof").source("203.0.113.9");
    assert_eq!(decided(&p, &outside), denied_by("deny-debug-from-outside"));
    // The DENY-with-paths lint, as documented.
    assert_eq!(p.lints().len(), 1);
}

#[test]
fn errors_name_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "mode = \"enforce\"\nbogus = 1\n",
            (2, 1),
            "unknown field `bogus`",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.methods = [\"GET\", \"post\"]\n",
            (4, 22),
            "\"POST\"",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"ALLOW\"\n",
            (3, 10),
            "unknown variant",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\n[rules.to]\npath = [\"/x\"]\n",
            (5, 1),
            "unknown field `path`",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.paths = [\"/a//b\"]\n",
            (4, 13),
            "normalized",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nfrom.source_blocks = [\"10.0.0.1/8\"]\n",
            (4, 23),
            "10.0.0.0/8",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.ports = [80, 0]\n",
            (4, 17),
            "between 1 and 65535",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.ports = [\"80\"]\n",
            (4, 13),
            "invalid type",
        ),
        (
            "[[rules]]\nname = \"x\"\n",
            (1, 1),
            "missing field `action`",
        ),
        ("mode = \"dry-run\"\n", (1, 8), "unknown variant"),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nfrom.principals = [\"cluster.local/ns/a/sa/b\"]\n",
            (4, 20),
            "spiffe://",
        ),
        (
            "[[rules]]\nname = \"\"\naction = \"allow\"\n",
            (2, 8),
            "rule name",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nwhen.headers = {}\n",
            (4, 16),
            "empty list",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nwhen.headers.\":path\" = \"/x\"\n",
            (4, 14),
            "pseudo-headers",
        ),
        (
            "# é\n[[rules]]\nname = \"é\"\naction = \"allow\"\n[rules.to]\nhosts = [\"é.com\"]\n",
            (6, 10),
            "not a valid host",
        ),
        (
            "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.paths = [\"/a\"\n",
            (4, 17),
            "",
        ),
    ];
    for (text, (line, column), needle) in cases {
        let e = Policy::from_toml_str(text).expect_err(text);
        assert_eq!((e.line(), e.column()), (*line, *column), "{e}\n{text}");
        assert!(e.to_string().contains(needle), "{e:?} lacks {needle:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("line {line}, column {column}: ")),
            "{e}"
        );
    }
}

#[test]
fn duplicate_rule_names_are_refused() {
    let (line, column, kind) = refused(
        "[[rules]]\nname = \"r\"\naction = \"allow\"\n[[rules]]\nname = \"r\"\naction = \"deny\"\n",
    );
    assert_eq!((line, column), (5, 8));
    assert_eq!(
        kind,
        PolicyErrorKind::DuplicateRule {
            name: "r".to_owned(),
            first_line: 2
        }
    );
}

#[test]
fn single_values_stand_for_one_element_lists() {
    let p = policy(&format!(
        "[[rules]]\nname = \"a\"\naction = \"allow\"\nfrom.principals = \"{A}\"\nto.methods = \"GET\"\nto.ports = 80\n"
    ));
    assert_eq!(
        decided(&p, &Req::http(Method::GET, "/").from(A).port(80)),
        allowed_by("a")
    );
    assert_eq!(
        decided(&p, &Req::http(Method::PUT, "/").from(A).port(80)),
        DEFAULT_DENY
    );
}

#[test]
fn long_values_are_cut_in_errors() {
    let long = "x".repeat(10_000);
    let (_, _, kind) = refused(&format!(
        "[[rules]]\nname = \"a\"\naction = \"allow\"\nto.methods = [\"{long}a\"]\n"
    ));
    let PolicyErrorKind::InvalidValue { value, .. } = kind else {
        panic!("{kind:?}")
    };
    assert!(value.len() < 300 && value.ends_with('…'), "{}", value.len());
}

#[test]
fn file_errors_name_the_file() {
    let dir = TempDir::new("errors");
    let path = dir.write(
        "bad.toml",
        "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.methods = [\"get\"]\n",
    );
    let e = Policy::from_toml_file(&path).unwrap_err();
    assert_eq!(e.path(), path);
    let inner = e.policy_error().expect("an invalid text");
    assert_eq!((inner.line(), inner.column()), (4, 15));
    let message = e.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("line 4, column 15"),
        "{message}"
    );

    let missing = dir.path("missing.toml");
    assert!(matches!(
        Policy::from_toml_file(&missing),
        Err(PolicyFileError::Read { .. })
    ));
    assert!(matches!(
        Policy::from_toml_file(&dir.0),
        Err(PolicyFileError::NotAFile { .. })
    ));

    let big = dir.write("big.toml", &format!("# {}\n", "x".repeat(100)));
    let small = LoadOptions::new().max_file_len(50);
    assert!(matches!(
        Policy::from_toml_file_with(&big, &small),
        Err(PolicyFileError::TooLarge { limit: 50, .. })
    ));

    let latin1 = dir.0.join("latin1.toml");
    std::fs::write(&latin1, b"# ok\n# caf\xe9\n").unwrap();
    let e = Policy::from_toml_file(&latin1).unwrap_err();
    let inner = e.policy_error().unwrap();
    assert_eq!(
        (inner.line(), inner.column(), inner.kind()),
        (2, 6, &PolicyErrorKind::NotUtf8)
    );

    let good = dir.write(
        "good.toml",
        "[[rules]]\nname = \"all\"\naction = \"allow\"\n",
    );
    assert_eq!(Policy::from_toml_file(&good).unwrap().rules().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// C18: reload

const GOOD_A: &str = "[[rules]]\nname = \"a\"\naction = \"allow\"\nfrom.principals = [\"spiffe://td/ns/app/sa/a\"]\n";
const GOOD_B: &str = "[[rules]]\nname = \"b\"\naction = \"allow\"\nfrom.principals = [\"spiffe://td/ns/app/sa/b\"]\n";
const DANGLING: &str =
    "[[rules]]\nname = \"b\"\naction = \"allow\"\nfrom.principal_sets = [\"nope\"]\n";

fn allows(shared: &SharedPolicy, peer: &str) -> bool {
    shared.evaluate(&Req::tcp().from(peer).attrs()).is_allowed()
}

#[tokio::test(start_paused = true)]
async fn c18_bad_reload_keeps_the_last_good_policy() {
    let dir = TempDir::new("reload");
    let path = dir.write("policy.toml", GOOD_A);
    let (shared, handle) = SharedPolicy::watch_file(&path, INTERVAL).await.unwrap();
    assert_eq!(handle.path(), path);
    assert_eq!(handle.status().generation, 1);
    assert!(allows(&shared, A) && !allows(&shared, B));
    let mut status = handle.subscribe();

    // A valid change is swapped in, for every clone.
    let clone = shared.clone();
    dir.write("policy.toml", GOOD_B);
    let s = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.generation == 2))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(s.last_error.is_none());
    assert!(allows(&clone, B) && !allows(&clone, A));

    // An invalid change (a dangling reference) is refused; B stays in force.
    dir.write("policy.toml", DANGLING);
    let s = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.refused == 1))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(s.generation, 2);
    let error = s.last_error.expect("the refusal");
    let inner = error.policy_error().expect("an invalid text");
    assert_eq!((inner.line(), inner.column()), (4, 24));
    assert!(matches!(inner.kind(), PolicyErrorKind::UnknownSet { .. }));
    assert!(allows(&shared, B) && !allows(&shared, A));

    // The same bad content is not refused again on every poll.
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(handle.status().refused, 1);

    // A deleted file: refused, still B.
    std::fs::remove_file(&path).unwrap();
    let s = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.refused == 2))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(matches!(
        s.last_error.as_deref(),
        Some(PolicyFileError::Read { .. })
    ));
    assert!(allows(&shared, B));

    // Back to the policy in force: the error clears without a new generation.
    dir.write("policy.toml", GOOD_B);
    let s = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.last_error.is_none()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!((s.generation, s.refused), (2, 2));

    // And a fix is picked up.
    dir.write("policy.toml", GOOD_A);
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.generation == 3))
        .await
        .unwrap()
        .unwrap();
    assert!(allows(&shared, A) && !allows(&shared, B));

    // Dropping the handle stops reloading; the last good policy stays.
    drop(handle);
    dir.write("policy.toml", GOOD_B);
    tokio::time::sleep(INTERVAL * 10).await;
    assert!(allows(&shared, A) && !allows(&shared, B));
}

#[tokio::test(start_paused = true)]
async fn c18_cold_start_fails_closed() {
    let dir = TempDir::new("cold");
    let missing = dir.path("missing.toml");
    let e = SharedPolicy::watch_file(&missing, INTERVAL)
        .await
        .unwrap_err();
    assert!(
        matches!(e.load_error(), Some(PolicyFileError::Read { .. })),
        "{e:?}"
    );

    let path = dir.write("policy.toml", DANGLING);
    let e = SharedPolicy::watch_file(&path, INTERVAL).await.unwrap_err();
    let WatchError::Load(PolicyFileError::Invalid { error, .. }) = &e else {
        panic!("{e:?}")
    };
    assert!(matches!(error.kind(), PolicyErrorKind::UnknownSet { .. }));

    // Strict lints apply at cold start and at reload.
    let lax = dir.write(
        "lax.toml",
        "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.not_paths = \"/admin\"\n",
    );
    let strict = LoadOptions::new().lint_level(LintLevel::Deny);
    let e = SharedPolicy::watch_file_with(&lax, INTERVAL, strict.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("initial policy"), "{e}");

    assert!(matches!(
        SharedPolicy::watch_file(&path, Duration::ZERO).await,
        Err(WatchError::InvalidInterval(_))
    ));

    let (_, handle) = SharedPolicy::watch_file_with(dir.write("ok.toml", GOOD_A), INTERVAL, strict)
        .await
        .unwrap();
    let mut status = handle.subscribe();
    dir.write(
        "ok.toml",
        "[[rules]]\nname = \"x\"\naction = \"allow\"\nto.not_paths = \"/admin\"\n",
    );
    let s = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.refused == 1))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let inner = s
        .last_error
        .as_deref()
        .and_then(PolicyFileError::policy_error)
        .unwrap();
    assert!(matches!(inner.kind(), PolicyErrorKind::Lint(_)));
}

#[test]
fn shared_policy_swaps_atomically_by_hand() {
    let shared = SharedPolicy::default();
    assert!(!allows(&shared, A), "the default is deny-all");
    let before = shared.load();
    shared.store(policy(GOOD_A));
    assert!(allows(&shared, A));
    // A policy loaded before the swap is unchanged: a request is judged by one policy.
    assert!(!before.evaluate(&Req::tcp().from(A).attrs()).is_allowed());
    assert_eq!(shared.load().rules().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// H5: deny by default, as a property

fn arb_req() -> impl Strategy<Value = Req> {
    let identity = prop_oneof![
        "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}".prop_map(|s| format!("spiffe://{s}/ns/x")),
        "[a-z]{1,8}(\\.[a-z]{1,8}){1,3}",
    ];
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::from(b).to_string()),
        any::<[u8; 16]>().prop_map(|b| IpAddr::from(b).to_string()),
    ];
    let method = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
        Method::from_bytes(b"PURGE").unwrap(),
    ]);
    let http = (
        method,
        "(/[a-zA-Z0-9._%-]{0,6}){0,4}",
        prop::option::of("[a-z.]{0,12}"),
    );
    (
        prop::option::of(identity),
        prop::option::of(ip),
        prop::option::of(any::<u16>()),
        prop::option::of(http),
    )
        .prop_map(|(peer, source, port, http)| Req {
            peer: peer.and_then(|p| Identity::parse(&p).ok()),
            source: source.map(|s| s.parse().unwrap()),
            port,
            http: http.map(|(m, path, host)| {
                (
                    m,
                    if path.is_empty() { "/".into() } else { path },
                    host,
                    HeaderMap::new(),
                )
            }),
        })
}

proptest! {
    #[test]
    fn h5_an_empty_policy_allows_nothing(req in arb_req()) {
        for p in [Policy::empty(), policy(""), policy("mode = \"enforce\"\nrules = []\n")] {
            let d = p.evaluate(&req.attrs());
            prop_assert!(!d.is_allowed());
            prop_assert_eq!(d.verdict(), Verdict::Deny);
            prop_assert_eq!(d.decided_by(), &DecidedBy::Default);
        }
    }

    #[test]
    fn h5_deny_rules_alone_allow_nothing(req in arb_req(), field in 0usize..4) {
        let when = ["", "from.principals = \"*\"\n", "to.not_paths = \"/x\"\n", "to.ports = 80\n"][field];
        let p = policy(&format!("[[rules]]\nname = \"d\"\naction = \"deny\"\n{when}"));
        prop_assert_eq!(p.evaluate(&req.attrs()).verdict(), Verdict::Deny);
    }
}
