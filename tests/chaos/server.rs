//! Real HTTP/1 servers on loopback that the chaos task controls at run time: up, killed
//! (listener closed and every open connection dropped), restarted on the same port, answering
//! `500`s, or stalling (reading requests and never answering).

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::setup::wait_until;

/// The path the health-check probe asks for; answered like any other path.
pub(crate) const HEALTH_PATH: &str = "/healthz";

/// How a running server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `200 OK`, the body naming the server's port.
    Up,
    /// `500 Internal Server Error` to every request.
    Errors,
    /// Reads each request and never answers, until the mode changes.
    Stall,
}

/// One server: its address stays the same across kills and restarts.
pub(crate) struct Server {
    addr: SocketAddr,
    counters: Arc<Counters>,
    mode: watch::Sender<Mode>,
    /// The accept task while the server runs. It owns the listener and a `JoinSet` of the
    /// connection tasks, so aborting it closes the listener and drops every connection.
    accept: Option<JoinHandle<()>>,
}

/// What a server has done, across all its lives.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    stalled: AtomicU64,
    probes: AtomicU64,
}

impl Server {
    /// A server on `127.0.0.1` with a port chosen by the system, answering [`Mode::Up`].
    pub(crate) async fn start() -> io::Result<Server> {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Up);
        let mut server = Server {
            addr,
            counters: Arc::default(),
            mode,
            accept: None,
        };
        server.serve(listener);
        Ok(server)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Whether it is listening (not killed).
    pub(crate) fn is_running(&self) -> bool {
        self.accept.is_some()
    }

    pub(crate) fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Whether it is running and answering `200`s.
    pub(crate) fn is_healthy(&self) -> bool {
        self.is_running() && self.mode() == Mode::Up
    }

    /// Changes how it answers, including requests stalled right now (they are answered in the
    /// new mode, or keep stalling if it is [`Mode::Stall`] again).
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Closes the listener and drops every open connection (the peers see them reset or
    /// closed), then waits until the connection tasks are gone.
    pub(crate) async fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            match accept.await {
                Ok(()) => {}
                Err(e) if e.is_cancelled() => {}
                Err(e) => panic!("the accept task of {} failed: {e}", self.addr),
            }
        }
        let counters = Arc::clone(&self.counters);
        wait_until(
            KILL_TIMEOUT,
            || counters.open() == 0,
            || {
                format!(
                    "server {} still has {} open connections {KILL_TIMEOUT:?} after it was killed",
                    self.addr,
                    counters.open()
                )
            },
        )
        .await;
    }

    /// Listens again on the same address, answering [`Mode::Up`]. The port may still be held
    /// briefly by the old socket's teardown; binding is retried, bounded.
    pub(crate) async fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart of running server {}",
            self.addr
        );
        self.set_mode(Mode::Up);
        let started = tokio::time::Instant::now();
        let listener = loop {
            match listen(self.addr) {
                Ok(listener) => break listener,
                Err(e) if started.elapsed() < REBIND_TIMEOUT => {
                    eprintln!("rebinding {} failed ({e}); trying again", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!(
                    "could not listen on {} again within {REBIND_TIMEOUT:?}: {e}",
                    self.addr
                ),
            }
        };
        self.serve(listener);
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn serve(&mut self, listener: TcpListener) {
        let counters = Arc::clone(&self.counters);
        let mode = self.mode.clone();
        let port = self.addr.port();
        self.accept = Some(tokio::spawn(accept_loop(listener, counters, mode, port)));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .field("mode", &self.mode())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Counters {
    /// TCP connections accepted.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(SeqCst)
    }

    /// Connections accepted and not yet closed.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(SeqCst)
    }

    /// Requests answered `200` (probes excluded).
    pub(crate) fn ok(&self) -> u64 {
        self.ok.load(SeqCst)
    }

    /// Requests answered `500` (probes excluded).
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(SeqCst)
    }

    /// Requests (probes included) that arrived while the server was stalling.
    pub(crate) fn stalled(&self) -> u64 {
        self.stalled.load(SeqCst)
    }

    /// Health-check probes received.
    pub(crate) fn probes(&self) -> u64 {
        self.probes.load(SeqCst)
    }
}

/// Counts a connection open for as long as its task's future lives, so an aborted task is
/// counted closed when the runtime drops it.
struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    fn new(counters: Arc<Counters>) -> Self {
        counters.accepted.fetch_add(1, SeqCst);
        counters.open.fetch_add(1, SeqCst);
        OpenGuard(counters)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, SeqCst);
    }
}

/// A listening socket with `SO_REUSEADDR`, so a killed server can listen on its port again
/// while connections it dropped linger in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    counters: Arc<Counters>,
    mode: watch::Sender<Mode>,
    port: u16,
) {
    // Dropped with this future when the server is killed: that aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let guard = OpenGuard::new(Arc::clone(&counters));
                let counters = Arc::clone(&counters);
                let mode = mode.subscribe();
                connections.spawn(async move {
                    let _guard = guard;
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, mode.clone(), Arc::clone(&counters), port)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    port: u16,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let probe = req.uri().path() == HEALTH_PATH;
    if probe {
        counters.probes.fetch_add(1, SeqCst);
    }
    let mut now = *mode.borrow_and_update();
    if now == Mode::Stall {
        counters.stalled.fetch_add(1, SeqCst);
        let next = mode.wait_for(|m| *m != Mode::Stall).await.map(|m| *m);
        now = match next {
            Ok(m) => m,
            // The server is gone; its connections are being dropped.
            Err(_) => std::future::pending().await,
        };
    }
    let (status, body) = match now {
        Mode::Up => (StatusCode::OK, port.to_string()),
        Mode::Errors | Mode::Stall => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    };
    if !probe {
        let counter = match status {
            StatusCode::OK => &counters.ok,
            _ => &counters.errors,
        };
        counter.fetch_add(1, SeqCst);
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// How long a killed server's connection tasks may take to be dropped.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a restart may retry binding its port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(2);
