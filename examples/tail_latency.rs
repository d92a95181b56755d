//! Tail-latency experiment: what each balancer does to p99.9 when one backend slows down.
//!
//! Run it with (12 runs of 30 s plus warm-up: about 6½ minutes at the defaults):
//!
//! ```text
//! cargo run --release --example tail_latency
//! RATE=500 SECONDS=12 cargo run --release --example tail_latency   # a quicker look
//! ```
//!
//! Settings, from environment variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RATE` | 1000 | requests per second sent by the open-loop load generator |
//! | `SECONDS` | 30 | length of each measured run (at least 6); the slow window is its middle third |
//! | `WARMUP` | 1 | seconds of unmeasured traffic before each run, so estimates are warm |
//! | `ONLY` | (all) | comma-separated parts of contender names to run, e.g. `ONLY=hedge,tower` |
//! | `HEDGED_DECAY_MS` | 1000 | the hedged Peak-EWMA's decay |
//! | `HEDGE_PERCENTILE` | 90 | the hedged Peak-EWMA's hedge delay, as a percentile of recent latencies |
//!
//! A scaled-down version of linkerd's "Beyond Round Robin" experiment (2016):
//!
//! 1. Ten hyper HTTP/1 backends on `127.0.0.1`, each answering after 4–6 ms (uniform, from a
//!    seeded RNG; tokio's 1 ms timer rounds sleeps up, so ~5–7 ms in practice) with its own
//!    index as the body. They run on their own runtime thread, as if they were other processes.
//!    Backend 0 is *degradable*: while a shared flag is set (the middle third of a run) it
//!    answers in 95–105 ms, then recovers.
//! 2. An endpoint client per backend: a pool of HTTP/1 connections (one request at a time per
//!    connection, a new connection when none is idle), like hyper-util's pooled client, so a
//!    backend's concurrency is not capped by a single connection.
//! 3. An open-loop load generator at a fixed rate: request `i` is sent at a random point of its
//!    slot `[i, i + 1) / RATE` (so tokio's 1 ms timer rounding costs every run the same ~1 ms),
//!    whether or not earlier ones have finished. Latency is measured from that *scheduled* time, so
//!    queueing in the generator or the balancer counts, and every request has a 50 ms deadline
//!    from it (`tokio::time::timeout_at`): a miss is a failure, counted at 50 ms.
//! 4. Six balancers, each run fresh over the same backends after a short warm-up: ours
//!    (`Balance` with `RoundRobin`, `Random`, `LeastRequest`, `PeakEwma`) and tower 0.5's
//!    `p2c::Balance` with `tower::load::PeakEwma` (30 ms default RTT, 10 s decay) and with
//!    `PendingRequests`, each shared through `tower::buffer::Buffer` as users share them. First
//!    with the degraded backend, then all again on a healthy fleet.
//!
//! It prints, per fleet, a Markdown table (p50, p90, p99, p99.9, p99.9 over the slow window,
//! success rate, failures, and backend 0's share of requests in each third of the run), the
//! share backend 0 gets back in 500 ms buckets after it recovers, what happened at the onset,
//! and a check of the targets of issue 13 for our `PeakEwma`:
//!
//! 1. failed requests ≤ 1/3 of tower `PeakEwma`'s, in the degraded run;
//! 2. p99.9 over the slow window ≤ 2 × the healthy fleet's p99.9;
//! 3. after the slow backend recovers, its share is back to ≥ 5% (half its fair share) within
//!    2 s;
//! 4. on the healthy fleet, p99 ≤ 1.05 × tower `PeakEwma`'s.
//!
//! Finally it draws the latency-percentile curves of every run to `target/tail_latency.svg`.
//! Shares count where the balancer *sent* each request (the endpoint client records it), so
//! requests that timed out on the slow backend count towards its share too; the backends'
//! answers are checked against it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use plotters::prelude::{
    BLACK, ChartBuilder, Color, IntoDrawingArea, LineSeries, PathElement, RGBColor, SVGBackend,
    WHITE,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::Layer;
use tower::balance::p2c;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::util::rng::HasherRng;
use tower::{Service, ServiceExt};
use tower_mesh::BoxError;
use tower_mesh::balance::{Balance, LeastRequest, PeakEwma, Pick, PickRequest, Random, RoundRobin};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;
use tower_mesh::load::Decay;
use tower_mesh::retry::{AssumeIdempotent, Budget, Hedge, RetryLayer};

