use std::convert::Infallible;
use std::future::Ready;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::discover::{Static, Update, Watch};
use crate::endpoint::{Endpoint, Weight};
use crate::error::{BoxError, ConfigError, NoEndpoints};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client that answers every request with its endpoint's address.
#[derive(Debug, Clone)]
struct Echo(SocketAddr);

impl Service<()> for Echo {
    type Response = SocketAddr;
    type Error = Infallible;
    type Future = Ready<Result<SocketAddr, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok(self.0))
    }
}

fn echo(ep: &Endpoint) -> Echo {
    Echo(ep.addr())
}

/// A MakeService building [`echo`] clients, counting how often it was called.
fn make_echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Endpoint,
    Response = Echo,
    Error = Infallible,
    Future = Ready<Result<Echo, Infallible>>,
> + Send
+ 'static {
    service_fn(move |ep: Endpoint| {
        calls.fetch_add(1, SeqCst);
        std::future::ready(Ok(echo(&ep)))
    })
}

/// Lets the driver task run until the balancer has `n` ready endpoints.
async fn settle<P: Pick, S>(balance: &Balance<P, S>, n: usize) {
    for _ in 0..1000 {
        if balance.ready_len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "balancer never reached {n} ready endpoints (has {})",
        balance.ready_len()
    );
}

fn no_endpoints(e: &BoxError) -> bool {
    e.downcast_ref::<NoEndpoints>().is_some()
}

#[tokio::test(start_paused = true)]
async fn empty_set_waits_then_fails_at_deadline_then_fails_fast() {
    let (_watch, updates) = Watch::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut balance = Balance::builder(RoundRobin::new())
        .ready_timeout(Duration::from_secs(5))
        .build(updates, make_echo(calls.clone()))
        .unwrap();
    let start = Instant::now();

    // Still waiting just before the deadline.
    let early = tokio::time::timeout(Duration::from_millis(4_900), balance.ready()).await;
    assert!(early.is_err(), "poll_ready must wait for discovery");

    // Fails at the deadline, with the typed error.
    let err = balance
        .ready()
        .await
        .expect_err("must fail once the deadline passes");
    assert!(no_endpoints(&err), "{err}");
    assert_eq!(
        err.downcast_ref::<NoEndpoints>().unwrap().waited(),
        Duration::from_secs(5)
    );
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // Fail fast afterwards, for this clone and for a new one, without waiting again.
    let mut other = balance.clone();
    let before = Instant::now();
    assert!(no_endpoints(
        &balance.ready().await.expect_err("no endpoints")
    ));
    assert!(no_endpoints(
        &other.ready().await.expect_err("no endpoints")
    ));
    assert_eq!(before.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(SeqCst), 0, "no endpoint client was ever created");
}

#[tokio::test(start_paused = true)]
async fn endpoint_arriving_before_deadline_makes_it_ready() {
    let (watch, updates) = Watch::new();
    let mut balance = Balance::builder(RoundRobin::new())
        .ready_timeout(Duration::from_secs(5))
        .build(updates, make_echo(Arc::default()))
        .unwrap();
    let start = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        watch.insert(Endpoint::new(addr(1))).unwrap();
        // Keep the source open.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(watch);
    });
    let svc = balance
        .ready()
        .await
        .expect("ready once an endpoint arrives");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(svc.call(()).await.unwrap(), addr(1));
}

