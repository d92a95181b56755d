use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

use super::attempt::{Attempt, AttemptProj, Ended, Lane, Timer, Wake, is_no_endpoints, timed_out};
use super::budget::Withdrawal;
use super::layer::Config;
use super::policy::Policy;
use super::service::Local;
use crate::balance::{Attempted, Reroute};
use crate::error::BoxError;

pin_project! {
    /// The response future of a [`Retry`](super::Retry): the first final result of the
    /// request's attempts, or the last retryable failure once no further attempt is allowed.
    ///
    /// Dropping it cancels every attempt in flight.
    pub struct ResponseFuture<S: Service<Req>, Req, Pol> {
        #[pin]
        first: Attempt<S::Future>,
        // Released as soon as the first attempt's result is final (see `poll`); `None` only
        // then.
        local: Option<Arc<Local<S, Pol>>>,
        // The template every further attempt is replayed from (never sent itself); `None`
        // when the policy gave none or no further attempt is allowed.
        backup: Option<Req>,
        attempted: Attempted,
        // Everything a request needs only once it retries, hedges or has a per-try timeout.
        slow: Option<Pin<Box<Slow<S, Req>>>>,
    }
}

pin_project! {
    #[project = SlowProj]
    struct Slow<S: Service<Req>, Req> {
        // The hedge delay, or the backoff before a retry.
        #[pin]
        timer: Timer,
        // The first attempt's per-try timeout.
        #[pin]
        deadline: Timer,
        // Retries and hedges, boxed: only requests that send them pay for them.
        extra: Vec<Pin<Box<Lane<S, Req>>>>,
        // The latest retryable failure, returned if no further attempt is made.
        last: Option<Result<S::Response, BoxError>>,
        // The copy a retry sends once its backoff is over.
        next: Option<Req>,
        // When the first attempt started; only when latencies are recorded.
        started: Option<Instant>,
        // Attempts started, the first included.
        attempts: u32,
        // An attempt failed in a way no other endpoint can fix.
        stop: bool,
        hedges: u32,
        retries: u32,
    }
}

impl<S, Req, Pol> ResponseFuture<S, Req, Pol>
where
    S: Service<Req>,
{
    #[inline(always)]
    pub(crate) fn new(
        first: S::Future,
        local: Arc<Local<S, Pol>>,
        backup: Option<Req>,
        attempted: Attempted,
        config: &Config,
    ) -> Self {
        let hedging = config.hedge.is_some() && backup.is_some();
        let mut started = None;
        let slow = if hedging || config.per_try_timeout.is_some() {
            // The one clock read at the start, only for routes with timers.
            let now = Instant::now();
            let deadline = match config.per_try_timeout {
                Some(t) => Timer::at(now, t, Wake::Deadline),
                None => Timer::Off,
            };
            let timer = match &local.shared.hedge {
                Some(hedge) if hedging => {
                    if hedge.latencies().is_some() {
                        started = Some(now);
                    }
                    Timer::at(now, hedge.delay(), Wake::Hedge)
                }
                _ => Timer::Off,
            };
            let mut slow = Slow::new(timer, deadline);
            slow.started = started;
            Some(Box::pin(slow))
        } else {
            None
        };
        ResponseFuture {
            first: Attempt::Running { fut: first },
            local: Some(local),
            backup,
            attempted,
            slow,
        }
    }
}

impl<S, Req, Pol> Future for ResponseFuture<S, Req, Pol>
where
    S: Reroute<Req> + Clone,
    S::Error: Into<BoxError>,
    Pol: Policy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut kept = None;
        if this.slow.is_none() {
            // The first attempt alone, with no timer: the success path.
            let result = match this.first.as_mut().project() {
                AttemptProj::Running { fut } => ready!(fut.poll(cx)).map_err(Into::into),
                AttemptProj::Idle => panic!("retry ResponseFuture polled after completion"),
            };
            this.first.set(Attempt::Idle);
            let Some(local) = this.local.as_ref() else {
                panic!("retry ResponseFuture polled after completion");
            };
            if this.backup.is_none()
                || is_no_endpoints(&result)
                || !local.shared.policy.retryable(result.as_ref())
            {
                // Released here, right after the attempt's guard finished its own atomic
                // add: a locked instruction drains the store buffer, and there it finds it
                // nearly empty.
                *this.local = None;
                return Poll::Ready(result);
            }
            kept = Some(result);
        }
        let Some(local) = this.local.as_ref() else {
            panic!("retry ResponseFuture polled after completion");
        };
        let slow = this
            .slow
            .get_or_insert_with(|| Box::pin(Slow::new(Timer::Off, Timer::Off)));
        let mut slow = slow.as_mut().project();
        if kept.is_some() {
            *slow.last = kept;
        }
        let mut attempts = Attempts {
            local,
            backup: this.backup,
            attempted: this.attempted,
        };
        let started = *slow.started;
        attempts.poll_slow(this.first, started, &mut slow, cx)
    }
}