/// The request every balancer carries: a bodiless `GET /`.
type Req = Request<Empty<Bytes>>;

fn main() -> Result<(), BoxError> {
    let config = Config::from_env()?;
    // The backends get a runtime (and thread) of their own, so the load generator and the
    // balancers never delay their timers: they behave like separate processes.
    let backends = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("backends")
        .enable_all()
        .build()?;
    let fleet = backends.block_on(Fleet::start(BACKENDS))?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    clients.block_on(experiment(&config, &fleet))
}

/// Runs every contender on the degraded fleet, then on the healthy one, and reports.
async fn experiment(config: &Config, fleet: &Fleet) -> Result<(), BoxError> {
    eprintln!(
        "{BACKENDS} backends, {} req/s for {} s per run (+{} s warm-up), {} ms timeout",
        config.rate,
        config.run.as_secs(),
        config.warmup.as_secs(),
        TIMEOUT.as_millis(),
    );
    let mut degraded = Vec::new();
    let mut healthy = Vec::new();
    for (scenario, results) in [
        (Scenario::Degraded, &mut degraded),
        (Scenario::Healthy, &mut healthy),
    ] {
        for contender in CONTENDERS {
            if !config.runs(contender) {
                continue;
            }
            let began = std::time::Instant::now();
            let samples = contender.measure(fleet, scenario, config).await?;
            let run = Run::new(contender.name(), samples, config);
            eprintln!(
                "{:>8} {:<28} done in {:.1} s: p99.9 {:.1} ms, {} failed",
                scenario.name(),
                run.name,
                began.elapsed().as_secs_f64(),
                run.percentile(0.999),
                run.failed(),
            );
            results.push(run);
        }
    }
    print_report(&degraded, &healthy, config);
    let chart = draw_chart(&degraded, &healthy)?;
    println!("\nChart: {chart}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The experiment's settings; see the module docs for the environment variables.
struct Config {
    rate: u32,
    run: Duration,
    warmup: Duration,
    /// Contender names to run (case-insensitive substrings); all when empty.
    only: Vec<String>,
    /// The hedged contender's decay and hedge percentile.
    hedged_decay: Duration,
    hedge_percentile: f64,
}

impl Config {
    fn from_env() -> Result<Self, BoxError> {
        let rate: u32 = env_or("RATE", 1_000)?;
        let seconds: u64 = env_or("SECONDS", 30)?;
        let warmup: u64 = env_or("WARMUP", 1)?;
        if rate == 0 {
            return Err("RATE must be at least 1".into());
        }
        if seconds < 6 {
            return Err(
                format!("SECONDS must be at least 6 (a 2 s slow window), got {seconds}").into(),
            );
        }
        let only: String = env_or("ONLY", String::new())?;
        let only = only
            .split(',')
            .map(|name| name.trim().to_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        let hedged_decay: u64 = env_or("HEDGED_DECAY_MS", HEDGED_DECAY_MS)?;
        let hedge_percentile: f64 = env_or("HEDGE_PERCENTILE", HEDGE_PERCENTILE)?;
        Ok(Config {
            rate,
            run: Duration::from_secs(seconds),
            warmup: Duration::from_secs(warmup),
            only,
            hedged_decay: Duration::from_millis(hedged_decay),
            hedge_percentile,
        })
    }

    /// Whether `contender` is among those to run.
    fn runs(&self, contender: Contender) -> bool {
        let name = contender.name().to_lowercase();
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }

    /// One third of a run: the slow window is `[third, 2 × third)`.
    fn third(&self) -> Duration {
        self.run / 3
    }

    /// When the slow backend recovers, from the start of the run.
    fn recovery(&self) -> Duration {
        self.third() * 2
    }
}

/// The value of environment variable `name`, or `default` when it is not set.
fn env_or<T>(name: &str, default: T) -> Result<T, BoxError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|e| format!("{name}={value:?}: {e}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The backends

/// The running backends: their addresses (backend `i` at `addrs[i]`) and the flag that slows
/// backend [`SLOW`] down.
struct Fleet {
    addrs: Vec<SocketAddr>,
    degraded: Arc<AtomicBool>,
}

impl Fleet {
    /// Binds `n` backends on ephemeral loopback ports and serves them on the current runtime.
    async fn start(n: usize) -> Result<Self, BoxError> {
        let degraded = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::with_capacity(n);
        for index in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let backend = Backend {
                index,
                rng: Mutex::new(SmallRng::seed_from_u64(SEED + index as u64)),
                degraded: (index == SLOW).then(|| Arc::clone(&degraded)),
            };
            tokio::spawn(serve(listener, Arc::new(backend)));
        }
        Ok(Fleet { addrs, degraded })
    }

    /// A fresh endpoint client (with its own, empty connection pool) per backend.
    fn clients(&self) -> Vec<Client> {
        (self.addrs.iter().enumerate())
            .map(|(backend, &addr)| Client::new(backend, addr))
            .collect()
    }

    fn set_degraded(&self, on: bool) {
        self.degraded.store(on, Relaxed);
    }

    /// Slows the degradable backend down from `from` until `until`.
    async fn degrade_between(degraded: Arc<AtomicBool>, from: Instant, until: Instant) {
        tokio::time::sleep_until(from).await;
        degraded.store(true, Relaxed);
        tokio::time::sleep_until(until).await;
        degraded.store(false, Relaxed);
    }
}

/// One backend: answers every request with its index after its service time.
struct Backend {
    index: usize,
    rng: Mutex<SmallRng>,
    /// The flag that slows this backend down, for the degradable one.
    degraded: Option<Arc<AtomicBool>>,
}

impl Backend {
    async fn answer(&self) -> Result<Response<Full<Bytes>>, Infallible> {
        tokio::time::sleep(self.service_time()).await;
        Ok(Response::new(Full::new(Bytes::from(
            self.index.to_string(),
        ))))
    }

    /// A uniform random service time, read per request: normal or degraded.
    fn service_time(&self) -> Duration {
        let slow = self
            .degraded
            .as_ref()
            .is_some_and(|flag| flag.load(Relaxed));
        let range = if slow { SLOW_MICROS } else { NORMAL_MICROS };
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        Duration::from_micros(rng.random_range(range))
    }
}

/// Accepts connections on `listener` and serves HTTP/1 on each.
async fn serve(listener: TcpListener, backend: Arc<Backend>) {
    while let Ok((stream, _)) = listener.accept().await {
        // Small requests and answers: send them at once rather than waiting for an ACK.
        if stream.set_nodelay(true).is_err() {
            continue;
        }
        let backend = Arc::clone(&backend);
        let reply = hyper::service::service_fn(move |_: Request<Incoming>| {
            let backend = Arc::clone(&backend);
            async move { backend.answer().await }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), reply);
        tokio::spawn(async move {
            // Clients close a connection whose request timed out, so errors here are expected
            // and show up, if they matter, as failed requests on the client side.
            let _closed = connection.await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint client

/// Where the balancer sent a request: set by the endpoint client that received it, read by the
/// load generator. Carried in the request's extensions.
#[derive(Clone)]
struct Route(Arc<AtomicUsize>);

impl Route {
    const UNSENT: usize = usize::MAX;

    fn new() -> Self {
        Route(Arc::new(AtomicUsize::new(Self::UNSENT)))
    }

    fn record(&self, backend: usize) {
        self.0.store(backend, Relaxed);
    }

    fn backend(&self) -> Option<usize> {
        Some(self.0.load(Relaxed)).filter(|&b| b != Self::UNSENT)
    }
}

/// The client for one backend: a pool of HTTP/1 connections, each carrying one request at a
/// time. A request takes an idle connection or opens a new one, and returns it to the pool
/// once the whole answer is read; a request dropped midway (timed out) closes its connection.
/// Its response is the index the backend answered with.
#[derive(Clone)]
struct Client {
    backend: usize,
    addr: SocketAddr,
    idle: Arc<Mutex<Vec<SendRequest<Empty<Bytes>>>>>,
}

impl Client {
    fn new(backend: usize, addr: SocketAddr) -> Self {
        Client {
            backend,
            addr,
            idle: Arc::default(),
        }
    }

    async fn send(self, request: Req) -> Result<usize, BoxError> {
        let mut connection = self.connection().await?;
        let response = connection.send_request(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        let answer: usize = std::str::from_utf8(&body)?.parse()?;
        if answer != self.backend {
            return Err(format!("backend {} answered as {answer}", self.backend).into());
        }
        Ok(answer)
    }

    /// The most recently used idle connection that still works, or a new one.
    async fn connection(&self) -> Result<SendRequest<Empty<Bytes>>, BoxError> {
        while let Some(mut connection) = self.pop_idle() {
            if connection.ready().await.is_ok() {
                return Ok(connection);
            }
        }
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A connection error also fails the request on it, which is where it is counted.
            let _closed = connection.await;
        });
        Ok(sender)
    }

    fn pop_idle(&self) -> Option<SendRequest<Empty<Bytes>>> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }
}

impl Service<Req> for Client {
    type Response = usize;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<usize, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if let Some(route) = request.extensions().get::<Route>() {
            route.record(self.backend);
        }
        Box::pin(self.clone().send(request))
    }
}

// ---------------------------------------------------------------------------------------------
// The contenders

/// The balancers compared, in table order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    RoundRobin,
    Random,
    LeastRequest,
    PeakEwma,
    PeakEwmaHedged,
    TowerPeakEwma,
    TowerPendingRequests,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::RoundRobin => "RoundRobin",
            Contender::Random => "Random",
            Contender::LeastRequest => "LeastRequest",
            Contender::PeakEwma => "PeakEwma",
            Contender::PeakEwmaHedged => "PeakEwma + hedge",
            Contender::TowerPeakEwma => "tower p2c PeakEwma",
            Contender::TowerPendingRequests => "tower p2c PendingRequests",
        }
    }

    /// Builds a fresh balancer over fresh clients and measures one run with it.
    async fn measure(
        self,
        fleet: &Fleet,
        scenario: Scenario,
        config: &Config,
    ) -> Result<Vec<Sample>, BoxError> {
        match self {
            Contender::RoundRobin => {
                let balance = ours(RoundRobin::with_seed(SEED), fleet).await?;
                measure(balance, fleet, scenario, config).await
            }
            Contender::Random => {
                let balance = ours(Random::with_seed(SEED), fleet).await?;
                measure(balance, fleet, scenario, config).await
            }
            Contender::LeastRequest => {
                let balance = ours(LeastRequest::with_seed(SEED), fleet).await?;
                measure(balance, fleet, scenario, config).await
            }
            Contender::PeakEwma => {
                let balance = ours(PeakEwma::with_seed(SEED), fleet).await?;
                measure(balance, fleet, scenario, config).await
            }
            Contender::PeakEwmaHedged => {
                // Hedging makes looking at a suspect cheap: a request stuck on it is sent to a
                // second endpoint at the fleet's p90, so the estimate may forget faster.
                let picker = PeakEwma::with_seed(SEED).decay(Decay::new(config.hedged_decay)?);
                let balance = ours(picker, fleet).await?;
                let hedge = Hedge::percentile(config.hedge_percentile, HEDGE_MIN, HEDGE_MAX)?;
                let retry = RetryLayer::new(AssumeIdempotent::new())
                    .budget(Arc::new(Budget::default()))
                    .hedge(hedge)
                    .seed(SEED)
                    .layer(balance);
                measure(retry, fleet, scenario, config).await
            }
            Contender::TowerPeakEwma => {
                let decay_ns = TOWER_DECAY.as_nanos() as f64;
                let endpoints = fleet.clients().into_iter().map(|client| {
                    let completion = CompleteOnResponse::default();
                    tower::load::PeakEwma::new(client, TOWER_DEFAULT_RTT, decay_ns, completion)
                });
                let balance = p2c::Balance::from_rng(
                    ServiceList::new(endpoints.collect::<Vec<_>>()),
                    seeded_tower_rng(),
                );
                measure(Buffer::new(balance, BUFFER), fleet, scenario, config).await
            }
            Contender::TowerPendingRequests => {
                let endpoints = (fleet.clients().into_iter())
                    .map(|client| PendingRequests::new(client, CompleteOnResponse::default()));
                let balance = p2c::Balance::from_rng(
                    ServiceList::new(endpoints.collect::<Vec<_>>()),
                    seeded_tower_rng(),
                );
                measure(Buffer::new(balance, BUFFER), fleet, scenario, config).await
            }
        }
    }
}

/// Our balancer with `picker` over the fleet, once every endpoint has a client.
async fn ours<P>(picker: P, fleet: &Fleet) -> Result<Balance<P, Client>, BoxError>
where
    P: PickRequest<Req>,
{
    let clients = fleet.clients();
    let make_client = tower::service_fn(move |endpoint: Endpoint| {
        let client = (clients.iter())
            .find(|client| client.addr == endpoint.addr())
            .cloned()
            .ok_or_else(|| format!("no backend at {endpoint}"));
        std::future::ready(client)
    });
    let discover = Static::from_addrs(fleet.addrs.iter().copied());
    let balance = Balance::builder(picker)
        .seed(SEED)
        .build(discover, make_client)?;
    wait_for_all(&balance, fleet.addrs.len()).await?;
    Ok(balance)
}

/// Waits until all `n` endpoints are ready, so the warm-up spreads from the first request.
async fn wait_for_all<P: Pick, S>(balance: &Balance<P, S>, n: usize) -> Result<(), BoxError> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while balance.ready_len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await?;
    Ok(())
}