#[tokio::test(start_paused = true)]
async fn losing_every_endpoint_restarts_the_wait_from_that_moment() {
    let (watch, updates) = Watch::new();
    let mut balance = Balance::builder(RoundRobin::new())
        .ready_timeout(Duration::from_secs(5))
        .build(updates, make_echo(Arc::default()))
        .unwrap();
    watch.insert(Endpoint::new(addr(1))).unwrap();
    settle(&balance, 1).await;
    // Long after the balancer was built, the set empties.
    tokio::time::sleep(Duration::from_secs(60)).await;
    balance.ready().await.unwrap();
    watch.remove(addr(1)).unwrap();
    settle(&balance, 0).await;
    let emptied = Instant::now();
    let err = balance.ready().await.expect_err("no endpoints");
    assert!(no_endpoints(&err));
    assert!(
        emptied.elapsed() >= Duration::from_millis(4_990),
        "{:?}",
        emptied.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn removal_stops_new_picks_and_lets_in_flight_requests_finish() {
    let (watch, updates) = Watch::new();
    let release = Arc::new(Notify::new());
    let make = {
        let release = release.clone();
        service_fn(move |ep: Endpoint| {
            let release = release.clone();
            let a = ep.addr();
            async move {
                Ok::<_, Infallible>(service_fn(move |slow: bool| {
                    let release = release.clone();
                    async move {
                        if slow {
                            release.notified().await;
                        }
                        Ok::<_, Infallible>(a)
                    }
                }))
            }
        })
    };
    let mut balance = Balance::builder(RoundRobin::with_seed(0))
        .build(updates, make)
        .unwrap();
    watch
        .reset([Endpoint::new(addr(1)), Endpoint::new(addr(2))])
        .unwrap();
    settle(&balance, 2).await;

    // Clone 0 of a seeded round-robin starts at index 0: addr(1).
    let in_flight = balance.ready().await.unwrap().call(true);
    let in_flight = tokio::spawn(in_flight);
    tokio::task::yield_now().await;
    let stats = balance.endpoints();
    assert_eq!(stats[0].endpoint().addr(), addr(1));
    assert_eq!(stats[0].in_flight(), 1);

    watch.remove(addr(1)).unwrap();
    settle(&balance, 1).await;
    for _ in 0..10 {
        let served = balance.ready().await.unwrap().call(false).await.unwrap();
        assert_eq!(
            served,
            addr(2),
            "a removed endpoint must take no new requests"
        );
    }
    assert!(!in_flight.is_finished());
    release.notify_one();
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        addr(1),
        "in-flight request finishes normally"
    );
    let stats = balance.endpoints();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].requests(), stats[0].in_flight()), (10, 0));
}

#[tokio::test(start_paused = true)]
async fn client_creation_failing_twice_then_succeeding() {
    let (watch, updates) = Watch::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let make = {
        let attempts = attempts.clone();
        service_fn(move |ep: Endpoint| {
            let n = attempts.fetch_add(1, SeqCst);
            async move {
                if n < 2 {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "refused",
                    ))
                } else {
                    Ok(echo(&ep))
                }
            }
        })
    };
    let mut balance = Balance::builder(RoundRobin::new())
        .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .seed(1)
        .build(updates, make)
        .unwrap();
    watch.insert(Endpoint::new(addr(7))).unwrap();

    // After the first failure the endpoint is visible, backing off, and not ready.
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if attempts.load(SeqCst) >= 1 {
            break;
        }
    }
    tokio::task::yield_now().await;
    let stats = balance.endpoints();
    assert_eq!(stats.len(), 1);
    match stats[0].state() {
        EndpointState::Backoff {
            failures,
            last_error,
        } => {
            assert_eq!(*failures, 1);
            assert!(last_error.contains("refused"), "{last_error}");
        }
        other => panic!("expected backoff, got {other:?}"),
    }
    assert_eq!(balance.ready_len(), 0);

    // Backoff (100 ms then 200 ms, jittered down by at most half) and the third attempt works.
    let served = balance.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(served, addr(7));
    assert_eq!(attempts.load(SeqCst), 3);
    assert!(balance.endpoints()[0].is_ready());
}

