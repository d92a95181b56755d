use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::budget::Withdrawal;
use super::*;
use crate::balance::{Attempted, Balance, Reroute, RoundRobin};
use crate::discover::Static;
use crate::endpoint::Endpoint;
use crate::error::{BoxError, NoEndpoints};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What an endpoint does with a request.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Answers its port at once.
    Answer,
    /// Answers its port after a delay.
    AnswerAfter(Duration),
    /// Fails at once.
    Fail,
    /// Fails after a delay.
    FailAfter(Duration),
    /// Never answers.
    Stall,
}

/// The error a failing endpoint returns, naming it.
#[derive(Debug, thiserror::Error)]
#[error("endpoint {0} failed")]
struct Failed(u16);

/// The test endpoints' shared script and log.
#[derive(Debug, Default)]
struct Plan {
    acts: Mutex<HashMap<u16, Act>>,
    calls: Mutex<Vec<(u16, Instant)>>,
    /// Client futures alive now.
    live: AtomicUsize,
}

impl Plan {
    fn new(acts: &[(u16, Act)]) -> Arc<Plan> {
        let plan = Plan::default();
        plan.acts.lock().unwrap().extend(acts.iter().copied());
        Arc::new(plan)
    }

    fn set(&self, port: u16, act: Act) {
        self.acts.lock().unwrap().insert(port, act);
    }

    fn ports(&self) -> Vec<u16> {
        self.calls.lock().unwrap().iter().map(|c| c.0).collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|c| c.1).collect()
    }

    fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }

    async fn serve(self: Arc<Self>, port: u16) -> Result<u16, BoxError> {
        self.calls.lock().unwrap().push((port, Instant::now()));
        let act = self
            .acts
            .lock()
            .unwrap()
            .get(&port)
            .copied()
            .unwrap_or(Act::Answer);
        self.live.fetch_add(1, SeqCst);
        let _live = Live(self.clone());
        match act {
            Act::Answer => Ok(port),
            Act::AnswerAfter(d) => {
                tokio::time::sleep(d).await;
                Ok(port)
            }
            Act::Fail => Err(Failed(port).into()),
            Act::FailAfter(d) => {
                tokio::time::sleep(d).await;
                Err(Failed(port).into())
            }
            Act::Stall => std::future::pending().await,
        }
    }
}

