//! Unit tests: the request-line checks, header stripping, the forwarded path and extensions,
//! the response mapping (HTTP and gRPC), audit mode, and the egress checks. End-to-end tests
//! over real mTLS are in `tests/authz/`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use tower::{BoxError, Layer, ServiceExt};

use super::request::{self, ReadOptions};
use super::response::is_grpc;
use super::*;
use crate::authz::policy::{DecidedBy, Policy, SharedPolicy};
use crate::authz::{Normalizer, PathRejectReason, RequestPrincipal};
use crate::identity::{Identity, PeerIdentity};

// ---------------------------------------------------------------------------------------------
// Helpers

/// What the inner service saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    headers: HeaderMap,
    peer: Option<String>,
    principal: Option<String>,
    decision: Option<AuthzDecision>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An echo service recording every request it is called with.
fn echo(
    log: &Log,
) -> impl tower::Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let log = log.clone();
    tower::service_fn(move |req: Request<()>| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Seen {
                uri: req.uri().to_string(),
                headers: req.headers().clone(),
                peer: req
                    .extensions()
                    .get::<PeerIdentity>()
                    .map(|p| p.to_string()),
                principal: req
                    .extensions()
                    .get::<RequestPrincipal>()
                    .map(|p| p.to_string()),
                decision: req.extensions().get::<AuthzDecision>().cloned(),
            });
            Ok::<_, Infallible>(Response::new("ok".to_owned()))
        }
    })
}

fn policy(toml: &str) -> SharedPolicy {
    SharedPolicy::new(Policy::from_toml_str(toml).unwrap())
}

const PUBLIC: &str = r#"
[[rules]]
name = "public"
action = "allow"
to.paths = ["/public/**"]
"#;

const ALLOW_ALL: &str = r#"
[[rules]]
name = "all"
action = "allow"
"#;

fn peer(id: &str) -> PeerIdentity {
    PeerIdentity::new(Identity::parse(id).unwrap())
}

fn get(target: &str) -> Request<()> {
    Request::get(target).header("host", "api").body(()).unwrap()
}

/// Sends `req` through an `AuthzLayer` over an echo service; returns the response and what
/// the echo service saw (`None`: never called).
async fn send(layer: &AuthzLayer, req: Request<()>) -> (Response<String>, Option<Seen>) {
    let log = Log::default();
    let response = layer.layer(echo(&log)).oneshot(req).await.unwrap();
    let mut seen = log.lock().unwrap().clone();
    assert!(seen.len() <= 1);
    (response, seen.pop())
}

async fn status(layer: &AuthzLayer, req: Request<()>) -> StatusCode {
    let (response, seen) = send(layer, req).await;
    if response.status() != StatusCode::OK {
        assert!(
            seen.is_none(),
            "refused with {} but called",
            response.status()
        );
    }
    response.status()
}

// ---------------------------------------------------------------------------------------------
// (a) The request line

#[tokio::test]
async fn lowercase_method_is_refused() {
    let layer = AuthzLayer::new(policy(ALLOW_ALL));
    let lower = Request::builder()
        .method(Method::from_bytes(b"get").unwrap())
        .uri("/public")
        .header("host", "api")
        .body(())
        .unwrap();
    assert_eq!(status(&layer, lower).await, StatusCode::BAD_REQUEST);
    let upper_extension = Request::builder()
        .method(Method::from_bytes(b"PURGE").unwrap())
        .uri("/public")
        .header("host", "api")
        .body(())
        .unwrap();
    assert_eq!(status(&layer, upper_extension).await, StatusCode::OK);
}

