use crate::error::BoxError;
use crate::health::{Classify, Outcome, TransportErrors};

/// Decides which requests a [`Retry`](super::Retry) may send again, and which results are worth
/// another attempt.
///
/// # Examples
///
/// Retry only reads, on any error:
///
/// ```
/// use tower_mesh::BoxError;
/// use tower_mesh::retry::Policy;
///
/// #[derive(Clone)]
/// enum Op { Read(u64), Write(u64, Vec<u8>) }
///
/// struct ReadsOnly;
///
/// impl Policy<Op, Vec<u8>> for ReadsOnly {
///     fn replay(&self, req: &Op) -> Option<Op> {
///         match req {
///             Op::Read(_) => Some(req.clone()),
///             Op::Write(..) => None, // not idempotent: never sent twice
///         }
///     }
///
///     fn retryable(&self, result: Result<&Vec<u8>, &BoxError>) -> bool {
///         result.is_err()
///     }
/// }
/// assert!(ReadsOnly.replay(&Op::Write(1, vec![])).is_none());
/// ```
pub trait Policy<Req, Res>: Send + Sync + 'static {
    /// A copy of `req` for another attempt; `None` when it cannot be replayed or must not be
    /// retried (it is not idempotent).
    ///
    /// Called once before the first attempt of every request that could be retried or hedged
    /// (the copy must exist before the original is sent), and once on that copy for each
    /// further attempt, before the budget is asked: `None` then ends the request's retries.
    fn replay(&self, req: &Req) -> Option<Req>;

    /// Whether an attempt that ended this way is worth another attempt on another endpoint.
    fn retryable(&self, result: Result<&Res, &BoxError>) -> bool;

    /// Whether this request may be hedged (when hedging is configured). Default: true.
    fn hedgeable(&self, _req: &Req) -> bool {
        true
    }
}

/// A policy that treats every request as idempotent and replays it by cloning it; an attempt
/// is retryable when the classifier `C` counts its result as a
/// [`Failure`](crate::health::Outcome::Failure).
///
/// The name is the opt-in: use it only when sending any request twice is harmless (reads,
/// idempotent writes, requests carrying an idempotency key). With the default classifier,
/// every error is retryable and every response final.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeIdempotent<C = TransportErrors> {
    classify: C,
}

impl AssumeIdempotent {
    /// Every request idempotent; errors retryable, responses final.
    pub fn new() -> Self {
        AssumeIdempotent {
            classify: TransportErrors,
        }
    }

    /// Every request idempotent; an attempt retryable when `classify` counts it a failure
    /// (for example [`HttpStatus`](crate::health) with feature `http`: errors, `5xx` and gRPC
    /// `UNAVAILABLE`).
    pub fn with_classifier<C>(classify: C) -> AssumeIdempotent<C> {
        AssumeIdempotent { classify }
    }
}

impl<C> AssumeIdempotent<C> {
    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classify
    }
}

impl<Req, Res, C> Policy<Req, Res> for AssumeIdempotent<C>
where
    Req: Clone,
    C: Classify<Res>,
{
    #[inline]
    fn replay(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }

    #[inline]
    fn retryable(&self, result: Result<&Res, &BoxError>) -> bool {
        self.classify.classify(result) == Outcome::Failure
    }
}