/// tower's p2c with a fixed seed: its hasher-based RNG over a deterministic hasher.
fn seeded_tower_rng() -> HasherRng<BuildHasherDefault<DefaultHasher>> {
    HasherRng::with_hasher(BuildHasherDefault::default())
}

// ---------------------------------------------------------------------------------------------
// The load generator

/// Whether the degradable backend slows down during the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Degraded,
    Healthy,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Degraded => "degraded",
            Scenario::Healthy => "healthy",
        }
    }
}

/// One request's fate.
#[derive(Clone, Copy)]
struct Sample {
    /// When it was scheduled, from the start of the run.
    sent: Duration,
    /// From its scheduled time to its answer; [`TIMEOUT`] for a failure.
    latency: Duration,
    ok: bool,
    /// The backend the balancer sent it to, if it got that far.
    backend: Option<usize>,
}

/// Warms `service` up, then measures one run, slowing the degradable backend down during the
/// middle third if the scenario says so.
async fn measure<S>(
    mut service: S,
    fleet: &Fleet,
    scenario: Scenario,
    config: &Config,
) -> Result<Vec<Sample>, BoxError>
where
    S: Service<Req, Response = usize>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    fleet.set_degraded(false);
    generate_load(&mut service, config.rate, config.warmup, Instant::now()).await?;

    let start = Instant::now();
    let slowdown = (scenario == Scenario::Degraded).then(|| {
        tokio::spawn(Fleet::degrade_between(
            Arc::clone(&fleet.degraded),
            start + config.third(),
            start + config.recovery(),
        ))
    });
    let samples = generate_load(&mut service, config.rate, config.run, start).await;
    if let Some(slowdown) = slowdown {
        slowdown.abort();
    }
    fleet.set_degraded(false);
    samples
}

