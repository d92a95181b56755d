//! The one-call stack (`mesh::Mesh`): retries go to other endpoints, outlier detection is on
//! by default and ejects a failing endpoint, the HTTP preset retries idempotent requests only
//! against real hyper servers, and an outbound policy stops a request before any endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tower::{BoxError, Service, ServiceExt};
use tower_mesh::balance::{EndpointState, RoundRobin};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;
use tower_mesh::mesh::Mesh;
use tower_mesh::retry::{AssumeIdempotent, RetryLayer};

const BAD: u16 = 7002;

/// Endpoint clients answering with their port, except port `BAD`, which always fails;
/// `calls[i]` counts the calls to endpoint `7001 + i`.
fn make(
    calls: Arc<[AtomicUsize; 3]>,
) -> impl Service<
    Endpoint,
    Response = impl Service<(), Response = u16, Error = BoxError, Future = impl Send>
               + Clone
               + Send
               + Sync,
    Error = Infallible,
    Future = impl Send,
> + Send {
    tower::service_fn(move |ep: Endpoint| {
        let calls = calls.clone();
        async move {
            let port = ep.addr().port();
            Ok::<_, Infallible>(tower::service_fn(move |()| {
                calls[usize::from(port - 7001)].fetch_add(1, SeqCst);
                async move {
                    if port == BAD {
                        Err::<u16, BoxError>("connection reset".into())
                    } else {
                        Ok(port)
                    }
                }
            }))
        }
    })
}

fn three() -> Static {
    Static::from_addrs((7001..=7003).map(|p| SocketAddr::from(([127, 0, 0, 1], p))))
}

fn state_of(states: &[tower_mesh::balance::EndpointStats], port: u16) -> &EndpointState {
    states
        .iter()
        .find(|s| s.endpoint().addr().port() == port)
        .expect("endpoint known")
        .state()
}

