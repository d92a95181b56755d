//! What counts as a failure of an endpoint.

use crate::error::BoxError;

/// Whether one request's result counts against the endpoint that served it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint did its job.
    Success,
    /// The endpoint failed this request: counts towards ejection (and, for a
    /// [`retry`](crate::retry) policy built on the same classifier, makes it retryable).
    Failure,
}

/// Decides whether one request's result counts as a failure of the endpoint that served it.
///
/// The balancer calls the classifier once per response, on the request's own task, so it
/// should be a few comparisons and cheap to clone (a unit struct, or a `Copy` value): it is
/// cloned into every response future. Errors reach it already converted to [`BoxError`].
///
/// # Examples
///
/// A classifier for a client whose responses carry their own status:
///
/// ```
/// use tower_mesh::BoxError;
/// use tower_mesh::health::{Classify, Outcome};
///
/// #[derive(Clone)]
/// struct Overloaded;
///
/// impl Classify<Result<String, u16>> for Overloaded {
///     fn classify(&self, result: Result<&Result<String, u16>, &BoxError>) -> Outcome {
///         match result {
///             Ok(Ok(_)) => Outcome::Success,
///             Ok(Err(code)) if *code < 500 => Outcome::Success, // the caller's fault
///             _ => Outcome::Failure,
///         }
///     }
/// }
/// assert_eq!(Overloaded.classify(Ok(&Err(503))), Outcome::Failure);
/// ```
pub trait Classify<Res>: Clone + Send + Sync + 'static {
    /// The outcome of one request.
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome;
}

/// The default classifier: an error from the endpoint's client (refused connection, reset,
/// timeout, TLS failure) is a failure; every response is a success.
///
/// With `http`, a request the client refused as malformed before sending it is the caller's
/// fault, not the endpoint's, and does not count (nor, for a retry policy on this
/// classifier, make the request retryable): see [`is_caller_error`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportErrors;

impl<Res> Classify<Res> for TransportErrors {
    #[inline]
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) if is_caller_error(e) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Whether an error says the *request* was wrong rather than the endpoint: with `http`, a
/// `client::HttpsWithoutTls` refusal, or a hyper error its
/// `is_user` marks as the caller's (a request needing HTTP/2 sent on
/// an HTTP/1 connection, a request body that failed), anywhere in the error's source chain.
/// Sending such a request to another endpoint fails the same way, and counting it against
/// healthy endpoints would eject them one after the other. Without `http`, always `false`.
#[cold]
pub fn is_caller_error(error: &BoxError) -> bool {
    #[cfg(feature = "http")]
    {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
        while let Some(e) = source {
            if e.is::<crate::client::HttpsWithoutTls>()
                || e.downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_user)
            {
                return true;
            }
            source = e.source();
        }
    }
    let _ = error;
    false
}

/// Feature `http`: a transport error, a `5xx` status, or a gRPC `UNAVAILABLE`
/// (`grpc-status: 14` in the response head, as a trailers-only gRPC response carries it) is a
/// failure.
///
/// A gRPC status that arrives in trailers after a streamed body is not seen: the balancer
/// classifies when the response head arrives. `4xx` is the caller's fault, not the endpoint's,
/// and so is a request the client refused before sending it ([`is_caller_error`]).
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStatus;

#[cfg(feature = "http")]
impl<B> Classify<http::Response<B>> for HttpStatus {
    #[inline]
    fn classify(&self, result: Result<&http::Response<B>, &BoxError>) -> Outcome {
        match result {
            Ok(response) if !is_http_failure(response) => Outcome::Success,
            Err(e) if is_caller_error(e) => Outcome::Success,
            _ => Outcome::Failure,
        }
    }
}

/// Feature `http`: whether a response is a server-side failure: a `5xx` status or gRPC
/// `UNAVAILABLE` (`grpc-status: 14`) in its head.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[inline]
pub fn is_http_failure<B>(response: &http::Response<B>) -> bool {
    response.status().is_server_error()
        || response
            .headers()
            .get("grpc-status")
            .is_some_and(|v| v.as_bytes() == b"14")
}
