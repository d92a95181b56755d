//! A32: slow or incomplete handshakes, on both sides. Each case runs twice: over loopback TCP
//! with generous real-time bounds, and over an in-memory pipe under paused time, where the
//! timeout fires at exactly the configured limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::tls::{HandshakeTimeout, TlsAcceptor, TlsConfig, TlsConnectLayer};

use crate::pki::Ca;
use crate::support::*;
use crate::wire::{HANDSHAKE, records};

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// The configured handshake timeout.
const LIMIT: Duration = Duration::from_millis(300);
/// Real-time slack on loopback: generous for a loaded machine, yet the total stays at half
/// the 10 s default, so a timeout that ignored the setting would fail the test.
const SLACK: Duration = Duration::from_millis(4700);

/// Half a ClientHello: a handshake record header announcing 512 bytes, then 5 of them.
const HALF_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];

fn limited(id: &str, td_a: &Ca) -> TlsConfig {
    builder(&td_a.spiffe_leaf(id), &[("td-a", td_a)])
        .handshake_timeout(LIMIT)
        .build()
        .unwrap()
}

fn timeout_of(err: &tower::BoxError) -> Duration {
    err.downcast_ref::<HandshakeTimeout>()
        .unwrap_or_else(|| panic!("expected a handshake timeout, got {err:?}"))
        .timeout()
}

/// Asserts that `bytes` is one ClientHello record and nothing else.
fn only_client_hello(bytes: &[u8]) {
    let records = records(bytes);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].0, records[0].1[0]),
        (HANDSHAKE, 1),
        "not a ClientHello"
    );
}

#[tokio::test]
async fn a32_stalled_client_hello_closes_the_socket_within_the_limit() {
    let td_a = Ca::root("td-a");
    let server = Server::start(limited(SERVER, &td_a)).await;
    // The server's clock starts at accept, after this instant.
    let started = std::time::Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(HALF_HELLO).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf))
        .await
        .expect("the server closed the socket");
    let took = started.elapsed();
    assert!(read.is_ok(), "closed cleanly: {read:?}");
    assert!(took >= LIMIT, "closed after {took:?}, before the limit");
    assert!(took < LIMIT + SLACK, "closed after {took:?}");
    assert!(buf.is_empty(), "the server sent nothing: {buf:?}");
    assert_eq!(timeout_of(&server.wait_error().await), LIMIT);
    assert_eq!(server.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a32_stalled_client_hello_times_out_at_exactly_the_limit() {
    let td_a = Ca::root("td-a");
    let acceptor = TlsAcceptor::new(limited(SERVER, &td_a));
    let (mut peer, io) = tokio::io::duplex(64 * 1024);
    peer.write_all(HALF_HELLO).await.unwrap();
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(10 * LIMIT, acceptor.oneshot(io))
        .await
        .expect("the acceptor gave up by itself");
    let took = started.elapsed();
    let err = result.map(|_| ()).unwrap_err();
    assert_eq!(timeout_of(&err), LIMIT);
    assert!(
        took >= LIMIT && took <= LIMIT + Duration::from_millis(1),
        "{took:?}"
    );
    // The stream was dropped: the peer reads end of stream, and nothing before it.
    let mut buf = Vec::new();
    peer.read_to_end(&mut buf).await.unwrap();
    assert!(buf.is_empty(), "{buf:?}");
}

#[tokio::test]
async fn a32_client_gives_up_on_a_server_that_never_answers() {
    let td_a = Ca::root("td-a");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, reads everything until the client closes, answers nothing.
    let silent = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let _ = tcp.read_to_end(&mut got).await;
        got
    });
    let client = limited(CLIENT, &td_a);
    let started = std::time::Instant::now();
    let err = connect(&client, addr, SERVER).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(timeout_of(&err), LIMIT);
    assert!(
        took >= LIMIT && took < LIMIT + SLACK,
        "gave up after {took:?}"
    );
    // The client sent its ClientHello, nothing else, and closed the socket.
    let got = tokio::time::timeout(Duration::from_secs(20), silent)
        .await
        .expect("the client closed the socket")
        .unwrap();
    only_client_hello(&got);
}

#[tokio::test(start_paused = true)]
async fn a32_client_times_out_at_exactly_the_limit() {
    let td_a = Ca::root("td-a");
    let (io, mut peer) = tokio::io::duplex(64 * 1024);
    let slot: Arc<Mutex<Option<DuplexStream>>> = Arc::new(Mutex::new(Some(io)));
    let dial = tower::service_fn(move |_: Endpoint| {
        let io = slot.lock().unwrap().take().expect("dialled once");
        std::future::ready(Ok::<_, std::io::Error>(io))
    });
    let connector = TlsConnectLayer::new(limited(CLIENT, &td_a)).layer(dial);
    let endpoint = Endpoint::new("127.0.0.1:9".parse().unwrap()).with_identity(SERVER);
    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(10 * LIMIT, connector.oneshot(endpoint))
        .await
        .expect("the connector gave up by itself");
    let took = started.elapsed();
    let err = result.map(|_| ()).unwrap_err();
    assert_eq!(timeout_of(&err), LIMIT);
    assert!(
        took >= LIMIT && took <= LIMIT + Duration::from_millis(1),
        "{took:?}"
    );
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    only_client_hello(&got);
}
