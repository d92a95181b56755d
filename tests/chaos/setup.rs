//! Building the pieces every scenario uses, and the bounded waits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tower_mesh::BoxError;
use tower_mesh::balance::{Balance, Pick, RoundRobin};
use tower_mesh::discover::Update;
use tower_mesh::health::{HealthCheck, HttpStatus, OutlierDetection};
use tower_mesh::retry::{Budget, Http, RetryLayer};

use crate::client::{EndpointClient, HttpClient, Probe, make};
use crate::server::Server;
use crate::{BUDGET_MIN_PER_SEC, BUDGET_TTL, LEAK_TIMEOUT, MAX_ATTEMPTS, PER_TRY_TIMEOUT, SERVERS};

/// Round robin (which, unlike a load-aware picker, keeps sending a stalled server its share)
/// over per-endpoint hyper clients, `5xx` and transport errors counting as failures, outlier
/// detection and active health checks.
pub(crate) fn balancer<D, E>(
    discover: D,
    client: &HttpClient,
    seed: u64,
) -> Balance<RoundRobin, EndpointClient, HttpStatus>
where
    D: Stream<Item = Result<Update, E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    Balance::builder(RoundRobin::with_seed(seed))
        .classify(HttpStatus)
        .outlier_detection(outlier_detection())
        .health_check(health_check(), Probe::new(client.clone()))
        .panic_threshold(50)
        .seed(seed)
        .build(discover, make(client.clone()))
        .expect("valid balancer configuration")
}

/// Retries of idempotent requests (every GET) on other endpoints, from `budget`.
pub(crate) fn retry(budget: &Arc<Budget>, seed: u64) -> RetryLayer<Http> {
    RetryLayer::new(Http::new())
        .budget(Arc::clone(budget))
        .seed(seed)
        .max_attempts(MAX_ATTEMPTS)
        .and_then(|r| r.per_try_timeout(PER_TRY_TIMEOUT))
        .expect("valid retry configuration")
}

pub(crate) fn outlier_detection() -> OutlierDetection {
    OutlierDetection::new()
        .consecutive_failures(3)
        .and_then(|o| o.interval(Duration::from_secs(1)))
        .and_then(|o| o.base_ejection_time(Duration::from_secs(1)))
        .and_then(|o| o.max_ejection_time(Duration::from_secs(3)))
        .and_then(|o| o.max_ejection_percent(40))
        .expect("valid outlier detection")
}

pub(crate) fn health_check() -> HealthCheck {
    HealthCheck::new(Duration::from_millis(500))
        .and_then(|c| c.timeout(Duration::from_millis(200)))
        .and_then(|c| c.unhealthy_threshold(2))
        .and_then(|c| c.healthy_threshold(1))
        .expect("valid health check")
}

/// A budget of [`BUDGET_MIN_PER_SEC`] a second plus `ratio` retries per request, over
/// [`BUDGET_TTL`].
pub(crate) fn budget(ratio: f64) -> Arc<Budget> {
    Arc::new(Budget::new(BUDGET_TTL, BUDGET_MIN_PER_SEC, ratio).expect("valid retry budget"))
}

pub(crate) async fn start_servers() -> Vec<Server> {
    let mut servers = Vec::with_capacity(SERVERS);
    for _ in 0..SERVERS {
        servers.push(Server::start().await.expect("a loopback server"));
    }
    servers
}

/// Waits until the balancer names exactly `addrs`, all ready.
pub(crate) async fn await_all_ready<P: Pick, S, C>(
    balance: &Balance<P, S, C>,
    addrs: &[SocketAddr],
    timeout: Duration,
    when: &str,
) {
    let want: BTreeSet<SocketAddr> = addrs.iter().copied().collect();
    wait_until(
        timeout,
        || {
            let now = balance.endpoints();
            now.len() == want.len()
                && now
                    .iter()
                    .all(|s| s.is_ready() && want.contains(&s.endpoint().addr()))
        },
        || {
            let states: BTreeMap<SocketAddr, String> = balance
                .endpoints()
                .iter()
                .map(|s| (s.endpoint().addr(), s.state().to_string()))
                .collect();
            format!("{when}: not every endpoint ready within {timeout:?}; states {states:#?}")
        },
    )
    .await;
}

/// With the client side dropped: every server sees its connections closed, and once the
/// servers are shut down the runtime is back to `baseline` tasks.
pub(crate) async fn assert_no_leaks(mut servers: Vec<Server>, baseline: usize, seed: u64) {
    wait_until(
        LEAK_TIMEOUT,
        || servers.iter().all(|s| s.counters().open() == 0),
        || {
            let open: Vec<(u16, u64)> = servers
                .iter()
                .map(|s| (s.port(), s.counters().open()))
                .collect();
            format!(
                "connections still open {LEAK_TIMEOUT:?} after the client was dropped \
                 (seed {seed}): {open:?}"
            )
        },
    )
    .await;
    for server in &mut servers {
        server.kill().await;
    }
    drop(servers);
    let metrics = Handle::current().metrics();
    wait_until(
        LEAK_TIMEOUT,
        || metrics.num_alive_tasks() == baseline,
        || {
            format!(
                "{} tasks alive {LEAK_TIMEOUT:?} after everything was dropped, {baseline} before \
                 the test (seed {seed})",
                metrics.num_alive_tasks()
            )
        },
    )
    .await;
    println!("leaks: none (tasks back to {baseline}, every server connection closed)");
}

/// Polls `done` every 10 ms until it holds, or panics with `why()` after `timeout`.
pub(crate) async fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    why: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            panic!("{}", why());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits a task, bounded.
pub(crate) async fn bounded<T>(
    task: tokio::task::JoinHandle<T>,
    timeout: Duration,
    what: &str,
) -> T {
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("{what} did not finish within {timeout:?} of the load ending"),
    }
}

/// The seed: `CHAOS_SEED` when set, else from the clock; printed either way.
pub(crate) fn seed(test: &str) -> u64 {
    let seed = match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().expect("CHAOS_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    println!("{test}: seed {seed} (replay with CHAOS_SEED={seed})");
    seed
}
