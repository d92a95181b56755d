//! Real hyper servers on loopback (HTTP/1.1 and HTTP/2 by hyper-util's `auto` builder), plain
//! or behind the library's TLS acceptor, counting accepted connections and handled requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_mesh::identity::PeerIdentity;
use tower_mesh::tls::{TlsAcceptor, TlsConfig};

/// What a server saw of one request, as it answers it: `name|version|host|path|peer`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) name: String,
    pub(crate) version: String,
    /// The `Host` header, or the URI authority (HTTP/2's `:authority`) when there is none.
    pub(crate) host: String,
    pub(crate) path: String,
    /// The client's verified identity, or `anonymous`.
    pub(crate) peer: String,
}

impl Seen {
    pub(crate) fn parse(body: &[u8]) -> Seen {
        let text = std::str::from_utf8(body).unwrap();
        let parts: Vec<&str> = text.split('|').collect();
        assert_eq!(parts.len(), 5, "unexpected body {text:?}");
        Seen {
            name: parts[0].to_owned(),
            version: parts[1].to_owned(),
            host: parts[2].to_owned(),
            path: parts[3].to_owned(),
            peer: parts[4].to_owned(),
        }
    }
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    tls_errors: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Server {
    /// A plaintext server speaking HTTP/1.1 and HTTP/2 (prior knowledge).
    pub(crate) async fn plain(name: &str) -> Server {
        Server::start(name, None).await
    }

    /// A server behind our TLS acceptor (mutual TLS), speaking what ALPN or the preface says.
    pub(crate) async fn tls(name: &str, config: TlsConfig) -> Server {
        Server::start(name, Some(TlsAcceptor::new(config))).await
    }

    async fn start(name: &str, tls: Option<TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let tls_errors = Arc::new(AtomicUsize::new(0));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let name: Arc<str> = name.into();
        let (a, c, e, t) = (
            accepted.clone(),
            calls.clone(),
            tls_errors.clone(),
            tasks.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let (name, calls, errors, tls) = (name.clone(), c.clone(), e.clone(), tls.clone());
                let conn = tokio::spawn(async move {
                    match tls {
                        None => serve(tcp, None, name, calls).await,
                        Some(acceptor) => match acceptor.oneshot(tcp).await {
                            Ok(stream) => {
                                let peer = stream.peer_identity().cloned();
                                serve(stream, peer, name, calls).await
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
                t.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Server {
            addr,
            accepted,
            calls,
            tls_errors,
            tasks,
        }
    }

    /// TCP connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests that reached the HTTP handler so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// TLS handshakes the server saw fail.
    pub(crate) fn tls_errors(&self) -> usize {
        self.tls_errors.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until the server has seen `n` failed TLS handshakes.
    pub(crate) async fn wait_tls_errors(&self, n: usize) {
        for _ in 0..1000 {
            if self.tls_errors() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the server saw {} failed handshakes, not {n}",
            self.tls_errors()
        );
    }

    /// Stops listening and closes every open connection, as a crashed process would.
    pub(crate) fn kill(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn serve<IO>(io: IO, peer: Option<PeerIdentity>, name: Arc<str>, calls: Arc<AtomicUsize>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer: Arc<str> = peer.map_or_else(|| "anonymous".into(), |p| p.to_string().into());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let host = req
            .headers()
            .get(http::header::HOST)
            .map(|h| h.to_str().unwrap().to_owned())
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string());
        let body = format!("{name}|{:?}|{host}|{path}|{peer}", req.version());
        async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body)))) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
