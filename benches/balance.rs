//! Balancer benchmarks, side by side with tower 0.5's `p2c::Balance` (with `PendingRequests`
//! and with `PeakEwma`) in one run.
//!
//! Groups:
//!
//! - `per_request`: one `poll_ready` + `call` + `.await` per iteration on a current-thread
//!   runtime, for N ∈ {10, 100, 1000, 10000} always-ready in-process endpoints, for each of our
//!   pickers and for tower's p2c (`tower_p2c`: `PendingRequests`, the baseline of our
//!   round-robin, random, weighted and least-request pickers; `tower_p2c_peak_ewma`: the
//!   baseline of our `peak_ewma`); plus `direct`, the same call on one endpoint client with no
//!   balancer (the floor), and `round_robin_arc_client`, ours with an `Arc`-backed client like
//!   real ones (each request clones the client).
//! - `shared`: 4 tasks on a 2-worker runtime sending requests through one balancer (a clone of
//!   ours per task, or tower's p2c behind one `Buffer`); wall time per request.
//! - `update`: one insert, or one remove, at N = 10,000, fed through a channel on both sides
//!   (ours: `discover::Watch`, timed until the new set is published, with every new client made;
//!   tower: the same `Watch` through `discover::ToTower`, timed until `poll_ready` has applied
//!   it), for our round-robin (no table to rebuild) and Maglev (whose table is rebuilt whole).
//! - `reset`: a whole new set of 10,000 endpoints at once.
//! - `under_churn`: per-request cost at N = 10,000, idle and while one change a millisecond
//!   streams in, on a 2-worker runtime.
//!
//! - `resilience`: the per-request cost of health and retries on the success path, beside the
//!   plain balancer (`balance`, round-robin) at N ∈ {10, 1000}: `health` adds outlier detection
//!   (consecutive failures and failure rate) and active checks; `health_retry` wraps that in
//!   `retry::Retry` with the default budget; `health_retry_timeout` adds a per-try timeout and
//!   `health_hedge` fixed-delay hedging, for what those options cost.
//!
//! - `locality`: `Locality` around round-robin and least-request against the bare pickers, at
//!   N ∈ {12, 1200} over three zones: local traffic only, and a spilling zone (every pick draws
//!   a zone); and `label::LabelRoute` over three label values, each request naming one.
//!
//! Run with `cargo bench --bench balance`; medians are in `target/criterion/*/*/new/estimates.json`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::load::{CompleteOnResponse, PeakEwma as TowerPeakEwma, PendingRequests};
use tower::{Layer, Service, ServiceExt};
use tower_mesh::balance::Locality;
use tower_mesh::balance::hash::Maglev;
use tower_mesh::balance::label::LabelRoute;
use tower_mesh::balance::{
    Balance, LeastRequest, PeakEwma, Pick, PickRequest, Random, RoundRobin, Weighted,
    WeightedRandom,
};
use tower_mesh::discover::{Static, ToTower, Watch};
use tower_mesh::endpoint::{Endpoint, Weight};
use tower_mesh::health::{FailureRate, HealthCheck, OutlierDetection};
use tower_mesh::retry::{AssumeIdempotent, Hedge, RetryLayer};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// An always-ready in-process endpoint client: answers with its request plus its id.
#[derive(Debug, Clone, Copy)]
struct Echo(u32);

impl Service<u32> for Echo {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: u32) -> Self::Future {
        ready(Ok(req.wrapping_add(self.0)))
    }
}

/// Like [`Echo`], but shaped like most real clients (hyper's, tonic's `Channel`): a handle to
/// shared state, so every clone is a reference-count increment and every drop a decrement.
#[derive(Debug, Clone)]
struct ArcEcho(Arc<u32>);

impl Service<u32> for ArcEcho {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: u32) -> Self::Future {
        ready(Ok(req.wrapping_add(*self.0)))
    }
}

fn addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("index fits u32");
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 8080))
}

