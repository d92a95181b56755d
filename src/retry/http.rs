//! The retry policy for HTTP requests.

use http::{Method, Request, Response, StatusCode};

use super::{Policy, ReplayableBody};
use crate::error::BoxError;
use crate::health::{Classify, HttpStatus, Outcome};

/// Feature `http`: the retry [`Policy`] for `http::Request`s.
///
/// A request is sent again only when both hold:
///
/// - its method is idempotent (RFC 9110 §9.2.2: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
///   `DELETE`), so that a second copy cannot do what the first one may already have done; or
///   [`retry_non_idempotent`](Http::retry_non_idempotent) was called;
/// - its body can be replayed ([`ReplayableBody`]): a cloneable body, or a streaming body
///   wrapped in a [`ReplayBody`](super::ReplayBody) that has not grown past its limit.
///
/// The copy has the same method, URI, version, headers and extensions as the original.
///
/// An attempt is retryable when the classifier counts it as a failure of the endpoint, except
/// a `501 Not Implemented`, which every endpoint would answer alike. Only requests with an
/// idempotent method are hedged, whatever
/// [`retry_non_idempotent`](Http::retry_non_idempotent) says: a hedge sends a second copy while
/// the first may still succeed.
///
/// # Defaults
///
/// - Classifier: [`HttpStatus`], the one outlier detection uses by default: a transport error,
///   a `5xx` or a gRPC `UNAVAILABLE` (`grpc-status: 14`) is retryable, so retries and ejection
///   agree on what a failing endpoint looks like.
/// - Non-idempotent requests are never retried: a `POST` whose response was lost may have been
///   carried out.
///
/// # Examples
///
/// ```
/// use http::{Method, Request, Response, StatusCode};
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use tower_mesh::retry::{Http, Policy};
///
/// let policy = Http::new();
/// let get = Request::get("http://users/42").body(Full::new(Bytes::new())).unwrap();
/// let post = Request::post("http://users").body(Full::new(Bytes::new())).unwrap();
/// let unavailable = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(()).unwrap();
///
/// assert!(Policy::<_, Response<()>>::replay(&policy, &get).is_some());
/// assert!(Policy::<_, Response<()>>::replay(&policy, &post).is_none());
/// assert!(Policy::<Request<Full<Bytes>>, _>::retryable(&policy, Ok(&unavailable)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Http<C = HttpStatus> {
    classifier: C,
    non_idempotent: bool,
}

impl Http {
    /// The policy with the default [`HttpStatus`] classifier.
    pub fn new() -> Self {
        Http::with_classifier(HttpStatus)
    }
}

impl<C> Http<C> {
    /// The policy with another classifier of which attempts failed.
    pub fn with_classifier(classifier: C) -> Self {
        Http {
            classifier,
            non_idempotent: false,
        }
    }

    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classifier
    }

    /// Also retries requests whose method is not idempotent (`POST`, `PATCH`, `CONNECT`, ...).
    ///
    /// Only for services where sending a request twice is known to be harmless: a retried
    /// request may be carried out twice, since the endpoint that failed to answer may have
    /// acted on it. Such requests are still never hedged.
    pub fn retry_non_idempotent(mut self) -> Self {
        self.non_idempotent = true;
        self
    }
}

impl<B, Rb, C> Policy<Request<B>, Response<Rb>> for Http<C>
where
    B: ReplayableBody,
    C: Classify<Response<Rb>>,
{
    fn replay(&self, req: &Request<B>) -> Option<Request<B>> {
        if !self.non_idempotent && !is_idempotent(req.method()) {
            return None;
        }
        let mut copy = Request::new(req.body().replay()?);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }

    fn retryable(&self, result: Result<&Response<Rb>, &BoxError>) -> bool {
        if let Ok(response) = result
            && response.status() == StatusCode::NOT_IMPLEMENTED
        {
            return false;
        }
        self.classifier.classify(result) == Outcome::Failure
    }

    fn hedgeable(&self, req: &Request<B>) -> bool {
        is_idempotent(req.method())
    }
}