/// Counts a client future alive until dropped.
struct Live(Arc<Plan>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

/// A real round-robin `Balance` over static endpoints `1..=n`, whose clients follow `plan`.
async fn balancer(
    n: u16,
    plan: &Arc<Plan>,
) -> Balance<
    RoundRobin,
    impl Service<u32, Response = u16, Error = BoxError, Future = impl Future + Send>
    + Clone
    + Send
    + Sync
    + 'static,
> {
    let plan = plan.clone();
    let make = service_fn(move |ep: Endpoint| {
        let plan = plan.clone();
        let port = ep.addr().port();
        std::future::ready(Ok::<_, std::convert::Infallible>(service_fn(
            move |_req: u32| plan.clone().serve(port),
        )))
    });
    let endpoints = Static::new((1..=n).map(|p| Endpoint::new(addr(p))));
    let balance = Balance::builder(RoundRobin::with_seed(0))
        .build(endpoints, make)
        .unwrap();
    for _ in 0..1000 {
        if balance.ready_len() == usize::from(n) {
            return balance;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("balancer never became ready");
}

/// A layer with immediate retries, so attempt times are exact.
fn layer() -> RetryLayer<AssumeIdempotent> {
    RetryLayer::new(AssumeIdempotent::new())
        .backoff(Duration::ZERO, Duration::ZERO)
        .unwrap()
        .seed(1)
}

fn in_flight<P: crate::balance::Pick, S>(balance: &Balance<P, S>) -> Vec<u64> {
    balance.endpoints().iter().map(|e| e.in_flight()).collect()
}

fn failed_port(e: &BoxError) -> u16 {
    e.downcast_ref::<Failed>()
        .map(|f| f.0)
        .unwrap_or_else(|| panic!("not a Failed: {e}"))
}

fn distinct(ports: &[u16]) -> bool {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len() == ports.len()
}

#[tokio::test(start_paused = true)]
async fn each_retry_goes_to_an_endpoint_not_tried_yet() {
    let plan = Plan::new(&[(1, Act::Fail), (2, Act::Fail)]);
    let balance = balancer(3, &plan).await;
    let mut retry = layer().layer(balance);
    for round in 0..6 {
        plan.clear();
        let port = retry.ready().await.unwrap().call(round).await.unwrap();
        assert_eq!(port, 3, "only endpoint 3 answers");
        let ports = plan.ports();
        assert!(
            distinct(&ports),
            "round {round}: an endpoint tried twice: {ports:?}"
        );
        assert_eq!(*ports.last().unwrap(), 3);
    }
    assert!(retry.budget().stats().retries > 0);
}

#[tokio::test(start_paused = true)]
async fn all_failing_returns_the_last_error_unchanged_after_max_attempts() {
    let plan = Plan::new(&[
        (1, Act::Fail),
        (2, Act::Fail),
        (3, Act::Fail),
        (4, Act::Fail),
    ]);
    let balance = balancer(4, &plan).await;
    let mut retry = layer().layer(balance.clone());
    let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
    let ports = plan.ports();
    assert_eq!(ports.len(), 3, "3 attempts by default: {ports:?}");
    assert!(distinct(&ports));
    assert_eq!(failed_port(&err), ports[2], "the last attempt's own error");

    plan.clear();
    let mut two = layer().max_attempts(2).unwrap().layer(balance.clone());
    two.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(plan.ports().len(), 2);

    plan.clear();
    let mut one = layer().max_attempts(1).unwrap().layer(balance);
    one.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(plan.ports().len(), 1);
    assert_eq!(one.budget().stats().retries, 0);
}

/// Replays only when allowed, retries only errors it is told to, and counts replays.
#[derive(Debug, Default)]
struct Picky {
    replayable: bool,
    retryable: bool,
    replays: AtomicUsize,
}

impl Policy<u32, u16> for Arc<Picky> {
    fn replay(&self, req: &u32) -> Option<u32> {
        self.replays.fetch_add(1, SeqCst);
        self.replayable.then_some(*req)
    }

    fn retryable(&self, result: Result<&u16, &BoxError>) -> bool {
        self.retryable && result.is_err()
    }
}

#[tokio::test(start_paused = true)]
async fn not_replayable_or_not_retryable_results_are_returned_unchanged() {
    let plan = Plan::new(&[(1, Act::Fail), (2, Act::Fail)]);
    let balance = balancer(2, &plan).await;
    for (replayable, retryable) in [(false, true), (true, false)] {
        plan.clear();
        let policy = Arc::new(Picky {
            replayable,
            retryable,
            ..Picky::default()
        });
        let mut retry = RetryLayer::new(policy.clone()).layer(balance.clone());
        let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
        assert_eq!(plan.ports().len(), 1, "{replayable} {retryable}: no retry");
        assert_eq!(failed_port(&err), plan.ports()[0]);
        assert_eq!(
            policy.replays.load(SeqCst),
            1,
            "one replay, before the first attempt"
        );
        assert_eq!(retry.budget().stats().retries, 0);
    }
    // One attempt allowed: not even the replay is paid.
    let policy = Arc::new(Picky::default());
    let mut retry = RetryLayer::new(policy.clone())
        .max_attempts(1)
        .unwrap()
        .layer(balance);
    retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(policy.replays.load(SeqCst), 0);
}

/// A `Reroute` service that fails with `NoEndpoints` and counts its calls and clones.
#[derive(Debug)]
struct Empty {
    calls: Arc<AtomicUsize>,
    clones: Arc<AtomicUsize>,
}

impl Clone for Empty {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, SeqCst);
        Empty {
            calls: self.calls.clone(),
            clones: self.clones.clone(),
        }
    }
}

impl Service<u32> for Empty {
    type Response = u16;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u16, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.calls.fetch_add(1, SeqCst);
        std::future::ready(Err(NoEndpoints::new(Duration::ZERO).into()))
    }
}