/// `n` endpoints; with `weighted`, weights cycle through 1, 2, 3.
fn endpoints(n: usize, weighted: bool) -> Vec<Endpoint> {
    (0..n)
        .map(|i| {
            let ep = Endpoint::new(addr(i));
            if weighted {
                let w = u32::try_from(1 + i % 3).expect("small");
                ep.with_weight(Weight::new(w).expect("non-zero"))
            } else {
                ep
            }
        })
        .collect()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Ours, over `eps`, waited on until every endpoint is ready. Must run inside `rt`.
async fn ours<P: Pick>(picker: P, eps: Vec<Endpoint>) -> Balance<P, Echo> {
    ours_with(picker, eps, Echo(1)).await
}

/// Ours with a clone of `client` per endpoint.
async fn ours_with<P: Pick, C>(picker: P, eps: Vec<Endpoint>, client: C) -> Balance<P, C>
where
    C: Clone + Send + Sync + 'static,
{
    let n = eps.len();
    let make = tower::service_fn(move |_: Endpoint| {
        let client = client.clone();
        async move { Ok::<_, Infallible>(client) }
    });
    let balance = Balance::builder(picker)
        .build(Static::new(eps), make)
        .expect("valid config");
    wait_ready(&balance, n).await;
    balance
}

async fn wait_ready<P: Pick, S>(balance: &Balance<P, S>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while balance.ready_len() != n {
        assert!(Instant::now() < deadline, "balancer never became ready");
        tokio::task::yield_now().await;
    }
}

type TowerEndpoint = PendingRequests<Echo, CompleteOnResponse>;
type TowerP2c = tower::balance::p2c::Balance<tower::discover::ServiceList<Vec<TowerEndpoint>>, u32>;

/// tower's p2c over `n` endpoints, with every endpoint discovered and ready.
async fn tower_p2c(n: usize) -> TowerP2c {
    let services = (0..n)
        .map(|i| PendingRequests::new(Echo(i as u32), CompleteOnResponse::default()))
        .collect::<Vec<_>>();
    let mut balance =
        tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(services));
    balance.ready().await.expect("ready");
    assert_eq!(balance.len(), n);
    balance
}

type TowerEwmaEndpoint = TowerPeakEwma<Echo, CompleteOnResponse>;
type TowerP2cEwma =
    tower::balance::p2c::Balance<tower::discover::ServiceList<Vec<TowerEwmaEndpoint>>, u32>;

/// tower's p2c with Peak-EWMA over `n` endpoints, with linkerd's defaults (30 ms, 10 s), as
/// ours.
async fn tower_p2c_ewma(n: usize) -> TowerP2cEwma {
    let services = (0..n)
        .map(|i| {
            TowerPeakEwma::new(
                Echo(i as u32),
                Duration::from_millis(30),
                10e9,
                CompleteOnResponse::default(),
            )
        })
        .collect::<Vec<_>>();
    let mut balance =
        tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(services));
    balance.ready().await.expect("ready");
    assert_eq!(balance.len(), n);
    balance
}

/// One request: `poll_ready` + `call` + `.await`.
#[inline]
async fn one<S>(svc: &mut S, req: u32) -> S::Response
where
    S: Service<u32>,
    S::Error: std::fmt::Debug,
{
    let svc = svc.ready().await.expect("ready");
    svc.call(req).await.expect("response")
}

/// Times `iters` requests through `svc` on `rt`.
fn time_requests<S>(rt: &Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<u32>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            black_box(one(svc, black_box(i as u32)).await);
        }
        start.elapsed()
    })
}

/// Benches `svc` as `name` at size `n` (one request per iteration), then drops it, so only one
/// balancer of a size is alive at a time.
fn bench_service<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    n: usize,
    mut svc: S,
) where
    S: Service<u32>,
    S::Error: std::fmt::Debug,
{
    group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter_custom(|iters| time_requests(rt, &mut svc, iters));
    });
}

