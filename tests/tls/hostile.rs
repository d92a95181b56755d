//! Hostile and foreign peers: plain rustls clients and servers that present whatever they are
//! given (only our side is under test), and a recording man-in-the-middle proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tower::BoxError;

use crate::pki::Leaf;
use crate::support::{Server, get, provider};

/// A plain rustls server configuration presenting `chain` with `leaf`'s key, as-is: rustls
/// checks nothing about a certificate given through a resolver, so broken or hostile chains
/// can be presented.
pub(crate) fn rustls_server(
    versions: &[&'static rustls::SupportedProtocolVersion],
    chain: Vec<CertificateDer<'static>>,
    leaf: &Leaf,
) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified(chain, leaf))))
}

/// `chain` with `leaf`'s key, without checking that they match or that `chain` parses.
pub(crate) fn certified(chain: Vec<CertificateDer<'static>>, leaf: &Leaf) -> Arc<CertifiedKey> {
    let key = provider()
        .key_provider
        .load_private_key(leaf.key_der())
        .unwrap();
    Arc::new(CertifiedKey::new(chain, key))
}

/// Always presents the same certificate (server side).
#[derive(Debug)]
pub(crate) struct Fixed(pub(crate) Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Always presents the same certificate (client side).
#[derive(Debug)]
pub(crate) struct FixedClient(pub(crate) Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClient {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A loopback TCP proxy in front of `target` that records every byte in both directions and
/// may rewrite the first TLS record the client sends (its ClientHello): a man in the middle.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    // Per connection, in accept order.
    connections: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The two directions of one proxied connection.
struct Recorded {
    up: Arc<Side>,
    down: Arc<Side>,
}

/// One direction of a proxied connection: the bytes forwarded, and whether the sender has
/// closed its side.
#[derive(Default)]
struct Side(Mutex<(Vec<u8>, bool)>);

impl Proxy {
    pub(crate) async fn start(target: SocketAddr, rewrite: fn(Vec<u8>) -> Vec<u8>) -> Proxy {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let conns = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, down) = (Arc::new(Side::default()), Arc::new(Side::default()));
                conns.lock().unwrap().push(Recorded {
                    up: up.clone(),
                    down: down.clone(),
                });
                tokio::spawn(async move {
                    let server = TcpStream::connect(target).await.unwrap();
                    let (mut client_rx, client_tx) = client.into_split();
                    let (server_rx, mut server_tx) = server.into_split();
                    tokio::spawn(pipe(server_rx, client_tx, down));
                    let Some(first) = read_record(&mut client_rx).await else {
                        up.0.lock().unwrap().1 = true;
                        return;
                    };
                    let first = rewrite(first);
                    up.0.lock().unwrap().0.extend_from_slice(&first);
                    if server_tx.write_all(&first).await.is_ok() {
                        pipe(client_rx, server_tx, up).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            connections,
            task,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// Everything the client sent on connection `n` (as forwarded), once it closed its side.
    pub(crate) async fn client_bytes(&self, n: usize) -> Vec<u8> {
        let side = self.connections.lock().unwrap()[n].up.clone();
        side.wait_closed("client").await
    }

    /// Everything the server sent on connection `n`, once it closed its side.
    pub(crate) async fn server_bytes(&self, n: usize) -> Vec<u8> {
        let side = self.connections.lock().unwrap()[n].down.clone();
        side.wait_closed("server").await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Side {
    async fn wait_closed(&self, who: &str) -> Vec<u8> {
        for _ in 0..400 {
            {
                let side = self.0.lock().unwrap();
                if side.1 {
                    return side.0.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the {who} did not close its side of the proxied connection within 20 s");
    }
}

/// Copies `rx` to `tx`, recording the bytes; marks the side closed at end of stream.
async fn pipe(
    mut rx: tokio::net::tcp::OwnedReadHalf,
    mut tx: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Side>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record.0.lock().unwrap().0.extend_from_slice(&buf[..n]);
                if tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    record.0.lock().unwrap().1 = true;
    let _ = tx.shutdown().await;
}

/// Reads one whole TLS record (header and payload).
async fn read_record(rx: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut record = vec![0u8; 5];
    rx.read_exact(&mut record).await.ok()?;
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    record.resize(5 + len, 0);
    rx.read_exact(&mut record[5..]).await.ok()?;
    Some(record)
}

/// An attacker's client: accepts any server certificate, offers the given versions and an
/// optional client certificate. Only the server is under test.
pub(crate) fn attacker(
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: Option<&Leaf>,
) -> tokio_rustls::TlsConnector {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    let config = match cert {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An attacker's TLS 1.3 client presenting `certified` as is (rustls checks nothing about a
/// certificate given through a resolver).
pub(crate) fn attacker_presenting(certified: Arc<CertifiedKey>) -> tokio_rustls::TlsConnector {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_client_cert_resolver(Arc::new(FixedClient(certified)));
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[derive(Debug)]
pub(crate) struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects `connector` to `server` and sends one GET.
pub(crate) async fn attack(
    server: &Server,
    connector: tokio_rustls::TlsConnector,
) -> Result<String, BoxError> {
    let tcp = TcpStream::connect(server.addr).await?;
    let name = ServerName::try_from("server.invalid").unwrap();
    let stream = connector.connect(name, tcp).await?;
    get(stream).await
}
