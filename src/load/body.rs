//! Keeping a request in flight until its response body ends (feature `http`).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::InFlight;
use crate::balance::Respond;
use crate::balance::respond;
use crate::error::BoxError;
use crate::health::{Classify, Outcome, TransportErrors};

/// A [`Respond`] for HTTP clients: the request stays in flight on its endpoint until the
/// response body has been read to its end (or dropped), and its round-trip time is measured
/// to that moment, so a streaming response counts its whole life, not just its head.
///
/// The head is classified by `C` when it arrives; a body that then fails mid-stream counts as
/// one more failure of the endpoint. A body dropped before its end counts its time as a lower
/// bound, like a cancelled request.
///
/// Use it as the balancer's classifier; the balancer's response becomes
/// `http::Response<TrackedBody<B>>`:
///
/// ```
/// use tower_mesh::balance::{Balance, PeakEwma};
/// use tower_mesh::health::HttpStatus;
/// use tower_mesh::load::TrackBody;
///
/// let builder = Balance::builder(PeakEwma::new()).classify(TrackBody::new(HttpStatus));
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackBody<C = TransportErrors> {
    classify: C,
}

impl<C> TrackBody<C> {
    /// Tracks bodies, classifying heads with `classify`.
    pub fn new(classify: C) -> Self {
        TrackBody { classify }
    }
}

impl<C, B> Respond<http::Response<B>> for TrackBody<C>
where
    C: Classify<http::Response<B>>,
    B: Body,
{
    type Response = http::Response<TrackedBody<B>>;

    fn respond(
        &self,
        result: Result<http::Response<B>, BoxError>,
        mut guard: InFlight,
    ) -> Result<Self::Response, BoxError> {
        let outcome = self.classify.classify(result.as_ref());
        // The RTT sample is completed when the body ends, not here.
        respond::outcome(&mut guard, outcome, false);
        let failed = outcome == Outcome::Failure;
        // An error ends the request here (the guard drops: a lower-bound sample).
        let response = result?;
        Ok(response.map(|body| {
            let guard = if body.is_end_stream() {
                guard.completed();
                None
            } else {
                Some(guard)
            };
            TrackedBody {
                inner: body,
                guard,
                failed,
            }
        }))
    }
}

pin_project! {
    /// A response body that keeps its request in flight on its endpoint until it ends; see
    /// [`TrackBody`].
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
        // Whether the head already counted as a failure: a body error then adds none.
        failed: bool,
    }
}

impl<B> TrackedBody<B> {
    /// The body inside.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let ended = match &frame {
            None => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
            Some(Err(_)) => {
                if let Some(guard) = this.guard.take()
                    && !*this.failed
                {
                    guard.failed();
                }
                false
            }
        };
        if ended && let Some(mut guard) = this.guard.take() {
            guard.completed();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