fn per_request(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("per_request");

    group.bench_function("direct", |b| {
        let mut svc = Echo(1);
        b.iter_custom(|iters| time_requests(&rt, &mut svc, iters));
    });

    for &n in &SIZES {
        let g = &mut group;
        let ours_rr = rt.block_on(ours(RoundRobin::with_seed(1), endpoints(n, false)));
        bench_service(g, &rt, "round_robin", n, ours_rr);
        let ours_random = rt.block_on(ours(Random::with_seed(1), endpoints(n, false)));
        bench_service(g, &rt, "random", n, ours_random);
        let ours_weighted = rt.block_on(ours(Weighted::with_seed(1), endpoints(n, true)));
        bench_service(g, &rt, "weighted", n, ours_weighted);
        let ours_wr = rt.block_on(ours(WeightedRandom::with_seed(1), endpoints(n, true)));
        bench_service(g, &rt, "weighted_random", n, ours_wr);
        let arc_client = ArcEcho(Arc::new(1));
        let ours_rr_arc = rt.block_on(ours_with(
            RoundRobin::with_seed(1),
            endpoints(n, false),
            arc_client,
        ));
        bench_service(g, &rt, "round_robin_arc_client", n, ours_rr_arc);
        bench_service(g, &rt, "tower_p2c", n, rt.block_on(tower_p2c(n)));
        let ours_least = rt.block_on(ours(LeastRequest::with_seed(1), endpoints(n, false)));
        bench_service(g, &rt, "least_request", n, ours_least);
        let ours_ewma = rt.block_on(ours(PeakEwma::with_seed(1), endpoints(n, false)));
        bench_service(g, &rt, "peak_ewma", n, ours_ewma);
        bench_service(
            g,
            &rt,
            "tower_p2c_peak_ewma",
            n,
            rt.block_on(tower_p2c_ewma(n)),
        );
    }
    group.finish();
}

const TASKS: u64 = 4;

/// Wall time for `iters` requests split over [`TASKS`] tasks, each with its own `svc` clone.
fn time_shared<S>(rt: &Runtime, svc: &S, iters: u64) -> Duration
where
    S: Service<u32> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: std::fmt::Debug,
{
    let per_task = iters.div_ceil(TASKS);
    let clones: Vec<S> = (0..TASKS).map(|_| svc.clone()).collect();
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = clones
            .into_iter()
            .map(|mut svc| {
                tokio::spawn(async move {
                    for i in 0..per_task {
                        black_box(one(&mut svc, black_box(i as u32)).await);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
        // Report per requested iteration even if rounding added up to 3 requests.
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * TASKS) as f64)
    })
}

fn shared(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("shared");
    for n in [100, 10_000] {
        let rr = rt.block_on(ours(RoundRobin::with_seed(1), endpoints(n, false)));
        group.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            b.iter_custom(|iters| time_shared(&rt, &rr, iters));
        });
        drop(rr);

        let buffered = rt.block_on(async {
            let p2c = tower_p2c(n).await;
            tower::buffer::Buffer::new(p2c, 64)
        });
        group.bench_with_input(BenchmarkId::new("tower_p2c_buffer", n), &n, |b, _| {
            b.iter_custom(|iters| time_shared(&rt, &buffered, iters));
        });
        drop(buffered);
    }
    group.finish();
}

const UPDATE_N: usize = 10_000;

/// Endpoint addresses currently in a set, and the next fresh one to insert.
struct Churn {
    live: std::collections::VecDeque<SocketAddr>,
    next: usize,
}

impl Churn {
    fn new(n: usize) -> Self {
        Churn {
            live: (0..n).map(addr).collect(),
            next: n,
        }
    }

    /// Inserts a fresh endpoint through `watch`.
    fn insert(&mut self, watch: &Watch) {
        let new = addr(self.next);
        self.next += 1;
        self.live.push_back(new);
        watch.insert(Endpoint::new(new)).expect("open");
    }

    /// Removes the oldest endpoint through `watch` (from anywhere in ours' slot order).
    fn remove(&mut self, watch: &Watch) {
        let gone = self.live.pop_front().expect("non-empty");
        watch.remove(gone).expect("open");
    }

    /// A whole fresh set of `n` endpoints through `watch`.
    fn reset(&mut self, watch: &Watch, n: usize) {
        self.live = (self.next..self.next + n).map(addr).collect();
        self.next += n;
        watch
            .reset(self.live.iter().map(|&a| Endpoint::new(a)))
            .expect("open");
    }
}

/// Ours behind a `Watch` with `n` endpoints: a balancer, the handle, and the count of clients
/// made so far.
async fn ours_watched<P: Pick>(picker: P, n: usize) -> (Balance<P, Echo>, Watch, Arc<AtomicU64>) {
    let made = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&made);
    let make = tower::service_fn(move |_: Endpoint| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(Echo(0))
        }
    });
    let (watch, updates) = Watch::new();
    let balance = Balance::builder(picker)
        .build(updates, make)
        .expect("valid config");
    watch.reset(endpoints(n, false)).expect("open");
    wait_ready(&balance, n).await;
    (balance, watch, made)
}