/// RFC 9110 §9.2.2: the methods whose effect is the same whether a request is sent once or
/// several times.
fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderValue, Version};
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::health::TransportErrors;
    use crate::retry::ReplayBody;

    type Req = Request<Full<Bytes>>;
    type Res = Response<()>;

    fn request(method: Method) -> Req {
        Request::builder()
            .method(method)
            .uri("http://users.mesh/42")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    }

    fn response(status: StatusCode) -> Res {
        Response::builder().status(status).body(()).unwrap()
    }

    fn grpc(code: &'static str) -> Res {
        Response::builder()
            .header("grpc-status", code)
            .body(())
            .unwrap()
    }

    fn replay<P: Policy<Req, Res>>(policy: &P, req: &Req) -> Option<Req> {
        policy.replay(req)
    }

    fn hedgeable<P: Policy<Req, Res>>(policy: &P, req: &Req) -> bool {
        policy.hedgeable(req)
    }

    fn retryable<P: Policy<Req, Res>>(policy: &P, result: Result<&Res, &BoxError>) -> bool {
        policy.retryable(result)
    }

    const IDEMPOTENT: [Method; 6] = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ];
    const NOT_IDEMPOTENT: [Method; 3] = [Method::POST, Method::PATCH, Method::CONNECT];

    #[test]
    fn replays_and_hedges_only_idempotent_methods() {
        let policy = Http::new();
        for method in IDEMPOTENT {
            let req = request(method.clone());
            assert!(replay(&policy, &req).is_some(), "{method} is idempotent");
            assert!(hedgeable(&policy, &req), "{method} is idempotent");
        }
        let other = Method::from_bytes(b"PURGE").unwrap();
        for method in NOT_IDEMPOTENT.into_iter().chain([other]) {
            let req = request(method.clone());
            assert!(
                replay(&policy, &req).is_none(),
                "{method} is not idempotent"
            );
            assert!(!hedgeable(&policy, &req), "{method} is not idempotent");
        }
    }

    #[test]
    fn the_opt_in_retries_but_never_hedges_non_idempotent_methods() {
        let policy = Http::new().retry_non_idempotent();
        for method in NOT_IDEMPOTENT {
            let req = request(method.clone());
            assert!(replay(&policy, &req).is_some(), "{method} was opted in");
            assert!(!hedgeable(&policy, &req), "{method} must never be hedged");
        }
        assert!(hedgeable(&policy, &request(Method::GET)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_keeps_the_whole_request() {
        #[derive(Debug, Clone, PartialEq)]
        struct Deadline(u64);

        let mut req = Request::builder()
            .method(Method::PUT)
            .uri("https://users.mesh:8443/42?fields=name")
            .version(Version::HTTP_2)
            .header("x-request-id", "abc")
            .header("accept", "text/plain")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        req.extensions_mut().insert(Deadline(7));

        let copy = replay(&Http::new(), &req).unwrap();
        assert_eq!(copy.method(), req.method());
        assert_eq!(copy.uri(), req.uri());
        assert_eq!(copy.version(), Version::HTTP_2);
        assert_eq!(copy.headers(), req.headers());
        assert_eq!(
            copy.headers().get_all("accept").iter().collect::<Vec<_>>(),
            [
                HeaderValue::from_static("text/plain"),
                HeaderValue::from_static("application/json")
            ]
        );
        assert_eq!(copy.extensions().get::<Deadline>(), Some(&Deadline(7)));
        let body = copy.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "payload");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_past_its_limit_is_not_replayed() {
        type Streamed = Request<ReplayBody<Full<Bytes>>>;
        fn replay(req: &Streamed) -> Option<Streamed> {
            Policy::<Streamed, Res>::replay(&Http::new(), req)
        }

        let body = ReplayBody::new(Full::new(Bytes::from_static(b"0123456789")), 4);
        let req = Request::get("http://users.mesh/").body(body).unwrap();
        let sent = replay(&req).expect("nothing read yet");
        sent.into_body().collect().await.unwrap();
        assert!(req.body().is_capped());
        assert!(replay(&req).is_none());
    }

    #[test]
    fn retries_server_failures_but_not_501() {
        let policy = Http::new();
        let transport: BoxError = "connection reset".into();
        assert!(retryable(&policy, Err(&transport)));
        assert!(retryable(
            &policy,
            Ok(&response(StatusCode::SERVICE_UNAVAILABLE))
        ));
        assert!(retryable(
            &policy,
            Ok(&response(StatusCode::INTERNAL_SERVER_ERROR))
        ));
        assert!(retryable(&policy, Ok(&grpc("14"))), "gRPC UNAVAILABLE");

        assert!(!retryable(
            &policy,
            Ok(&response(StatusCode::NOT_IMPLEMENTED))
        ));
        assert!(!retryable(&policy, Ok(&response(StatusCode::OK))));
        assert!(!retryable(&policy, Ok(&response(StatusCode::NOT_FOUND))));
        assert!(
            !retryable(&policy, Ok(&grpc("13"))),
            "gRPC INTERNAL is not UNAVAILABLE"
        );
    }

    #[test]
    fn another_classifier_decides_but_501_stays_final() {
        #[derive(Clone)]
        struct Everything;
        impl Classify<Res> for Everything {
            fn classify(&self, _: Result<&Res, &BoxError>) -> Outcome {
                Outcome::Failure
            }
        }

        let transport_only = Http::with_classifier(TransportErrors);
        let error: BoxError = "refused".into();
        assert!(retryable(&transport_only, Err(&error)));
        assert!(!retryable(
            &transport_only,
            Ok(&response(StatusCode::SERVICE_UNAVAILABLE))
        ));

        let everything = Http::with_classifier(Everything);
        assert!(retryable(&everything, Ok(&response(StatusCode::OK))));
        assert!(!retryable(
            &everything,
            Ok(&response(StatusCode::NOT_IMPLEMENTED))
        ));
    }

    #[test]
    fn the_policy_is_send_sync_and_copy() {
        fn assert_traits<T: Send + Sync + Copy + 'static>() {}
        assert_traits::<Http>();
        assert_traits::<Http<TransportErrors>>();
    }
}
