//! Real loopback mTLS servers running `AuthzLayer` in front of an echo application, and the
//! clients that call them: hyper's, and a raw one that writes bytes hyper's client would refuse
//! to send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_mesh::authz::policy::{Policy, SharedPolicy};
use tower_mesh::authz::{AuthzDecision, AuthzLayer, ConnectionInfoLayer, RequestPrincipal};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::identity::{PeerIdentity, TrustDomain};
use tower_mesh::tls::{
    Credentials, TlsAcceptor, TlsConfig, TlsConfigBuilder, TlsConnectLayer, TlsStream, TrustBundle,
    TrustStore,
};

use crate::pki::Ca;

pub(crate) const SERVER: &str = "spiffe://td-a/ns/app/sa/server";
pub(crate) const A: &str = "spiffe://td-a/ns/app/sa/a";
pub(crate) const B: &str = "spiffe://td-a/ns/app/sa/b";

/// One trust domain, `td-a`, with its root generated in-process.
pub(crate) struct Mesh {
    ca: Ca,
}

impl Mesh {
    pub(crate) fn new() -> Mesh {
        Mesh {
            ca: Ca::root("td-a"),
        }
    }

    fn builder(&self, id: &str) -> TlsConfigBuilder {
        let leaf = self.ca.spiffe_leaf(id);
        let bundle = TrustBundle::from_der([self.ca.cert.clone()]).unwrap();
        TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
            .credentials(Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap())
            .trust(TrustStore::new().with_spiffe(TrustDomain::parse("td-a").unwrap(), bundle))
            .handshake_timeout(Duration::from_secs(10))
    }

    /// A STRICT configuration for workload `id` (client certificates required).
    pub(crate) fn tls(&self, id: &str) -> TlsConfig {
        self.builder(id).build().unwrap()
    }

    /// A PERMISSIVE server configuration: clients without a certificate are let in.
    pub(crate) fn permissive(&self, id: &str) -> TlsConfig {
        self.builder(id).allow_unauthenticated().build().unwrap()
    }
}

pub(crate) fn policy(toml: &str) -> SharedPolicy {
    SharedPolicy::new(Policy::from_toml_str(toml).unwrap())
}

/// What the echo application saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// The request-target as the application received it.
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) peer: Option<String>,
    pub(crate) principal: Option<String>,
    pub(crate) rule: Option<String>,
    pub(crate) body: Bytes,
}

/// A hyper HTTP/1 server on loopback: `TlsAcceptor` → `ConnectionInfoLayer` → `AuthzLayer` →
/// an echo application that records every request it is called with.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(tls: TlsConfig, authz: AuthzLayer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let authz = authz.local_port(addr.port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let acceptor = TlsAcceptor::new(tls);
        let (log, count) = (seen.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, authz, log) = (acceptor.clone(), authz.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.oneshot(tcp).await else {
                        return;
                    };
                    let app = tower::service_fn(move |req| echo(req, log.clone()));
                    let service = ServiceBuilder::new()
                        .layer(ConnectionInfoLayer::from_tls_stream(&stream))
                        .layer(authz)
                        .service(app);
                    let service =
                        hyper::service::service_fn(move |req| service.clone().oneshot(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            accepted,
            task,
        }
    }

    /// How many requests reached the application.
    pub(crate) fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The last request the application saw.
    pub(crate) fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// How many TCP connections were accepted.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let e = &parts.extensions;
    let uri = parts.uri.to_string();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts.headers,
        peer: e.get::<PeerIdentity>().map(|p| p.to_string()),
        principal: e.get::<RequestPrincipal>().map(|p| p.to_string()),
        rule: e
            .get::<AuthzDecision>()
            .and_then(|d| d.rule())
            .map(|r| r.to_string()),
        body,
    });
    Ok(Response::new(Full::new(Bytes::from(uri))))
}

/// A mesh client for workload `id`, expecting the server to prove [`SERVER`].
pub(crate) struct Client {
    config: TlsConfig,
    addr: SocketAddr,
}

/// A response as a client read it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Client {
    pub(crate) fn new(mesh: &Mesh, id: &str, server: &Server) -> Client {
        Client {
            config: mesh.tls(id),
            addr: server.addr,
        }
    }

    pub(crate) async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
        TlsConnectLayer::new(self.config.clone())
            .layer(tcp)
            .oneshot(Endpoint::new(self.addr).with_identity(SERVER))
            .await
            .unwrap()
    }

    /// A persistent HTTP/1 connection.
    pub(crate) async fn sender(&self) -> SendRequest<Full<Bytes>> {
        sender(self.connect().await).await
    }

    /// Sends `req` on a new connection.
    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        send(&mut self.sender().await, req).await
    }

    /// Writes `bytes` on a new connection and reads until the server closes it.
    pub(crate) async fn raw(&self, bytes: &[u8]) -> Raw {
        raw(self.connect().await, bytes).await
    }
}

/// `GET target` with `Host: api`.
pub(crate) fn get(target: &str) -> Request<Full<Bytes>> {
    Request::get(target)
        .header("host", "api")
        .body(Full::default())
        .unwrap()
}

pub(crate) async fn sender<IO>(io: IO) -> SendRequest<Full<Bytes>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

pub(crate) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Reply {
    sender.ready().await.unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// What came back on a raw connection, up to its close.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) text: String,
}

impl Raw {
    /// The status code of the first response, or 0 if there was none.
    pub(crate) fn status(&self) -> u16 {
        self.text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

/// Writes `bytes` and reads until the peer closes (at most 5 s).
pub(crate) async fn raw<IO>(mut io: IO, bytes: &[u8]) -> Raw
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // A server refusing a huge request may close before reading all of it: what it answered
    // is still there to read.
    let _ = io.write_all(bytes).await;
    let _ = io.flush().await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server did not close the connection within 5 s");
    Raw {
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

/// A TLS 1.3 client with no certificate (an anonymous caller of a permissive server). It
/// accepts any server certificate: only the server is under test.
pub(crate) async fn anonymous(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[derive(Debug)]
struct AnyServer;

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
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