/// Waits until ours has made `made_target` clients in all and publishes `n` ready endpoints.
///
/// The driver publishes the set without removed endpoints before it creates new clients, and
/// publishes again once they are made, so "every client made and `ready_len() == n`" means the
/// final set is out.
async fn ours_settled<P: Pick>(
    balance: &Balance<P, Echo>,
    made: &AtomicU64,
    target: u64,
    n: usize,
) {
    while made.load(Ordering::Relaxed) != target || balance.ready_len() != n {
        tokio::task::yield_now().await;
    }
}

type WatchedP2c = tower::balance::p2c::Balance<
    ToTower<tower_mesh::discover::WatchUpdates, fn(Endpoint) -> TowerEndpoint>,
    u32,
>;

fn tower_endpoint(_: Endpoint) -> TowerEndpoint {
    PendingRequests::new(Echo(0), CompleteOnResponse::default())
}

/// tower's p2c fed through the same `Watch`, via `ToTower`.
async fn tower_watched(n: usize) -> (WatchedP2c, Watch) {
    let (watch, updates) = Watch::new();
    let discover = ToTower::new(updates, tower_endpoint as fn(Endpoint) -> TowerEndpoint);
    let mut balance = tower::balance::p2c::Balance::new(discover);
    watch.reset(endpoints(n, false)).expect("open");
    balance.ready().await.expect("ready");
    assert_eq!(balance.len(), n);
    (balance, watch)
}

/// One `poll_ready` of tower's p2c: drains the channel, evicts, inserts and promotes the new
/// services to ready.
async fn tower_apply(balance: &mut WatchedP2c) {
    // Unconstrained: tokio's cooperative budget would otherwise make the channel report
    // `Pending` after 128 receives within one `block_on` poll, and tower would silently skip
    // applying the updates.
    tokio::task::unconstrained(balance.ready())
        .await
        .expect("ready");
}

#[derive(Clone, Copy, PartialEq)]
enum Change {
    Insert,
    Remove,
}

/// Times `iters` single changes of kind `timed` to ours (each followed by the opposite change,
/// untimed, so the set stays at `UPDATE_N`).
fn time_ours_change<P: Pick>(
    rt: &Runtime,
    setup: &(Balance<P, Echo>, Watch, Arc<AtomicU64>),
    churn: &mut Churn,
    timed: Change,
    iters: u64,
) -> Duration {
    let (balance, watch, made) = setup;
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            for change in [Change::Insert, Change::Remove] {
                let start = Instant::now();
                let made_target =
                    made.load(Ordering::Relaxed) + u64::from(change == Change::Insert);
                let n = match change {
                    Change::Insert => {
                        churn.insert(watch);
                        UPDATE_N + 1
                    }
                    Change::Remove => {
                        churn.remove(watch);
                        UPDATE_N
                    }
                };
                ours_settled(balance, made, made_target, n).await;
                if change == timed {
                    total += start.elapsed();
                }
            }
        }
        total
    })
}

/// The same for tower's p2c.
fn time_tower_change(
    rt: &Runtime,
    balance: &mut WatchedP2c,
    watch: &Watch,
    churn: &mut Churn,
    timed: Change,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            for change in [Change::Insert, Change::Remove] {
                let start = Instant::now();
                match change {
                    Change::Insert => churn.insert(watch),
                    Change::Remove => churn.remove(watch),
                }
                tower_apply(balance).await;
                if change == timed {
                    total += start.elapsed();
                }
            }
        }
        total
    })
}

fn maglev() -> Maglev<fn(&u32) -> Option<u32>> {
    Maglev::new(|req: &u32| Some(*req))
}