#[tokio::test(start_paused = true)]
async fn retries_go_elsewhere_and_outlier_detection_is_on_by_default() {
    let calls = Arc::new([0, 0, 0].map(AtomicUsize::new));
    let mut stack = Mesh::builder(RoundRobin::with_seed(1))
        .retry(RetryLayer::new(AssumeIdempotent::new()).seed(1))
        .build(three(), make(calls.clone()))
        .unwrap();

    for _ in 0..60 {
        let port = stack.ready().await.unwrap().call(()).await.unwrap();
        assert_ne!(port, BAD, "a failure was returned instead of retried");
        // Let the driver see each failure as it comes.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let bad_calls = calls[1].load(SeqCst);
    // Round robin reaches the bad endpoint every third request until, at its fifth
    // consecutive failure, outlier detection ejects it.
    assert_eq!(bad_calls, 5, "calls to the failing endpoint: {calls:?}");
    let states = stack.get_ref().endpoints();
    assert!(
        matches!(state_of(&states, BAD), EndpointState::Ejected { .. }),
        "{:?}",
        state_of(&states, BAD)
    );
    assert_eq!(calls[0].load(SeqCst) + calls[2].load(SeqCst), 60);
}

#[tokio::test(start_paused = true)]
async fn outlier_detection_can_be_turned_off() {
    let calls = Arc::new([0, 0, 0].map(AtomicUsize::new));
    let mut stack = Mesh::builder(RoundRobin::with_seed(1))
        .without_outlier_detection()
        .build(three(), make(calls.clone()))
        .unwrap();
    let mut failures = 0;
    for _ in 0..30 {
        if stack.ready().await.unwrap().call(()).await.is_err() {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // No retry layer: every third request fails, and the endpoint is never ejected.
    assert_eq!(failures, 10);
    assert_eq!(calls[1].load(SeqCst), 10);
    assert!(matches!(
        state_of(&stack.endpoints(), BAD),
        EndpointState::Ready
    ));
}

#[test]
fn a_bad_setting_is_named_before_anything_starts() {
    let err = Mesh::builder(RoundRobin::new())
        .panic_threshold(101)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("101"), "{err}");
}

#[cfg(feature = "http")]
mod http_preset {
    use super::*;

    use ::http::{Method, Request, Response, StatusCode};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;
    use tower_mesh::client::HttpClient;

    /// A real HTTP/1 and HTTP/2 server on loopback answering every request with `status`
    /// after `delay`; returns its address and request count.
    async fn server(status: StatusCode, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let count = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        count.fetch_add(1, SeqCst);
                        async move {
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (addr, hits)
    }

    fn request(method: Method) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri("http://inventory/items")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    #[tokio::test]
    async fn the_http_preset_serves_and_never_blames_an_endpoint_for_a_callers_mistake() {
        let (addr, hits) = server(StatusCode::OK, Duration::ZERO).await;
        let mut stack = Mesh::http()
            .name("mesh-preset")
            .build(Static::from_addrs([addr]), HttpClient::new())
            .unwrap();
        let response = stack
            .ready()
            .await
            .unwrap()
            .call(request(Method::GET))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // `https` on a plaintext client: refused before sending, and not the endpoint's
        // fault: not counted (so never ejected) and not retried.
        for _ in 0..10 {
            let https = Request::get("https://inventory/items")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let err = stack.ready().await.unwrap().call(https).await.unwrap_err();
            assert!(err.is::<tower_mesh::client::HttpsWithoutTls>(), "{err:?}");
        }
        assert_eq!(hits.load(SeqCst), 1);
        let stats = stack.get_ref().endpoints();
        assert_eq!(stats[0].errors(), 0);
        assert!(matches!(stats[0].state(), EndpointState::Ready));
    }

    #[tokio::test]
    async fn http_retries_go_to_another_endpoint_for_idempotent_requests_only() {
        use tower_mesh::health::HttpStatus;
        use tower_mesh::retry::Http;

        let (good, good_hits) = server(StatusCode::OK, Duration::ZERO).await;
        let (bad, bad_hits) = server(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
        let mut stack = Mesh::builder(RoundRobin::with_seed(3))
            .classify(HttpStatus)
            // Ejection would take the failing server out; here it must stay in.
            .without_outlier_detection()
            .retry(RetryLayer::new(Http::new()))
            .build(Static::from_addrs([good, bad]), HttpClient::new())
            .unwrap();

        // Round robin sends every other first attempt to the 503 server; those GETs are
        // retried on the other one.
        for _ in 0..6 {
            let response = stack
                .ready()
                .await
                .unwrap()
                .call(request(Method::GET))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(good_hits.load(SeqCst), 6);
        let bad_gets = bad_hits.load(SeqCst);
        assert!(
            bad_gets >= 1,
            "round robin never reached the failing server"
        );

        // A POST is not idempotent: the 503 comes back as it is, never sent twice.
        let mut unavailable = 0;
        for _ in 0..4 {
            let before = good_hits.load(SeqCst) + bad_hits.load(SeqCst);
            let response = stack
                .ready()
                .await
                .unwrap()
                .call(request(Method::POST))
                .await
                .unwrap();
            let after = good_hits.load(SeqCst) + bad_hits.load(SeqCst);
            assert_eq!(after, before + 1, "a POST was resent");
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                unavailable += 1;
            }
        }
        assert_eq!(unavailable, bad_hits.load(SeqCst) - bad_gets);
        assert!(
            unavailable >= 1,
            "round robin never sent a POST to the failing server"
        );
    }
}

#[cfg(feature = "authz")]
mod egress {
    use super::*;

    use ::http::Request;
    use bytes::Bytes;
    use http_body_util::Full;
    use tower_mesh::authz::policy::{Policy, SharedPolicy};
    use tower_mesh::authz::{EgressDenied, EgressLayer};

    #[tokio::test]
    async fn a_denied_request_never_reaches_an_endpoint() {
        let sent = Arc::new(AtomicUsize::new(0));
        let count = sent.clone();
        let make = tower::service_fn(move |_: Endpoint| {
            let count = count.clone();
            async move {
                Ok::<_, Infallible>(tower::service_fn(move |_req: Request<Full<Bytes>>| {
                    count.fetch_add(1, SeqCst);
                    async { Ok::<_, BoxError>(::http::Response::new(())) }
                }))
            }
        });
        let policy = Policy::from_toml_str(
            "[[rules]]\nname = \"reads\"\naction = \"allow\"\nto.methods = [\"GET\"]\n",
        )
        .unwrap();
        let stack = Mesh::builder(RoundRobin::new())
            .retry(RetryLayer::new(AssumeIdempotent::new()))
            .egress(EgressLayer::new(SharedPolicy::new(policy)))
            .build(three(), make)
            .unwrap();
        let req = |method: &str| {
            Request::builder()
                .method(method)
                .uri("http://catalog/items")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };

        stack.clone().oneshot(req("GET")).await.unwrap();
        assert_eq!(sent.load(SeqCst), 1);
        let err = stack.clone().oneshot(req("DELETE")).await.unwrap_err();
        assert!(err.is::<EgressDenied>(), "{err}");
        assert_eq!(sent.load(SeqCst), 1, "a denied request was sent");
    }
}