#[tokio::test(start_paused = true)]
async fn discovery_error_keeps_the_last_good_set() {
    let items: Vec<Result<Update, std::io::Error>> = vec![
        Ok(Update::Reset(vec![
            Endpoint::new(addr(1)),
            Endpoint::new(addr(2)),
        ])),
        Err(std::io::Error::other("registry unreachable")),
    ];
    let source = futures_util::stream::iter(items).chain(futures_util::stream::pending());
    let balance = Balance::builder(RoundRobin::new())
        .build(source, make_echo(Arc::default()))
        .unwrap();
    settle(&balance, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(balance.ready_len(), 2);
}

#[tokio::test(start_paused = true)]
async fn metadata_change_keeps_the_client_and_applies_the_weight() {
    let (watch, updates) = Watch::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut balance = Balance::builder(Weighted::with_seed(0))
        .build(updates, make_echo(calls.clone()))
        .unwrap();
    watch
        .reset([Endpoint::new(addr(1)), Endpoint::new(addr(2))])
        .unwrap();
    settle(&balance, 2).await;
    watch
        .insert(Endpoint::new(addr(2)).with_weight(Weight::new(3).unwrap()))
        .unwrap();
    for _ in 0..100 {
        if balance.endpoints()[1].endpoint().weight().get() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        calls.load(SeqCst),
        2,
        "a weight change must not rebuild the client"
    );
    let mut counts = [0; 2];
    for _ in 0..400 {
        let a = balance.ready().await.unwrap().call(()).await.unwrap();
        counts[usize::from(a.port() - 1)] += 1;
    }
    assert_eq!(counts, [100, 300]);

    // A new expected identity does need a new client.
    watch
        .insert(Endpoint::new(addr(1)).with_identity("spiffe://td/a"))
        .unwrap();
    for _ in 0..100 {
        if calls.load(SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(calls.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_clone_stops_the_driver() {
    let (watch, updates) = Watch::new();
    let balance = Balance::builder(RoundRobin::new())
        .build(updates, make_echo(Arc::default()))
        .unwrap();
    let clone = balance.clone();
    watch.insert(Endpoint::new(addr(1))).unwrap();
    settle(&balance, 1).await;
    drop(balance);
    tokio::task::yield_now().await;
    assert!(!watch.is_closed(), "one clone still alive");
    drop(clone);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        watch.is_closed(),
        "the driver (and its source) must be dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn static_source_and_layer() {
    let layer = Balance::builder(RoundRobin::with_seed(0))
        .into_layer(Static::from_addrs([addr(1), addr(2), addr(3)]))
        .unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(make_echo(Arc::default()));
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(svc.ready().await.unwrap().call(()).await.unwrap().port());
    }
    assert_eq!(seen, [1, 2, 3, 1, 2, 3]);
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_value() {
    let b = Balance::builder(RoundRobin::new());
    let err = b
        .clone()
        .ready_timeout(Duration::ZERO)
        .build(Static::default(), make_echo(Arc::default()))
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroReadyTimeout(Duration::ZERO));
    assert!(err.to_string().contains("0ns"), "{err}");
    let err = b
        .clone()
        .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1))
        .into_layer(Static::default())
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidBackoff { .. }));
    assert!(err.to_string().contains("2s"), "{err}");
    let err = b
        .reconnect_backoff(Duration::ZERO, Duration::from_secs(1))
        .validate()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidBackoff { .. }));
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let err = Balance::builder(RoundRobin::new())
        .build(Static::default(), make_echo(Arc::default()))
        .unwrap_err();
    assert_eq!(err, ConfigError::NoRuntime);
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Balance<RoundRobin, Echo>>();
    send_sync::<Balance<Random, Echo>>();
    send_sync::<Balance<Weighted, Echo>>();
    send_sync::<Balance<WeightedRandom, Echo>>();
    send_sync::<ResponseFuture<Echo, ()>>();
    send_sync::<Builder<Weighted>>();
    send_sync::<BalanceLayer<Weighted, Static>>();
    send_sync::<EndpointStats>();
    send_sync::<NoEndpoints>();
    send_sync::<ConfigError>();
    send_sync::<crate::InvalidWeight>();
    send_sync::<crate::WatchClosed>();
    send_sync::<Watch>();
    send_sync::<crate::discover::WatchUpdates>();
    send_sync::<Static>();
    send_sync::<Endpoint>();
}

#[test]
fn weighted_schedule_limit_is_validated() {
    assert_eq!(
        Weighted::new().max_schedule(0).unwrap_err(),
        ConfigError::InvalidScheduleLimit(0)
    );
    let too_big = Weighted::MAX_SCHEDULE_LIMIT + 1;
    let err = Weighted::new().max_schedule(too_big).unwrap_err();
    assert!(err.to_string().contains(&too_big.to_string()), "{err}");
    assert!(Weighted::new().max_schedule(64).is_ok());
}

mod choices_props {
    use proptest::prelude::*;