#[tokio::test]
async fn connect_and_asterisk_are_refused_unless_allowed() {
    let options = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("*")
            .header("host", "api")
            .body(())
            .unwrap()
    };
    let connect = || {
        Request::builder()
            .method(Method::CONNECT)
            .uri("api:443")
            .header("host", "api:443")
            .body(())
            .unwrap()
    };
    let strict = AuthzLayer::new(policy(ALLOW_ALL));
    assert_eq!(status(&strict, options()).await, StatusCode::BAD_REQUEST);
    assert_eq!(status(&strict, connect()).await, StatusCode::BAD_REQUEST);

    // Allowed: judged without a path, so a rule with `paths` cannot allow them.
    let open = AuthzLayer::new(policy(ALLOW_ALL))
        .allow_asterisk_form()
        .allow_connect();
    let (response, seen) = send(&open, options()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.unwrap().uri, "*");
    assert_eq!(status(&open, connect()).await, StatusCode::OK);
    let paths = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "everything-below-root"
        action = "allow"
        to.paths = ["/**"]
        "#,
    ))
    .allow_asterisk_form()
    .allow_connect();
    assert_eq!(status(&paths, options()).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&paths, connect()).await, StatusCode::FORBIDDEN);

    // `*` on another method, authority-form on another method.
    let star = Request::get("*").header("host", "api").body(()).unwrap();
    assert_eq!(status(&open, star).await, StatusCode::BAD_REQUEST);
    let authority = Request::get("api:443")
        .header("host", "api")
        .body(())
        .unwrap();
    assert_eq!(status(&open, authority).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn host_is_read_one_way() {
    let layer = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "public-host"
        action = "allow"
        to.hosts = ["public"]
        "#,
    ));
    let req = |target: &str, hosts: &[&str], version: Version| {
        let mut b = Request::get(target).version(version);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    };
    let v11 = Version::HTTP_11;
    // D15: absolute-form naming another host than Host.
    let cases = [
        (
            req("http://other/admin", &["public"], v11),
            StatusCode::BAD_REQUEST,
        ),
        (
            req("http://public:81/a", &["public:80"], v11),
            StatusCode::BAD_REQUEST,
        ),
        (
            req("http://public/a", &["public:80"], v11),
            StatusCode::BAD_REQUEST,
        ),
        (
            req("/a", &["public", "public"], v11),
            StatusCode::BAD_REQUEST,
        ),
        (
            req("/a", &["public", "other"], v11),
            StatusCode::BAD_REQUEST,
        ),
        (req("/a", &["user@public"], v11), StatusCode::BAD_REQUEST),
        (req("/a", &["127.1"], v11), StatusCode::BAD_REQUEST),
        (req("/a", &["public:x"], v11), StatusCode::BAD_REQUEST),
        (req("/a", &[""], v11), StatusCode::BAD_REQUEST),
        (
            req("http://user@public/a", &[], v11),
            StatusCode::BAD_REQUEST,
        ),
        (req("/a", &[], v11), StatusCode::BAD_REQUEST),
        // HTTP/2: `:authority` against a conflicting Host.
        (
            req("https://other/a", &["public"], Version::HTTP_2),
            StatusCode::BAD_REQUEST,
        ),
        // The same host, spelled canonically or not.
        (req("http://PUBLIC./a", &["public"], v11), StatusCode::OK),
        (
            req("http://public:8080/a", &["Public:8080"], v11),
            StatusCode::OK,
        ),
        (req("/a", &["PUBLIC.:8080"], v11), StatusCode::OK),
        (
            req("https://public/a", &[], Version::HTTP_2),
            StatusCode::OK,
        ),
        // HTTP/1.0 needs no host; the rule then cannot match.
        (req("/a", &[], Version::HTTP_10), StatusCode::FORBIDDEN),
        (req("/a", &["other"], v11), StatusCode::FORBIDDEN),
    ];
    for (request, want) in cases {
        let shown = format!("{} {:?}", request.uri(), request.headers().get_all("host"));
        assert_eq!(status(&layer, request).await, want, "{shown}");
    }
}

