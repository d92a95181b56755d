//! Group E, headers and HTTP/1 parsing, through hyper's server: identity headers from outside
//! are stripped (E2); malformed header syntax, ambiguous framing and oversized header blocks
//! are refused by hyper before any service runs (E8–E10, E12); where hyper accepts a message
//! (`Content-Length` with `Transfer-Encoding`), the application reads it as hyper framed it
//! and the connection is closed after the response.

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_mesh::authz::AuthzLayer;

use crate::support::*;

const ALLOW_ALL: &str = "[[rules]]\nname = \"all\"\naction = \"allow\"\n";

async fn open_server(mesh: &Mesh) -> Server {
    Server::start(mesh.tls(SERVER), AuthzLayer::new(policy(ALLOW_ALL))).await
}

#[tokio::test]
async fn e2_forwarded_client_cert_is_stripped() {
    let mesh = Mesh::new();
    let server = open_server(&mesh).await;
    let a = Client::new(&mesh, A, &server);
    let spoofed = Request::get("/x")
        .header("host", "api")
        .header(
            "x-forwarded-client-cert",
            "By=spiffe://td-a/ns/app/sa/server;URI=spiffe://td-a/ns/app/sa/admin",
        )
        .header("x-spiffe-id", "spiffe://td-a/ns/app/sa/admin")
        .header(
            "l5d-client-id",
            "admin.app.serviceaccount.identity.linkerd.cluster.local",
        )
        .body(Full::default())
        .unwrap();
    assert_eq!(a.send(spoofed).await.status, StatusCode::OK);
    let seen = server.last().unwrap();
    for name in ["x-forwarded-client-cert", "x-spiffe-id", "l5d-client-id"] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the application"
        );
    }
    // The identity the application sees is the verified one.
    assert_eq!(seen.peer.as_deref(), Some(A));

    // A policy that trusts the header never sees it.
    let trusting = AuthzLayer::new(policy(
        r#"
        [[rules]]
        name = "trusts-xfcc"
        action = "allow"
        when.headers."x-forwarded-client-cert" = ["*"]
        "#,
    ));
    let server = Server::start(mesh.tls(SERVER), trusting).await;
    let spoofed = Request::get("/x")
        .header("host", "api")
        .header(
            "x-forwarded-client-cert",
            "URI=spiffe://td-a/ns/app/sa/admin",
        )
        .body(Full::default())
        .unwrap();
    let reply = Client::new(&mesh, A, &server).send(spoofed).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 0);
}

/// Sends each raw request and asserts hyper's answer, and that the application was not called.
async fn refused_by_hyper(requests: &[&str], status: u16) {
    let mesh = Mesh::new();
    let server = open_server(&mesh).await;
    let a = Client::new(&mesh, A, &server);
    for request in requests {
        let raw = a.raw(request.as_bytes()).await;
        assert_eq!(raw.status(), status, "{request:?}\n{}", raw.text);
    }
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn e8_whitespace_in_a_header_name_is_400() {
    refused_by_hyper(
        &[
            "GET /x HTTP/1.1\r\nHost: api\r\nX-Role : admin\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: api\r\nX-Role\t: admin\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: api\r\n X-Role: admin\r\n\r\n",
        ],
        400,
    )
    .await;
}

#[tokio::test]
async fn e9_crlf_injection_and_obs_fold_are_400() {
    refused_by_hyper(
        &[
            // obs-fold continuation line.
            "GET /x HTTP/1.1\r\nHost: api\r\nX-A: a\r\n X-Admin: 1\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: api\r\nX-A: a\r\n\tX-Admin: 1\r\n\r\n",
            // A bare CR inside a value.
            "GET /x HTTP/1.1\r\nHost: api\r\nX-A: a\rX-Admin: 1\r\n\r\n",
            // NUL inside a value.
            "GET /x HTTP/1.1\r\nHost: api\r\nX-A: a\0b\r\n\r\n",
        ],
        400,
    )
    .await;
    // Outbound, a header value is never built from an unchecked string: `http` refuses CR and
    // LF, and the error is what a caller gets.
    assert!(http::HeaderValue::from_str("a\r\nX-Admin: 1").is_err());
}

#[tokio::test]
async fn e10_conflicting_framing_is_400() {
    refused_by_hyper(
        &[
            "POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            "POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: -1\r\n\r\n",
        ],
        400,
    )
    .await;
}

/// E10: with both `Content-Length` and `Transfer-Encoding: chunked`, hyper lets the chunked
/// coding win (RFC 9112 §6.3), so the application reads the chunked body, and it closes the
/// connection after the response: bytes smuggled after the body are never read as a request.
#[tokio::test]
async fn e10_transfer_encoding_overrides_content_length_and_closes() {
    let mesh = Mesh::new();
    let server = open_server(&mesh).await;
    let smuggle = "POST /x HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n0\r\n\r\n\
                   GET /admin HTTP/1.1\r\nHost: api\r\n\r\n";
    // No `Connection: close`: `raw` returns only because the server closes.
    let raw = Client::new(&mesh, A, &server).raw(smuggle.as_bytes()).await;
    assert_eq!(raw.status(), 200, "{}", raw.text);
    assert_eq!(raw.text.matches("HTTP/1.1").count(), 1, "{}", raw.text);
    assert_eq!(server.calls(), 1);
    let seen = server.last().unwrap();
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("POST", "/x"));
    assert_eq!(&seen.body[..], b"hello");
}

#[tokio::test]
async fn e12_oversized_header_blocks_are_431() {
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /x HTTP/1.1\r\nHost: api\r\n{many}\r\n");
    let huge = format!(
        "GET /x HTTP/1.1\r\nHost: api\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    refused_by_hyper(&[&many, &huge], 431).await;
    // The control: 98 headers plus Host and Connection are exactly hyper's limit of 100.
    let mesh = Mesh::new();
    let server = open_server(&mesh).await;
    let fits: String = (0..98).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fits = format!("GET /x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n{fits}\r\n");
    let raw = Client::new(&mesh, A, &server).raw(fits.as_bytes()).await;
    assert_eq!(raw.status(), 200, "{}", raw.text);
    assert_eq!(server.calls(), 1);
}
