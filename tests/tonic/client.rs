//! The endpoint client the balancer builds per endpoint: an mTLS connection through
//! `TlsConnectLayer` (the server must prove the endpoint's identity inside the handshake) and
//! hyper's HTTP/2 client on it, opened when discovery adds the endpoint. An endpoint whose
//! server fails the handshake gets no client, so the balancer keeps it out of its set and
//! retries it with backoff: no request is ever sent to it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::tls::{TlsConfig, TlsConnectLayer};

/// `MakeService<Endpoint>`: one verified HTTP/2 connection per endpoint.
#[derive(Clone, Debug)]
pub(crate) struct ConnectGrpc {
    tls: TlsConfig,
}

impl ConnectGrpc {
    pub(crate) fn new(tls: TlsConfig) -> ConnectGrpc {
        ConnectGrpc { tls }
    }
}

impl Service<Endpoint> for ConnectGrpc {
    type Response = GrpcConnection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<GrpcConnection, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
        let connect = TlsConnectLayer::new(self.tls.clone()).layer(tcp);
        Box::pin(async move {
            let stream = connect.oneshot(endpoint).await?;
            let (send, connection) =
                http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            Ok(GrpcConnection { send })
        })
    }
}

/// One endpoint's HTTP/2 connection: a cheap `Clone` (hyper multiplexes the clones' requests
/// on the one connection), `Service<http::Request<tonic::body::Body>>`.
#[derive(Clone, Debug)]
pub(crate) struct GrpcConnection {
    send: SendRequest<tonic::body::Body>,
}

impl Service<http::Request<tonic::body::Body>> for GrpcConnection {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}