#[tokio::test]
async fn absolute_form_keeps_its_authority_and_gets_the_normalized_path() {
    let layer = AuthzLayer::new(policy(PUBLIC));
    let req = Request::get("http://api/public//a/./b?q=%2e%2e")
        .header("host", "api")
        .body(())
        .unwrap();
    let (response, seen) = send(&layer, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.unwrap().uri, "http://api/public/a/b?q=%2e%2e");
    // `http://api` has no path: it is `/`, which `/public/**` does not allow.
    let bare = Request::get("http://api").body(()).unwrap();
    assert_eq!(status(&layer, bare).await, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------------
// (b) The path

#[tokio::test]
async fn forwards_exactly_the_authorized_path() {
    let layer = AuthzLayer::new(policy(PUBLIC));
    let cases = [
        ("/public//x", Some("/public/x")),
        ("/public/./x/../y?a=1&b=/../", Some("/public/y?a=1&b=/../")),
        ("/public/%7Eme", Some("/public/~me")),
        ("/%70ublic/x", Some("/public/x")),
        ("/public/../admin", None),
        ("//admin", None),
        ("/public/%2e%2e/admin", None),
        ("/admin?/public", None),
    ];
    for (target, forwarded) in cases {
        let (response, seen) = send(&layer, get(target)).await;
        match forwarded {
            Some(path) => {
                assert_eq!(response.status(), StatusCode::OK, "{target}");
                assert_eq!(seen.unwrap().uri, path, "{target}");
            }
            None => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{target}");
                assert!(seen.is_none(), "{target}");
            }
        }
    }
}

#[tokio::test]
async fn refused_paths_are_400_and_close_http1() {
    let layer = AuthzLayer::new(policy(ALLOW_ALL));
    for target in [
        "/a%2Fb",
        "/a%00",
        "/..",
        "/a%zz",
        "/a\"b",
        "/{x}",
        "/public/..;/admin",
    ] {
        let (response, seen) = send(&layer, get(target)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(response.headers()["connection"], "close", "{target}");
        assert!(response.body().is_empty());
        assert!(seen.is_none(), "{target}");
    }
    // HTTP/2 forbids `connection`.
    let h2 = Request::get("https://api/a%2Fb")
        .version(Version::HTTP_2)
        .body(())
        .unwrap();
    let (response, seen) = send(&layer, h2).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("connection").is_none());
    assert!(seen.is_none());
    // A relaxed normalizer is used as configured.
    let decode = AuthzLayer::new(policy(ALLOW_ALL))
        .normalizer(Normalizer::new().escaped_slashes(crate::authz::EscapedSlashes::Decode));
    let (_, seen) = send(&decode, get("/a%2Fb")).await;
    assert_eq!(seen.unwrap().uri, "/a/b");
}

// ---------------------------------------------------------------------------------------------
// (c) Identity headers from outside

#[tokio::test]
async fn identity_headers_are_stripped_before_the_policy() {
    // A rule that would let a spoofed header in: it must never match.
    let layer = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "trusts-xfcc"
        action = "allow"
        when.headers."x-forwarded-client-cert" = ["*"]

        [[rules]]
        name = "trusts-custom"
        action = "allow"
        when.headers."x-user" = ["*"]
        "#,
    ))
    .strip_header(http::HeaderName::from_static("x-user"));
    let spoofed = Request::get("/a")
        .header("host", "api")
        .header(
            "x-forwarded-client-cert",
            "By=spiffe://td-a/x;URI=spiffe://td-a/admin",
        )
        .header("x-forwarded-client-cert", "URI=spiffe://td-a/admin")
        .header("x-user", "admin")
        .body(())
        .unwrap();
    assert_eq!(status(&layer, spoofed).await, StatusCode::FORBIDDEN);

    let open =
        AuthzLayer::new(policy(ALLOW_ALL)).strip_header(http::HeaderName::from_static("x-user"));
    let req = Request::get("/a")
        .header("host", "api")
        .header("x-forwarded-client-cert", "URI=spiffe://td-a/admin")
        .header("l5d-client-id", "admin.ns.serviceaccount.identity.linkerd")
        .header("x-spiffe-id", "spiffe://td-a/admin")
        .header("x-remote-user", "admin")
        .header("x-user", "admin")
        .header("x-kept", "1")
        .body(())
        .unwrap();
    let (response, seen) = send(&open, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = seen.unwrap().headers;
    for name in [
        "x-forwarded-client-cert",
        "l5d-client-id",
        "x-spiffe-id",
        "x-remote-user",
        "x-user",
    ] {
        assert!(headers.get(name).is_none(), "{name} reached the service");
    }
    assert_eq!(headers["x-kept"], "1");
}

// ---------------------------------------------------------------------------------------------
// (d) (e) (f) Authentication, decision, extensions