/// Sends `rate` requests per second through `service` for `length` from `start`, open loop:
/// each at its scheduled time, whoever is still waiting. Returns one sample per request.
async fn generate_load<S>(
    service: &mut S,
    rate: u32,
    length: Duration,
    start: Instant,
) -> Result<Vec<Sample>, BoxError>
where
    S: Service<Req, Response = usize>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let total = (u128::from(rate) * length.as_millis() / 1_000) as usize;
    let period = Duration::from_secs(1) / rate;
    let mut jitter = SmallRng::seed_from_u64(SEED);
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        // Request `i` is due at a random point of its own slot `[i, i + 1) × period`: a fixed
        // rate, but with send times spread across tokio's 1 ms timer ticks, so the ticks'
        // rounding delays every run alike (by ~1.05 ms on average, measured) rather than by a
        // per-run constant anywhere from 0.7 to 1.5 ms. Behind schedule, `sleep_until` returns
        // at once.
        let scheduled = start + period.mul_f64(i as f64 + jitter.random_range(0.0..1.0));
        tokio::time::sleep_until(scheduled).await;
        let route = Route::new();
        let mut request = Request::get("/").body(Empty::new())?;
        request.extensions_mut().insert(route.clone());
        service.ready().await.map_err(Into::into)?;
        let response = service.call(request);
        requests.push(tokio::spawn(async move {
            let answer = tokio::time::timeout_at(scheduled + TIMEOUT, response).await;
            let ok = matches!(answer, Ok(Ok(_)));
            Sample {
                sent: scheduled - start,
                latency: if ok { scheduled.elapsed() } else { TIMEOUT },
                ok,
                backend: route.backend(),
            }
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for request in requests {
        samples.push(request.await?);
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------------------------
// Analysis

/// One measured run: its samples and its latencies sorted, for percentiles.
struct Run {
    name: &'static str,
    samples: Vec<Sample>,
    sorted_ms: Vec<f64>,
    third: Duration,
}

impl Run {
    fn new(name: &'static str, samples: Vec<Sample>, config: &Config) -> Self {
        let sorted_ms = sorted_ms(samples.iter());
        Run {
            name,
            samples,
            sorted_ms,
            third: config.third(),
        }
    }

    fn percentile(&self, q: f64) -> f64 {
        percentile(&self.sorted_ms, q)
    }

    fn failed(&self) -> usize {
        self.samples.iter().filter(|s| !s.ok).count()
    }

    fn success_rate(&self) -> f64 {
        let ok = self.samples.len() - self.failed();
        100.0 * ok as f64 / self.samples.len().max(1) as f64
    }

    /// The samples sent within `window` (offsets from the start of the run).
    fn sent_in(&self, window: Range<Duration>) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| window.contains(&s.sent))
    }

    /// The slow window: the middle third.
    fn slow_window(&self) -> Range<Duration> {
        self.third..self.third * 2
    }

    /// p99.9 over the requests sent during the slow window.
    fn window_p999(&self) -> f64 {
        percentile(&sorted_ms(self.sent_in(self.slow_window())), 0.999)
    }

    /// The slow backend's share (%) of the requests sent within `window`, if any were.
    fn slow_share(&self, window: Range<Duration>) -> Option<f64> {
        let (mut all, mut slow) = (0_u32, 0_u32);
        for sample in self.sent_in(window) {
            all += 1;
            slow += u32::from(sample.backend == Some(SLOW));
        }
        (all > 0).then(|| 100.0 * f64::from(slow) / f64::from(all))
    }

    /// The slow backend's share (%) in each third of the run.
    fn thirds(&self) -> [Option<f64>; 3] {
        [0, 1, 2].map(|k| self.slow_share(self.third * k..self.third * (k + 1)))
    }

    /// The slow backend's share (%) in consecutive [`BUCKET`]s after it recovers, as many as
    /// fit in the last third, up to [`RECOVERY_BUCKETS`].
    fn recovery_buckets(&self) -> Vec<Option<f64>> {
        let fit = (self.third.as_millis() / BUCKET.as_millis()) as u32;
        (0..RECOVERY_BUCKETS.min(fit))
            .map(|k| {
                let from = self.third * 2 + BUCKET * k;
                self.slow_share(from..from + BUCKET)
            })
            .collect()
    }
}

/// A share for a table cell: `12.3%`, or `-` when no request was sent.
fn share(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |share| format!("{share:.1}%"))
}

/// Latencies in milliseconds, sorted.
fn sorted_ms<'a>(samples: impl Iterator<Item = &'a Sample>) -> Vec<f64> {
    let mut ms: Vec<f64> = samples.map(|s| s.latency.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// The nearest-rank `q` quantile of sorted values (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Report

fn print_report(degraded: &[Run], healthy: &[Run], config: &Config) {
    let (third, window) = (config.third().as_secs_f64(), config.third());
    println!(
        "\n### Degraded fleet: backend {SLOW} answers in ~100 ms from {third:.0} s to {:.0} s\n",
        2.0 * third
    );
    println!("{}", table(degraded));
    println!("### Healthy fleet\n");
    println!("{}", table(healthy));
    print_recovery(degraded);
    print_onset(degraded, window);
    print_targets(degraded, healthy);
}

/// The Markdown table of one fleet's runs.
fn table(runs: &[Run]) -> String {
    let mut out = String::from(
        "| balancer | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.9 ms, slow window | success | failed | slow backend's share by third |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for run in runs {
        let [first, second, last] = run.thirds();
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}% | {} | {} / {} / {} |",
            run.name,
            run.percentile(0.5),
            run.percentile(0.9),
            run.percentile(0.99),
            run.percentile(0.999),
            run.window_p999(),
            run.success_rate(),
            run.failed(),
            share(first),
            share(second),
            share(last),
        );
    }
    out
}

