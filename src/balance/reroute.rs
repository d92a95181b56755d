//! Sending a request again, to an endpoint it has not been sent to yet.

use std::pin::Pin;

use tower::Service;

/// The endpoints one logical request has been sent to, so that a retry or a hedge goes
/// somewhere else. Filled in by [`Reroute::call_avoiding`]; opaque otherwise.
///
/// Holds the first endpoint inline: a request sent once, the usual case, allocates nothing
/// and carries two words; a retry or hedge allocates the list of the others.
#[derive(Debug, Clone, Default)]
pub struct Attempted {
    /// The first endpoint's key; 0 for none (keys are addresses of counters, never 0).
    first: usize,
    /// Boxed so the usual case carries one null pointer rather than an empty `Vec`'s three
    /// words: every word of a response future is copied at least once per request (measured:
    /// about 1 ns of the retry layer's cost).
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<usize>>>,
}

impl Attempted {
    /// No endpoint attempted yet.
    #[inline]
    pub fn new() -> Self {
        Attempted {
            first: 0,
            rest: None,
        }
    }

    /// How many endpoints have been attempted (an endpoint attempted twice, because every
    /// endpoint had been tried, counts twice).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.first != 0) + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    /// Whether no endpoint has been attempted.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first == 0
    }

    pub(crate) fn contains(&self, key: usize) -> bool {
        (self.first != 0 && self.first == key)
            || self.rest.as_ref().is_some_and(|rest| rest.contains(&key))
    }

    #[inline]
    pub(crate) fn record(&mut self, key: usize) {
        debug_assert_ne!(key, 0, "endpoint keys are never 0");
        if self.first == 0 {
            self.first = key;
        } else {
            self.rest.get_or_insert_default().push(key);
        }
    }
}

/// A service that can send a request while avoiding the endpoints already tried: what a
/// [`retry`](crate::retry) layer needs from the balancer below it.
/// [`Balance`](super::Balance) implements it.
pub trait Reroute<Req>: Service<Req> {
    /// Like [`Service::call`] (and, like it, only after `poll_ready` returned `Ready(Ok)`), but
    /// prefers an endpoint not in `attempted`, and records the endpoint chosen in it. A tried
    /// endpoint is chosen again only when every endpoint has been tried.
    fn call_avoiding(&mut self, req: Req, attempted: &mut Attempted) -> Self::Future;

    /// Counts an attempt as a failure of the endpoint it went to, before the caller drops it
    /// unanswered: what a retry layer does when the attempt's per-try timeout passes. Without
    /// it a dropped request counts as cancelled, not failed, and an endpoint that stops
    /// answering would never be ejected while a timeout keeps abandoning its requests. (A hedge
    /// that loses its race is dropped without this: slower is not failed.) The default does
    /// nothing.
    fn abandon(_future: Pin<&mut Self::Future>) {}
}
