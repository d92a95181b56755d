use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::uri::Authority;
use http_body_util::Empty;
use tower::{Service, ServiceExt};

use super::builder::check_alpn;
use super::service::target;
use super::*;
use crate::endpoint::Endpoint;

type Body = Empty<Bytes>;

fn authority() -> Authority {
    Authority::from_static("10.0.0.1:8080")
}

#[test]
fn relative_uri_gets_the_endpoint_address() {
    let uri = target(Uri::from_static("/pay?x=1"), false, &authority()).unwrap();
    assert_eq!(uri, "http://10.0.0.1:8080/pay?x=1");
    let uri = target(Uri::from_static("/pay"), true, &authority()).unwrap();
    assert_eq!(uri, "https://10.0.0.1:8080/pay");
}

#[test]
fn absolute_uri_keeps_its_authority_and_takes_the_transport_scheme() {
    let uri = target(Uri::from_static("http://payments/pay"), false, &authority()).unwrap();
    assert_eq!(uri, "http://payments/pay");
    let uri = target(
        Uri::from_static("http://payments:81/pay"),
        true,
        &authority(),
    )
    .unwrap();
    assert_eq!(uri, "https://payments:81/pay");
    let uri = target(Uri::from_static("https://payments"), true, &authority()).unwrap();
    assert_eq!(uri, "https://payments/");
}

#[test]
fn authority_only_uri_gets_a_path() {
    let uri = target(Uri::from_static("payments:80"), false, &authority()).unwrap();
    assert_eq!(uri, "http://payments:80/");
}

#[test]
fn https_uri_without_tls_is_refused() {
    let err = target(Uri::from_static("https://payments/"), false, &authority()).unwrap_err();
    let err = err.downcast_ref::<HttpsWithoutTls>().unwrap();
    assert_eq!(err.uri(), "https://payments/");
    assert_eq!(
        err.to_string(),
        "https request https://payments/ on a client without tls"
    );
}

#[test]
fn setters_refuse_bad_values_naming_them() {
    let err = HttpClient::builder()
        .connect_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(
        err,
        ClientConfigError::Invalid {
            setting: "connect_timeout",
            value: "0ns".into(),
            expected: "greater than zero and at most 1h",
        }
    );
    assert!(
        HttpClient::builder()
            .connect_timeout(Duration::from_secs(3601))
            .is_err()
    );
    let err = HttpClient::builder()
        .pool_idle_timeout(Duration::ZERO)
        .unwrap_err();
    assert!(err.to_string().contains("pool_idle_timeout 0ns"), "{err}");
    let err = HttpClient::builder()
        .http2_keep_alive(Duration::from_secs(10), Duration::ZERO)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid http2_keep_alive.timeout 0ns"),
        "{err}"
    );
    let err = HttpClient::builder()
        .http2_keep_alive(Duration::from_secs(7200), Duration::from_secs(1))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid http2_keep_alive.interval 7200s"),
        "{err}"
    );
    // In range: accepted.
    let builder = HttpClient::builder()
        .connect_timeout(Duration::from_millis(1))
        .unwrap()
        .pool_idle_timeout(Duration::from_secs(24 * 3600))
        .unwrap()
        .http2_keep_alive(Duration::from_millis(1), Duration::from_secs(3600))
        .unwrap();
    assert!(builder.build::<Body>().is_ok());
}

