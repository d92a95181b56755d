//! Unit tests: each matcher's boundaries, the missing-attribute and anonymous-caller rules,
//! request principals and claims (which only the crate can build), and the property that the
//! index decides exactly as a scan of every rule in file order.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use super::matcher::{
    HeaderCondition, HostPattern, ValuePattern, parse_method, parse_port, parse_source_block,
};
use super::path::PathPattern;
use super::principal::{ClaimCondition, PrincipalPattern, RequestPrincipalPattern};
use super::*;
use crate::authz::{Attributes, HttpAttributes, RequestPrincipal};
use crate::identity::Identity;

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

fn principal(pattern: &str) -> PrincipalPattern {
    PrincipalPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn path(pattern: &str) -> PathPattern {
    PathPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn host(pattern: &str) -> HostPattern {
    HostPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn jwt(iss: &str, sub: &str, claims: serde_json::Value) -> RequestPrincipal {
    let serde_json::Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    RequestPrincipal::new(iss.to_owned(), sub.to_owned(), claims)
}

fn policy(text: &str) -> Policy {
    Policy::from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn http<'a>(method: &'a Method, path: &'a str, headers: &'a HeaderMap) -> HttpAttributes<'a> {
    HttpAttributes {
        method,
        path,
        host: Some("api.example.com"),
        headers,
    }
}

// ---------------------------------------------------------------------------------------------
// Principals

#[test]
fn principal_exact_spiffe_is_case_sensitive_in_the_path() {
    let p = principal("spiffe://td/ns/web/sa/api");
    assert!(p.matches(&id("spiffe://td/ns/web/sa/api")));
    assert!(!p.matches(&id("spiffe://td/ns/web/sa/API")));
    assert!(!p.matches(&id("spiffe://td/ns/web/sa/api2")));
    assert!(!p.matches(&id("spiffe://td2/ns/web/sa/api")));
}

#[test]
fn principal_prefix_matches_whole_segments_below_only() {
    for pattern in ["spiffe://td/ns/x/*", "spiffe://td/ns/x/**"] {
        let p = principal(pattern);
        assert!(p.matches(&id("spiffe://td/ns/x/sa/a")), "{pattern}");
        assert!(p.matches(&id("spiffe://td/ns/x/y")), "{pattern}");
        assert!(!p.matches(&id("spiffe://td/ns/xy/sa/a")), "{pattern}");
        assert!(!p.matches(&id("spiffe://td/ns/x")), "{pattern}");
        assert!(!p.matches(&id("spiffe://td/ns/X/sa/a")), "{pattern}");
        assert!(!p.matches(&id("spiffe://td2/ns/x/sa/a")), "{pattern}");
        assert!(!p.matches(&id("spiffe://tdx/ns/x/sa/a")), "{pattern}");
        assert!(!p.matches(&id("x.ns.svc")), "{pattern}");
    }
    let td = principal("spiffe://td/*");
    assert!(td.matches(&id("spiffe://td/a")));
    assert!(!td.matches(&id("spiffe://td2/a")));
    assert!(!td.matches(&id("spiffe://t/a")));
}

#[test]
fn principal_dns_suffix_matches_whole_labels() {
    let p = principal("*.svc.cluster.local");
    assert!(p.matches(&id("api.svc.cluster.local")));
    assert!(p.matches(&id("a.b.svc.cluster.local")));
    assert!(p.matches(&id("API.SVC.Cluster.Local")));
    assert!(!p.matches(&id("svc.cluster.local")));
    assert!(!p.matches(&id("evilsvc.cluster.local")));
    assert!(!p.matches(&id("api.svc.cluster.local.evil")));
    assert!(!p.matches(&id("spiffe://svc.cluster.local/a")));
}

#[test]
fn principal_dns_exact_ignores_case_and_trailing_dot() {
    let p = principal("API.example.com.");
    assert!(p.matches(&id("api.example.com")));
    assert!(!p.matches(&id("api.example.co")));
    assert!(!p.matches(&id("spiffe://api.example.com/x")));
}

#[test]
fn principal_any_matches_every_identity() {
    let p = principal("*");
    assert!(p.matches(&id("spiffe://td/a")));
    assert!(p.matches(&id("a.example")));
}

#[test]
fn principal_refusals() {
    for bad in [
        "",
        "**",
        "spiffe://td/ns/*/sa/x",
        "spiffe://td/ns/x*",
        "spiffe://td/a/../b/*",
        "spiffe://td/a/./b",
        "spiffe://TD/a",
        "SPIFFE://td/a/*",
        "spiffe://td",
        "spiffe://*",
        "cluster.local/ns/x/sa/y",
        "https://td/a",
        "api.*.example",
        "*.",
        "*.*.example",
        "*example.com",
        "a.example/*",
        "10.0.0.1",
    ] {
        assert!(
            PrincipalPattern::parse(bad).is_err(),
            "{bad:?} was accepted"
        );
    }
    let hint = PrincipalPattern::parse("cluster.local/ns/x/sa/y").unwrap_err();
    assert!(hint.contains("spiffe://"), "{hint}");
}

// ---------------------------------------------------------------------------------------------
// Request principals and claims

#[test]
fn request_principal_patterns() {
    let rp = jwt("https://idp.test", "alice", serde_json::json!({}));
    let exact = RequestPrincipalPattern::parse("https://idp.test/alice").unwrap();
    assert!(exact.matches(&rp));
    for other in [
        jwt("https://idp.test", "alic", serde_json::json!({})),
        jwt("https://idp.test", "alice2", serde_json::json!({})),
        jwt("https://idp.tes", "t/alice", serde_json::json!({})),
        jwt("https://idp.test/alice", "", serde_json::json!({})),
        jwt("https://evil", "alice", serde_json::json!({})),
    ] {
        assert!(!exact.matches(&other) || other.to_string() == "https://idp.test/alice");
    }
    assert!(!exact.matches(&jwt("https://idp.test", "alicex", serde_json::json!({}))));
    assert!(!exact.matches(&jwt("https://idp.tes", "alice", serde_json::json!({}))));

    let issuer = RequestPrincipalPattern::parse("https://idp.test/*").unwrap();
    assert!(issuer.matches(&rp));
    assert!(!issuer.matches(&jwt("https://idp.test2", "alice", serde_json::json!({}))));
    assert!(!issuer.matches(&jwt("https://idp.tes", "alice", serde_json::json!({}))));

    assert!(RequestPrincipalPattern::parse("*").unwrap().matches(&rp));
    for bad in [
        "", "/*", "noslash", "iss/", "/sub", "*/sub", "iss/su*", "iss/a\nb",
    ] {
        assert!(
            RequestPrincipalPattern::parse(bad).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn claim_matches_a_string_or_an_array_element() {
    let claim = ClaimCondition {
        name: "groups".into(),
        values: vec!["admins".into()].into(),
    };
    let with = |v| jwt("i", "s", serde_json::json!({ "groups": v }));
    assert!(claim.matches(&with(serde_json::json!("admins"))));
    assert!(claim.matches(&with(serde_json::json!(["users", "admins"]))));
    assert!(!claim.matches(&with(serde_json::json!("admins2"))));
    assert!(!claim.matches(&with(serde_json::json!("users admins"))));
    assert!(!claim.matches(&with(serde_json::json!(["users"]))));
    assert!(!claim.matches(&with(serde_json::json!([["admins"]]))));
    assert!(!claim.matches(&with(serde_json::json!({ "admins": true }))));
    assert!(!claim.matches(&jwt("i", "s", serde_json::json!({ "group": "admins" }))));
}

// ---------------------------------------------------------------------------------------------
// Paths

#[test]
fn path_prefix_is_segment_aware() {
    for pattern in ["/admin/*", "/admin/**"] {
        let p = path(pattern);
        for yes in ["/admin", "/admin/", "/admin/x", "/admin/x/y"] {
            assert!(p.matches(yes), "{pattern} vs {yes}");
        }
        for no in [
            "/administrator",
            "/admin2",
            "/Admin",
            "/ADMIN/x",
            "/",
            "/x/admin",
        ] {
            assert!(!p.matches(no), "{pattern} vs {no}");
        }
    }
    let grpc = path("/pkg.Service/*");
    assert!(grpc.matches("/pkg.Service/Method"));
    assert!(!grpc.matches("/pkg.ServiceX/Method"));
    assert!(!grpc.matches("/pkg.service/Method"));
    assert!(!grpc.matches("/other.Service/Method"));
}

#[test]
fn path_exact_and_wildcards() {
    let p = path("/admin");
    assert!(p.matches("/admin"));
    assert!(!p.matches("/admin/"));
    assert!(!p.matches("/ADMIN"));
    assert!(path("/admin/").matches("/admin/"));
    assert!(!path("/admin/").matches("/admin"));
    assert!(path("*").matches("/anything"));
    assert!(path("/*").matches("/"));
    assert!(path("/**").matches("/a/b"));
    assert!(path("/").matches("/"));
    assert!(!path("/").matches("/a"));
}

#[test]
fn path_escapes_are_compared_in_uppercase() {
    assert_eq!(path("/caf%c3%a9"), PathPattern::Exact("/caf%C3%A9".into()));
    assert!(path("/caf%c3%a9").matches("/caf%C3%A9"));
    assert!(path("/a%20b").matches("/a%20b"));
}

#[test]
fn path_refusals() {
    for bad in [
        "",
        "admin",
        "//admin",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/..",
        "/a*",
        "/a/*/b",
        "/a/*x",
        "/a/***",
        "/admin//*",
        "/%61dmin",
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/a%00",
        "/a%4",
        "/a%zz",
        "/a b",
        "/a?x=1",
        "/a#frag",
        "/a\\b",
        "/café",
        "/a\u{0}",
        "/a{b}",
        "/..;x/a",
    ] {
        assert!(PathPattern::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn normalized_form_is_recognized() {
    use super::path::is_normalized;
    for yes in [
        "/",
        "/a",
        "/a/",
        "/a/b",
        "/caf%C3%A9",
        "/a%20b",
        "/a;b",
        "/pkg.S/M",
        "/.well-known/x",
        "/a..b",
    ] {
        assert!(is_normalized(yes), "{yes}");
    }
    for no in [
        "",
        "*",
        "a",
        "//",
        "//a",
        "/a//b",
        "/./a",
        "/a/.",
        "/a/..",
        "/a/../b",
        "/..;x/a",
        "/.;/a",
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/%61",
        "/%2e%2e/a",
        "/%2E",
        "/a%c3%a9",
        "/a%",
        "/a%4",
        "/a%G0",
        "/a b",
        "/a\tb",
        "/a?x",
        "/a#x",
        "/a\\b",
        "/caf\u{e9}",
        "/a%00",
    ] {
        assert!(!is_normalized(no), "{no:?}");
    }
}

#[test]
fn path_first_segment_indexing_key() {
    assert_eq!(path("/a/b").first_segment(), Some("a"));
    assert_eq!(path("/a/**").first_segment(), Some("a"));
    assert_eq!(path("/").first_segment(), Some(""));
    assert_eq!(path("/pkg.S/*").first_segment(), Some("pkg.S"));
    assert_eq!(path("/*").first_segment(), None);
    assert_eq!(path("*").first_segment(), None);
}

// ---------------------------------------------------------------------------------------------
// Hosts

#[test]
fn host_exact_is_canonicalized_at_load_and_case_insensitive() {
    for pattern in [
        "api.example.com",
        "API.Example.COM",
        "api.example.com.",
        "api.example.com:8443",
    ] {
        let p = host(pattern);
        assert_eq!(p, HostPattern::Exact("api.example.com".into()), "{pattern}");
        assert!(p.matches("api.example.com"));
        assert!(p.matches("API.EXAMPLE.COM"));
        assert!(!p.matches("api.example.co"));
        assert!(!p.matches("xapi.example.com"));
    }
    assert!(host("[0:0::1]:80").matches("[::1]"));
    assert!(host("10.0.0.1:80").matches("10.0.0.1"));
}

#[test]
fn host_suffix_matches_whole_labels() {
    let p = host("*.example.com");
    assert!(p.matches("a.example.com"));
    assert!(p.matches("a.b.EXAMPLE.com"));
    assert!(!p.matches("example.com"));
    assert!(!p.matches("badexample.com"));
    assert!(!p.matches("a.example.com.evil"));
    assert!(host("*").matches("anything"));
}

#[test]
fn canonical_host_shape_is_recognized() {
    use super::matcher::is_canonical_host;
    for yes in [
        "a",
        "api.example.com",
        "API.example.com",
        "10.0.0.1",
        "[::1]",
        "[2001:db8::1]",
        "a_b.c",
    ] {
        assert!(is_canonical_host(yes), "{yes}");
    }
    for no in [
        "",
        "api.example.com:443",
        "[::1]:80",
        "user@host",
        "a b",
        "[::1",
        "[zz]",
        "caf\u{e9}",
    ] {
        assert!(!is_canonical_host(no), "{no:?}");
    }
}

#[test]
fn host_refusals() {
    for bad in [
        "",
        "a..b",
        "*.",
        "a.*.com",
        "*a.com",
        "api.example.com:",
        "api:x",
        "::1",
        "[::1",
        "*.[::1]",
        "*.10.0.0.1",
        "127.1",
        "user@host",
        "ex ample.com",
    ] {
        assert!(HostPattern::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Methods, ports, source blocks, headers

#[test]
fn methods_are_uppercase_tokens() {
    assert_eq!(parse_method("GET").unwrap(), Method::GET);
    assert_eq!(parse_method("PURGE").unwrap().as_str(), "PURGE");
    let e = parse_method("get").unwrap_err();
    assert!(e.contains("\"GET\""), "{e}");
    for bad in ["", "Get", "GE T", "GET\n", "(GET)"] {
        assert!(parse_method(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn ports_are_1_to_65535() {
    assert_eq!(parse_port(1), Ok(1));
    assert_eq!(parse_port(65535), Ok(65535));
    for bad in [0, -1, 65536, i64::MAX, i64::MIN] {
        assert!(parse_port(bad).is_err(), "{bad} was accepted");
    }
}

#[test]
fn source_blocks_parse_strictly_and_match_mapped_addresses() {
    let net = parse_source_block("10.0.0.0/8").unwrap();
    assert!(net.contains(&"10.255.0.1".parse::<IpAddr>().unwrap()));
    assert!(!net.contains(&"11.0.0.1".parse::<IpAddr>().unwrap()));
    let one = parse_source_block("192.168.1.5").unwrap();
    assert!(one.contains(&"192.168.1.5".parse::<IpAddr>().unwrap()));
    assert!(!one.contains(&"192.168.1.6".parse::<IpAddr>().unwrap()));
    let e = parse_source_block("10.0.0.1/8").unwrap_err();
    assert!(e.contains("10.0.0.0/8"), "{e}");
    for bad in [
        "",
        "10.0.0.0/33",
        "10.0.0",
        "::ffff:10.0.0.0/104",
        "10.0.0.0/8 ",
        "host",
    ] {
        assert!(parse_source_block(bad).is_err(), "{bad:?} was accepted");
    }

    // A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d: still in 10.0.0.0/8.
    let p = policy(
        r#"
        [[rules]]
        name = "deny-ten"
        action = "deny"
        from.source_blocks = ["10.0.0.0/8"]
        [[rules]]
        name = "all"
        action = "allow"
        "#,
    );
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    let d = policy_eval(&p, Some(mapped));
    assert_eq!(d.rule().map(RuleName::as_str), Some("deny-ten"));
    let other: IpAddr = "::ffff:11.1.2.3".parse().unwrap();
    assert!(policy_eval(&p, Some(other)).is_allowed());
}

fn policy_eval(p: &Policy, source: Option<IpAddr>) -> Decision {
    p.evaluate(&Attributes {
        source,
        ..Attributes::default()
    })
}

#[test]
fn header_values_exact_prefix_presence() {
    let cond = |values: &[&str]| HeaderCondition {
        name: HeaderCondition::parse_name("X-Env").unwrap(),
        values: values
            .iter()
            .map(|v| ValuePattern::parse(v).unwrap())
            .collect(),
    };
    let mut headers = HeaderMap::new();
    assert!(!cond(&["*"]).matches(&headers, true), "absent header");
    headers.insert("x-env", HeaderValue::from_static("prod-eu"));
    assert!(cond(&["prod-eu"]).matches(&headers, false));
    assert!(!cond(&["prod"]).matches(&headers, false));
    assert!(cond(&["prod*"]).matches(&headers, false));
    assert!(cond(&["*"]).matches(&headers, false));
    assert!(
        !cond(&["PROD*"]).matches(&headers, false),
        "values are case-sensitive"
    );

    // Repeated: a DENY rule matches on any value, an ALLOW rule needs all.
    headers.append("x-env", HeaderValue::from_static("dev"));
    assert!(cond(&["dev"]).matches(&headers, true));
    assert!(!cond(&["dev"]).matches(&headers, false));
    assert!(cond(&["dev", "prod*"]).matches(&headers, false));

    for bad in ["a*b", "**", "a\nb", "a\rb"] {
        assert!(ValuePattern::parse(bad).is_err(), "{bad:?} was accepted");
    }
    for bad in [":authority", "x env", "", "x\u{e9}"] {
        assert!(
            HeaderCondition::parse_name(bad).is_err(),
            "{bad:?} was accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation rules that need the crate's internals

#[test]
fn anonymous_peer_needs_identity_for_allow_principals() {
    let p = policy(
        r#"
        [[rules]]
        name = "web"
        action = "allow"
        from.principals = ["spiffe://td/ns/web/*"]
        "#,
    );
    let d = p.evaluate(&Attributes::default());
    assert!(!d.is_allowed());
    assert_eq!(d.decided_by(), &DecidedBy::Default);
    assert!(d.needs_peer_identity());
    assert!(!d.needs_request_principal());

    // A peer that fails the pattern is forbidden, not unauthenticated.
    let other = id("spiffe://td/ns/other/sa/a");
    let d = p.evaluate(&Attributes {
        peer: Some(&other),
        ..Attributes::default()
    });
    assert!(!d.is_allowed());
    assert!(!d.needs_authentication());
}

#[test]
fn missing_jwt_is_told_apart_from_a_forbidden_one() {
    let p = policy(
        r#"
        [[rules]]
        name = "admins"
        action = "allow"
        from.request_principals = ["https://idp.test/*"]
        when.claims.groups = "admins"
        "#,
    );
    let headers = HeaderMap::new();
    let get = Method::GET;
    let anonymous = Attributes {
        http: Some(http(&get, "/x", &headers)),
        ..Attributes::default()
    };
    let d = p.evaluate(&anonymous);
    assert!(!d.is_allowed());
    assert!(d.needs_request_principal());
    assert!(!d.needs_peer_identity());

    let user = jwt(
        "https://idp.test",
        "bob",
        serde_json::json!({ "groups": ["users"] }),
    );
    let d = p.evaluate(&Attributes {
        request_principal: Some(&user),
        ..anonymous
    });
    assert!(!d.is_allowed());
    assert!(!d.needs_authentication());

    let admin = jwt(
        "https://idp.test",
        "ann",
        serde_json::json!({ "groups": ["admins"] }),
    );
    let d = p.evaluate(&Attributes {
        request_principal: Some(&admin),
        ..anonymous
    });
    assert!(d.is_allowed());
    assert_eq!(d.rule().map(RuleName::as_str), Some("admins"));
}

#[test]
fn deny_not_request_principals_denies_anonymous_and_says_so() {
    // Istio's "require JWT" pattern.
    let p = policy(
        r#"
        [[rules]]
        name = "require-jwt"
        action = "deny"
        from.not_request_principals = ["*"]
        [[rules]]
        name = "all"
        action = "allow"
        "#,
    );
    let headers = HeaderMap::new();
    let get = Method::GET;
    let anonymous = Attributes {
        http: Some(http(&get, "/x", &headers)),
        ..Attributes::default()
    };
    let d = p.evaluate(&anonymous);
    assert_eq!(d.rule().map(RuleName::as_str), Some("require-jwt"));
    assert!(d.needs_request_principal());
    let user = jwt("i", "s", serde_json::json!({}));
    let d = p.evaluate(&Attributes {
        request_principal: Some(&user),
        ..anonymous
    });
    assert_eq!(d.rule().map(RuleName::as_str), Some("all"));
    assert!(d.is_allowed());
    assert!(!d.needs_authentication());
}

#[test]
fn request_principal_fields_are_http_fields_on_tcp() {
    let p = policy(
        r#"
        [[rules]]
        name = "jwt-only"
        action = "allow"
        from.request_principals = ["*"]
        "#,
    );
    assert!(!p.evaluate(&Attributes::default()).is_allowed());
    assert!(!p.evaluate(&Attributes::default()).needs_authentication());
    let p = policy(
        r#"
        [[rules]]
        name = "deny-bob"
        action = "deny"
        from.request_principals = ["i/bob"]
        [[rules]]
        name = "all"
        action = "allow"
        "#,
    );
    // On TCP the HTTP-only field counts as matching in a DENY rule (Istio's TCP rule).
    let d = p.evaluate(&Attributes::default());
    assert_eq!(d.rule().map(RuleName::as_str), Some("deny-bob"));
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<Policy>();
    assert::<Decision>();
    assert::<SharedPolicy>();
    assert::<PolicyReloadHandle>();
    assert::<ReloadStatus>();
    assert::<PolicyError>();
    assert::<PolicyFileError>();
    assert::<WatchError>();
    assert::<Lint>();
}

// ---------------------------------------------------------------------------------------------
// Property: the index decides as a linear scan

const PRINCIPALS: &[&str] = &[
    "*",
    "spiffe://td/ns/a/sa/x",
    "spiffe://td/ns/a/*",
    "spiffe://td/*",
    "spiffe://td2/ns/a/sa/x",
    "*.svc.local",
    "a.svc.local",
];
const REQUEST_PRINCIPALS: &[&str] = &["*", "iss/sub", "iss/*", "other/sub"];
const BLOCKS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.5",
    "::/0",
    "2001:db8::/32",
];
const METHODS: &[&str] = &["GET", "POST", "PURGE"];
const PATHS: &[&str] = &[
    "*", "/", "/a", "/a/**", "/a/b", "/b/*", "/*", "/pkg.S/*", "/pkg.S/M", "/ab", "/a/",
];
const HOSTS: &[&str] = &[
    "*", "x.com", "X.com:80", "*.x.com", "y.com.", "[::1]", "Z.org",
];
const PORTS: &[u16] = &[80, 8080];
const HEADER_VALUES: &[&str] = &["1", "2*", "*"];
const GROUPS: &[&str] = &["admins", "users"];

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop::option::weighted(
        0.3,
        prop::sample::subsequence(options, 1..=3.min(options.len())),
    )
}

fn toml_list(field: &str, values: &Option<Vec<&str>>) -> String {
    match values {
        None => String::new(),
        Some(v) => format!("{field} = {v:?}\n"),
    }
}

fn arb_rule() -> impl Strategy<Value = String> {
    (
        (
            any::<bool>(),
            pick(PRINCIPALS),
            pick(PRINCIPALS),
            pick(REQUEST_PRINCIPALS),
            pick(REQUEST_PRINCIPALS),
            pick(BLOCKS),
            pick(BLOCKS),
        ),
        (
            pick(METHODS),
            pick(METHODS),
            pick(PATHS),
            pick(PATHS),
            pick(HOSTS),
            pick(HOSTS),
        ),
        (
            prop::option::weighted(0.2, prop::sample::subsequence(PORTS, 1..=2)),
            prop::option::weighted(0.1, prop::sample::subsequence(PORTS, 1..=2)),
            pick(HEADER_VALUES),
            pick(GROUPS),
        ),
    )
        .prop_map(
            |((deny, p, np, rp, nrp, sb, nsb), (m, nm, pa, npa, h, nh), (po, npo, hv, g))| {
                let mut s = format!(
                    "[[rules]]\nname = \"NAME\"\naction = \"{}\"\n",
                    if deny { "deny" } else { "allow" }
                );
                s += "[rules.from]\n";
                s += &toml_list("principals", &p);
                s += &toml_list("not_principals", &np);
                s += &toml_list("request_principals", &rp);
                s += &toml_list("not_request_principals", &nrp);
                s += &toml_list("source_blocks", &sb);
                s += &toml_list("not_source_blocks", &nsb);
                s += "[rules.to]\n";
                s += &toml_list("methods", &m);
                s += &toml_list("not_methods", &nm);
                s += &toml_list("paths", &pa);
                s += &toml_list("not_paths", &npa);
                s += &toml_list("hosts", &h);
                s += &toml_list("not_hosts", &nh);
                if let Some(ports) = po {
                    s += &format!("ports = {ports:?}\n");
                }
                if let Some(ports) = npo {
                    s += &format!("not_ports = {ports:?}\n");
                }
                s += "[rules.when]\n";
                if let Some(values) = hv {
                    s += &format!("headers.x-a = {values:?}\n");
                }
                if let Some(groups) = g {
                    s += &format!("claims.groups = {groups:?}\n");
                }
                s
            },
        )
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (any::<bool>(), prop::collection::vec(arb_rule(), 0..14)).prop_map(|(audit, rules)| {
        let mut text = format!("mode = \"{}\"\n", if audit { "audit" } else { "enforce" });
        for (i, rule) in rules.iter().enumerate() {
            text += &rule.replace("NAME", &format!("r{i}"));
        }
        policy(&text)
    })
}

/// Owned request attributes, borrowed as [`Attributes`].
#[derive(Debug, Clone)]
struct Req {
    peer: Option<Identity>,
    jwt: Option<RequestPrincipal>,
    source: Option<IpAddr>,
    port: Option<u16>,
    http: Option<(Method, &'static str, Option<&'static str>, HeaderMap)>,
}

impl Req {
    fn attrs(&self) -> Attributes<'_> {
        Attributes {
            peer: self.peer.as_ref(),
            request_principal: self.jwt.as_ref(),
            source: self.source,
            port: self.port,
            http: self
                .http
                .as_ref()
                .map(|(method, path, host, headers)| HttpAttributes {
                    method,
                    path,
                    host: *host,
                    headers,
                }),
        }
    }
}

fn arb_req() -> impl Strategy<Value = Req> {
    let peer = prop::option::of(prop::sample::select(vec![
        "spiffe://td/ns/a/sa/x",
        "spiffe://td/ns/a",
        "spiffe://td/ns/ab/sa/x",
        "spiffe://td2/ns/a/sa/x",
        "a.svc.local",
        "b.a.svc.local",
        "svc.local",
    ]));
    let jwt = prop::option::of((
        prop::sample::select(vec!["iss", "other", "iss/sub"]),
        prop::sample::select(vec!["sub", "x", ""]),
        prop::sample::select(vec![
            serde_json::json!({}),
            serde_json::json!({ "groups": "admins" }),
            serde_json::json!({ "groups": ["users", "x"] }),
            serde_json::json!({ "groups": 7 }),
        ]),
    ));
    let source = prop::option::of(prop::sample::select(vec![
        "10.0.0.1",
        "10.1.2.3",
        "192.168.1.5",
        "::ffff:10.1.0.9",
        "2001:db8::1",
        "::1",
    ]));
    let port = prop::option::of(prop::sample::select(vec![80u16, 8080, 443]));
    let http = prop::option::weighted(
        0.8,
        (
            prop::sample::select(vec![Method::GET, Method::POST, Method::DELETE]),
            prop::sample::select(vec![
                "/",
                "/a",
                "/a/",
                "/a/b",
                "/ab",
                "/b",
                "/b/c",
                "/pkg.S/M",
                "/c",
                "/A",
                "*",
                "/a/../b",
                "//a",
                "/b/%2e%2e/a",
            ]),
            prop::option::weighted(
                0.9,
                prop::sample::select(vec![
                    "x.com", "X.COM", "a.x.com", "y.com", "y.com.", "[::1]", "z.org", "Z.ORG.",
                    "x.com:80",
                ]),
            ),
            prop::collection::vec(prop::sample::select(vec!["1", "2", "22", "3"]), 0..3),
        ),
    );
    (peer, jwt, source, port, http).prop_map(|(peer, jwt, source, port, http)| Req {
        peer: peer.map(id),
        jwt: jwt.map(|(iss, sub, claims)| jwt_owned(iss, sub, claims)),
        source: source.map(|s| s.parse().unwrap()),
        port,
        http: http.map(|(method, path, host, values)| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append("x-a", HeaderValue::from_static(v));
            }
            (method, path, host, headers)
        }),
    })
}

fn jwt_owned(iss: &str, sub: &str, claims: serde_json::Value) -> RequestPrincipal {
    jwt(iss, sub, claims)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The index consults fewer rules and reaches the decision a scan in file order does: same
    /// verdict, same deciding rule, same missing principals.
    #[test]
    fn index_decides_as_a_linear_scan(
        policy in arb_policy(),
        requests in prop::collection::vec(arb_req(), 1..16),
    ) {
        for req in &requests {
            let attrs = req.attrs();
            prop_assert_eq!(policy.evaluate(&attrs), policy.evaluate_linear(&attrs), "{:?}", req);
        }
    }

    /// Without ALLOW rules nothing is allowed (H5), whatever the request.
    #[test]
    fn no_allow_rule_allows_nothing(
        policy in arb_policy(),
        requests in prop::collection::vec(arb_req(), 1..16),
    ) {
        let deny_only = policy.rules().all(|r| r.action() == Action::Deny);
        for req in &requests {
            let d = policy.evaluate(&req.attrs());
            if deny_only {
                prop_assert_eq!(d.verdict(), Verdict::Deny);
            }
            // Allowed only by a rule, and only in enforce mode by an ALLOW rule.
            if d.verdict() == Verdict::Allow {
                let name = d.rule().expect("an allow names its rule");
                let rule = policy.rules().find(|r| r.name() == name).expect("a rule of the policy");
                prop_assert_eq!(rule.action(), Action::Allow);
                prop_assert!(!d.needs_authentication());
            }
            prop_assert_eq!(d.is_allowed(), d.verdict() == Verdict::Allow || policy.mode() == Mode::Audit);
        }
    }
}

#[test]
fn index_buckets_skip_unrelated_rules() {
    // Not a semantic test (the property above is): checks the index actually narrows, so the
    // performance claim has a test that can fail.
    let mut text = String::new();
    for i in 0..100 {
        text += &format!(
            "[[rules]]\nname = \"r{i}\"\naction = \"allow\"\nto.paths = [\"/svc{i}/**\"]\n"
        );
    }
    text += "[[rules]]\nname = \"h\"\naction = \"allow\"\nto.hosts = [\"api.example.com\"]\n";
    text += "[[rules]]\nname = \"o\"\naction = \"allow\"\nto.not_paths = [\"/x\"]\n";
    let p = policy(&text);
    let headers = HeaderMap::new();
    let get = Method::GET;
    let attrs = Attributes {
        http: Some(http(&get, "/svc42/items", &headers)),
        ..Attributes::default()
    };
    let request = super::eval::Request::new(&attrs);
    let lists = p.index.candidates(Action::Allow, &request);
    assert_eq!(lists, [&[42usize][..], &[100][..], &[101][..]]);
    let tcp = Attributes::default();
    let request = super::eval::Request::new(&tcp);
    let lists = p.index.candidates(Action::Allow, &request);
    assert_eq!(lists.iter().map(|l| l.len()).sum::<usize>(), 0);
}
