//! The `test-util` doubles, used as a user would: `MockDiscovery` feeding a real `Balance`,
//! `FixedLatency` endpoints under paused time, and `TestCa` identities completing (or failing)
//! real mTLS handshakes through the crate's connector and acceptor on loopback.

#![cfg(feature = "test-util")]

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_mesh::balance::{Balance, EndpointState, RoundRobin};
use tower_mesh::discover::Update;
use tower_mesh::endpoint::{Endpoint, Weight};
use tower_mesh::test_util::{
    CertSpec, ConnectRefused, EndpointFailed, FixedLatency, MockDiscovery, MockDiscoveryError,
    TestCa, TestCaError,
};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ready_addrs<P: tower_mesh::balance::Pick, S, C>(balance: &Balance<P, S, C>) -> Vec<SocketAddr> {
    balance
        .endpoints()
        .iter()
        .filter(|e| e.is_ready())
        .map(|e| e.endpoint().addr())
        .collect()
}

/// Sends one request when `service` is ready.
async fn call<S: Service<R>, R>(service: &mut S, req: R) -> Result<S::Response, S::Error> {
    service.ready().await?.call(req).await
}

/// Sends `n` requests one after another and returns the address that served each.
async fn serve_n<B>(balance: &mut B, n: usize) -> Vec<SocketAddr>
where
    B: Service<(), Response = SocketAddr, Error = tower::BoxError>,
{
    let mut served = Vec::new();
    for _ in 0..n {
        served.push(balance.ready().await.unwrap().call(()).await.unwrap());
    }
    served
}

// ---- MockDiscovery -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn discovery_changes_reach_the_balancer_once_synced() {
    let (discovery, updates) = MockDiscovery::new();
    let endpoints = FixedLatency::new(Duration::from_millis(1));
    let mut balance = Balance::builder(RoundRobin::with_seed(1))
        .build(updates, endpoints.clone())
        .unwrap();
    let (a, b, c) = (addr(9001), addr(9002), addr(9003));

    discovery.insert(Endpoint::new(a)).unwrap();
    discovery.insert(Endpoint::new(b)).unwrap();
    discovery.synced().await.unwrap();
    // No sleep, no yield: the set is published when `synced` returns.
    assert_eq!(ready_addrs(&balance), [a, b]);
    let mut served = serve_n(&mut balance, 4).await;
    served.sort();
    assert_eq!(served, [a, a, b, b]);

    discovery
        .update(a, |ep| {
            ep.with_weight(Weight::new(3).unwrap()).with_zone("z1")
        })
        .unwrap();
    discovery.synced().await.unwrap();
    let stats = balance.endpoints();
    assert_eq!(stats[0].endpoint().weight().get(), 3);
    assert_eq!(stats[0].endpoint().zone(), Some("z1"));
    assert_eq!(discovery.endpoints()[0].weight().get(), 3);

    discovery.remove(b).unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(ready_addrs(&balance), [a]);
    assert_eq!(serve_n(&mut balance, 3).await, [a, a, a]);

    discovery.reset([Endpoint::new(c)]).unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(ready_addrs(&balance), [c]);
    assert_eq!(discovery.endpoints(), [Endpoint::new(c)]);
    assert_eq!(serve_n(&mut balance, 2).await, [c, c]);
    assert_eq!(endpoints.requests(a), 5);
    assert_eq!(endpoints.requests(b), 2);
    assert_eq!(endpoints.requests(c), 2);
}

#[tokio::test]
async fn injected_errors_arrive_in_order_between_updates() {
    let (discovery, updates) = MockDiscovery::new();
    discovery.fail("first").unwrap();
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    discovery
        .fail(std::io::Error::other("registry down"))
        .unwrap();
    discovery.remove(addr(1)).unwrap();
    drop(discovery);
    let items: Vec<_> = updates.collect().await;
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].as_ref().unwrap_err().to_string(), "first");
    assert_eq!(
        items[1].as_ref().unwrap(),
        &Update::Insert(Endpoint::new(addr(1)))
    );
    let io = items[2].as_ref().unwrap_err();
    assert_eq!(
        io.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "registry down"
    );
    assert_eq!(items[3].as_ref().unwrap(), &Update::Remove(addr(1)));
}