#[test]
fn alpn_offers_must_suit_the_protocol() {
    let h2 = b"h2".to_vec();
    let h1 = b"http/1.1".to_vec();
    let other = b"grpc-exp".to_vec();
    for protocol in [Protocol::Http1, Protocol::Http2, Protocol::Negotiate] {
        assert!(check_alpn(protocol, &[]).is_ok(), "{protocol:?}");
    }
    assert!(check_alpn(Protocol::Http1, std::slice::from_ref(&h1)).is_ok());
    assert_eq!(
        check_alpn(Protocol::Http1, &[h2.clone(), h1.clone()]),
        Err(ClientConfigError::Alpn {
            protocol: Protocol::Http1,
            offered: vec!["h2".into(), "http/1.1".into()],
        })
    );
    // Every protocol offered must be one the client speaks: a server may choose any.
    assert!(check_alpn(Protocol::Http2, &[h2.clone(), h1.clone()]).is_err());
    assert!(check_alpn(Protocol::Http2, std::slice::from_ref(&h2)).is_ok());
    assert!(check_alpn(Protocol::Http2, std::slice::from_ref(&h1)).is_err());
    assert!(check_alpn(Protocol::Http1, std::slice::from_ref(&other)).is_err());
    assert!(check_alpn(Protocol::Negotiate, std::slice::from_ref(&h1)).is_ok());
    assert!(check_alpn(Protocol::Negotiate, std::slice::from_ref(&h2)).is_ok());
    assert!(check_alpn(Protocol::Negotiate, &[h2.clone(), h1.clone()]).is_ok());
    assert!(check_alpn(Protocol::Negotiate, &[h2.clone(), other.clone()]).is_err());
    assert!(check_alpn(Protocol::Negotiate, std::slice::from_ref(&other)).is_err());
}

#[tokio::test(start_paused = true)]
async fn clones_share_pools_keyed_by_address_and_identity() {
    let make = HttpClient::<Body>::new();
    let addr = "127.0.0.1:9".parse().unwrap();
    let a = make.clone().oneshot(Endpoint::new(addr)).await.unwrap();
    // Rediscovered, with other metadata: the same pool.
    let again = Endpoint::new(addr).with_weight(crate::endpoint::Weight::new(5).unwrap());
    let b = make.clone().oneshot(again).await.unwrap();
    assert_eq!(make.pools(), 1);
    // Another identity at the same address: a pool of its own.
    let other = make
        .clone()
        .oneshot(Endpoint::new(addr).with_identity("spiffe://td/ns/x/sa/b"))
        .await
        .unwrap();
    assert_eq!(make.pools(), 2);
    assert_eq!((a.addr(), b.addr(), other.addr()), (addr, addr, addr));
    assert!(!a.is_tls());
}

#[tokio::test(start_paused = true)]
async fn unused_pools_are_dropped_after_the_idle_timeout() {
    let idle = Duration::from_secs(90);
    let mut make = HttpClient::<Body>::new();
    let first = make
        .call(Endpoint::new("127.0.0.1:1".parse().unwrap()))
        .await
        .unwrap();
    let kept = make
        .call(Endpoint::new("127.0.0.1:2".parse().unwrap()))
        .await
        .unwrap();
    drop(first);
    let another = |port: u16| Endpoint::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    // The first sweep after an idle period notes the unused pool; the next one drops it.
    tokio::time::advance(idle).await;
    let _c = make.call(another(3)).await.unwrap();
    assert_eq!(make.pools(), 3);
    tokio::time::advance(idle).await;
    let _d = make.call(another(4)).await.unwrap();
    assert_eq!(make.pools(), 3, "port 1 dropped, port 4 added");
    // A pool in use is never dropped.
    tokio::time::advance(idle * 3).await;
    let _e = make.call(another(5)).await.unwrap();
    tokio::time::advance(idle).await;
    let _f = make.call(another(6)).await.unwrap();
    assert_eq!(make.pools(), 5);
    drop(kept);
}

#[tokio::test]
async fn https_request_on_plaintext_client_never_connects() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = HttpClient::<Body>::new()
        .oneshot(Endpoint::new(addr))
        .await
        .unwrap();
    let req = http::Request::get("https://payments/")
        .body(Body::new())
        .unwrap();
    let err = client.oneshot(req).await.unwrap_err();
    assert!(err.is::<HttpsWithoutTls>(), "{err:?}");
    let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(accepted.is_err(), "no connection was opened");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<HttpClient<Body>>();
    assert::<HttpClientBuilder>();
    assert::<EndpointClient<Body>>();
    assert::<ResponseFuture>();
    assert::<ConnectError>();
    assert::<ClientConfigError>();
    fn assert_clone<T: Clone>() {}
    assert_clone::<HttpClient<Body>>();
    assert_clone::<EndpointClient<Body>>();
}
