//! The hyper client (`tower_mesh::client`) against real hyper servers on loopback: HTTP/1.1 and
//! HTTP/2 through `Balance`, mutual TLS with SPIFFE identities, connection pooling keyed by
//! endpoint and identity, and failures counted against the endpoint.
//!
//! Run with `cargo test --features http,tls,test-util --test hyper_client` (or `--all-features`).

#![cfg(all(feature = "http", feature = "tls", feature = "test-util"))]

mod pki;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpInfo;
use tower::{BoxError, Service, ServiceExt};
use tower_mesh::balance::{Balance, PeakEwma, Pick, RoundRobin};
use tower_mesh::client::{
    ClientConfigError, ConnectError, EndpointClient, HttpClient, HttpsWithoutTls, Protocol,
};
use tower_mesh::discover::{Static, Watch};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::health::TransportErrors;
use tower_mesh::identity::PeerIdentity;
use tower_mesh::load::TrackBody;
use tower_mesh::tls::{HandshakeFailed, IdentityMismatch, NoExpectedIdentity};

use crate::pki::{API, Ca, FRONTEND, OTHER};
use crate::server::{Seen, Server};
use tower_mesh::test_util::CertSpec;

type Body = Full<Bytes>;

const H2_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::default()).unwrap()
}

/// Sends `req` through `svc` and reads the whole answer.
async fn fetch<S, RB>(svc: &mut S, req: Request<Body>) -> Result<Seen, BoxError>
where
    S: Service<Request<Body>, Response = Response<RB>, Error = BoxError>,
    RB: http_body::Body,
    RB::Error: Into<BoxError>,
{
    let response = svc.ready().await?.call(req).await?;
    let body = response.into_body().collect().await.map_err(Into::into)?;
    Ok(Seen::parse(&body.to_bytes()))
}

/// Waits (up to 10 s) until the balancer has `n` ready endpoints.
async fn wait_ready<P: Pick, S, C>(balance: &Balance<P, S, C>, n: usize) {
    for _ in 0..1000 {
        if balance.ready_len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} endpoints ready, not {n}", balance.ready_len());
}

/// Finds an error of type `T` in `err`'s source chain.
fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

async fn endpoint_client(make: &HttpClient<Body>, endpoint: Endpoint) -> EndpointClient<Body> {
    make.clone().oneshot(endpoint).await.unwrap()
}

#[tokio::test]
async fn http1_round_trips_through_balance() {
    let (a, b) = (Server::plain("a").await, Server::plain("b").await);
    let addrs: BTreeMap<String, SocketAddr> = [("a".into(), a.addr), ("b".into(), b.addr)].into();
    let make = HttpClient::builder()
        .protocol(Protocol::Http1)
        .build()
        .unwrap();
    let mut balance = Balance::builder(RoundRobin::new())
        .build(Static::from_addrs([a.addr, b.addr]), make)
        .unwrap();
    wait_ready(&balance, 2).await;

    // A relative URI: sent to the picked endpoint, with its address as Host.
    let mut served = BTreeMap::<String, usize>::new();
    for _ in 0..10 {
        let seen = fetch(&mut balance, get("/hello?x=1")).await.unwrap();
        assert_eq!(seen.version, "HTTP/1.1");
        assert_eq!(seen.path, "/hello?x=1");
        assert_eq!(seen.host, addrs[&seen.name].to_string());
        assert_eq!(seen.peer, "anonymous");
        *served.entry(seen.name).or_default() += 1;
    }
    assert_eq!(served, [("a".into(), 5), ("b".into(), 5)].into());
    // Ten sequential requests, one connection per server.
    assert_eq!((a.accepted(), b.accepted()), (1, 1));

    // An absolute URI with a logical authority: the endpoint is dialled, the authority is the
    // Host header.
    let seen = fetch(&mut balance, get("http://payments/charge"))
        .await
        .unwrap();
    assert_eq!(
        (seen.host.as_str(), seen.path.as_str()),
        ("payments", "/charge")
    );
    // A Host header given by the caller is kept.
    let mut req = get("/x");
    req.headers_mut()
        .insert(http::header::HOST, "ledger.internal".parse().unwrap());
    assert_eq!(
        fetch(&mut balance, req).await.unwrap().host,
        "ledger.internal"
    );

    // hyper-util pools by authority too: `payments` opened one more connection (on the
    // server that took it); the relative URI with a Host header reused the address's.
    assert_eq!(a.accepted() + b.accepted(), 3);
    assert_eq!(a.calls() + b.calls(), 12);
}

