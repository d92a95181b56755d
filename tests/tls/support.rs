//! Real loopback servers and clients around the library's acceptor and connector.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpStream};
use tower::{BoxError, Layer, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::identity::{PeerIdentity, TrustDomain};
use tower_mesh::tls::{
    Credentials, TlsAcceptor, TlsConfig, TlsConfigBuilder, TlsConnectLayer, TlsStream, TrustBundle,
    TrustStore,
};

use crate::pki::{Ca, Leaf};

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A builder with `leaf` as our credentials and each `(trust domain, CA)` as a bundle.
pub(crate) fn builder(leaf: &Leaf, trust: &[(&str, &Ca)]) -> TlsConfigBuilder {
    TlsConfig::builder(provider())
        .credentials(Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap())
        .trust(store(trust))
        .handshake_timeout(Duration::from_secs(10))
}

pub(crate) fn store(trust: &[(&str, &Ca)]) -> TrustStore {
    let mut store = TrustStore::new();
    for (td, ca) in trust {
        let bundle = TrustBundle::from_der([ca.cert.clone()]).unwrap();
        store = if *td == "dns" {
            store.with_dns(bundle)
        } else {
            store.with_spiffe(TrustDomain::parse(td).unwrap(), bundle)
        };
    }
    store
}

pub(crate) fn config(leaf: &Leaf, trust: &[(&str, &Ca)]) -> TlsConfig {
    builder(leaf, trust).build().unwrap()
}

/// A hyper HTTP/1 server behind our acceptor. Each request is answered with the peer's
/// identity (or "anonymous"); `calls` counts requests that reached the handler, `errors`
/// collects refused connections.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) calls: Arc<AtomicUsize>,
    pub(crate) accepted: Arc<AtomicUsize>,
    pub(crate) errors: Arc<Mutex<Vec<BoxError>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(config: TlsConfig) -> Server {
        let acceptor = TlsAcceptor::new(config);
        Server::spawn(move |tcp, calls, errors| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor.oneshot(tcp).await {
                    Ok(stream) => serve(stream, calls).await,
                    Err(err) => errors.lock().unwrap().push(err),
                }
            }
        })
        .await
    }

    /// A plain rustls server (not our acceptor): the attacker's or a misconfigured peer's side
    /// when only our client is under test. Requests reaching its HTTP handler are counted in
    /// `calls` just the same.
    pub(crate) async fn start_rustls(config: rustls::ServerConfig) -> Server {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Server::spawn(move |tcp, calls, errors| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => serve_io(stream, None, calls).await,
                    Err(err) => errors.lock().unwrap().push(err.into()),
                }
            }
        })
        .await
    }

    async fn spawn<F, Fut>(handle: F) -> Server
    where
        F: Fn(TcpStream, Arc<AtomicUsize>, Arc<Mutex<Vec<BoxError>>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (c, a, e) = (calls.clone(), accepted.clone(), errors.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(tcp, c.clone(), e.clone()));
            }
        });
        Server {
            addr,
            calls,
            accepted,
            errors,
            task,
        }
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits (up to 20 s) for the server to record a refused connection, and returns it.
    pub(crate) async fn wait_error(&self) -> BoxError {
        for _ in 0..400 {
            if let Some(err) = self.errors.lock().unwrap().pop() {
                return err;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server recorded no refused connection within 20 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1 on an accepted TLS stream, copying the peer identity into every request's
/// extensions (the documented pattern).
pub(crate) async fn serve(stream: TlsStream<TcpStream>, calls: Arc<AtomicUsize>) {
    let peer = stream.peer_identity().cloned();
    serve_io(stream, peer, calls).await;
}

/// Serves HTTP/1 on any stream, answering with `peer` (or "anonymous").
pub(crate) async fn serve_io<IO>(io: IO, peer: Option<PeerIdentity>, calls: Arc<AtomicUsize>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let who = req
                .extensions()
                .get::<PeerIdentity>()
                .map_or_else(|| "anonymous".to_owned(), |p| p.to_string());
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(who))))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Connects through the library's connector to `addr`, expecting `identity`.
pub(crate) async fn connect(
    config: &TlsConfig,
    addr: SocketAddr,
    identity: &str,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
    TlsConnectLayer::new(config.clone())
        .layer(tcp)
        .oneshot(Endpoint::new(addr).with_identity(identity))
        .await
}

/// Sends one GET on `io` over HTTP/1 and returns the body.
pub(crate) async fn get<IO>(io: IO) -> Result<String, BoxError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let response = send
        .send_request(Request::get("/").body(Empty::<Bytes>::new())?)
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// A persistent HTTP/1 sender over one connection.
pub(crate) async fn sender<IO>(io: IO) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

pub(crate) async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> Result<String, BoxError> {
    sender.ready().await?;
    let response = sender
        .send_request(Request::get("/").body(Empty::<Bytes>::new())?)
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// Walks an error's source chain looking for a rustls error.
pub(crate) fn rustls_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        cur = e.source();
    }
    None
}

/// Finds a typed error of ours inside a rustls `CertificateError::Other`, or anywhere in the
/// chain.
pub(crate) fn find<T: std::error::Error + Clone + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> Option<T> {
    let other = match rustls_error(err) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            Some(other)
        }
        _ => None,
    };
    if let Some(t) = other.as_ref().and_then(|o| o.0.downcast_ref::<T>()) {
        return Some(t.clone());
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t.clone());
        }
        cur = e.source();
    }
    None
}

/// The certificate error inside a failed handshake.
pub(crate) fn cert_error(err: &BoxError) -> rustls::CertificateError {
    match rustls_error(err.as_ref()) {
        Some(rustls::Error::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?} from {err:?}"),
    }
}

/// The alert a peer sent us, inside a failed handshake.
pub(crate) fn alert(err: &BoxError) -> rustls::AlertDescription {
    match rustls_error(err.as_ref()) {
        Some(rustls::Error::AlertReceived(a)) => a,
        other => panic!("expected an alert, got {other:?} from {err:?}"),
    }
}

/// The name of the webpki error rustls passes through as `CertificateError::Other`, if that is
/// what `e` is. rustls-webpki is not a dependency of ours, so the error cannot be downcast; its
/// `Debug` form (a unit variant's name) is compared instead, exactly.
pub(crate) fn webpki_error(e: &rustls::CertificateError) -> Option<String> {
    match e {
        rustls::CertificateError::Other(other) => Some(format!("{:?}", other.0)),
        _ => None,
    }
}

/// Whether `e` is exactly the webpki error `name`, which rustls 0.23 passes through as
/// `CertificateError::Other` (rustls `src/webpki/mod.rs`, `pki_error`: only validity, issuer,
/// name, revocation, signature and EKU errors get their own variants).
pub(crate) fn webpki(e: &rustls::CertificateError, name: &str) -> bool {
    webpki_error(e).as_deref() == Some(name)
}
