//! Group A, protocol cases (client without certificate), DNS identities, connector contracts,
//! hyper-util, and the maximum connection age. Versions and plaintext are in `versions.rs`,
//! handshake timeouts in `timeouts.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Layer, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::identity::IdentityErrorKind;
use tower_mesh::tls::{
    ConnectionAgeExceeded, IdentityMismatch, InvalidExpectedIdentity, NoExpectedIdentity,
    TlsConnectLayer,
};

use crate::hostile::*;
use crate::pki::{Ca, dns};
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

#[tokio::test]
async fn a16_client_without_certificate_under_strict() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let err = attack(&server, attacker(&[&rustls::version::TLS13], None))
        .await
        .unwrap_err();
    assert_eq!(alert(&err), AlertDescription::CertificateRequired);
    let server_err = server.wait_error().await;
    assert_eq!(
        rustls_error(server_err.as_ref()),
        Some(rustls::Error::NoCertificatesPresented)
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a17_client_without_certificate_under_permissive() {
    let td_a = Ca::root("td-a");
    let permissive = builder(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])
        .allow_unauthenticated()
        .build()
        .unwrap();
    let server = Server::start(permissive).await;
    // No certificate: let in, with no identity.
    let body = attack(&server, attacker(&[&rustls::version::TLS13], None))
        .await
        .unwrap();
    assert_eq!(body, "anonymous");
    assert_eq!(server.calls(), 1);
    // A certificate that is presented is still verified: a wrong CA is refused.
    let td_b = Ca::root("td-b");
    let bad = td_b.spiffe_leaf(CLIENT);
    assert!(
        attack(&server, attacker(&[&rustls::version::TLS13], Some(&bad)))
            .await
            .is_err()
    );
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::UnknownIssuer
    );
    assert_eq!(server.calls(), 1, "the refused client reached no handler");
}

#[tokio::test]
async fn dns_identities_match_exactly() {
    let ca = Ca::root("dns-ca");
    let client = config(&ca.spiffe_leaf(CLIENT), &[("td-a", &ca), ("dns", &ca)]);
    let server_leaf = ca.leaf_with(|p| p.subject_alt_names = vec![dns("a.ns.svc")]);
    let server = Server::start(config(&server_leaf, &[("td-a", &ca), ("dns", &ca)])).await;
    // A29: a trailing dot on the expected name is the same name.
    for expected in ["a.ns.svc", "A.NS.svc.", "a.ns.svc."] {
        let stream = connect(&client, server.addr, expected).await.unwrap();
        assert_eq!(get(stream).await.unwrap(), CLIENT);
    }
    // A28: another name is refused inside the handshake.
    let err = connect(&client, server.addr, "b.ns.svc").await.unwrap_err();
    let mismatch = find::<IdentityMismatch>(err.as_ref()).expect("IdentityMismatch");
    assert_eq!(mismatch.expected().as_str(), "b.ns.svc");
    assert_eq!(mismatch.presented().map(|i| i.as_str()), Some("a.ns.svc"));
    // A wildcard SAN never satisfies a workload identity.
    let wild = ca.leaf_with(|p| p.subject_alt_names = vec![dns("*.ns.svc")]);
    let wild_server = Server::start(config(&wild, &[("dns", &ca)])).await;
    let err = connect(&client, wild_server.addr, "a.ns.svc")
        .await
        .unwrap_err();
    assert!(find::<IdentityMismatch>(err.as_ref()).is_some(), "{err:?}");
    assert_eq!(wild_server.calls(), 0);
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn connector_refuses_missing_or_malformed_identity_before_connecting() {
    let td_a = Ca::root("td-a");
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let dialled = Arc::new(AtomicUsize::new(0));
    let d = dialled.clone();
    let tcp = tower::service_fn(move |ep: Endpoint| {
        d.fetch_add(1, Ordering::SeqCst);
        TcpStream::connect(ep.addr())
    });
    let connector = TlsConnectLayer::new(client.clone()).layer(tcp);
    let addr = "127.0.0.1:9".parse().unwrap();
    let err = connector
        .clone()
        .oneshot(Endpoint::new(addr))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<NoExpectedIdentity>().unwrap().addr(),
        addr
    );
    let err = connector
        .clone()
        .oneshot(Endpoint::new(addr).with_identity("spiffe://td-a/a/../admin"))
        .await
        .unwrap_err();
    let invalid = err.downcast_ref::<InvalidExpectedIdentity>().unwrap();
    assert_eq!(invalid.error().value(), "spiffe://td-a/a/../admin");
    assert_eq!(invalid.error().kind(), IdentityErrorKind::DotSegment);
    assert_eq!(dialled.load(Ordering::SeqCst), 0, "no socket opened");
}

#[tokio::test]
async fn fixed_identity_overrides_endpoint() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
    let fixed = TlsConnectLayer::new(client)
        .with_identity(SERVER.parse().unwrap())
        .layer(tcp);
    // The endpoint claims another identity; the fixed one is what is verified.
    let stream = fixed
        .oneshot(Endpoint::new(server.addr).with_identity("spiffe://td-a/other"))
        .await
        .unwrap();
    assert_eq!(stream.peer_identity().unwrap().to_string(), SERVER);
}

#[tokio::test]
async fn hyper_util_client_uses_the_connector() {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
    // The application maps a URI to an endpoint (here: one known server with its identity).
    let addr = server.addr;
    let connector = TlsConnectLayer::new(client)
        .layer(tcp)
        .map_request(move |_uri: hyper::Uri| Endpoint::new(addr).with_identity(SERVER))
        .map_response(TokioIo::new);
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    for _ in 0..3 {
        let response = http
            .get(
                format!("http://payments.internal:{}/", addr.port())
                    .parse()
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], CLIENT.as_bytes());
    }
    assert_eq!(server.calls(), 3);
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "the pooled connection is reused"
    );
}

#[tokio::test]
async fn g5_max_connection_age_closes_connections() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = builder(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)])
        .max_connection_age(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut stream = connect(&client, server.addr, SERVER).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Keep reading: the response arrives, then the idle connection fails at its age.
    let mut buf = [0u8; 1024];
    let err = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => panic!("closed by the server, not by age"),
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the connection reached its age");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let age = err
        .get_ref()
        .unwrap()
        .downcast_ref::<ConnectionAgeExceeded>()
        .unwrap();
    assert_eq!(age.max_age(), Duration::from_millis(300));
    assert!(stream.write_all(b"x").await.is_err(), "writes fail too");
    assert_eq!(server.calls(), 1);
    // A new connection is made with the current material.
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}