#[tokio::test]
async fn peer_identity_source_and_port_are_judged() {
    let layer = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "a-from-inside"
        action = "allow"
        from.principals = ["spiffe://td-a/ns/x/sa/a"]
        from.source_blocks = ["10.0.0.0/8"]
        to.ports = [8443]
        "#,
    ));
    let at = |port: Option<u16>| match port {
        Some(p) => layer.clone().local_port(p),
        None => layer.clone(),
    };
    let req = |id: Option<&str>, source: Option<&str>| {
        let mut req = get("/x");
        if let Some(id) = id {
            req.extensions_mut().insert(peer(id));
        }
        if let Some(source) = source {
            req.extensions_mut()
                .insert(source.parse::<SocketAddr>().unwrap());
        }
        // Never read: the source is the socket's.
        req.headers_mut()
            .insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        req
    };
    let a = Some("spiffe://td-a/ns/x/sa/a");
    let inside = Some("10.1.2.3:5000");
    let (response, seen) = send(&at(Some(8443)), req(a, inside)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.unwrap();
    assert_eq!(seen.peer.as_deref(), a);
    let decision = seen.decision.unwrap();
    assert_eq!(decision.rule().unwrap().as_str(), "a-from-inside");
    assert!(!decision.is_audited_denial());

    for (layer, req) in [
        (at(Some(8443)), req(Some("spiffe://td-a/ns/x/sa/b"), inside)),
        (at(Some(8443)), req(None, inside)),
        (at(Some(8443)), req(a, Some("192.168.1.5:5000"))),
        (at(Some(8443)), req(a, None)),
        (at(Some(8080)), req(a, inside)),
        (at(None), req(a, inside)),
    ] {
        assert_eq!(status(&layer, req).await, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn a_request_principal_not_verified_here_is_removed() {
    let layer = AuthzLayer::new(policy(ALLOW_ALL));
    let mut req = get("/a");
    req.extensions_mut().insert(RequestPrincipal::new(
        "https://idp".into(),
        "mallory".into(),
        Default::default(),
    ));
    // A stale decision is replaced as well.
    let (_, seen) = send(&layer, req).await;
    let seen = seen.unwrap();
    assert_eq!(seen.principal, None);
    assert_eq!(seen.decision.unwrap().rule().unwrap().as_str(), "all");
}

#[tokio::test]
async fn audit_mode_forwards_and_says_so() {
    let layer = AuthzLayer::new(policy("mode = \"audit\"\n"));
    let (response, seen) = send(&layer, get("/anything")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let decision = seen.unwrap().decision.unwrap();
    assert!(decision.is_audited_denial());
    assert_eq!(decision.rule(), None);
    assert_eq!(decision.decision().decided_by(), &DecidedBy::Default);
    // Audit mode does not let ambiguous requests through.
    assert_eq!(status(&layer, get("/a%2Fb")).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn policy_changes_apply_to_the_next_request() {
    let shared = policy(ALLOW_ALL);
    let log = Log::default();
    let service = AuthzLayer::new(shared.clone()).layer(echo(&log));
    let first = service.clone().oneshot(get("/a")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    shared.store(Policy::empty());
    let second = service.oneshot(get("/a")).await.unwrap();
    assert_eq!(second.status(), StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------------
// Responses

#[tokio::test]
async fn grpc_requests_get_trailers_only_statuses() {
    let layer = AuthzLayer::new(policy(PUBLIC));
    let grpc = |target: &str| {
        Request::post(target)
            .header("host", "api")
            .header("content-type", "application/grpc+proto")
            .body(())
            .unwrap()
    };
    for (target, code, message) in [
        ("/pkg.Admin/Delete", "7", "permission denied"),
        ("/pkg.Admin%2FDelete", "3", "invalid request"),
    ] {
        let (response, seen) = send(&layer, grpc(target)).await;
        assert!(seen.is_none());
        assert_eq!(response.status(), StatusCode::OK, "{target}");
        let h = response.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-status"], code, "{target}");
        assert_eq!(h["grpc-message"], message);
        assert!(h.get("connection").is_none());
        assert!(response.body().is_empty());
    }
}

#[test]
fn grpc_content_types() {
    let is = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert("content-type", ct.parse().unwrap());
        is_grpc(&h)
    };
    for ct in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc;charset=utf-8",
        "Application/GRPC",
    ] {
        assert!(is(ct), "{ct}");
    }
    for ct in [
        "application/grpcx",
        "application/json",
        "application/grp",
        "text/grpc",
    ] {
        assert!(!is(ct), "{ct}");
    }
    assert!(!is_grpc(&HeaderMap::new()));
}

// ---------------------------------------------------------------------------------------------
// Shared reading

#[test]
fn read_reports_each_reason() {
    let read = |req: Request<()>| request::read(&req, &Normalizer::new(), ReadOptions::default());
    let method = Method::from_bytes(b"Get").unwrap();
    let lower = Request::builder()
        .method(method.clone())
        .uri("/")
        .body(())
        .unwrap();
    assert_eq!(
        read(lower).unwrap_err(),
        InvalidRequest::LowercaseMethod(method)
    );
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri("a:1")
        .body(())
        .unwrap();
    assert_eq!(read(connect).unwrap_err(), InvalidRequest::Connect);
    let star = Request::builder()
        .method(Method::OPTIONS)
        .uri("*")
        .body(())
        .unwrap();
    assert_eq!(read(star).unwrap_err(), InvalidRequest::AsteriskForm);
    let conflict = Request::get("http://a/")
        .header("host", "b")
        .body(())
        .unwrap();
    assert_eq!(read(conflict).unwrap_err(), InvalidRequest::HostConflict);
    let two = Request::get("/")
        .header("host", "a")
        .header("host", "a")
        .body(())
        .unwrap();
    assert_eq!(read(two).unwrap_err(), InvalidRequest::MultipleHosts);
    let bad = Request::get("/").header("host", "a..b").body(()).unwrap();
    assert_eq!(read(bad).unwrap_err(), InvalidRequest::InvalidHost);
    let path = Request::get("/a%2F").body(()).unwrap();
    match read(path).unwrap_err() {
        InvalidRequest::Path(e) => assert_eq!(e.reason(), PathRejectReason::EscapedSlash),
        other => panic!("{other:?}"),
    }
    // Without `require_host` (egress), a missing host is no host.
    let none = read(Request::get("/a").body(()).unwrap()).unwrap();
    assert_eq!((none.host, none.port), (None, None));
    let tls = read(Request::get("https://API.:8443/a").body(()).unwrap()).unwrap();
    assert_eq!((tls.host.as_deref(), tls.port), (Some("api"), Some(8443)));
    let default = read(Request::get("https://api/a").body(()).unwrap()).unwrap();
    assert_eq!(default.port, Some(443));
}

#[test]
fn errors_display_lowercase_without_the_attackers_bytes() {
    let path = Normalizer::new().normalize("/a%2F\r\nx").unwrap_err();
    let errors = [
        InvalidRequest::Path(path),
        InvalidRequest::LowercaseMethod(Method::from_bytes(b"get").unwrap()),
        InvalidRequest::AsteriskForm,
        InvalidRequest::Connect,
        InvalidRequest::TargetForm,
        InvalidRequest::InvalidHost,
        InvalidRequest::MultipleHosts,
        InvalidRequest::HostConflict,
        InvalidRequest::MissingHost,
    ];
    for e in errors {
        let s = e.to_string();
        assert!(
            s.starts_with(|c: char| c.is_ascii_lowercase()) && !s.ends_with('.'),
            "{s}"
        );
        assert!(!s.contains('\r') && !s.contains("%2F"), "{s}");
    }
    let denied = EgressDenied::new(
        Method::GET,
        Some("api".into()),
        "/admin".into(),
        DecidedBy::Default,
    );
    assert_eq!(
        denied.to_string(),
        r#"egress policy denied GET "/admin" on host "api" by default"#
    );
}

// ---------------------------------------------------------------------------------------------
// ConnectionInfo

#[tokio::test]
async fn connection_info_sets_and_clears_extensions() {
    let app = tower::service_fn(|req: Request<()>| async move {
        let e = req.extensions();
        Ok::<_, Infallible>((
            e.get::<PeerIdentity>().map(|p| p.to_string()),
            e.get::<SocketAddr>().copied(),
        ))
    });
    let addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let with = ConnectionInfoLayer::new()
        .peer_identity(Some(peer("spiffe://td-a/a")))
        .remote_addr(addr)
        .layer(app);
    let seen = with.oneshot(Request::new(())).await.unwrap();
    assert_eq!(seen, (Some("spiffe://td-a/a".to_owned()), Some(addr)));
    // Anonymous: whatever the request carried is removed.
    let mut req = Request::new(());
    req.extensions_mut().insert(peer("spiffe://td-a/admin"));
    req.extensions_mut().insert(addr);
    let seen = ConnectionInfoLayer::new()
        .layer(app)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(seen, (None, None));
}

// ---------------------------------------------------------------------------------------------
// Egress

const EGRESS: &str = r#"
[[rules]]
name = "deny-admin"
action = "deny"
to.paths = ["/admin/**"]

[[rules]]
name = "catalog-reads"
action = "allow"
to.hosts = ["catalog.svc"]
to.methods = ["GET"]
to.ports = [443]
"#;

async fn egress(req: Request<()>) -> (Result<Response<String>, BoxError>, Vec<Seen>) {
    let log = Log::default();
    let result = EgressLayer::new(policy(EGRESS))
        .layer(echo(&log))
        .oneshot(req)
        .await;
    let seen = log.lock().unwrap().clone();
    (result, seen)
}

#[tokio::test]
async fn egress_forwards_the_normalized_path() {
    let (result, seen) = egress(
        Request::get("https://catalog.svc/items//1/./?x=..")
            .body(())
            .unwrap(),
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "https://catalog.svc/items/1/?x=..");
    // The Host header names the destination of an origin-form request.
    let origin = Request::get("/items")
        .header("host", "Catalog.SVC:443")
        .body(())
        .unwrap();
    let (result, seen) = egress(origin).await;
    assert!(result.is_ok());
    assert_eq!(seen[0].uri, "/items");
}

#[tokio::test]
async fn egress_denials_are_typed_and_send_nothing() {
    let denied = [
        (
            "https://catalog.svc/admin/x",
            Method::GET,
            Some("deny-admin"),
            "/admin/x",
        ),
        (
            "https://catalog.svc/items/../admin",
            Method::GET,
            Some("deny-admin"),
            "/admin",
        ),
        ("https://catalog.svc/items", Method::DELETE, None, "/items"),
        ("http://catalog.svc/items", Method::GET, None, "/items"),
        ("https://other.svc/items", Method::GET, None, "/items"),
    ];
    for (uri, method, rule, path) in denied {
        let req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(())
            .unwrap();
        let (result, seen) = egress(req).await;
        let err = result.unwrap_err();
        let denied = err
            .downcast_ref::<EgressDenied>()
            .unwrap_or_else(|| panic!("{uri}: {err}"));
        assert_eq!(denied.rule().map(|r| r.as_str()), rule, "{uri}");
        assert_eq!(denied.path(), path);
        assert_eq!(denied.method(), method);
        assert!(seen.is_empty(), "{uri} was sent");
    }
    let invalid = [
        Request::get("https://catalog.svc/a%2Fb").body(()).unwrap(),
        Request::get("https://catalog.svc/..").body(()).unwrap(),
        Request::get("https://catalog.svc/a")
            .header("host", "admin.svc")
            .body(())
            .unwrap(),
        Request::builder()
            .method(Method::from_bytes(b"get").unwrap())
            .uri("https://catalog.svc/a")
            .body(())
            .unwrap(),
        Request::builder()
            .method(Method::CONNECT)
            .uri("catalog.svc:443")
            .body(())
            .unwrap(),
    ];
    for req in invalid {
        let uri = req.uri().to_string();
        let (result, seen) = egress(req).await;
        let err = result.unwrap_err();
        assert!(
            err.downcast_ref::<InvalidRequest>().is_some(),
            "{uri}: {err}"
        );
        assert!(seen.is_empty(), "{uri} was sent");
    }
}

#[tokio::test]
async fn egress_inner_errors_pass_through() {
    #[derive(Debug, thiserror::Error)]
    #[error("inner failed")]
    struct InnerFailed;
    let failing = tower::service_fn(|_: Request<()>| async { Err::<(), _>(InnerFailed) });
    let err = EgressLayer::new(policy(ALLOW_ALL))
        .layer(failing)
        .oneshot(Request::get("http://a/").body(()).unwrap())
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<InnerFailed>().is_some());
}

#[test]
fn public_types_are_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<AuthzLayer>();
    check::<Authz<()>>();
    check::<AuthzFuture<std::future::Ready<()>, String>>();
    check::<AuthzDecision>();
    check::<ConnectionInfoLayer>();
    check::<ConnectionInfo<()>>();
    check::<EgressLayer>();
    check::<Egress<()>>();
    check::<EgressFuture<std::future::Ready<()>>>();
    check::<EgressDenied>();
    check::<InvalidRequest>();
}