/// An error injected alone, after the balancer has found the stream empty, wakes it: `synced`
/// returns with no time passing (no driver timer, a metrics publication say, had to rescue it).
#[tokio::test(start_paused = true)]
async fn an_error_injected_alone_wakes_the_consumer() {
    let (discovery, updates) = MockDiscovery::new();
    let balance = Balance::builder(RoundRobin::new())
        .build(updates, FixedLatency::new(Duration::ZERO))
        .unwrap();
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    discovery.synced().await.unwrap();
    let before = tokio::time::Instant::now();
    discovery.fail("registry unreachable").unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "synced waited for a timer"
    );
    assert_eq!(ready_addrs(&balance), [addr(1)]);
}

#[tokio::test(start_paused = true)]
async fn a_discovery_error_keeps_the_last_set() {
    let (discovery, updates) = MockDiscovery::new();
    let endpoints = FixedLatency::new(Duration::ZERO);
    let mut balance = Balance::builder(RoundRobin::new())
        .build(updates, endpoints.clone())
        .unwrap();
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    discovery.fail("registry unreachable").unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(ready_addrs(&balance), [addr(1)]);
    assert_eq!(serve_n(&mut balance, 2).await, [addr(1), addr(1)]);
    // The source goes on after the error.
    discovery.insert(Endpoint::new(addr(2))).unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(ready_addrs(&balance), [addr(1), addr(2)]);
}

#[tokio::test]
async fn bad_updates_are_refused_and_nothing_is_sent() {
    let (discovery, updates) = MockDiscovery::new();
    let mut updates = pin!(updates);
    assert_eq!(
        discovery.update(addr(1), |ep| ep),
        Err(MockDiscoveryError::UnknownEndpoint(addr(1)))
    );
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    assert!(matches!(updates.next().await, Some(Ok(Update::Insert(_)))));
    assert_eq!(
        discovery.update(addr(1), |_| Endpoint::new(addr(2))),
        Err(MockDiscoveryError::AddressChanged {
            from: addr(1),
            to: addr(2)
        })
    );
    assert!(
        updates.next().now_or_never().is_none(),
        "a refused update sends nothing"
    );
    assert_eq!(discovery.endpoints(), [Endpoint::new(addr(1))]);
}

#[tokio::test]
async fn a_dropped_stream_is_reported() {
    let (discovery, updates) = MockDiscovery::new();
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    assert!(!discovery.is_closed());
    drop(updates);
    assert!(discovery.is_closed());
    assert_eq!(discovery.synced().await, Err(MockDiscoveryError::Closed));
    assert_eq!(
        discovery.insert(Endpoint::new(addr(2))),
        Err(MockDiscoveryError::Closed)
    );
    assert_eq!(discovery.fail("x"), Err(MockDiscoveryError::Closed));
}

#[tokio::test(start_paused = true)]
async fn synced_waits_for_the_consumer() {
    let (discovery, updates) = MockDiscovery::new();
    // Nothing sent: nothing to wait for.
    discovery.synced().await.unwrap();
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    let mut synced = pin!(discovery.synced());
    assert!(
        (&mut synced).now_or_never().is_none(),
        "nobody has read the update yet"
    );
    let balance = Balance::builder(RoundRobin::new())
        .build(updates, FixedLatency::new(Duration::ZERO))
        .unwrap();
    synced.await.unwrap();
    assert_eq!(balance.ready_len(), 1);
}