impl Reroute<u32> for Empty {
    fn call_avoiding(&mut self, req: u32, _: &mut Attempted) -> Self::Future {
        self.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn no_endpoints_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let clones = Arc::new(AtomicUsize::new(0));
    let empty = Empty {
        calls: calls.clone(),
        clones: clones.clone(),
    };
    let mut retry = layer().layer(empty);
    let cloned = clones.load(SeqCst);
    let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert!(err.downcast_ref::<NoEndpoints>().is_some(), "{err}");
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(
        clones.load(SeqCst),
        cloned,
        "no retry, so no clone of the inner service"
    );
}

/// A balancer wrapper counting its clones.
#[derive(Debug)]
struct CountClones<S>(S, Arc<AtomicUsize>);

impl<S: Clone> Clone for CountClones<S> {
    fn clone(&self) -> Self {
        self.1.fetch_add(1, SeqCst);
        CountClones(self.0.clone(), self.1.clone())
    }
}

impl<S: Service<u32>> Service<u32> for CountClones<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.0.call(req)
    }
}

impl<S: Reroute<u32>> Reroute<u32> for CountClones<S> {
    fn call_avoiding(&mut self, req: u32, attempted: &mut Attempted) -> Self::Future {
        self.0.call_avoiding(req, attempted)
    }
}