fn update(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("update");
    for (name, timed) in [("insert", Change::Insert), ("remove", Change::Remove)] {
        let setup = rt.block_on(ours_watched(RoundRobin::with_seed(1), UPDATE_N));
        let mut churn = Churn::new(UPDATE_N);
        group.bench_function(BenchmarkId::new("round_robin", name), |b| {
            b.iter_custom(|iters| time_ours_change(&rt, &setup, &mut churn, timed, iters));
        });
        drop(setup);

        let setup = rt.block_on(ours_watched(maglev(), UPDATE_N));
        let mut churn = Churn::new(UPDATE_N);
        group.bench_function(BenchmarkId::new("maglev", name), |b| {
            b.iter_custom(|iters| time_ours_change(&rt, &setup, &mut churn, timed, iters));
        });
        drop(setup);

        let (mut balance, watch) = rt.block_on(tower_watched(UPDATE_N));
        let mut churn = Churn::new(UPDATE_N);
        group.bench_function(BenchmarkId::new("tower_p2c", name), |b| {
            b.iter_custom(|iters| {
                time_tower_change(&rt, &mut balance, &watch, &mut churn, timed, iters)
            });
        });
        drop((balance, watch));
    }
    group.finish();

    // A whole new set of 10,000 at once: every client made, the picker's table built.
    let mut group = c.benchmark_group("reset");
    group.sample_size(10);
    bench_ours_reset(&mut group, &rt, "round_robin", RoundRobin::with_seed(1));
    bench_ours_reset(&mut group, &rt, "maglev", maglev());
    let (mut balance, watch) = rt.block_on(tower_watched(UPDATE_N));
    let mut churn = Churn::new(UPDATE_N);
    group.bench_function(BenchmarkId::new("tower_p2c", UPDATE_N), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    churn.reset(&watch, UPDATE_N);
                    tower_apply(&mut balance).await;
                }
                assert_eq!(balance.len(), UPDATE_N);
                start.elapsed()
            })
        });
    });
    drop((balance, watch));
    group.finish();
}

/// Times a whole fresh set of `UPDATE_N` endpoints through ours with `picker`.
fn bench_ours_reset<P: Pick>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    picker: P,
) {
    let (balance, watch, made) = rt.block_on(ours_watched(picker, UPDATE_N));
    let mut churn = Churn::new(UPDATE_N);
    group.bench_function(BenchmarkId::new(name, UPDATE_N), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let target = made.load(Ordering::Relaxed) + UPDATE_N as u64;
                    churn.reset(&watch, UPDATE_N);
                    ours_settled(&balance, &made, target, UPDATE_N).await;
                }
                start.elapsed()
            })
        });
    });
}

/// Streams one change every millisecond (alternately an insert and a remove) through `watch`
/// until dropped.
fn stream_changes(rt: &Runtime, watch: Watch, n: usize) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut churn = Churn::new(n);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            churn.insert(&watch);
            tick.tick().await;
            churn.remove(&watch);
        }
    })
}

/// Per-request cost at N = 10,000 while changes stream in at 1,000/s, against the same with no
/// changes, on a 2-worker runtime (requests on the bench thread; the driver, or tower's channel,
/// and the change stream on the workers).
fn churn(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("under_churn");
    for streaming in [false, true] {
        let label = if streaming {
            "churn_1000_per_s"
        } else {
            "idle"
        };
        let (mut balance, watch, _made) =
            rt.block_on(ours_watched(RoundRobin::with_seed(1), UPDATE_N));
        let stream = streaming.then(|| stream_changes(&rt, watch.clone(), UPDATE_N));
        group.bench_function(BenchmarkId::new("round_robin", label), |b| {
            b.iter_custom(|iters| time_requests(&rt, &mut balance, iters));
        });
        stream.inspect(|s| s.abort());
        drop((balance, watch));

        let (mut balance, watch) = rt.block_on(tower_watched(UPDATE_N));
        let stream = streaming.then(|| stream_changes(&rt, watch.clone(), UPDATE_N));
        group.bench_function(BenchmarkId::new("tower_p2c", label), |b| {
            b.iter_custom(|iters| time_requests(&rt, &mut balance, iters));
        });
        stream.inspect(|s| s.abort());
        drop((balance, watch));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2_500))
        .sample_size(40)
}

/// A balancer with outlier detection and health checks, over `n` always-ready endpoints.
async fn healthy(n: usize) -> Balance<RoundRobin, Echo> {
    let make = tower::service_fn(|_: Endpoint| async { Ok::<_, Infallible>(Echo(1)) });
    let probe = tower::service_fn(|_: Endpoint| async { Ok::<_, Infallible>(()) });
    let detection = OutlierDetection::new()
        .failure_rate(FailureRate::new(50, 100).expect("valid"))
        .interval(Duration::from_secs(1))
        .expect("valid");
    let balance = Balance::builder(RoundRobin::with_seed(1))
        .outlier_detection(detection)
        .health_check(
            HealthCheck::new(Duration::from_secs(1)).expect("valid"),
            probe,
        )
        .build(Static::new(endpoints(n, false)), make)
        .expect("valid config");
    wait_ready(&balance, n).await;
    balance
}