    use super::super::choices::{self, MAX_CHOICES};
    use super::super::seed::PickRng;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Two candidates are distinct and in range for any n >= 2.
        #[test]
        fn two_candidates_are_distinct_and_in_range(n in 2usize..100_000, seed: u64, draws in 1usize..64) {
            let mut rng = PickRng::new(seed, 0);
            for _ in 0..draws {
                let (a, b) = choices::two(&mut rng, n);
                prop_assert!(a < n && b < n && a != b, "{a} {b} of {n}");
            }
        }

        /// d candidates are distinct and in range for any d <= n.
        #[test]
        fn d_candidates_are_distinct_and_in_range(n in 2usize..1_000, d in 2usize..=MAX_CHOICES, seed: u64) {
            prop_assume!(d <= n);
            let mut rng = PickRng::new(seed, 1);
            let mut buf = [0; MAX_CHOICES];
            let got = choices::distinct(&mut rng, n, d, &mut buf).to_vec();
            prop_assert_eq!(got.len(), d);
            let mut sorted = got.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), d, "duplicates in {:?}", got);
            prop_assert!(got.iter().all(|&i| i < n));
        }
    }
}

#[test]
fn least_request_choice_count_is_validated() {
    for bad in [0, 1, 11, usize::MAX] {
        assert_eq!(
            LeastRequest::new().choices(bad).unwrap_err(),
            ConfigError::InvalidChoices(bad)
        );
    }
    assert!(LeastRequest::new().choices(10).is_ok());
}

#[tokio::test(start_paused = true)]
async fn p2c_pickers_with_one_endpoint_pick_it_and_prefer_the_idle_one() {
    let (watch, updates) = Watch::new();
    let mut balance = Balance::builder(LeastRequest::with_seed(5).choices(3).unwrap())
        .build(updates, make_echo(Arc::default()))
        .unwrap();
    watch.insert(Endpoint::new(addr(1))).unwrap();
    settle(&balance, 1).await;
    for _ in 0..10 {
        assert_eq!(
            balance.ready().await.unwrap().call(()).await.unwrap(),
            addr(1)
        );
    }
    // With two endpoints and requests held in flight on one, least-request picks the other.
    watch.insert(Endpoint::new(addr(2))).unwrap();
    settle(&balance, 2).await;
    let held: Vec<_> = (0..3).map(|_| balance.call(())).collect();
    let stats = balance.endpoints();
    let busy = if stats[0].in_flight() > stats[1].in_flight() {
        0
    } else {
        1
    };
    assert!(stats[busy].in_flight() >= 2);
    let idle = stats[1 - busy].endpoint().addr();
    assert_eq!(balance.ready().await.unwrap().call(()).await.unwrap(), idle);
    drop(held);
}

/// A client that counts how many of its copies were dropped.
#[derive(Debug)]
struct Counted(SocketAddr, Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted(self.0, self.1.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}

impl Service<()> for Counted {
    type Response = SocketAddr;
    type Error = Infallible;
    type Future = Ready<Result<SocketAddr, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok(self.0))
    }
}

/// A balancer from `builder` over two endpoints whose clients count their drops, and a second
/// clone; both clones have sent a request, so both cache the two-endpoint snapshot.
async fn two_clones_on_two_endpoints(
    builder: Builder<RoundRobin>,
) -> (
    Watch,
    Arc<AtomicUsize>,
    Balance<RoundRobin, Counted>,
    Balance<RoundRobin, Counted>,
) {
    let (watch, updates) = Watch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let make = {
        let drops = drops.clone();
        service_fn(move |ep: Endpoint| {
            let drops = drops.clone();
            async move { Ok::<_, Infallible>(Counted(ep.addr(), drops)) }
        })
    };
    let mut balance = builder.build(updates, make).unwrap();
    let mut idle = balance.clone();
    watch
        .reset([Endpoint::new(addr(1)), Endpoint::new(addr(2))])
        .unwrap();
    settle(&balance, 2).await;
    idle.ready().await.unwrap().call(()).await.unwrap();
    balance.ready().await.unwrap().call(()).await.unwrap();
    (watch, drops, balance, idle)
}