#[tokio::test(start_paused = true)]
async fn the_inner_service_is_cloned_only_for_a_retry() {
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let clones = Arc::new(AtomicUsize::new(0));
    let mut retry = layer().layer(CountClones(balance, clones.clone()));
    let base = clones.load(SeqCst);
    for i in 0..50 {
        retry.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(
        clones.load(SeqCst),
        base,
        "success path must not clone the balancer"
    );
    plan.set(1, Act::Fail);
    plan.set(2, Act::Fail);
    retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(clones.load(SeqCst), base + 2, "one clone per retry");
}

#[tokio::test(start_paused = true)]
async fn budget_floor_is_min_per_sec_times_ttl() {
    let budget = Budget::new(Duration::from_secs(2), 3, 0.0).unwrap();
    for i in 0..6 {
        assert!(
            budget.withdraw(Withdrawal::Retry),
            "retry {i} within the floor of 6"
        );
    }
    assert!(!budget.withdraw(Withdrawal::Retry));
    assert!(!budget.withdraw(Withdrawal::Hedge));
    let stats = budget.stats();
    assert_eq!((stats.retries, stats.hedges, stats.refused), (6, 0, 2));
    // Requests earn nothing at ratio 0.
    budget.deposit(1000, Instant::now());
    assert!(!budget.withdraw(Withdrawal::Retry));
}

#[tokio::test(start_paused = true)]
async fn budget_ratio_earns_retries_per_request_rounded_down() {
    let budget = Budget::new(Duration::from_secs(10), 0, 0.2).unwrap();
    assert!(!budget.withdraw(Withdrawal::Retry), "nothing earned yet");
    budget.deposit(14, Instant::now());
    // floor(0.2 × 14) = 2.
    assert!(budget.withdraw(Withdrawal::Retry));
    assert!(budget.withdraw(Withdrawal::Hedge));
    assert!(!budget.withdraw(Withdrawal::Retry));
    budget.deposit(1, Instant::now());
    assert!(budget.withdraw(Withdrawal::Retry), "floor(0.2 × 15) = 3");
    let stats = budget.stats();
    assert_eq!(stats.requests, 15);
    assert_eq!((stats.retries, stats.hedges, stats.refused), (2, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn budget_window_expires_requests_and_retries() {
    let budget = Budget::new(Duration::from_secs(1), 2, 1.0).unwrap();
    budget.deposit(3, Instant::now());
    for _ in 0..5 {
        assert!(budget.withdraw(Withdrawal::Retry));
    }
    assert!(!budget.withdraw(Withdrawal::Retry));
    // Still within the window (0.9 s to 1 s).
    tokio::time::advance(Duration::from_millis(850)).await;
    assert!(!budget.withdraw(Withdrawal::Retry));
    // Past it: requests and retries both expired, the floor of 2 is back.
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(budget.withdraw(Withdrawal::Retry));
    assert!(budget.withdraw(Withdrawal::Retry));
    assert!(!budget.withdraw(Withdrawal::Retry));
    // A deposit dated before the window counts for nothing.
    budget.deposit(10, Instant::now() - Duration::from_secs(2));
    assert!(!budget.withdraw(Withdrawal::Retry));
    budget.deposit(1, Instant::now());
    assert!(budget.withdraw(Withdrawal::Retry));
}

#[tokio::test(start_paused = true)]
async fn retry_deposits_in_batches_of_32_and_on_drop() {
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer().layer(balance);
    for i in 0..31 {
        retry.ready().await.unwrap().call(i).await.unwrap();
    }
    let budget = retry.budget().clone();
    assert_eq!(budget.stats().requests, 0);
    retry.ready().await.unwrap().call(31).await.unwrap();
    assert_eq!(budget.stats().requests, 32);
    let mut clone = retry.clone();
    for i in 0..3 {
        retry.ready().await.unwrap().call(i).await.unwrap();
        clone.ready().await.unwrap().call(i).await.unwrap();
    }
    drop(retry);
    assert_eq!(budget.stats().requests, 35);
    let _ = clone.into_inner();
    assert_eq!(budget.stats().requests, 38);
}

#[tokio::test(start_paused = true)]
async fn a_withdrawal_makes_the_clone_deposit_at_its_next_request() {
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer().layer(balance);
    for i in 0..5 {
        retry.ready().await.unwrap().call(i).await.unwrap();
    }
    plan.set(1, Act::Fail);
    plan.set(2, Act::Fail);
    retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(
        retry.budget().stats().requests,
        0,
        "a batch of 6 is not full"
    );
    retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(
        retry.budget().stats().requests,
        7,
        "deposited after the retry"
    );
}

#[tokio::test(start_paused = true)]
async fn refused_retry_returns_the_failure_and_counts_it() {
    let plan = Plan::new(&[(1, Act::Fail), (2, Act::Fail), (3, Act::Fail)]);
    let balance = balancer(3, &plan).await;
    let budget = Arc::new(Budget::new(Duration::from_secs(1), 1, 0.0).unwrap());
    let mut retry = layer().budget(budget.clone()).layer(balance);
    let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
    let ports = plan.ports();
    assert_eq!(
        ports.len(),
        2,
        "one retry allowed, the second refused: {ports:?}"
    );
    assert_eq!(failed_port(&err), ports[1]);
    plan.clear();
    retry.ready().await.unwrap().call(0).await.unwrap_err();
    assert_eq!(plan.ports().len(), 1, "the budget is spent");
    let stats = budget.stats();
    assert_eq!((stats.retries, stats.refused), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_cancels_the_attempt_and_retries_elsewhere() {
    let plan = Plan::new(&[(1, Act::Stall), (2, Act::Stall)]);
    let balance = balancer(3, &plan).await;
    let mut retry = layer()
        .per_try_timeout(Duration::from_millis(100))
        .unwrap()
        .layer(balance);
    let start = Instant::now();
    let port = retry.ready().await.unwrap().call(0).await.unwrap();
    assert_eq!(port, 3);
    let ports = plan.ports();
    assert_eq!(ports[0], 1, "clone 0 of round robin starts at endpoint 1");
    assert!(distinct(&ports), "{ports:?}");
    let stalled = ports.len() as u32 - 1;
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(100) * stalled,
        "no backoff"
    );
    assert_eq!(
        plan.live.load(SeqCst),
        0,
        "timed-out attempts were cancelled"
    );
    assert_eq!(in_flight(retry.get_ref()), [0, 0, 0]);

    // Every endpoint stalls: the typed timeout, after max attempts.
    plan.set(3, Act::Stall);
    plan.clear();
    let start = Instant::now();
    let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
    let timed_out = err
        .downcast_ref::<AttemptTimedOut>()
        .expect("AttemptTimedOut");
    assert_eq!(timed_out.timeout(), Duration::from_millis(100));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert!(distinct(&plan.ports()));
    assert_eq!(in_flight(retry.get_ref()), [0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_are_jittered_within_envoy_bounds() {
    let plan = Plan::new(&[(1, Act::Fail), (2, Act::Fail), (3, Act::Fail)]);
    let balance = balancer(3, &plan).await;
    let budget = Arc::new(Budget::new(Duration::from_secs(60), 1000, 0.0).unwrap());
    let mut retry = RetryLayer::new(AssumeIdempotent::new())
        .budget(budget)
        .seed(7)
        .layer(balance);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..40 {
        plan.clear();
        retry.ready().await.unwrap().call(i).await.unwrap_err();
        let t = plan.times();
        assert_eq!(t.len(), 3);
        first.push(t[1] - t[0]);
        second.push(t[2] - t[1]);
    }
    let ms = Duration::from_millis;
    assert!(
        first.iter().all(|d| *d <= ms(25)),
        "first retry waits at most 25 ms: {first:?}"
    );
    assert!(
        second.iter().all(|d| *d <= ms(75)),
        "second at most 75 ms: {second:?}"
    );
    assert!(
        second.iter().any(|d| *d > ms(25)),
        "the cap grows: {second:?}"
    );
    assert!(
        first.iter().any(|d| *d < ms(5)) && first.iter().any(|d| *d > ms(20)),
        "jittered"
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_after_a_fixed_delay_wins_and_cancels_the_stalled_attempt() {
    let plan = Plan::new(&[
        (1, Act::Stall),
        (2, Act::AnswerAfter(Duration::from_millis(10))),
    ]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer()
        .hedge(Hedge::after(Duration::from_millis(50)))
        .layer(balance);
    let start = Instant::now();
    let fut = retry.ready().await.unwrap().call(0);
    let task = tokio::spawn(fut);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(plan.ports(), [1]);
    assert_eq!(in_flight(retry.get_ref()), [1, 0]);
    tokio::time::sleep(Duration::from_millis(25)).await;
    assert_eq!(plan.ports(), [1, 2], "hedged after 50 ms");
    assert_eq!(in_flight(retry.get_ref()), [1, 1]);
    assert_eq!(task.await.unwrap().unwrap(), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(60));
    assert_eq!(
        in_flight(retry.get_ref()),
        [0, 0],
        "the stalled attempt was cancelled"
    );
    assert_eq!(plan.live.load(SeqCst), 0);
    let stats = retry.budget().stats();
    assert_eq!((stats.hedges, stats.retries), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_first_attempt_answers_in_time() {
    let plan = Plan::new(&[(1, Act::AnswerAfter(Duration::from_millis(40)))]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer()
        .hedge(Hedge::after(Duration::from_millis(50)))
        .layer(balance);
    assert_eq!(retry.ready().await.unwrap().call(0).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(plan.ports(), [1]);
    assert_eq!(retry.budget().stats().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_waits_for_the_hedge_before_retrying() {
    let ms = Duration::from_millis;
    let plan = Plan::new(&[(1, Act::FailAfter(ms(60))), (2, Act::AnswerAfter(ms(100)))]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer().hedge(Hedge::after(ms(50))).layer(balance);
    let start = Instant::now();
    assert_eq!(retry.ready().await.unwrap().call(0).await.unwrap(), 2);
    assert_eq!(start.elapsed(), ms(150));
    assert_eq!(
        plan.ports(),
        [1, 2],
        "no retry while the hedge was in flight"
    );
    let stats = retry.budget().stats();
    assert_eq!((stats.hedges, stats.retries), (1, 0));

    // Both fail: the retry (the third attempt) starts only once the hedge has failed too.
    let plan = Plan::new(&[
        (1, Act::FailAfter(ms(60))),
        (2, Act::FailAfter(ms(100))),
        (3, Act::FailAfter(ms(100))),
    ]);
    let balance = balancer(3, &plan).await;
    let mut retry = layer().hedge(Hedge::after(ms(50))).layer(balance);
    let start = Instant::now();
    let err = retry.ready().await.unwrap().call(0).await.unwrap_err();
    let ports = plan.ports();
    assert!(distinct(&ports) && ports.len() == 3, "{ports:?}");
    assert_eq!(failed_port(&err), ports[2], "the retry's own error");
    let times: Vec<_> = plan.times().iter().map(|t| *t - start).collect();
    assert_eq!(times, [ms(0), ms(50), ms(150)]);
    assert_eq!(start.elapsed(), ms(250));
    let stats = retry.budget().stats();
    assert_eq!((stats.hedges, stats.retries), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn hedges_are_drawn_from_the_budget() {
    let ms = Duration::from_millis;
    let plan = Plan::new(&[
        (1, Act::AnswerAfter(ms(100))),
        (2, Act::AnswerAfter(ms(100))),
    ]);
    let balance = balancer(2, &plan).await;
    let budget = Arc::new(Budget::new(Duration::from_secs(1), 1, 0.0).unwrap());
    let mut retry = layer()
        .budget(budget.clone())
        .hedge(Hedge::after(ms(20)))
        .layer(balance);
    for i in 0..3 {
        let start = Instant::now();
        retry.ready().await.unwrap().call(i).await.unwrap();
        assert_eq!(start.elapsed(), ms(100));
    }
    let stats = budget.stats();
    assert_eq!(
        (stats.hedges, stats.refused),
        (1, 2),
        "one hedge per second allowed"
    );
    assert_eq!(plan.ports().len(), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    retry.ready().await.unwrap().call(0).await.unwrap();
    assert_eq!(budget.stats().hedges, 2, "the window moved on");
}

#[tokio::test(start_paused = true)]
async fn percentile_hedge_delay_tracks_recent_latencies() {
    let ms = Duration::from_millis;
    let plan = Plan::new(&[
        (1, Act::AnswerAfter(ms(10))),
        (2, Act::AnswerAfter(ms(10))),
        (3, Act::AnswerAfter(ms(10))),
    ]);
    let balance = balancer(3, &plan).await;
    let hedge = Hedge::percentile(90.0, ms(1), Duration::from_secs(1)).unwrap();
    let mut retry = layer().hedge(hedge).layer(balance);
    // Until enough latencies are known, the delay is the maximum: a 500 ms answer is not
    // hedged.
    plan.set(1, Act::AnswerAfter(ms(500)));
    let start = Instant::now();
    assert_eq!(retry.ready().await.unwrap().call(0).await.unwrap(), 1);
    assert_eq!(start.elapsed(), ms(500));
    plan.set(1, Act::AnswerAfter(ms(10)));
    for i in 0..40 {
        retry.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(retry.budget().stats().hedges, 0);
    // Now the p90 is about 10 ms: a stalled endpoint is hedged after about that.
    plan.set(3, Act::Stall);
    plan.clear();
    let start = Instant::now();
    // Clone 0's round robin is at index 2 (endpoint 3) after 41 requests over 3 endpoints.
    let port = retry.ready().await.unwrap().call(0).await.unwrap();
    assert_ne!(port, 3);
    let took = start.elapsed();
    assert_eq!(plan.ports()[0], 3);
    assert!(
        took >= ms(20) && took <= ms(22),
        "hedged after ~10 ms: took {took:?}"
    );
    assert_eq!(retry.budget().stats().hedges, 1);
}

#[test]
fn bad_configuration_is_refused_naming_the_value() {
    let s = Duration::from_secs;
    for ttl in [Duration::ZERO, Duration::from_millis(999), s(61)] {
        let err = Budget::new(ttl, 10, 0.2).unwrap_err();
        assert_eq!(err, RetryConfigError::InvalidTtl(ttl));
        assert!(err.to_string().contains(&format!("{ttl:?}")), "{err}");
    }
    for ratio in [-0.1, 1000.5, f64::NAN, f64::INFINITY] {
        let err = Budget::new(s(10), 10, ratio).unwrap_err();
        assert!(
            matches!(err, RetryConfigError::InvalidRetryRatio(_)),
            "{err}"
        );
        assert!(err.to_string().contains(&ratio.to_string()), "{err}");
    }
    assert!(Budget::new(s(1), 0, 0.0).is_ok());
    assert!(Budget::new(s(60), u32::MAX, 1000.0).is_ok());

    let layer = || RetryLayer::new(AssumeIdempotent::new());
    for n in [0, 11] {
        let err = layer().max_attempts(n).unwrap_err();
        assert_eq!(err, RetryConfigError::InvalidMaxAttempts(n));
        assert!(err.to_string().contains(&n.to_string()));
    }
    assert!(layer().max_attempts(10).is_ok());
    assert_eq!(
        layer().per_try_timeout(Duration::ZERO).unwrap_err(),
        RetryConfigError::ZeroPerTryTimeout(Duration::ZERO)
    );
    assert!(layer().backoff(s(2), s(1)).is_err());
    for p in [0.0, 100.0, -5.0, f64::NAN] {
        let err = Hedge::percentile(p, s(0), s(1)).unwrap_err();
        assert!(matches!(err, RetryConfigError::InvalidPercentile(_)));
        assert!(err.to_string().contains(&p.to_string()), "{err}");
    }
    assert_eq!(
        Hedge::percentile(95.0, s(2), s(1)).unwrap_err(),
        RetryConfigError::InvalidHedgeDelay {
            min: s(2),
            max: s(1)
        }
    );
    for n in [0, 10] {
        let err = Hedge::after(s(1)).max_hedges(n).unwrap_err();
        assert_eq!(err, RetryConfigError::InvalidMaxHedges(n));
    }
    assert!(Hedge::after(s(1)).max_hedges(9).is_ok());
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    type B = Balance<RoundRobin, tower::util::BoxCloneSyncService<u32, u16, BoxError>>;
    send_sync::<Budget>();
    send_sync::<BudgetStats>();
    send_sync::<RetryLayer<AssumeIdempotent>>();
    send_sync::<Retry<B, AssumeIdempotent>>();
    // Futures are `Send` (the balancer's client futures are not `Sync`).
    fn send<T: Send>() {}
    send::<ResponseFuture<B, u32, AssumeIdempotent>>();
    send_sync::<Hedge>();
    send_sync::<RetryConfigError>();
    send_sync::<AttemptTimedOut>();
}

#[tokio::test(start_paused = true)]
async fn requests_through_late_clones_earn_retries() {
    // The usual tower pattern: a clone of the service per request, made long after the
    // original. Each clone's request must count in the window it was made in.
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let budget = Arc::new(Budget::new(Duration::from_secs(10), 0, 1.0).unwrap());
    let retry = layer().budget(budget.clone()).layer(balance);
    tokio::time::advance(Duration::from_secs(30)).await;
    for i in 0..4 {
        retry.clone().oneshot(i).await.unwrap();
    }
    assert_eq!(budget.stats().requests, 4);
    for i in 0..4 {
        assert!(
            budget.withdraw(Withdrawal::Retry),
            "retry {i}: four recent requests at ratio 1 earn four retries"
        );
    }
    assert!(!budget.withdraw(Withdrawal::Retry));
}

#[tokio::test(start_paused = true)]
async fn a_clone_idle_for_long_deposits_its_next_batch_in_the_window() {
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let budget = Arc::new(Budget::new(Duration::from_secs(10), 0, 1.0).unwrap());
    let mut retry = layer().budget(budget.clone()).layer(balance);
    tokio::time::advance(Duration::from_secs(60)).await;
    for i in 0..32 {
        retry.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(budget.stats().requests, 32);
    assert!(
        budget.withdraw(Withdrawal::Retry),
        "a burst after an idle minute earns retries"
    );
}

#[tokio::test(start_paused = true)]
async fn huge_timeouts_and_hedge_delays_do_not_panic() {
    let plan = Plan::new(&[]);
    let balance = balancer(2, &plan).await;
    let mut retry = layer()
        .per_try_timeout(Duration::MAX)
        .unwrap()
        .hedge(Hedge::after(Duration::MAX))
        .layer(balance.clone());
    retry.ready().await.unwrap().call(0).await.unwrap();
    let hedge = Hedge::percentile(50.0, Duration::ZERO, Duration::MAX).unwrap();
    let mut retry = layer().hedge(hedge).layer(balance);
    retry.ready().await.unwrap().call(0).await.unwrap();
    assert_eq!(plan.ports().len(), 2, "no hedge, no retry");
}

#[cfg(feature = "http")]
mod replay {
    use std::pin::Pin;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    use super::*;

    type Body = ReplayBody<Full<Bytes>>;
    type Req = ::http::Request<Body>;
    type Res = ::http::Response<()>;

    /// Reads the whole request body, then answers 503; counts its calls.
    #[derive(Clone)]
    struct ReadsThen503(Arc<AtomicUsize>);

    impl Service<Req> for ReadsThen503 {
        type Response = Res;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Req) -> Self::Future {
            self.0.fetch_add(1, SeqCst);
            Box::pin(async move {
                req.into_body().collect().await?;
                Ok(::http::Response::builder().status(503).body(()).unwrap())
            })
        }
    }

    impl Reroute<Req> for ReadsThen503 {
        fn call_avoiding(&mut self, req: Req, _: &mut Attempted) -> Self::Future {
            self.call(req)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_read_past_its_limit_is_not_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut retry = RetryLayer::new(Http::new())
            .backoff(Duration::ZERO, Duration::ZERO)
            .unwrap()
            .layer(ReadsThen503(calls.clone()));
        let body = ReplayBody::new(Full::new(Bytes::from_static(b"0123456789")), 4);
        let req = ::http::Request::put("http://users.mesh/42")
            .body(body)
            .unwrap();
        let res = retry.ready().await.unwrap().call(req).await;
        let res = res.expect("the endpoint's own 503, not a replay error");
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(SeqCst), 1, "the body cannot be sent again");
        let stats = retry.budget().stats();
        assert_eq!((stats.retries, stats.refused), (0, 0), "no budget spent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_within_its_limit_is_retried_whole() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut retry = RetryLayer::new(Http::new())
            .backoff(Duration::ZERO, Duration::ZERO)
            .unwrap()
            .layer(ReadsThen503(calls.clone()));
        let body = ReplayBody::new(Full::new(Bytes::from_static(b"0123456789")), 64);
        let req = ::http::Request::put("http://users.mesh/42")
            .body(body)
            .unwrap();
        let res = retry.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(SeqCst), 3, "every attempt read the whole body");
        assert_eq!(retry.budget().stats().retries, 2);
    }
}

mod budget_props {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Wait(u64),
        Deposit(u64),
        Withdraw,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..1500).prop_map(Op::Wait),
            (1u64..40).prop_map(Op::Deposit),
            Just(Op::Withdraw),
            Just(Op::Withdraw),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// For any sequence of requests and retries over time, a retry is granted exactly when
        /// the retries already granted in the window are fewer than
        /// `floor(min_per_sec × ttl) + floor(ratio × requests in the window)`, where the window
        /// is the current tenth of `ttl` and the nine before it. So retries never exceed that
        /// bound, and the budget refuses nothing it should grant.
        #[test]
        fn retries_never_exceed_the_budget(
            ttl_s in 1u64..=5,
            min_per_sec in 0u32..5,
            ratio in prop_oneof![Just(0.0), Just(0.2), 0.0f64..3.0],
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async move {
                let ttl = Duration::from_secs(ttl_s);
                let budget = Budget::new(ttl, min_per_sec, ratio).unwrap();
                let start = Instant::now();
                let bucket = ttl.as_nanos() / 10;
                let epoch = |at: Instant| ((at - start).as_nanos() / bucket) as u64;
                let reserve = u64::from(min_per_sec) * ttl_s;
                let mut deposits: Vec<(u64, u64)> = Vec::new();
                let mut grants: Vec<u64> = Vec::new();
                for op in ops {
                    match op {
                        Op::Wait(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                        Op::Deposit(n) => {
                            budget.deposit(n, Instant::now());
                            deposits.push((epoch(Instant::now()), n));
                        }
                        Op::Withdraw => {
                            let e = epoch(Instant::now());
                            let live = |t: u64| t + 9 >= e;
                            let requests: u64 =
                                deposits.iter().filter(|d| live(d.0)).map(|d| d.1).sum();
                            let taken = grants.iter().filter(|&&g| live(g)).count() as u64;
                            let allowed = reserve + (ratio * requests as f64).floor() as u64;
                            let granted = budget.withdraw(Withdrawal::Retry);
                            prop_assert_eq!(granted, taken < allowed,
                                "taken {} allowed {} requests {}", taken, allowed, requests);
                            if granted {
                                grants.push(e);
                            }
                        }
                    }
                }
                let stats = budget.stats();
                prop_assert_eq!(stats.retries, grants.len() as u64);
                Ok(())
            })?;
        }
    }
}
