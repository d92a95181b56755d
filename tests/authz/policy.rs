//! Group C (policy semantics through the layer) and A17 (anonymous peers of a permissive
//! server), over real mTLS: the peer identity the policy judges is the one the handshake
//! verified.

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_mesh::authz::AuthzLayer;
use tower_mesh::authz::policy::Policy;

use crate::support::*;

#[tokio::test]
async fn c1_no_rules_denies_http_and_grpc() {
    let mesh = Mesh::new();
    let server = Server::start(mesh.tls(SERVER), AuthzLayer::new(policy(""))).await;
    let a = Client::new(&mesh, A, &server);
    let reply = a.send(get("/")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.is_empty());
    let grpc = Request::post("/pkg.Service/Method")
        .header("host", "api")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::default())
        .unwrap();
    let reply = a.send(grpc).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["grpc-status"], "7", "PERMISSION_DENIED");
    assert_eq!(reply.headers["content-type"], "application/grpc");
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn c3_allow_for_a_does_not_allow_b() {
    let mesh = Mesh::new();
    let authz = AuthzLayer::new(policy(&format!(
        r#"
        [[rules]]
        name = "a-only"
        action = "allow"
        from.principals = ["{A}"]
        "#
    )));
    let server = Server::start(mesh.tls(SERVER), authz).await;
    let reply = Client::new(&mesh, B, &server).send(get("/x")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 0);
    // The control: the same request from `a` passes, with its verified identity attached.
    let reply = Client::new(&mesh, A, &server).send(get("/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = server.last().unwrap();
    assert_eq!(seen.peer.as_deref(), Some(A));
    assert_eq!(seen.rule.as_deref(), Some("a-only"));
}

#[tokio::test]
async fn c4_deny_wins_over_a_matching_allow() {
    let mesh = Mesh::new();
    let allow = format!(
        r#"
        [[rules]]
        name = "a-on-x"
        action = "allow"
        from.principals = ["{A}"]
        to.paths = ["/x"]
        "#
    );
    let deny = format!(
        r#"
        [[rules]]
        name = "deny-a"
        action = "deny"
        from.principals = ["{A}"]
        "#
    );
    let shared = policy(&format!("{allow}{deny}"));
    let server = Server::start(mesh.tls(SERVER), AuthzLayer::new(shared.clone())).await;
    let a = Client::new(&mesh, A, &server);
    assert_eq!(a.send(get("/x")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 0);
    // The control: without the DENY rule the ALLOW rule lets the same request through.
    shared.store(Policy::from_toml_str(&allow).unwrap());
    assert_eq!(a.send(get("/x")).await.status, StatusCode::OK);
    assert_eq!(server.last().unwrap().rule.as_deref(), Some("a-on-x"));
}

#[tokio::test]
async fn c9_every_required_authentication_must_hold() {
    let mesh = Mesh::new();
    let rule = |block: &str| {
        format!(
            r#"
            [[rules]]
            name = "a-from-{block}"
            action = "allow"
            from.principals = ["{A}"]
            from.source_blocks = ["{block}"]
            "#
        )
    };
    let server = Server::start(
        mesh.tls(SERVER),
        AuthzLayer::new(policy(&rule("10.0.0.0/8"))),
    )
    .await;
    let a = Client::new(&mesh, A, &server);
    // `a` from 127.0.0.1: the identity holds, the network does not.
    let mut spoofed = get("/x");
    spoofed
        .headers_mut()
        .insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
    spoofed
        .headers_mut()
        .insert("x-real-ip", "10.0.0.1".parse().unwrap());
    assert_eq!(a.send(spoofed).await.status, StatusCode::FORBIDDEN);
    assert_eq!(a.send(get("/x")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 0);

    // The control: the loopback network and `a` both hold.
    let server = Server::start(
        mesh.tls(SERVER),
        AuthzLayer::new(policy(&rule("127.0.0.0/8"))),
    )
    .await;
    let reply = Client::new(&mesh, A, &server).send(get("/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(server.calls(), 1);
    let reply = Client::new(&mesh, B, &server).send(get("/x")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 1);
}

/// C11–C12: the model has no routes, so there is no 404 for "route exists, request
/// unmatched": a request no rule allows is denied, 403, before the application (which would
/// answer 404 itself) is called.
#[tokio::test]
async fn c11_c12_unmatched_and_unauthorized_routes_are_403() {
    let mesh = Mesh::new();
    let authz = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "read-authors"
        action = "allow"
        to.methods = ["GET"]
        to.paths = ["/authors/**"]
        "#,
    ));
    let server = Server::start(mesh.tls(SERVER), authz).await;
    let a = Client::new(&mesh, A, &server);
    for method in ["DELETE", "PUT"] {
        let req = Request::builder()
            .method(method)
            .uri("/authors/1")
            .header("host", "api")
            .body(Full::default())
            .unwrap();
        assert_eq!(a.send(req).await.status, StatusCode::FORBIDDEN, "{method}");
    }
    assert_eq!(server.calls(), 0);
    assert_eq!(a.send(get("/authors/1")).await.status, StatusCode::OK);
    assert_eq!(server.last().unwrap().uri, "/authors/1");
}

#[tokio::test]
async fn c17_policy_flip_applies_to_the_next_request_on_a_live_connection() {
    let mesh = Mesh::new();
    let shared = policy(&format!(
        "[[rules]]\nname = \"a\"\naction = \"allow\"\nfrom.principals = [\"{A}\"]\n"
    ));
    let server = Server::start(mesh.tls(SERVER), AuthzLayer::new(shared.clone())).await;
    let mut conn = Client::new(&mesh, A, &server).sender().await;
    assert_eq!(send(&mut conn, get("/x")).await.status, StatusCode::OK);
    shared.store(Policy::empty());
    assert_eq!(
        send(&mut conn, get("/x")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.calls(), 1);
    shared.store(Policy::from_toml_str("[[rules]]\nname = \"all\"\naction = \"allow\"\n").unwrap());
    assert_eq!(send(&mut conn, get("/y")).await.status, StatusCode::OK);
    assert_eq!(server.calls(), 2);
    assert_eq!(
        server.accepted(),
        1,
        "all three requests on one keep-alive connection"
    );
}

#[tokio::test]
async fn a17_anonymous_peer_of_a_permissive_server() {
    let mesh = Mesh::new();
    let authz = AuthzLayer::new(policy(&format!(
        r#"
        [[rules]]
        name = "deny-anonymous-admin"
        action = "deny"
        from.not_principals = ["*"]
        to.paths = ["/admin/**"]

        [[rules]]
        name = "a-everywhere"
        action = "allow"
        from.principals = ["{A}"]

        [[rules]]
        name = "anyone-public"
        action = "allow"
        to.paths = ["/public/**"]
        "#
    )));
    let server = Server::start(mesh.permissive(SERVER), authz).await;
    // No certificate: let in by TLS, anonymous to the policy.
    let mut anon = sender(anonymous(server.addr).await).await;
    assert_eq!(
        send(&mut anon, get("/private")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&mut anon, get("/admin/x")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.calls(), 0);
    assert_eq!(
        send(&mut anon, get("/public/x")).await.status,
        StatusCode::OK
    );
    assert_eq!(server.last().unwrap().peer, None);
    // A client that does present a certificate is identified on the same server.
    let reply = Client::new(&mesh, A, &server).send(get("/admin/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = server.last().unwrap();
    assert_eq!(
        (seen.peer.as_deref(), seen.rule.as_deref()),
        (Some(A), Some("a-everywhere"))
    );
}
