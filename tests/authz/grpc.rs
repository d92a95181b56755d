//! gRPC status mapping over mTLS: refusals are trailers-only responses (HTTP 200,
//! `grpc-status` in the headers, no body); an allowed call reaches the application with its
//! method path.

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_mesh::authz::AuthzLayer;

use crate::support::*;

fn call(path: &str, content_type: &str) -> Request<Full<hyper::body::Bytes>> {
    Request::post(path)
        .header("host", "api")
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn grpc_refusals_map_to_grpc_statuses() {
    let mesh = Mesh::new();
    let authz = AuthzLayer::new(policy(&format!(
        r#"
        [[rules]]
        name = "a-calls-catalog"
        action = "allow"
        from.principals = ["{A}"]
        to.paths = ["/pkg.Catalog/*"]
        "#
    )));
    let server = Server::start(mesh.tls(SERVER), authz).await;
    let (a, b) = (
        Client::new(&mesh, A, &server),
        Client::new(&mesh, B, &server),
    );
    let cases = [
        (
            &b,
            "/pkg.Catalog/List",
            "application/grpc",
            "7",
            "permission denied",
        ),
        (
            &a,
            "/pkg.Admin/Drop",
            "application/grpc+proto",
            "7",
            "permission denied",
        ),
        (
            &a,
            "/pkg.Catalog%2FList",
            "application/grpc",
            "3",
            "invalid request",
        ),
        (
            &a,
            "/pkg.Catalog/../pkg.Admin/Drop",
            "application/grpc",
            "7",
            "permission denied",
        ),
    ];
    for (client, path, content_type, code, message) in cases {
        let reply = client.send(call(path, content_type)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.headers["grpc-status"], code, "{path}");
        assert_eq!(reply.headers["grpc-message"], message, "{path}");
        assert_eq!(reply.headers["content-type"], "application/grpc");
        assert!(reply.body.is_empty());
    }
    assert_eq!(server.calls(), 0);

    // Not gRPC: the same refusals in HTTP.
    let reply = b.send(call("/pkg.Catalog/List", "application/json")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get("grpc-status").is_none());

    // Allowed: the application gets the call, with the verified caller.
    let reply = a.send(call("/pkg.Catalog/List", "application/grpc")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("grpc-status").is_none());
    let seen = server.last().unwrap();
    assert_eq!(seen.uri, "/pkg.Catalog/List");
    assert_eq!(seen.rule.as_deref(), Some("a-calls-catalog"));
    assert_eq!(server.calls(), 1);
}