/// Events more frequent than the reaping interval (here health checks every 100 ms) must
/// not put the reaping off: its deadline is fixed when a snapshot is retired.
#[tokio::test(start_paused = true)]
async fn frequent_driver_events_do_not_delay_dropping_retired_snapshots() {
    let probe = service_fn(|_: Endpoint| async { Ok::<_, Infallible>(()) });
    let check = crate::health::HealthCheck::new(Duration::from_millis(100)).unwrap();
    let builder = Balance::builder(RoundRobin::with_seed(0)).health_check(check, probe);
    let (watch, drops, mut balance, mut idle) = two_clones_on_two_endpoints(builder).await;
    watch.remove(addr(1)).unwrap();
    settle(&balance, 1).await;
    balance.ready().await.unwrap().call(()).await.unwrap();
    idle.ready().await.unwrap().call(()).await.unwrap();
    let before = drops.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        drops.load(SeqCst) >= before + 2,
        "the retired snapshot outlived the reaping interval"
    );
}

#[tokio::test(start_paused = true)]
async fn replaced_snapshots_are_dropped_by_the_driver_not_by_requests() {
    let builder = Balance::builder(RoundRobin::with_seed(0));
    let (watch, drops, mut balance, mut idle) = two_clones_on_two_endpoints(builder).await;

    watch.remove(addr(1)).unwrap();
    settle(&balance, 1).await;
    balance.ready().await.unwrap().call(()).await.unwrap();
    let before = drops.load(SeqCst);
    // The idle clone lets go of the old snapshot on its next request; the driver still holds
    // it, so no endpoint client is dropped on this request's task except the request's own
    // client clone. Tearing the old snapshot down here would drop two more.
    assert_eq!(idle.ready().await.unwrap().call(()).await.unwrap(), addr(2));
    assert_eq!(
        drops.load(SeqCst),
        before + 1,
        "teardown ran on the request path"
    );
    // The driver drops it soon after.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        drops.load(SeqCst),
        before + 3,
        "the retired snapshot was never dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn call_avoiding_tries_every_endpoint_once_before_repeating() {
    let calls = Arc::new(AtomicUsize::new(0));
    let addrs: Vec<SocketAddr> = (1..=3).map(addr).collect();
    // A picker that always names the same endpoint (as a hash picker does for one key) and
    // one that spreads (least-request): both must move on to untried endpoints.
    let mut fixed = Balance::builder(FirstOnly)
        .build(Static::from_addrs(addrs.clone()), make_echo(calls.clone()))
        .unwrap();
    let mut spread = Balance::builder(LeastRequest::with_seed(3))
        .build(Static::from_addrs(addrs.clone()), make_echo(calls))
        .unwrap();
    settle(&fixed, 3).await;
    settle(&spread, 3).await;
    for balance in [&mut fixed as &mut dyn AvoidingEcho, &mut spread] {
        let mut attempted = Attempted::new();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(balance.send_avoiding(&mut attempted).await);
        }
        seen.sort();
        assert_eq!(seen, addrs, "each endpoint once");
        assert_eq!(attempted.len(), 3);
        // Everything tried: a fourth attempt still goes somewhere.
        let again = balance.send_avoiding(&mut attempted).await;
        assert!(addrs.contains(&again));
        assert_eq!(attempted.len(), 4);
    }
    // The plain path is untouched: the fixed picker keeps its choice.
    let first = fixed.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(fixed.ready().await.unwrap().call(()).await.unwrap(), first);
}

/// Always picks index 0.
#[derive(Debug)]
struct FirstOnly;

impl Pick for FirstOnly {
    type Table = ();
    type Cursor = ();
    fn build(&self, _: &[EndpointView<'_>]) {}
    fn cursor(&self, _: u64) {}
}

impl<Req> PickRequest<Req> for FirstOnly {
    fn pick(&self, _: &(), _: &mut (), loads: &Loads<'_>, _: &Req) -> Option<usize> {
        (!loads.is_empty()).then_some(0)
    }
}

trait AvoidingEcho {
    fn send_avoiding<'a>(
        &'a mut self,
        attempted: &'a mut Attempted,
    ) -> futures_util::future::BoxFuture<'a, SocketAddr>;
}

impl<P: PickRequest<()>> AvoidingEcho for Balance<P, Echo> {
    fn send_avoiding<'a>(
        &'a mut self,
        attempted: &'a mut Attempted,
    ) -> futures_util::future::BoxFuture<'a, SocketAddr> {
        Box::pin(async move {
            self.ready().await.unwrap();
            self.call_avoiding((), attempted).await.unwrap()
        })
    }
}