#[tokio::test]
async fn synced_means_taken_found_empty_and_asked_again() {
    let (discovery, updates) = MockDiscovery::new();
    let mut updates = pin!(updates);
    discovery.insert(Endpoint::new(addr(1))).unwrap();
    discovery.fail("down").unwrap();
    let mut synced = pin!(discovery.synced());
    assert!((&mut synced).now_or_never().is_none());
    assert!(matches!(
        updates.next().now_or_never(),
        Some(Some(Ok(Update::Insert(_))))
    ));
    assert!(matches!(updates.next().now_or_never(), Some(Some(Err(_)))));
    assert!(
        (&mut synced).now_or_never().is_none(),
        "all taken, not yet found empty"
    );
    assert!(updates.next().now_or_never().is_none(), "finds it empty");
    // A balancer publishes between finding the stream empty and asking again.
    assert!(
        (&mut synced).now_or_never().is_none(),
        "has not asked again"
    );
    assert!(updates.next().now_or_never().is_none(), "asks again");
    assert_eq!((&mut synced).now_or_never(), Some(Ok(())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_holds_with_the_driver_on_another_thread() {
    let (discovery, updates) = MockDiscovery::new();
    let balance = Balance::builder(RoundRobin::new())
        .build(updates, FixedLatency::new(Duration::ZERO))
        .unwrap();
    for port in 1..=200 {
        discovery.insert(Endpoint::new(addr(port))).unwrap();
        discovery.synced().await.unwrap();
        assert_eq!(balance.ready_len(), usize::from(port));
    }
    for port in 1..=200 {
        discovery.remove(addr(port)).unwrap();
        discovery.synced().await.unwrap();
        assert_eq!(balance.ready_len(), usize::from(200 - port));
    }
}

// ---- FixedLatency --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn latency_is_exact_per_endpoint_and_changes_at_run_time() {
    let (a, b) = (addr(9001), addr(9002));
    let endpoints = FixedLatency::new(Duration::from_millis(10));
    endpoints.set_latency(b, Duration::from_millis(250));
    let mut client_a = endpoints.clone().oneshot(Endpoint::new(a)).await.unwrap();
    let mut client_b = endpoints.clone().oneshot(Endpoint::new(b)).await.unwrap();
    assert_eq!((client_a.addr(), client_b.addr()), (a, b));

    for (client, expected) in [
        (&mut client_a, Duration::from_millis(10)),
        (&mut client_b, Duration::from_millis(250)),
    ] {
        let start = Instant::now();
        let served = call(client, "req").await.unwrap();
        assert_eq!(start.elapsed(), expected);
        assert_eq!(served, client.addr());
    }

    endpoints.set_latency(a, Duration::from_millis(40));
    endpoints.set_default_latency(Duration::from_secs(1)); // b keeps its own
    assert_eq!(endpoints.latency(a), Duration::from_millis(40));
    assert_eq!(endpoints.latency(b), Duration::from_millis(250));
    assert_eq!(endpoints.latency(addr(1)), Duration::from_secs(1));
    let start = Instant::now();
    call(&mut client_a, "req").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(40));

    assert_eq!(endpoints.requests(a), 2);
    assert_eq!(endpoints.requests(b), 1);
    assert_eq!(endpoints.total_requests(), 3);
    assert_eq!(endpoints.clients_made(a), 1);
}

#[tokio::test(start_paused = true)]
async fn in_flight_counts_until_the_answer() {
    let a = addr(9001);
    let endpoints = FixedLatency::new(Duration::from_millis(100));
    let client = endpoints.clone().oneshot(Endpoint::new(a)).await.unwrap();
    let call = tokio::spawn(client.oneshot(()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(endpoints.in_flight(a), 1);
    assert_eq!(call.await.unwrap().unwrap(), a);
    assert_eq!(endpoints.in_flight(a), 0);
    assert_eq!(endpoints.requests(a), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_fails_after_its_latency_and_the_balancer_counts_it() {
    let a = addr(9001);
    let (discovery, updates) = MockDiscovery::new();
    let endpoints = FixedLatency::new(Duration::from_millis(30));
    let mut balance = Balance::builder(RoundRobin::new())
        .build(updates, endpoints.clone())
        .unwrap();
    discovery.insert(Endpoint::new(a)).unwrap();
    discovery.synced().await.unwrap();

    endpoints.set_failing(a, true);
    let start = Instant::now();
    let err = call(&mut balance, ()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(30));
    assert_eq!(err.downcast_ref::<EndpointFailed>().unwrap().addr(), a);
    assert_eq!(balance.endpoints()[0].errors(), 1);

    endpoints.set_failing(a, false);
    assert_eq!(call(&mut balance, ()).await.unwrap(), a);
    assert_eq!(balance.endpoints()[0].requests(), 2);
    assert_eq!(balance.endpoints()[0].errors(), 1);
    assert_eq!(endpoints.requests(a), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refusing_endpoint_stays_out_until_it_accepts() {
    let (a, b) = (addr(9001), addr(9002));
    let endpoints = FixedLatency::new(Duration::from_millis(1));
    endpoints.set_refusing(b, true);
    let refused = endpoints
        .clone()
        .oneshot(Endpoint::new(b))
        .await
        .unwrap_err();
    assert_eq!(refused.downcast_ref::<ConnectRefused>().unwrap().addr(), b);

    let (discovery, updates) = MockDiscovery::new();
    let mut balance = Balance::builder(RoundRobin::new())
        .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .build(updates, endpoints.clone())
        .unwrap();
    discovery
        .reset([Endpoint::new(a), Endpoint::new(b)])
        .unwrap();
    discovery.synced().await.unwrap();
    assert_eq!(ready_addrs(&balance), [a]);
    assert!(matches!(
        balance.endpoints()[1].state(),
        EndpointState::Backoff { last_error, .. } if last_error.contains("refused")
    ));
    assert_eq!(serve_n(&mut balance, 3).await, [a, a, a]);
    assert_eq!(endpoints.clients_made(b), 0);

    endpoints.set_refusing(b, false);
    // The next attempt is due after the backoff; paused time gets there at once.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(ready_addrs(&balance), [a, b]);
    assert_eq!(endpoints.clients_made(b), 1);
}

// ---- TestCa --------------------------------------------------------------------------------

#[test]
fn bad_certificate_specs_name_the_value() {
    let ca = TestCa::new("root").unwrap();
    match ca.issue(&CertSpec::spiffe("spiffe://example.org/ns/é")) {
        Err(TestCaError::InvalidName { kind, value }) => {
            assert_eq!(kind, "URI SAN");
            assert_eq!(value, "spiffe://example.org/ns/é");
        }
        other => panic!("{other:?}"),
    }
    let now = std::time::SystemTime::now();
    let inverted = CertSpec::dns("a.test").validity(now, now - Duration::from_secs(1));
    assert!(matches!(
        ca.issue(&inverted),
        Err(TestCaError::InvalidValidity(_))
    ));
    let early = std::time::UNIX_EPOCH - Duration::from_secs(1);
    let err = ca
        .issue(&CertSpec::dns("a.test").validity(early, now))
        .unwrap_err();
    assert!(err.to_string().contains("1970"), "{err}");
    for oid in [&[7][..], &[3, 1], &[1, 40, 1], &[]] {
        let spec = CertSpec::dns("a.test").extension(oid, vec![5, 0], false);
        match ca.issue(&spec) {
            Err(TestCaError::InvalidOid(bad)) => assert_eq!(bad, oid),
            other => panic!("{oid:?}: {other:?}"),
        }
    }
    assert!(
        ca.issue(&CertSpec::dns("a.test").extension(&[2, 999, 3], vec![5, 0], false))
            .is_ok()
    );
}

#[test]
fn certificates_carry_their_chain_serial_and_pem() {
    let root = TestCa::new("root").unwrap();
    let mid = root.intermediate("mid").unwrap();
    let leaf = mid.issue(&CertSpec::dns("a.test").serial(77)).unwrap();
    assert_eq!(leaf.serial(), 77);
    let chain = leaf.chain_der();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0], leaf.cert_der());
    assert_eq!(chain[1], mid.cert_der());
    assert_eq!(mid.root_der(), root.cert_der());
    assert_eq!(leaf.cert_pem().matches("BEGIN CERTIFICATE").count(), 2);
    assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!leaf.key_der().is_empty());
    let other = mid.dns("b.test").unwrap();
    assert_ne!(other.serial(), leaf.serial());
    assert_eq!(mid.name(), "mid");
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tower::{BoxError, Layer, ServiceExt};
    use tower_mesh::endpoint::Endpoint;
    use tower_mesh::tls::{
        Credentials, HandshakeFailed, IdentityMismatch, TlsAcceptor, TlsConfig, TlsConnectLayer,
        TrustBundle, TrustStore,
    };

    use super::*;

    const TD: &str = "example.org";
    const SERVER: &str = "spiffe://example.org/ns/prod/sa/server";
    const CLIENT: &str = "spiffe://example.org/ns/prod/sa/client";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A loopback server behind our acceptor: answers one line per connection with the
    /// client's verified identity. `served` counts connections whose data reached the
    /// handler; refused handshakes arrive on `errors`.
    struct Server {
        addr: SocketAddr,
        served: Arc<AtomicUsize>,
        errors: mpsc::UnboundedReceiver<BoxError>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(config: TlsConfig) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let served = Arc::new(AtomicUsize::new(0));
            let (tx, errors) = mpsc::unbounded_channel();
            let acceptor = TlsAcceptor::new(config);
            let count = Arc::clone(&served);
            let task = tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, count, tx) = (acceptor.clone(), count.clone(), tx.clone());
                    tokio::spawn(async move {
                        let mut stream = match acceptor.oneshot(tcp).await {
                            Ok(stream) => stream,
                            Err(e) => return drop(tx.send(e)),
                        };
                        let peer = stream.peer_identity().map(|p| p.to_string());
                        let mut line = [0u8; 5];
                        if let Err(e) = stream.read_exact(&mut line).await {
                            return drop(tx.send(e.into()));
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = format!("{}\n", peer.as_deref().unwrap_or("anonymous"));
                        let _ = stream.write_all(reply.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            Server {
                addr,
                served,
                errors,
                task,
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Connects with our connector expecting `identity`, sends one line, returns the
    /// server's reply and the identity the client verified.
    async fn exchange(
        config: &TlsConfig,
        addr: SocketAddr,
        identity: &str,
    ) -> Result<(String, String), BoxError> {
        let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
        let mut stream = TlsConnectLayer::new(config.clone())
            .layer(tcp)
            .oneshot(Endpoint::new(addr).with_identity(identity))
            .await?;
        let server = stream
            .peer_identity()
            .map(|p| p.to_string())
            .unwrap_or_default();
        stream.write_all(b"ping\n").await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok((reply, server))
    }

    /// The errors in `err`'s source chain, looking inside `io::Error`s too (whose `source`
    /// skips the error they wrap, where rustls puts its own).
    fn chain(err: &BoxError) -> Vec<&(dyn std::error::Error + 'static)> {
        let mut out = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
        while let Some(e) = cur {
            out.push(e);
            cur = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => e.source(),
            };
        }
        out
    }

    /// The rustls certificate error in `err`'s source chain.
    fn certificate_error(err: &BoxError) -> Option<rustls::CertificateError> {
        chain(err)
            .into_iter()
            .find_map(|e| match e.downcast_ref::<rustls::Error>() {
                Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
                _ => None,
            })
    }

    /// Whether `T` is in `err`'s source chain, or inside the rustls certificate error that
    /// carries our verifier's own errors.
    fn holds<T: std::error::Error + 'static>(err: &BoxError) -> bool {
        let inside = match certificate_error(err) {
            Some(rustls::CertificateError::Other(other)) => other.0.is::<T>(),
            _ => false,
        };
        inside || chain(err).into_iter().any(|e| e.is::<T>())
    }

    #[tokio::test]
    async fn spiffe_identities_complete_mtls_through_an_intermediate() {
        let root = TestCa::new("example.org root").unwrap();
        let issuing = root.intermediate("issuing").unwrap();
        let trust = root.spiffe_trust(TD).unwrap();
        let server_config = issuing
            .spiffe(SERVER)
            .unwrap()
            .tls_config(provider(), trust.clone())
            .unwrap();
        let server = Server::start(server_config).await;
        let client = issuing
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), trust)
            .unwrap();
        let (reply, verified) = exchange(&client, server.addr, SERVER).await.unwrap();
        assert_eq!(
            verified, SERVER,
            "the client verified the server's SPIFFE ID"
        );
        assert_eq!(reply, format!("{CLIENT}\n"), "the server saw the client's");
        assert_eq!(server.served.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_wrong_identity_fails_before_any_byte_is_sent() {
        let ca = TestCa::new("root").unwrap();
        let trust = ca.spiffe_trust(TD).unwrap();
        let server = Server::start(
            ca.spiffe("spiffe://example.org/ns/prod/sa/impostor")
                .unwrap()
                .tls_config(provider(), trust.clone())
                .unwrap(),
        )
        .await;
        let client = ca
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), trust)
            .unwrap();
        let err = exchange(&client, server.addr, SERVER).await.unwrap_err();
        assert!(err.is::<HandshakeFailed>(), "{err:?}");
        assert!(holds::<IdentityMismatch>(&err), "{err:?}");
        assert_eq!(server.served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused() {
        let (ours, theirs) = (TestCa::new("ours").unwrap(), TestCa::new("theirs").unwrap());
        let mut server = Server::start(
            ours.spiffe(SERVER)
                .unwrap()
                .tls_config(provider(), ours.spiffe_trust(TD).unwrap())
                .unwrap(),
        )
        .await;
        // The client's certificate names the right trust domain but another CA signed it.
        let client = theirs
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), ours.spiffe_trust(TD).unwrap())
            .unwrap();
        assert!(exchange(&client, server.addr, SERVER).await.is_err());
        let refused = server.errors.recv().await.unwrap();
        assert_eq!(
            certificate_error(&refused),
            Some(rustls::CertificateError::UnknownIssuer),
            "{refused:?}"
        );
        assert_eq!(server.served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn dns_identities_complete_mtls() {
        let ca = TestCa::new("dns root").unwrap();
        let trust = ca.dns_trust().unwrap();
        let server = Server::start(
            ca.dns("server.test")
                .unwrap()
                .tls_config(provider(), trust.clone())
                .unwrap(),
        )
        .await;
        let client = ca
            .dns("client.test")
            .unwrap()
            .tls_config(provider(), trust)
            .unwrap();
        let (reply, verified) = exchange(&client, server.addr, "server.test").await.unwrap();
        assert_eq!(verified, "server.test");
        assert_eq!(reply, "client.test\n");
        let err = exchange(&client, server.addr, "other.test")
            .await
            .unwrap_err();
        assert!(holds::<IdentityMismatch>(&err), "{err:?}");
    }

    #[tokio::test]
    async fn expired_and_not_yet_valid_certificates_are_refused() {
        let ca = TestCa::new("root").unwrap();
        let trust = ca.spiffe_trust(TD).unwrap();
        let client = ca
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), trust.clone())
            .unwrap();
        let expired = ca.issue(&CertSpec::spiffe(SERVER).expired()).unwrap();
        let early = ca.issue(&CertSpec::spiffe(SERVER).not_yet_valid()).unwrap();
        let late_mid = ca
            .intermediate_with("late", &CertSpec::new().not_yet_valid())
            .unwrap();
        let behind_late = late_mid.spiffe(SERVER).unwrap();
        for (cert, what) in [
            (&expired, "expired leaf"),
            (&early, "not yet valid leaf"),
            (&behind_late, "not yet valid intermediate"),
        ] {
            let server = Server::start(cert.tls_config(provider(), trust.clone()).unwrap()).await;
            let err = exchange(&client, server.addr, SERVER).await.unwrap_err();
            let cert_err = certificate_error(&err);
            assert!(
                matches!(
                    cert_err,
                    Some(
                        rustls::CertificateError::Expired
                            | rustls::CertificateError::ExpiredContext { .. }
                            | rustls::CertificateError::NotValidYet
                            | rustls::CertificateError::NotValidYetContext { .. }
                    )
                ),
                "{what}: {err:?}"
            );
            assert_eq!(server.served.load(Ordering::SeqCst), 0, "{what}");
        }
    }

    #[tokio::test]
    async fn badly_issued_leaves_are_refused() {
        use tower_mesh::test_util::{KeyUsage, Usage};
        use tower_mesh::tls::BadPeerCertificate;

        let ca = TestCa::new("root").unwrap();
        let trust = ca.spiffe_trust(TD).unwrap();
        let client = ca
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), trust.clone())
            .unwrap();
        let cert_sign = CertSpec::spiffe(SERVER)
            .key_usages([KeyUsage::DigitalSignature, KeyUsage::KeyCertSign]);
        let client_only = CertSpec::spiffe(SERVER).usage(Usage::Client);
        for (spec, what) in [
            (cert_sign, "keyCertSign in a leaf"),
            (client_only, "client-only leaf as a server"),
        ] {
            let leaf = ca.issue(&spec).unwrap();
            let server = Server::start(
                leaf.tls_config_builder(provider(), trust.clone())
                    .dangerous()
                    .connect_with_invalid_certificate()
                    .done()
                    .build()
                    .unwrap(),
            )
            .await;
            let err = exchange(&client, server.addr, SERVER).await.unwrap_err();
            assert!(err.is::<HandshakeFailed>(), "{what}: {err:?}");
            assert_eq!(server.served.load(Ordering::SeqCst), 0, "{what}");
            match what {
                "keyCertSign in a leaf" => {
                    assert!(holds::<BadPeerCertificate>(&err), "{what}: {err:?}")
                }
                "client-only leaf as a server" => assert!(
                    matches!(
                        certificate_error(&err),
                        Some(
                            rustls::CertificateError::InvalidPurpose
                                | rustls::CertificateError::InvalidPurposeContext { .. }
                        )
                    ),
                    "{what}: {err:?}"
                ),
                _ => unreachable!(),
            }
        }
        // A CA's own certificate presented as a workload's.
        let mid = ca
            .intermediate_with("mid", &CertSpec::spiffe(SERVER))
            .unwrap();
        let as_leaf = mid.as_cert().unwrap();
        assert_eq!(as_leaf.serial(), mid.serial());
        assert_eq!(as_leaf.cert_der(), mid.cert_der());
        let server = Server::start(
            as_leaf
                .tls_config_builder(provider(), trust.clone())
                .dangerous()
                .connect_with_invalid_certificate()
                .done()
                .build()
                .unwrap(),
        )
        .await;
        let err = exchange(&client, server.addr, SERVER).await.unwrap_err();
        assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");
        assert_eq!(server.served.load(Ordering::SeqCst), 0);
        // A leaf with an unknown critical extension: our own configuration already refuses
        // to present it.
        let unknown_critical = ca
            .issue(&CertSpec::spiffe(SERVER).extension(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                vec![5, 0],
                true,
            ))
            .unwrap();
        let err = unknown_critical.tls_config(provider(), trust).unwrap_err();
        assert!(
            format!("{err:?}").contains("UnsupportedCriticalExtension"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_revoked_server_is_refused_by_the_crl() {
        let ca = TestCa::new("root").unwrap();
        let revoked = ca.spiffe(SERVER).unwrap();
        let crl = ca.crl_pem([revoked.serial()]).unwrap();
        let bundle = ca
            .trust_bundle()
            .unwrap()
            .with_crl_pem(crl.as_bytes())
            .unwrap();
        let trust = TrustStore::new().with_spiffe(
            tower_mesh::identity::TrustDomain::parse(TD).unwrap(),
            bundle,
        );
        let client = ca
            .spiffe(CLIENT)
            .unwrap()
            .tls_config(provider(), trust.clone())
            .unwrap();
        let server = Server::start(
            revoked
                .tls_config(provider(), ca.spiffe_trust(TD).unwrap())
                .unwrap(),
        )
        .await;
        let err = exchange(&client, server.addr, SERVER).await.unwrap_err();
        assert_eq!(
            certificate_error(&err),
            Some(rustls::CertificateError::Revoked),
            "{err:?}"
        );
        // A certificate the CRL does not name is accepted under the same bundle.
        let fine = Server::start(
            ca.spiffe(SERVER)
                .unwrap()
                .tls_config(provider(), ca.spiffe_trust(TD).unwrap())
                .unwrap(),
        )
        .await;
        exchange(&client, fine.addr, SERVER).await.unwrap();
    }

    #[test]
    fn pem_output_parses_as_the_crate_reads_files() {
        let root = TestCa::new("root").unwrap();
        let leaf = root.intermediate("mid").unwrap().spiffe(SERVER).unwrap();
        let creds =
            Credentials::from_pem(leaf.cert_pem().as_bytes(), leaf.key_pem().as_bytes()).unwrap();
        assert_eq!(creds.chain().len(), 2);
        assert_eq!(
            TrustBundle::from_pem(root.cert_pem().as_bytes())
                .unwrap()
                .len(),
            1
        );
        // The same material through the DER path builds a working configuration.
        leaf.tls_config_builder(provider(), root.spiffe_trust(TD).unwrap())
            .handshake_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
    }

    #[test]
    fn a_bad_trust_domain_is_named() {
        let ca = TestCa::new("root").unwrap();
        let err = ca.spiffe_trust("Not A Domain").unwrap_err();
        assert!(matches!(err, TestCaError::InvalidTrustDomain(_)), "{err:?}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("Not A Domain"), "{source}");
    }
}