/// Endpoints over three zones of one region.
fn zoned(n: usize) -> Vec<Endpoint> {
    endpoints(n, false)
        .into_iter()
        .enumerate()
        .map(|(i, ep)| ep.with_zone(["a", "b", "c"][i % 3]).with_region("r"))
        .collect()
}

fn locality(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("locality");
    for n in [12, 1200] {
        let g = &mut group;
        bench_service(
            g,
            &rt,
            "round_robin",
            n,
            rt.block_on(ours(RoundRobin::with_seed(1), zoned(n))),
        );
        let local = Locality::new(RoundRobin::with_seed(1), "a")
            .region("r")
            .seed(1);
        bench_service(
            g,
            &rt,
            "locality_round_robin",
            n,
            rt.block_on(ours(local, zoned(n))),
        );
        bench_service(
            g,
            &rt,
            "least_request",
            n,
            rt.block_on(ours(LeastRequest::with_seed(1), zoned(n))),
        );
        let local = Locality::new(LeastRequest::with_seed(1), "a")
            .region("r")
            .seed(1);
        bench_service(
            g,
            &rt,
            "locality_least_request",
            n,
            rt.block_on(ours(local, zoned(n))),
        );
        // Zone a spilling (a third of its endpoints): every pick draws a zone.
        let spilling: Vec<Endpoint> = zoned(n)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0 || i % 9 == 0)
            .map(|(_, ep)| ep)
            .collect();
        let local = Locality::new(RoundRobin::with_seed(1), "a")
            .region("r")
            .client_shares([("a", 1.0), ("b", 1.0), ("c", 1.0)])
            .expect("valid")
            .seed(1);
        bench_service(
            g,
            &rt,
            "locality_round_robin_spilling",
            n,
            rt.block_on(ours(local, spilling)),
        );
        // Label subsets: three versions, each request naming one.
        let versioned: Vec<Endpoint> = zoned(n)
            .into_iter()
            .enumerate()
            .map(|(i, ep)| ep.with_label("version", ["v1", "v2", "v3"][i % 3]))
            .collect();
        let route = LabelRoute::from_fn(RoundRobin::with_seed(1), "version", |req: &u32| {
            Some(["v1", "v2", "v3"][*req as usize % 3])
        })
        .expect("valid");
        bench_service(
            g,
            &rt,
            "label_round_robin",
            n,
            rt.block_on(ours(route, versioned.clone())),
        );
        let route = LabelRoute::from_fn(LeastRequest::with_seed(1), "version", |req: &u32| {
            Some(["v1", "v2", "v3"][*req as usize % 3])
        })
        .expect("valid");
        bench_service(
            g,
            &rt,
            "label_least_request",
            n,
            rt.block_on(ours(route, versioned)),
        );
    }
    group.finish();
}

fn resilience(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("resilience");
    for n in [10, 1000] {
        let g = &mut group;
        let plain = rt.block_on(ours(RoundRobin::with_seed(1), endpoints(n, false)));
        bench_service(g, &rt, "balance", n, plain);
        bench_service(g, &rt, "health", n, rt.block_on(healthy(n)));
        let retry = RetryLayer::new(AssumeIdempotent::new()).layer(rt.block_on(healthy(n)));
        bench_service(g, &rt, "health_retry", n, retry);
        let once = RetryLayer::new(AssumeIdempotent::new())
            .max_attempts(1)
            .expect("valid")
            .layer(rt.block_on(healthy(n)));
        bench_service(g, &rt, "health_retry_one_attempt", n, once);
        let timeout = RetryLayer::new(AssumeIdempotent::new())
            .per_try_timeout(Duration::from_secs(1))
            .expect("valid")
            .layer(rt.block_on(healthy(n)));
        bench_service(g, &rt, "health_retry_timeout", n, timeout);
        let hedge = RetryLayer::new(AssumeIdempotent::new())
            .hedge(Hedge::after(Duration::from_millis(50)))
            .layer(rt.block_on(healthy(n)));
        bench_service(g, &rt, "health_hedge", n, hedge);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_request, shared, update, churn, resilience, locality
}
criterion_main!(benches);

// Every picker benchmarked above must pick for `u32` requests.
const _: fn() = || {
    fn assert_picks<P: PickRequest<u32>>() {}
    assert_picks::<RoundRobin>();
    assert_picks::<Random>();
    assert_picks::<Weighted>();
    assert_picks::<WeightedRandom>();
};
