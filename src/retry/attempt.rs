//! One attempt of a retried request, and the timers around it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep, sleep_until};

use super::error::AttemptTimedOut;
use crate::balance::{Attempted, Reroute};
use crate::error::{BoxError, NoEndpoints};
use tower::Service;

pin_project! {
    #[project = AttemptProj]
    pub(super) enum Attempt<F> {
        Running { #[pin] fut: F },
        Idle,
    }
}

pin_project! {
    #[project = TimerProj]
    pub(super) enum Timer {
        On { #[pin] sleep: Sleep, wake: Wake },
        Off,
    }
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    Hedge,
    Backoff,
    Deadline,
}

pin_project! {
    /// One retry or hedge: waiting for its service clone to be ready, then in flight.
    pub(super) struct Lane<S: Service<Req>, Req> {
        pub(super) pending: Option<(S, Req)>,
        #[pin]
        attempt: Attempt<S::Future>,
        #[pin]
        deadline: Timer,
        pub(super) started: Option<Instant>,
    }
}

/// How an attempt ended.
pub(super) struct Ended<Res> {
    pub(super) result: Result<Res, BoxError>,
    pub(super) timed_out: bool,
    pub(super) started: Option<Instant>,
}

impl<S: Service<Req>, Req> Lane<S, Req> {
    /// An attempt to send `req` through `svc` once it is ready.
    pub(super) fn new(svc: S, req: Req, deadline: Timer, started: Option<Instant>) -> Self {
        Lane {
            pending: Some((svc, req)),
            attempt: Attempt::Idle,
            deadline,
            started,
        }
    }
}

impl<S, Req> Lane<S, Req>
where
    S: Reroute<Req>,
    S::Error: Into<BoxError>,
{
    pub(super) fn poll_lane(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        attempted: &mut Attempted,
        timeout: Option<Duration>,
    ) -> Poll<Ended<S::Response>> {
        let mut this = self.project();
        let started = *this.started;
        let end = |result, timed_out| {
            Poll::Ready(Ended {
                result,
                timed_out,
                started,
            })
        };
        if let Some((mut svc, req)) = this.pending.take() {
            match svc.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let fut = svc.call_avoiding(req, attempted);
                    this.attempt.set(Attempt::Running { fut });
                }
                Poll::Ready(Err(e)) => return end(Err(e.into()), false),
                Poll::Pending => {
                    *this.pending = Some((svc, req));
                    if this.deadline.as_mut().poll_fired(cx).is_some() {
                        return end(Err(timed_out(timeout)), true);
                    }
                    return Poll::Pending;
                }
            }
        }
        if let AttemptProj::Running { fut } = this.attempt.as_mut().project()
            && let Poll::Ready(result) = fut.poll(cx)
        {
            return end(result.map_err(Into::into), false);
        }
        if this.deadline.as_mut().poll_fired(cx).is_some() {
            if let AttemptProj::Running { fut } = this.attempt.as_mut().project() {
                S::abandon(fut);
            }
            return end(Err(timed_out(timeout)), true);
        }
        Poll::Pending
    }
}

impl Timer {
    /// Fires `delay` after `start`. A delay too long for an `Instant` (`Duration::MAX` as "no
    /// limit") waits for ever, as [`sleep`] does, instead of overflowing.
    pub(super) fn at(start: Instant, delay: Duration, wake: Wake) -> Self {
        let sleep = match start.checked_add(delay) {
            Some(deadline) => sleep_until(deadline),
            None => sleep(delay),
        };
        Timer::On { sleep, wake }
    }

    pub(super) fn after(delay: Duration, wake: Wake) -> Self {
        Timer::On {
            sleep: sleep(delay),
            wake,
        }
    }

    pub(super) fn is_backoff(&self) -> bool {
        matches!(
            self,
            Timer::On {
                wake: Wake::Backoff,
                ..
            }
        )
    }

    /// Polls the timer; once it fires, it is switched off and says what it was for.
    pub(super) fn poll_fired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Option<Wake> {
        let wake = match self.as_mut().project() {
            TimerProj::On { sleep, wake } => match sleep.poll(cx) {
                Poll::Ready(()) => *wake,
                Poll::Pending => return None,
            },
            TimerProj::Off => return None,
        };
        self.set(Timer::Off);
        Some(wake)
    }
}

pub(super) fn timed_out(timeout: Option<Duration>) -> BoxError {
    AttemptTimedOut::new(timeout.unwrap_or_default()).into()
}

/// Whether no other endpoint can fix this result: the balancer has none.
pub(super) fn is_no_endpoints<T>(result: &Result<T, BoxError>) -> bool {
    result
        .as_ref()
        .err()
        .is_some_and(|e| e.downcast_ref::<NoEndpoints>().is_some())
}