/// The slow backend's share after it recovers, in 500 ms buckets.
fn print_recovery(degraded: &[Run]) {
    println!("### Slow backend's share after it recovers, per 500 ms (labelled by bucket end)\n");
    let mut header = String::from("| balancer |");
    let mut rule = String::from("|---|");
    let buckets = degraded
        .first()
        .map_or(0, |run| run.recovery_buckets().len());
    for k in 1..=buckets as u32 {
        let _ = write!(header, " +{:.1} s |", (BUCKET * k).as_secs_f64());
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for run in degraded {
        let mut row = format!("| {} |", run.name);
        for bucket in run.recovery_buckets() {
            let _ = write!(row, " {} |", share(bucket));
        }
        println!("{row}");
    }
    println!("\nOver the whole last third, per second:\n");
    for run in degraded {
        let recovered = run.third * 2;
        let first = (run.sent_in(recovered..run.third * 3))
            .find(|s| s.backend == Some(SLOW))
            .map_or("never".to_owned(), |s| {
                format!("{:.2} s after recovery", (s.sent - recovered).as_secs_f64())
            });
        let per_second: Vec<String> = (0..run.third.as_secs() as u32)
            .map(|k| {
                let from = recovered + Duration::from_secs(k.into());
                share(run.slow_share(from..from + Duration::from_secs(1)))
            })
            .collect();
        println!(
            "- {}: first request sent to it again: {first}; share per second: {}",
            run.name,
            per_second.join(", "),
        );
    }
}

/// What the slow backend was sent during the slow window, and when requests failed.
fn print_onset(degraded: &[Run], window: Duration) {
    println!("\n### The slow window in detail\n");
    for run in degraded {
        let start = run.third;
        let in_window: Vec<&Sample> = run.sent_in(run.slow_window()).collect();
        let to_slow = |within: Range<Duration>| {
            (in_window.iter())
                .filter(|s| s.backend == Some(SLOW) && within.contains(&(s.sent - start)))
                .count()
        };
        let first_100ms = to_slow(Duration::ZERO..Duration::from_millis(100));
        let first_s = to_slow(Duration::ZERO..Duration::from_secs(1));
        let all = to_slow(Duration::ZERO..window);
        let failures: Vec<String> = (in_window.iter())
            .filter(|s| !s.ok)
            .map(|s| format!("{}", (s.sent - start).as_millis()))
            .collect();
        // Failures anywhere else would point at the client or the generator, not the backend.
        let elsewhere = (run.samples.iter())
            .filter(|s| !s.ok && s.backend != Some(SLOW))
            .count();
        let shown = failures.len().min(15);
        let more = if failures.len() > shown { ", …" } else { "" };
        println!(
            "- {}: sent to the slow backend {all} (first 100 ms: {first_100ms}, first 1 s: {first_s}, \
             after that: {}); {} failed, sent at ms into the window: {}{more}; \
             failed on other backends in the whole run: {elsewhere}",
            run.name,
            all - first_s,
            failures.len(),
            failures[..shown].join(", "),
        );
    }
}

/// Checks issue 13's targets for our PeakEwma, plain and hedged, against tower's.
fn print_targets(degraded: &[Run], healthy: &[Run]) {
    for ours in [Contender::PeakEwma, Contender::PeakEwmaHedged] {
        print_targets_of(ours.name(), degraded, healthy);
    }
}

fn print_targets_of<'r>(ours: &str, degraded: &'r [Run], healthy: &'r [Run]) {
    let find = |runs: &'r [Run], name: &str| runs.iter().find(|run| run.name == name);
    let tower = Contender::TowerPeakEwma.name();
    let (Some(ours_d), Some(tower_d), Some(ours_h), Some(tower_h)) = (
        find(degraded, ours),
        find(degraded, tower),
        find(healthy, ours),
        find(healthy, tower),
    ) else {
        return;
    };
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!("\n### Targets for {ours}\n");
    let (ours_failed, tower_failed) = (ours_d.failed(), tower_d.failed());
    println!(
        "1. failed ≤ 1/3 of tower's: {ours_failed} vs {tower_failed} → {}",
        verdict(3 * ours_failed <= tower_failed)
    );
    let (window, healthy_p999) = (ours_d.window_p999(), ours_h.percentile(0.999));
    println!(
        "2. slow-window p99.9 ≤ 2 × healthy p99.9: {window:.1} ms vs 2 × {healthy_p999:.1} ms → {}",
        verdict(window <= 2.0 * healthy_p999)
    );
    // The bucket ending 2 s after recovery: is the slow backend back to half its fair share?
    let at_2s = ours_d
        .recovery_buckets()
        .get(BUCKETS_IN_2S - 1)
        .copied()
        .flatten();
    println!(
        "3. share ≥ 5% in the 500 ms ending 2 s after recovery: {} → {}",
        share(at_2s),
        verdict(at_2s.is_some_and(|share| share >= 5.0)),
    );
    let (ours_p99, tower_p99) = (ours_h.percentile(0.99), tower_h.percentile(0.99));
    println!(
        "4. healthy p99 ≤ 1.05 × tower's: {ours_p99:.2} ms vs 1.05 × {tower_p99:.2} ms → {}",
        verdict(ours_p99 <= 1.05 * tower_p99)
    );
}