#[tokio::test]
async fn http2_prior_knowledge_multiplexes_one_connection() {
    let server = Server::plain("h2").await;
    let make = HttpClient::builder()
        .protocol(Protocol::Http2)
        .build()
        .unwrap();
    let mut balance = Balance::builder(PeakEwma::new())
        .build(Static::from_addrs([server.addr]), make)
        .unwrap();
    wait_ready(&balance, 1).await;

    let seen = fetch(&mut balance, get("/a")).await.unwrap();
    assert_eq!(seen.version, "HTTP/2.0");
    assert_eq!(
        seen.host,
        server.addr.to_string(),
        ":authority of a relative URI"
    );
    for _ in 0..20 {
        let seen = fetch(&mut balance, get("http://payments/b")).await.unwrap();
        assert_eq!(
            (seen.version.as_str(), seen.host.as_str()),
            ("HTTP/2.0", "payments")
        );
    }
    // Concurrent requests on the warm connection are multiplexed on it.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut balance = balance.clone();
            tokio::spawn(async move { fetch(&mut balance, get("http://payments/c")).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().path, "/c");
    }
    // The relative URI's authority (the address) is another hyper pool key: two connections.
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.calls(), 31);
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let server = Server::plain("s").await;
    let make = HttpClient::new();
    let mut client = endpoint_client(&make, Endpoint::new(server.addr)).await;
    for _ in 0..50 {
        fetch(&mut client, get("/")).await.unwrap();
    }
    assert_eq!((server.accepted(), server.calls()), (1, 50));

    // The control: keeping no idle connection opens one per request.
    let other = Server::plain("t").await;
    let make = HttpClient::builder()
        .max_idle_per_endpoint(0)
        .build()
        .unwrap();
    let mut client = endpoint_client(&make, Endpoint::new(other.addr)).await;
    for _ in 0..5 {
        fetch(&mut client, get("/")).await.unwrap();
    }
    assert_eq!((other.accepted(), other.calls()), (5, 5));
}

#[tokio::test]
async fn rediscovered_endpoint_reuses_warm_connections() {
    let server = Server::plain("s").await;
    let make = HttpClient::new();
    let (watch, updates) = Watch::new();
    let mut balance = Balance::builder(RoundRobin::new())
        .build(updates, make.clone())
        .unwrap();
    watch.insert(Endpoint::new(server.addr)).unwrap();
    wait_ready(&balance, 1).await;
    fetch(&mut balance, get("/")).await.unwrap();

    watch.remove(server.addr).unwrap();
    wait_ready(&balance, 0).await;
    watch.insert(Endpoint::new(server.addr)).unwrap();
    wait_ready(&balance, 1).await;
    fetch(&mut balance, get("/")).await.unwrap();

    // A second balancer built from a clone shares the pools too.
    let mut second = Balance::builder(RoundRobin::new())
        .build(Static::from_addrs([server.addr]), make.clone())
        .unwrap();
    wait_ready(&second, 1).await;
    fetch(&mut second, get("/")).await.unwrap();

    assert_eq!((server.accepted(), server.calls()), (1, 3));
    assert_eq!(make.pools(), 1);
}

#[tokio::test]
async fn same_address_with_two_identities_never_shares_a_connection() {
    let server = Server::plain("s").await;
    let make = HttpClient::new();
    let one = Endpoint::new(server.addr).with_identity(API);
    let mut first = endpoint_client(&make, one.clone()).await;
    let mut again = endpoint_client(&make, one).await;
    let mut other = endpoint_client(&make, Endpoint::new(server.addr).with_identity(OTHER)).await;
    for _ in 0..5 {
        fetch(&mut first, get("/")).await.unwrap();
        fetch(&mut again, get("/")).await.unwrap();
        fetch(&mut other, get("/")).await.unwrap();
    }
    // `first` and `again` (same identity) share one connection; `other` has its own.
    assert_eq!((server.accepted(), server.calls()), (2, 15));
    assert_eq!(make.pools(), 2);
}

#[tokio::test]
async fn mtls_with_spiffe_identity_negotiates_h2() {
    let ca = Ca::new();
    let server = Server::tls("api", ca.config(&ca.spiffe_leaf(API), H2_H1)).await;
    let tls = ca.config(&ca.spiffe_leaf(FRONTEND), H2_H1);
    let make = HttpClient::builder().tls(tls).build().unwrap();
    let mut balance = Balance::builder(PeakEwma::new())
        .classify(TrackBody::new(TransportErrors))
        .build(
            Static::new([Endpoint::new(server.addr).with_identity(API)]),
            make,
        )
        .unwrap();
    wait_ready(&balance, 1).await;

    let response = balance
        .ready()
        .await
        .unwrap()
        .call(get("http://payments/balance"))
        .await
        .unwrap();
    // The server's identity, verified in the handshake, and the socket it answered on.
    let peer = response.extensions().get::<PeerIdentity>().unwrap();
    assert_eq!(peer.to_string(), API);
    let info = response.extensions().get::<HttpInfo>().unwrap();
    assert_eq!(info.remote_addr(), server.addr);
    // The response stays in flight until its body is read (TrackBody).
    assert_eq!(balance.endpoints()[0].in_flight(), 1);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(balance.endpoints()[0].in_flight(), 0);

    let seen = Seen::parse(&body);
    assert_eq!(seen.version, "HTTP/2.0", "ALPN chose h2");
    assert_eq!(seen.host, "payments");
    assert_eq!(seen.peer, FRONTEND, "the server verified our identity");
    for _ in 0..10 {
        fetch(&mut balance, get("http://payments/balance"))
            .await
            .unwrap();
    }
    assert_eq!((server.accepted(), server.calls()), (1, 11));
}

