//! Egress: `EgressLayer` around a `Balance` whose endpoint client opens a real mTLS connection
//! per call to an authz server. A denied call is a typed error and nothing is sent: the client
//! is not called and the server accepts no connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tower::{BoxError, Layer, ServiceExt};
use tower_mesh::authz::{AuthzLayer, EgressDenied, EgressLayer, InvalidRequest, PathRejectReason};
use tower_mesh::balance::{Balance, RoundRobin};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;
use tower_mesh::tls::{TlsConfig, TlsConnectLayer};

use crate::support::*;

type Req = Request<Full<Bytes>>;

const EGRESS: &str = r#"
[[rules]]
name = "catalog-reads"
action = "allow"
to.hosts = ["catalog.svc"]
to.methods = ["GET"]
to.paths = ["/items/**"]
"#;

/// The endpoint client: one mTLS connection per call; `sent` counts calls.
fn client(
    config: TlsConfig,
    endpoint: Endpoint,
    sent: Arc<AtomicUsize>,
) -> impl tower::Service<Req, Response = (StatusCode, Bytes), Error = BoxError, Future = impl Send>
+ Clone
+ Send
+ Sync {
    tower::service_fn(move |req: Req| {
        let (config, endpoint, sent) = (config.clone(), endpoint.clone(), sent.clone());
        async move {
            sent.fetch_add(1, Ordering::SeqCst);
            let tcp = tower::service_fn(|ep: Endpoint| tokio::net::TcpStream::connect(ep.addr()));
            let stream = TlsConnectLayer::new(config)
                .layer(tcp)
                .oneshot(endpoint)
                .await?;
            let mut sender = sender(stream).await;
            let response = sender.send_request(req).await?;
            let status = response.status();
            Ok::<_, BoxError>((status, response.into_body().collect().await?.to_bytes()))
        }
    })
}

#[tokio::test]
async fn egress_denial_is_typed_and_nothing_is_sent() {
    let mesh = Mesh::new();
    let server = Server::start(
        mesh.tls(SERVER),
        AuthzLayer::new(policy("[[rules]]\nname = \"all\"\naction = \"allow\"\n")),
    )
    .await;
    let sent = Arc::new(AtomicUsize::new(0));
    let (config, count) = (mesh.tls(A), sent.clone());
    let make = tower::service_fn(move |ep: Endpoint| {
        let client = client(config.clone(), ep, count.clone());
        async move { Ok::<_, BoxError>(client) }
    });
    let endpoints = Static::new([Endpoint::new(server.addr).with_identity(SERVER)]);
    let balance = Balance::builder(RoundRobin::with_seed(1))
        .build(endpoints, make)
        .unwrap();
    let egress = EgressLayer::new(policy(EGRESS)).layer(balance);
    let req = |method: Method, target: &str, host: &str| {
        Request::builder()
            .method(method)
            .uri(target)
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };

    // Allowed: sent, with the normalized path.
    let (status, body) = egress
        .clone()
        .oneshot(req(Method::GET, "/items//1/./", "Catalog.svc"))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"/items/1/");
    assert_eq!(server.last().unwrap().uri, "/items/1/");
    assert_eq!((sent.load(Ordering::SeqCst), server.accepted()), (1, 1));

    // Denied by the policy: a typed error, the client never called, no connection opened.
    for (method, target, host, path) in [
        (Method::DELETE, "/items/1", "catalog.svc", "/items/1"),
        (Method::GET, "/admin", "catalog.svc", "/admin"),
        (Method::GET, "/items/../admin", "catalog.svc", "/admin"),
        (Method::GET, "/items/1", "billing.svc", "/items/1"),
    ] {
        let err = egress
            .clone()
            .oneshot(req(method.clone(), target, host))
            .await
            .unwrap_err();
        let denied = err
            .downcast_ref::<EgressDenied>()
            .unwrap_or_else(|| panic!("{method} {target}: {err}"));
        assert_eq!(denied.method(), method);
        assert_eq!(denied.path(), path);
        assert_eq!(denied.host(), Some(host));
        assert_eq!(denied.rule(), None, "denied by default");
    }
    // A path the normalizer refuses: a typed error too.
    let err = egress
        .clone()
        .oneshot(req(Method::GET, "/items%2F..%2Fadmin", "catalog.svc"))
        .await
        .unwrap_err();
    match err.downcast_ref::<InvalidRequest>() {
        Some(InvalidRequest::Path(rejected)) => {
            assert_eq!(rejected.reason(), PathRejectReason::EscapedSlash);
        }
        other => panic!("{other:?}: {err}"),
    }
    assert_eq!((sent.load(Ordering::SeqCst), server.accepted()), (1, 1));
    assert_eq!(server.calls(), 1);
}
