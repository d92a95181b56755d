//! TLS benchmarks, side by side in one run with plain tokio-rustls on the same certificates,
//! the same crypto provider (*ring*), TLS 1.3 only and session resumption off on both (ours
//! turns it off by design; the baseline is configured alike so full handshakes are compared).
//!
//! Groups:
//!
//! - `handshake`: TCP connect + full mutual-TLS handshake + a one-byte echo (so the server
//!   side's work is included), over loopback. Ours: `TlsConnector` (SPIFFE identity check,
//!   per-trust-domain bundle, X.509-SVID leaf rules) against `TlsAcceptor` (identity
//!   extraction). Baseline: `tokio_rustls` with rustls's `WebPkiServerVerifier` (DNS name) and
//!   `WebPkiClientVerifier`.
//! - `bulk`: 64 MiB written over one established connection and acknowledged by the server.
//!
//! Run with `cargo bench --features tls --bench tls -- --warm-up-time 1 --measurement-time 3`.
//! The ratio is baseline time / our time (≥ 0.95 is the target).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{
    Credentials, TlsAcceptor, TlsConfig, TlsConnectLayer, TrustBundle, TrustStore,
};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/tls/pki.rs"]
mod pki;

const SERVER: &str = "spiffe://td-a/ns/bench/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/bench/sa/client";
const BULK: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

struct Fixture {
    ours_client: TlsConfig,
    ours_server: TlsConfig,
    base_client: Arc<ClientConfig>,
    base_server: Arc<ServerConfig>,
}

fn fixture() -> Fixture {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root = pki::Ca::root("td-a");
    // One URI SAN (for ours) and a DNS SAN (for the baseline's hostname check).
    let server =
        root.leaf_with(|p| p.subject_alt_names = vec![pki::uri(SERVER), pki::dns("localhost")]);
    let client = root.spiffe_leaf(CLIENT);
    let store = TrustStore::new().with_spiffe(
        TrustDomain::parse("td-a").unwrap(),
        TrustBundle::from_der([root.cert.clone()]).unwrap(),
    );
    let ours = |leaf: &pki::Leaf| {
        TlsConfig::builder(provider.clone())
            .credentials(Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap())
            .trust(store.clone())
            .build()
            .unwrap()
    };
    let mut roots = RootCertStore::empty();
    roots.add(root.cert.clone()).unwrap();
    let roots = Arc::new(roots);
    let mut base_client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(client.chain.clone(), client.key_der())
        .unwrap();
    base_client.resumption = rustls::client::Resumption::disabled();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .unwrap();
    let mut base_server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain.clone(), server.key_der())
        .unwrap();
    base_server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    base_server.send_tls13_tickets = 0;
    Fixture {
        ours_client: ours(&client),
        ours_server: ours(&server),
        base_client: Arc::new(base_client),
        base_server: Arc::new(base_server),
    }
}

/// Serves each connection: echo one byte, then drain and acknowledge bulk transfers.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = vec![0u8; CHUNK];
    if s.read_exact(&mut buf[..1]).await.is_err() || s.write_all(&buf[..1]).await.is_err() {
        return;
    }
    let mut received = 0;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => received += n,
        }
        if received >= BULK {
            received -= BULK;
            if s.write_all(b"k").await.is_err() {
                return;
            }
        }
    }
}

async fn ours_server(config: TlsConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(config);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.oneshot(tcp).await {
                    handle(s).await;
                }
            });
        }
    });
    addr
}

async fn base_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(tcp).await {
                    handle(s).await;
                }
            });
        }
    });
    addr
}

async fn tcp(ep: Endpoint) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect(ep.addr()).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
}

/// `iters` bulk transfers on one connection, timed inside one `block_on`.
async fn bulk_n<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, data: &[u8], iters: u64) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        bulk(s, data).await;
    }
    start.elapsed()
}

async fn bulk<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, data: &[u8]) {
    for chunk in data.chunks(CHUNK) {
        s.write_all(chunk).await.unwrap();
    }
    s.flush().await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fx = fixture();
    let (ours_addr, base_addr) = rt.block_on(async {
        (
            ours_server(fx.ours_server.clone()).await,
            base_server(fx.base_server.clone()).await,
        )
    });
    let connector = TlsConnectLayer::new(fx.ours_client.clone()).layer(tower::service_fn(tcp));
    let endpoint = Endpoint::new(ours_addr).with_identity(SERVER);
    let base = tokio_rustls::TlsConnector::from(fx.base_client.clone());
    let name = ServerName::try_from("localhost").unwrap();

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tower_mesh", |b| {
        b.to_async(&rt).iter(|| {
            let mut connector = connector.clone();
            let endpoint = endpoint.clone();
            async move {
                let mut s = connector
                    .ready()
                    .await
                    .unwrap()
                    .call(endpoint)
                    .await
                    .unwrap();
                echo(&mut s).await;
                black_box(s);
            }
        })
    });
    group.bench_function("tokio_rustls", |b| {
        b.to_async(&rt).iter(|| {
            let (base, name) = (base.clone(), name.clone());
            async move {
                let tcp = tcp(Endpoint::new(base_addr)).await.unwrap();
                let mut s = base.connect(name, tcp).await.unwrap();
                echo(&mut s).await;
                black_box(s);
            }
        })
    });
    group.finish();

    let data = vec![0xa5u8; BULK];
    let mut group = c.benchmark_group("bulk");
    group.throughput(Throughput::Bytes(BULK as u64));
    group.sample_size(10);
    let mut ours = rt.block_on(async {
        let mut s = connector.clone().oneshot(endpoint.clone()).await.unwrap();
        echo(&mut s).await;
        s
    });
    group.bench_function("tower_mesh", |b| {
        b.iter_custom(|iters| rt.block_on(bulk_n(&mut ours, &data, iters)));
    });
    let mut theirs = rt.block_on(async {
        let tcp = tcp(Endpoint::new(base_addr)).await.unwrap();
        let mut s = base.connect(name.clone(), tcp).await.unwrap();
        echo(&mut s).await;
        s
    });
    group.bench_function("tokio_rustls", |b| {
        b.iter_custom(|iters| rt.block_on(bulk_n(&mut theirs, &data, iters)));
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = tls;
    config = config();
    targets = benches
}
criterion_main!(tls);