// ---------------------------------------------------------------------------------------------
// Chart

/// Draws the latency-percentile curves of both fleets side by side; returns the file's path.
fn draw_chart(degraded: &[Run], healthy: &[Run]) -> Result<String, BoxError> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target");
    std::fs::create_dir_all(dir)?;
    let path = format!("{dir}/tail_latency.svg");
    draw_panels(SVGBackend::new(&path, (1400, 560)), degraded, healthy)?;
    Ok(path)
}

/// Draws the two panels on `backend`.
fn draw_panels(backend: SVGBackend<'_>, degraded: &[Run], healthy: &[Run]) -> Result<(), BoxError> {
    let root = backend.into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    for (panel, (title, runs)) in panels.iter().zip([
        (
            "Degraded fleet (one backend at ~100 ms for the middle third)",
            degraded,
        ),
        ("Healthy fleet", healthy),
    ]) {
        let max_nines = runs
            .iter()
            .map(|run| (run.sorted_ms.len() as f64).log10())
            .fold(4.0, f64::min);
        // Each panel fits its own slowest request, so the healthy curves are not squashed.
        let top_ms = runs
            .iter()
            .filter_map(|run| run.sorted_ms.last())
            .fold(0.0, |top: f64, &ms| top.max(ms * 1.1));
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_nines, 0.0..top_ms)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(9)
            .x_label_formatter(&|nines| percentile_label(*nines))
            .draw()?;
        for (run, color) in runs.iter().zip(COLORS) {
            let points = (0..=(max_nines * 100.0) as u32).map(|step| {
                let nines = f64::from(step) / 100.0;
                (nines, percentile(&run.sorted_ms, 1.0 - 10f64.powf(-nines)))
            });
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(run.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(plotters::chart::SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Labels the "number of nines" axis at whole nines: 1 → p90, 2 → p99, 3 → p99.9.
fn percentile_label(nines: f64) -> String {
    if (nines - nines.round()).abs() > 1e-9 {
        return String::new();
    }
    let q = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines - 2.0).ceil().max(0.0) as usize;
    format!("p{q:.decimals$}")
}

// ---------------------------------------------------------------------------------------------
// Constants

/// Backends in the fleet.
const BACKENDS: usize = 10;
/// The degradable backend.
const SLOW: usize = 0;
/// A healthy backend's service time, in microseconds.
const NORMAL_MICROS: RangeInclusive<u64> = 4_000..=6_000;
/// The degraded backend's service time, in microseconds.
const SLOW_MICROS: RangeInclusive<u64> = 95_000..=105_000;
/// Every request's deadline, from its scheduled send time.
const TIMEOUT: Duration = Duration::from_millis(50);
/// Seed for the pickers, the backends' service times and the send-time jitter.
const SEED: u64 = 13;
/// tower `PeakEwma`'s settings: linkerd's, the same as our defaults.
const TOWER_DEFAULT_RTT: Duration = Duration::from_millis(30);
const TOWER_DECAY: Duration = Duration::from_secs(10);
/// Requests waiting for tower's `Buffer` worker.
const BUFFER: usize = 1_024;
/// Recovery is watched in buckets this long...
const BUCKET: Duration = Duration::from_millis(500);
/// ...this many of them.
const RECOVERY_BUCKETS: u32 = 8;
/// The recovery buckets that end within 2 s.
const BUCKETS_IN_2S: usize = 4;
/// The hedged contender's Peak-EWMA decay, in milliseconds.
const HEDGED_DECAY_MS: u64 = 1_000;
/// Its hedge delay: this percentile of recent latencies...
const HEDGE_PERCENTILE: f64 = 90.0;
/// ...within these bounds.
const HEDGE_MIN: Duration = Duration::from_millis(8);
const HEDGE_MAX: Duration = Duration::from_millis(25);
/// The balancers, in table order.
const CONTENDERS: [Contender; 7] = [
    Contender::RoundRobin,
    Contender::Random,
    Contender::LeastRequest,
    Contender::PeakEwma,
    Contender::PeakEwmaHedged,
    Contender::TowerPeakEwma,
    Contender::TowerPendingRequests,
];
/// Line colours, one per contender (Tableau 10).
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(23, 190, 207),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