/// The fields of a [`ResponseFuture`] the retry path works with.
struct Attempts<'a, S, Req, Pol> {
    local: &'a Arc<Local<S, Pol>>,
    backup: &'a mut Option<Req>,
    attempted: &'a mut Attempted,
}

impl<S, Req, Pol> Attempts<'_, S, Req, Pol>
where
    S: Reroute<Req> + Clone,
    S::Error: Into<BoxError>,
    Pol: Policy<Req, S::Response>,
{
    fn poll_slow(
        &mut self,
        mut first: Pin<&mut Attempt<S::Future>>,
        first_started: Option<Instant>,
        slow: &mut SlowProj<'_, S, Req>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, BoxError>> {
        let timeout = self.local.shared.config.per_try_timeout;
        loop {
            let mut progressed = false;

            let ended = match first.as_mut().project() {
                AttemptProj::Running { mut fut } => match fut.as_mut().poll(cx) {
                    Poll::Ready(result) => Some((result.map_err(Into::into), false)),
                    Poll::Pending if slow.deadline.as_mut().poll_fired(cx).is_some() => {
                        S::abandon(fut);
                        Some((Err(timed_out(timeout)), true))
                    }
                    Poll::Pending => None,
                },
                AttemptProj::Idle => None,
            };
            if let Some((result, timed_out)) = ended {
                first.set(Attempt::Idle);
                slow.deadline.set(Timer::Off);
                progressed = true;
                let ended = Ended {
                    result,
                    timed_out,
                    started: first_started,
                };
                if let Some(done) = self.ended(ended, &mut first, first_started, slow) {
                    return Poll::Ready(done);
                }
            }

            let mut i = 0;
            while i < slow.extra.len() {
                match slow.extra[i]
                    .as_mut()
                    .poll_lane(cx, self.attempted, timeout)
                {
                    Poll::Ready(ended) => {
                        slow.extra.swap_remove(i);
                        progressed = true;
                        if let Some(done) = self.ended(ended, &mut first, first_started, slow) {
                            return Poll::Ready(done);
                        }
                    }
                    Poll::Pending => i += 1,
                }
            }

            match slow.timer.as_mut().poll_fired(cx) {
                Some(Wake::Hedge) => {
                    progressed = true;
                    self.hedge(slow);
                }
                Some(Wake::Backoff) => {
                    progressed = true;
                    if let Some(req) = slow.next.take() {
                        #[cfg(feature = "metrics")]
                        self.local.shared.metrics.retried();
                        self.send(slow, req);
                    }
                }
                Some(Wake::Deadline) | None => {}
            }

            let in_flight = matches!(*first, Attempt::Running { .. }) || !slow.extra.is_empty();
            if !in_flight && !slow.timer.is_backoff() {
                if let Some(done) = self.retry(slow) {
                    return Poll::Ready(done);
                }
                progressed = true;
            }

            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Handles an attempt that ended: returns the request's result if it is final.
    fn ended(
        &mut self,
        ended: Ended<S::Response>,
        first: &mut Pin<&mut Attempt<S::Future>>,
        first_started: Option<Instant>,
        slow: &mut SlowProj<'_, S, Req>,
    ) -> Option<Result<S::Response, BoxError>> {
        let Ended {
            result,
            timed_out,
            started,
        } = ended;
        let no_endpoints = is_no_endpoints(&result);
        let retryable =
            timed_out || no_endpoints || self.local.shared.policy.retryable(result.as_ref());
        if retryable {
            if timed_out {
                tracing::debug!(
                    attempt = *slow.attempts,
                    "retry: attempt timed out, cancelled"
                );
            }
            if no_endpoints {
                *slow.stop = true;
            }
            *slow.last = Some(result);
            return None;
        }
        // Final: record latencies (a percentile hedge needs them), then cancel the rest.
        if let Some(latencies) = self.local.shared.hedge.as_ref().and_then(|h| h.latencies()) {
            let now = Instant::now();
            if result.is_ok()
                && let Some(started) = started
            {
                latencies.record(now.saturating_duration_since(started), now);
            }
            // Attempts cancelled by this one ran at least this long.
            let first_running = matches!(**first, Attempt::Running { .. });
            let losers = slow
                .extra
                .iter()
                .filter(|lane| lane.pending.is_none())
                .filter_map(|lane| lane.started)
                .chain(first_started.filter(|_| first_running));
            for started in losers {
                latencies.record(now.saturating_duration_since(started), now);
            }
        }
        first.set(Attempt::Idle);
        slow.extra.clear();
        slow.timer.set(Timer::Off);
        slow.deadline.set(Timer::Off);
        *slow.last = None;
        Some(result)
    }

    /// Every attempt has ended retryably: returns the last result unless a retry is allowed,
    /// in which case it is sent (after its backoff).
    fn retry(&mut self, slow: &mut SlowProj<'_, S, Req>) -> Option<Result<S::Response, BoxError>> {
        slow.timer.set(Timer::Off);
        let Some(last) = slow.last.take() else {
            panic!("retry ResponseFuture polled after completion");
        };
        let shared = &self.local.shared;
        if *slow.stop || *slow.attempts >= shared.config.max_attempts {
            return Some(last);
        }
        // Copied before the budget is asked: a request that can no longer be replayed (a body
        // read past its replay limit) must neither spend a retry nor reach another endpoint.
        let Some(req) = self.copy() else {
            if self.backup.take().is_some() {
                tracing::debug!(
                    attempts = *slow.attempts,
                    "retry: the request can no longer be replayed, returning the last result"
                );
            }
            return Some(last);
        };
        self.local.flush_soon.store(true, Relaxed);
        if !shared.budget.withdraw(Withdrawal::Retry) {
            tracing::warn!(
                attempts = *slow.attempts,
                "retry: budget exhausted, returning the last failure"
            );
            #[cfg(feature = "metrics")]
            shared.metrics.refused_by_budget();
            return Some(last);
        }
        *slow.attempts += 1;
        *slow.retries += 1;
        match &last {
            Err(error) => tracing::debug!(attempt = *slow.attempts, %error, "retry: retrying"),
            Ok(_) => tracing::debug!(
                attempt = *slow.attempts,
                "retry: retrying after a retryable response"
            ),
        }
        let delay = shared
            .config
            .backoff
            .delay(*slow.retries, &self.local.jitter);
        if delay.is_zero() {
            #[cfg(feature = "metrics")]
            shared.metrics.retried();
            self.send(slow, req);
        } else {
            *slow.next = Some(req);
            slow.timer.set(Timer::after(delay, Wake::Backoff));
        }
        None
    }

    /// The hedge delay passed with the request unanswered: sends a hedge if allowed.
    fn hedge(&mut self, slow: &mut SlowProj<'_, S, Req>) {
        let shared = &self.local.shared;
        let (Some(hedge), Some(state)) = (shared.config.hedge, shared.hedge.as_ref()) else {
            return;
        };
        let allowed = *slow.hedges < hedge.hedges()
            && *slow.retries == 0
            && *slow.attempts < shared.config.max_attempts
            && self
                .backup
                .as_ref()
                .is_some_and(|req| shared.policy.hedgeable(req));
        if !allowed {
            return;
        }
        let Some(req) = self.copy() else {
            *self.backup = None;
            return;
        };
        self.local.flush_soon.store(true, Relaxed);
        if !shared.budget.withdraw(Withdrawal::Hedge) {
            tracing::warn!(
                attempts = *slow.attempts,
                "retry: budget exhausted, not hedging"
            );
            #[cfg(feature = "metrics")]
            shared.metrics.refused_by_budget();
            return;
        }
        #[cfg(feature = "metrics")]
        shared.metrics.hedged();
        *slow.attempts += 1;
        *slow.hedges += 1;
        let delay = state.delay();
        tracing::debug!(
            attempt = *slow.attempts,
            ?delay,
            "retry: hedging, no response yet"
        );
        self.send(slow, req);
        if *slow.hedges < hedge.hedges() {
            slow.timer.set(Timer::after(delay, Wake::Hedge));
        }
    }

    /// A fresh copy of the request for one more attempt, replayed from the template; `None`
    /// when there is none or the request can no longer be replayed.
    fn copy(&self) -> Option<Req> {
        let template = self.backup.as_ref()?;
        self.local.shared.policy.replay(template)
    }

    /// Sends `req` as a new attempt on a clone of the inner service; drops the template once
    /// no further attempt may follow.
    fn send(&mut self, slow: &mut SlowProj<'_, S, Req>, req: Req) {
        let shared = &self.local.shared;
        if *slow.attempts >= shared.config.max_attempts {
            *self.backup = None;
        }
        let started = shared
            .hedge
            .as_ref()
            .and_then(|h| h.latencies())
            .map(|_| Instant::now());
        let deadline = match shared.config.per_try_timeout {
            Some(t) => Timer::after(t, Wake::Deadline),
            None => Timer::Off,
        };
        let spare = self.local.spare.clone();
        slow.extra
            .push(Box::pin(Lane::new(spare, req, deadline, started)));
    }
}

impl<S: Service<Req>, Req> Slow<S, Req> {
    fn new(timer: Timer, deadline: Timer) -> Self {
        Slow {
            timer,
            deadline,
            extra: Vec::new(),
            last: None,
            next: None,
            started: None,
            attempts: 1,
            stop: false,
            hedges: 0,
            retries: 0,
        }
    }
}

impl<S: Service<Req>, Req, Pol> fmt::Debug for ResponseFuture<S, Req, Pol> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.slow.as_ref().map_or(1, |slow| slow.attempts);
        f.debug_struct("ResponseFuture")
            .field("attempts", &attempts)
            .finish_non_exhaustive()
    }
}
