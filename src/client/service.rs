//! [`EndpointClient`]: one endpoint's HTTP client, and its response future.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::Body;
use hyper::body::Incoming;
use tower::{BoxError, Service};

use super::error::{ConnectError, HttpsWithoutTls};
use super::make::Hyper;

/// The client of one endpoint, made by [`HttpClient`](super::HttpClient): a
/// `Service<http::Request<B>>` answering `http::Response<hyper::body::Incoming>`, over a pool
/// of connections to that endpoint only. Cheap to clone (one `Arc`), always ready.
///
/// # The request URI
///
/// The endpoint's address is dialled, never the URI's host, so a request may name the service
/// logically or not at all:
///
/// - `/path?query` (relative): sent to the endpoint with the endpoint's address as authority,
///   so the `Host` header (HTTP/1) or `:authority` (HTTP/2) is `ip:port`.
/// - `http://payments/path` (absolute): the authority is kept, so `Host`/`:authority` is
///   `payments`, which virtual-hosting servers route by.
/// - A `Host` header set on the request is sent as given (HTTP/1).
/// - The scheme follows the transport: `https` over TLS (an `http` URI is upgraded, since the
///   connection is TLS anyway), `http` in plaintext. An `https` URI on a client without TLS
///   is refused with [`HttpsWithoutTls`], never sent in the clear.
///
/// hyper-util pools connections by scheme and authority, so requests naming different
/// authorities use separate connections to the same endpoint.
///
/// # Errors
///
/// A request that needed a new connection and could not get one fails with
/// [`ConnectError`] (no byte of it was sent). Other failures (a connection reset mid-request,
/// an HTTP/2 stream refused) are hyper-util's `hyper_util::client::legacy::Error`, with the
/// hyper error as its source; the balancer's classifier counts these against the endpoint.
/// A request refused as the caller's mistake ([`HttpsWithoutTls`](super::HttpsWithoutTls),
/// or a hyper user error such as a request needing HTTP/2 on an HTTP/1 client) is not the
/// endpoint's failure: [`is_caller_error`](crate::health::is_caller_error) tells them apart,
/// and the classifiers and the [`Http`](crate::retry::Http) retry policy neither count nor
/// retry it.
pub struct EndpointClient<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    client: Hyper<B>,
    addr: SocketAddr,
    authority: Authority,
    tls: bool,
    // Keeps the pool alive in the shared map while any clone of this client lives.
    _users: Arc<()>,
}

impl<B> EndpointClient<B> {
    pub(crate) fn new(
        client: Hyper<B>,
        users: Arc<()>,
        addr: SocketAddr,
        tls: bool,
    ) -> Result<Self, BoxError> {
        // A socket address always renders as a valid authority (`1.2.3.4:80`, `[::1]:80`).
        let authority = Authority::try_from(addr.to_string())?;
        Ok(EndpointClient {
            inner: Arc::new(Inner {
                client,
                addr,
                authority,
                tls,
                _users: users,
            }),
        })
    }

    /// The address of the endpoint this client connects to.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Whether connections are made over TLS.
    pub fn is_tls(&self) -> bool {
        self.inner.tls
    }
}

impl<B> Service<Request<B>> for EndpointClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> ResponseFuture {
        let uri = std::mem::take(req.uri_mut());
        match target(uri, self.inner.tls, &self.inner.authority) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(err) => {
                return ResponseFuture {
                    state: State::Refused(Some(err)),
                };
            }
        }
        ResponseFuture {
            state: State::Sending(self.inner.client.request(req)),
        }
    }
}

/// The future of an [`EndpointClient`] request.
pub struct ResponseFuture {
    state: State,
}

enum State {
    Refused(Option<BoxError>),
    Sending(hyper_util::client::legacy::ResponseFuture),
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Refused(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| "response future polled after completion".into()))),
            State::Sending(future) => Pin::new(future).poll(cx).map_err(unwrap_connect),
        }
    }
}

/// Lifts our [`ConnectError`] out of hyper-util's wrapper, so callers downcast to it directly;
/// other errors pass through.
fn unwrap_connect(err: hyper_util::client::legacy::Error) -> BoxError {
    if err.is_connect() {
        let mut cause = std::error::Error::source(&err);
        while let Some(e) = cause {
            if let Some(connect) = e.downcast_ref::<ConnectError>() {
                return Box::new(connect.clone());
            }
            cause = e.source();
        }
    }
    Box::new(err)
}

/// The URI hyper is given: scheme from the transport, authority kept or the endpoint's, path
/// `/` when there is none (see [`EndpointClient`]).
pub(crate) fn target(uri: Uri, tls: bool, endpoint: &Authority) -> Result<Uri, BoxError> {
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    if !tls && uri.scheme() == Some(&Scheme::HTTPS) {
        return Err(HttpsWithoutTls::new(uri).into());
    }
    if uri.scheme() == Some(&scheme) && uri.authority().is_some() {
        return Ok(uri);
    }
    let mut parts = uri.into_parts();
    parts.scheme = Some(scheme);
    if parts.authority.is_none() {
        parts.authority = Some(endpoint.clone());
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Ok(Uri::from_parts(parts)?)
}

impl<B> Clone for EndpointClient<B> {
    fn clone(&self) -> Self {
        EndpointClient {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> fmt::Debug for EndpointClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointClient")
            .field("addr", &self.inner.addr)
            .field("tls", &self.inner.tls)
            .finish()
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Refused(_) => "refused",
            State::Sending(_) => "sending",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
