//! The client side: hyper-util's pooled legacy `Client`, one clone per endpoint with the
//! endpoint's address written into each request's URI, and a health-check probe.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;
use tower_mesh::BoxError;
use tower_mesh::endpoint::Endpoint;

use crate::server::HEALTH_PATH;

/// The request body: GETs carry none.
pub(crate) type Body = Empty<Bytes>;

/// hyper-util's pooled client.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// The pooled HTTP/1 client every endpoint shares (its pool is keyed by authority).
pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// One endpoint's client: sends every request to that endpoint's address.
#[derive(Debug, Clone)]
pub(crate) struct EndpointClient {
    client: HttpClient,
    authority: Authority,
}

impl EndpointClient {
    pub(crate) fn new(client: HttpClient, addr: SocketAddr) -> Self {
        let authority = Authority::try_from(addr.to_string()).expect("a socket address");
        EndpointClient { client, authority }
    }
}

impl Service<Request<Body>> for EndpointClient {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The legacy client is always ready: it queues on its pool.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        match Uri::from_parts(parts) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        }
        let response = self.client.request(req);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

/// The balancer's `MakeService<Endpoint>`: a clone of `client` aimed at the endpoint.
pub(crate) fn make(
    client: HttpClient,
) -> impl Service<
    Endpoint,
    Response = EndpointClient,
    Error = Infallible,
    Future = std::future::Ready<Result<EndpointClient, Infallible>>,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |ep: Endpoint| {
        std::future::ready(Ok(EndpointClient::new(client.clone(), ep.addr())))
    })
}

/// The active health check: `GET /healthz` answered `200` within the probe's own timeout is
/// healthy; a refused connection, a `500`, or a stall (cut short by the health checker's
/// timeout) is not.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    client: HttpClient,
}

impl Probe {
    pub(crate) fn new(client: HttpClient) -> Self {
        Probe { client }
    }
}

impl Service<Endpoint> for Probe {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ep: Endpoint) -> Self::Future {
        let uri = format!("http://{}{HEALTH_PATH}", ep.addr());
        let client = self.client.clone();
        Box::pin(async move {
            let req = Request::get(uri).body(Body::new())?;
            let response = client.request(req).await?;
            let status = response.status();
            // Read the body so the connection goes back to the pool.
            response.into_body().collect().await?;
            if status == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("health check answered {status}").into())
            }
        })
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Longer than the whole test, so that only dropping the client closes its idle connections
/// (the leak check relies on it).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
