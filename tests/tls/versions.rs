//! Group A, protocol versions and plaintext: TLS 1.3 only, no downgrade, no fallback, no retry
//! (A18–A20, A22).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, PeerIncompatible, PeerMisbehaved, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{BoxError, Layer, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::tls::{HandshakeFailed, TlsConfig, TlsConnectLayer, TlsStream};

use crate::hostile::*;
use crate::pki::Ca;
use crate::support::*;
use crate::wire::{ALERT, legacy_client_hello, records, server_hello_random};

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// The fatal alert record `[level 2, description]`.
fn fatal(description: AlertDescription) -> Vec<(u8, Vec<u8>)> {
    vec![(ALERT, vec![2, u8::from(description)])]
}

/// Connects through our connector to `addr` expecting SERVER, counting dials: a retry at a
/// lower version or in plaintext would dial again.
async fn connect_counted(
    config: &TlsConfig,
    addr: std::net::SocketAddr,
) -> (Result<TlsStream<TcpStream>, BoxError>, usize) {
    let dials = Arc::new(AtomicUsize::new(0));
    let d = dials.clone();
    let tcp = tower::service_fn(move |ep: Endpoint| {
        d.fetch_add(1, Ordering::SeqCst);
        TcpStream::connect(ep.addr())
    });
    let result = TlsConnectLayer::new(config.clone())
        .layer(tcp)
        .oneshot(Endpoint::new(addr).with_identity(SERVER))
        .await;
    (result, dials.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a18_tls12_only_client_refused() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let err = attack(&server, attacker(&[&rustls::version::TLS12], None))
        .await
        .unwrap_err();
    assert_eq!(alert(&err), AlertDescription::ProtocolVersion);
    let server_err = server.wait_error().await;
    assert_eq!(
        rustls_error(server_err.as_ref()),
        Some(rustls::Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOfferedOrEnabled
        ))
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a19_tls10_and_tls11_client_hellos_refused() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let cases = [
        // As an old client sends it (no signature_algorithms): refused before the version is
        // even looked at (rustls `server/hs.rs`, `process_client_hello`).
        (
            false,
            AlertDescription::HandshakeFailure,
            PeerIncompatible::SignatureAlgorithmsExtensionRequired,
        ),
        // With signature_algorithms, the legacy version itself is refused.
        (
            true,
            AlertDescription::ProtocolVersion,
            PeerIncompatible::Tls12NotOffered,
        ),
    ];
    for version in [[3, 1], [3, 2]] {
        for (sig_algs, description, reason) in cases.clone() {
            let mut tcp = TcpStream::connect(server.addr).await.unwrap();
            tcp.write_all(&legacy_client_hello(version, sig_algs))
                .await
                .unwrap();
            let mut response = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut response))
                .await
                .expect("the server closed the connection")
                .unwrap();
            assert_eq!(records(&response), fatal(description), "{version:?}");
            let err = server.wait_error().await;
            assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
            assert_eq!(
                rustls_error(err.as_ref()),
                Some(rustls::Error::PeerIncompatible(reason)),
                "{version:?}"
            );
        }
    }
    assert_eq!(server.accepted(), 4);
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a20_server_with_both_versions_negotiates_tls13() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf(SERVER);
    let versions = [&rustls::version::TLS12, &rustls::version::TLS13];
    let server = Server::start_rustls(rustls_server(&versions, leaf.chain.clone(), &leaf)).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let (stream, dials) = connect_counted(&client, server.addr).await;
    let stream = stream.unwrap();
    assert_eq!(dials, 1);
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    // The plain server does not ask for a client certificate, so it sees no identity.
    assert_eq!(get(stream).await.unwrap(), "anonymous");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a20_mitm_stripping_supported_versions_is_refused() {
    // A server speaking TLS 1.2 and 1.3 behind a man in the middle that removes
    // `supported_versions` from the ClientHello (and adds a TLS 1.2 suite): the server believes
    // the client speaks only TLS 1.2, answers with TLS 1.2 and marks its random with RFC 8446's
    // downgrade sentinel.
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf(SERVER);
    let versions = [&rustls::version::TLS12, &rustls::version::TLS13];
    let server = Server::start_rustls(rustls_server(&versions, leaf.chain.clone(), &leaf)).await;
    let proxy = Proxy::start(server.addr, crate::wire::strip_supported_versions).await;

    // Control: a client that also speaks TLS 1.2 is downgraded by this proxy, and catches it
    // only by the sentinel. This shows the attack is real.
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let both = attacker(&versions, None);
    let err = both
        .connect(ServerName::try_from("server.invalid").unwrap(), tcp)
        .await
        .unwrap_err();
    assert_eq!(
        rustls_error(&err),
        Some(rustls::Error::PeerMisbehaved(
            PeerMisbehaved::AttemptedDowngradeToTls12WhenTls13IsSupported
        ))
    );
    server.wait_error().await;

    // Ours speaks only TLS 1.3: the TLS 1.2 ServerHello is refused outright (rustls
    // `client/hs.rs`, ExpectServerHello: ServerTlsVersionIsDisabledByOurConfig), before the
    // sentinel is even needed. No retry, no plaintext.
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let (result, dials) = connect_counted(&client, proxy.addr).await;
    let err = result.unwrap_err();
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    assert_eq!(
        rustls_error(err.as_ref()),
        Some(rustls::Error::PeerIncompatible(
            PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
        ))
    );
    assert_eq!(dials, 1, "no retry at a lower version or in plaintext");
    let random = server_hello_random(&proxy.server_bytes(1).await);
    assert_eq!(
        &random[24..],
        b"DOWNGRD\x01",
        "the server did signal a downgrade"
    );
    // The server saw our protocol_version alert; no request reached it.
    let server_err = server.wait_error().await;
    assert_eq!(
        rustls_error(server_err.as_ref()),
        Some(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion
        ))
    );
    assert_eq!(server.calls(), 0);
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn a20_tls12_only_server_refused_without_retry() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf(SERVER);
    let server = Server::start_rustls(rustls_server(
        &[&rustls::version::TLS12],
        leaf.chain.clone(),
        &leaf,
    ))
    .await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let (result, dials) = connect_counted(&client, server.addr).await;
    let err = result.unwrap_err();
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    // Our hello offers only TLS 1.3; the server refuses it.
    assert_eq!(alert(&err), AlertDescription::ProtocolVersion);
    let server_err = server.wait_error().await;
    assert_eq!(
        rustls_error(server_err.as_ref()),
        Some(rustls::Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOfferedOrEnabled
        ))
    );
    assert_eq!(dials, 1, "no retry at a lower version or in plaintext");
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a22_plaintext_to_tls_port() {
    let td_a = Ca::root("td-a");
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let err = server.wait_error().await;
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    // The connection is closed; whatever came back is not HTTP.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf))
        .await
        .expect("connection closed");
    assert!(!buf.starts_with(b"HTTP"), "{buf:?}");
    assert_eq!(server.calls(), 0);
}