#[tokio::test]
async fn mtls_protocol_follows_alpn_or_prior_knowledge() {
    let ca = Ca::new();
    let server = Server::tls("api", ca.config(&ca.spiffe_leaf(API), &[])).await;
    let endpoint = Endpoint::new(server.addr).with_identity(API);
    // No ALPN offered: HTTP/1.1, over TLS (the scheme becomes https).
    let tls = ca.config(&ca.spiffe_leaf(FRONTEND), &[]);
    let make = HttpClient::builder().tls(tls.clone()).build().unwrap();
    let mut client = endpoint_client(&make, endpoint.clone()).await;
    assert!(client.is_tls());
    let seen = fetch(&mut client, get("/")).await.unwrap();
    assert_eq!(
        (seen.version.as_str(), seen.peer.as_str()),
        ("HTTP/1.1", FRONTEND)
    );
    // HTTP/2 by prior knowledge needs no ALPN.
    let make = HttpClient::builder()
        .tls(tls)
        .protocol(Protocol::Http2)
        .build()
        .unwrap();
    let mut client = endpoint_client(&make, endpoint).await;
    let seen = fetch(&mut client, get("http://payments/")).await.unwrap();
    assert_eq!(
        (seen.version.as_str(), seen.peer.as_str()),
        ("HTTP/2.0", FRONTEND)
    );
}

#[tokio::test]
async fn alpn_offers_the_protocol_cannot_speak_are_refused_at_build() {
    let ca = Ca::new();
    let leaf = ca.spiffe_leaf(FRONTEND);
    let err = HttpClient::builder()
        .protocol(Protocol::Http1)
        .tls(ca.config(&leaf, H2_H1))
        .build::<Body>()
        .unwrap_err();
    assert_eq!(
        err,
        ClientConfigError::Alpn {
            protocol: Protocol::Http1,
            offered: vec!["h2".into(), "http/1.1".into()],
        }
    );
    let err = HttpClient::builder()
        .protocol(Protocol::Http2)
        .tls(ca.config(&leaf, &[b"http/1.1"]))
        .build::<Body>()
        .unwrap_err();
    assert!(matches!(
        err,
        ClientConfigError::Alpn {
            protocol: Protocol::Http2,
            ..
        }
    ));
}

#[tokio::test]
async fn server_with_the_wrong_identity_is_refused_and_never_receives_a_request() {
    let ca = Ca::new();
    // A valid chain from the trusted CA, but another workload's identity.
    let server = Server::tls("impostor", ca.config(&ca.spiffe_leaf(OTHER), H2_H1)).await;
    let make = HttpClient::builder()
        .tls(ca.config(&ca.spiffe_leaf(FRONTEND), H2_H1))
        .build()
        .unwrap();
    let mut balance = Balance::builder(RoundRobin::new())
        .build(
            Static::new([Endpoint::new(server.addr).with_identity(API)]),
            make,
        )
        .unwrap();
    wait_ready(&balance, 1).await;

    let err = fetch(&mut balance, get("/transfer")).await.unwrap_err();
    let connect = err.downcast_ref::<ConnectError>().expect("a connect error");
    assert_eq!(connect.addr(), server.addr);
    // Our verifier refused the server's identity inside the handshake.
    let handshake = find::<HandshakeFailed>(&*err).expect("a handshake failure");
    let rustls_error = find::<std::io::Error>(handshake)
        .and_then(|io| io.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
        rustls_error
    else {
        panic!("expected an identity refusal, got {err:?}");
    };
    let mismatch = other.0.downcast_ref::<IdentityMismatch>().unwrap();
    assert_eq!(mismatch.expected().as_str(), API);
    assert_eq!(mismatch.presented().map(|p| p.as_str()), Some(OTHER));
    server.wait_tls_errors(1).await;
    assert_eq!(server.calls(), 0, "no request reached the impostor");
    // The endpoint's failure, as the default classifier counts it.
    assert_eq!(balance.endpoints()[0].errors(), 1);
}

#[tokio::test]
async fn tls_endpoint_without_identity_gets_no_client() {
    let ca = Ca::new();
    let server = Server::tls("api", ca.config(&ca.spiffe_leaf(API), &[])).await;
    let make: HttpClient<Body> = HttpClient::builder()
        .tls(ca.config(&ca.spiffe_leaf(FRONTEND), &[]))
        .build()
        .unwrap();
    let err = make.oneshot(Endpoint::new(server.addr)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<NoExpectedIdentity>().map(|e| e.addr()),
        Some(server.addr)
    );
    assert_eq!(server.accepted(), 0, "no socket was opened");
}

#[tokio::test]
async fn one_server_two_identities_two_verified_connections() {
    let ca = Ca::new();
    // One certificate proving a SPIFFE ID and a DNS name: both identities verify at one
    // address, yet each gets its own connection.
    let leaf = ca.leaf(CertSpec::spiffe(API).dns_name("api.pay.svc"));
    let server = Server::tls("api", ca.config(&leaf, &[])).await;
    let make = HttpClient::builder()
        .tls(ca.config(&ca.spiffe_leaf(FRONTEND), &[]))
        .build()
        .unwrap();
    let mut spiffe = endpoint_client(&make, Endpoint::new(server.addr).with_identity(API)).await;
    let mut by_dns = endpoint_client(
        &make,
        Endpoint::new(server.addr).with_identity("api.pay.svc"),
    )
    .await;
    for _ in 0..3 {
        fetch(&mut spiffe, get("/")).await.unwrap();
        let response = by_dns.ready().await.unwrap().call(get("/")).await.unwrap();
        let peer = response.extensions().get::<PeerIdentity>().unwrap();
        assert_eq!(peer.to_string(), "api.pay.svc");
        response.into_body().collect().await.unwrap();
    }
    assert_eq!((server.accepted(), server.calls()), (2, 6));
}

#[tokio::test]
async fn killed_server_fails_as_a_transport_failure() {
    let server = Server::plain("s").await;
    let mut balance = Balance::builder(RoundRobin::new())
        .build(Static::from_addrs([server.addr]), HttpClient::new())
        .unwrap();
    wait_ready(&balance, 1).await;
    fetch(&mut balance, get("/")).await.unwrap();

    server.kill();
    // The pooled connection is closed; the next request dials again and is refused (hyper
    // may first notice the closed connection while checking it out).
    let mut refused = None;
    for _ in 0..3 {
        let err = fetch(&mut balance, get("/")).await.unwrap_err();
        if let Some(connect) = err.downcast_ref::<ConnectError>() {
            refused = Some(connect.clone());
            break;
        }
    }
    let refused = refused.expect("a connect error");
    assert_eq!(refused.addr(), server.addr);
    let io = find::<std::io::Error>(&refused).expect("an io error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    let stats = &balance.endpoints()[0];
    assert!(stats.errors() >= 1 && stats.errors() <= 3, "{stats:?}");
}

#[tokio::test]
async fn https_uri_on_a_plaintext_client_is_refused() {
    let server = Server::plain("s").await;
    let mut client = endpoint_client(&HttpClient::new(), Endpoint::new(server.addr)).await;
    let err = fetch(&mut client, get("https://payments/"))
        .await
        .unwrap_err();
    assert!(err.is::<HttpsWithoutTls>(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn connect_timeout_bounds_a_connect_that_hangs() {
    // A listener that never accepts, with a backlog of one: once its queue is full, the
    // kernel drops further SYNs, so the next connect hangs (Linux).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let timeout = Duration::from_millis(300);
    let make = HttpClient::builder()
        .connect_timeout(timeout)
        .unwrap()
        .build()
        .unwrap();
    let mut client = endpoint_client(&make, Endpoint::new(addr)).await;
    let started = tokio::time::Instant::now();
    let err = fetch(&mut client, get("/")).await.unwrap_err();
    let connect = err.downcast_ref::<ConnectError>().expect("a connect error");
    let cause = find::<tower_mesh::client::ConnectTimeout>(connect).expect("a timeout");
    assert_eq!(cause.timeout(), timeout);
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    drop((fillers, listener));
}

#[tokio::test]
async fn offering_a_protocol_the_client_cannot_speak_is_refused_at_build() {
    let ca = Ca::new();
    // HTTP/2 only, while offering HTTP/1.1 too: a server choosing it would fail every
    // connection, so the configuration is refused before any.
    let err = HttpClient::builder()
        .protocol(Protocol::Http2)
        .tls(ca.config(&ca.spiffe_leaf(FRONTEND), H2_H1))
        .build::<Body>()
        .unwrap_err();
    assert_eq!(
        err,
        ClientConfigError::Alpn {
            protocol: Protocol::Http2,
            offered: vec!["h2".into(), "http/1.1".into()],
        }
    );
    assert!(err.to_string().contains("http/1.1"), "{err}");
}
