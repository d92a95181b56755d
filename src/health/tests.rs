use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::balance::{Balance, Builder, EndpointState, EndpointStats, RoundRobin};
use crate::discover::Static;
use crate::endpoint::Endpoint;
use crate::error::{BoxError, ConfigError};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Which endpoints fail their requests (and, separately, their probes).
#[derive(Clone, Default)]
struct Faults {
    requests: Arc<Mutex<HashMap<SocketAddr, bool>>>,
    probes: Arc<Mutex<HashMap<SocketAddr, bool>>>,
}

impl Faults {
    fn fail(&self, a: SocketAddr, failing: bool) {
        self.requests.lock().unwrap().insert(a, failing);
    }

    fn fail_probe(&self, a: SocketAddr, failing: bool) {
        self.probes.lock().unwrap().insert(a, failing);
    }

    fn failing(&self, a: SocketAddr) -> bool {
        self.requests
            .lock()
            .unwrap()
            .get(&a)
            .copied()
            .unwrap_or(false)
    }

    fn probe_failing(&self, a: SocketAddr) -> bool {
        self.probes
            .lock()
            .unwrap()
            .get(&a)
            .copied()
            .unwrap_or(false)
    }

    /// A MakeService whose clients answer with their address, or fail while marked failing.
    fn make(
        &self,
    ) -> impl Service<
        Endpoint,
        Response = impl Service<(), Response = SocketAddr, Error = BoxError, Future: Send>
                   + Clone
                   + Send
                   + Sync
                   + 'static,
        Error = BoxError,
        Future: Send,
    > + Send
    + 'static {
        let faults = self.clone();
        service_fn(move |ep: Endpoint| {
            let faults = faults.clone();
            async move {
                let a = ep.addr();
                Ok::<_, BoxError>(service_fn(move |()| {
                    let failing = faults.failing(a);
                    async move {
                        if failing {
                            Err::<SocketAddr, BoxError>(format!("{a} is down").into())
                        } else {
                            Ok(a)
                        }
                    }
                }))
            }
        })
    }

    fn probe(
        &self,
    ) -> impl Service<Endpoint, Response = (), Error = BoxError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static {
        let faults = self.clone();
        service_fn(move |ep: Endpoint| {
            let failing = faults.probe_failing(ep.addr());
            async move {
                if failing {
                    Err::<(), BoxError>("probe refused".into())
                } else {
                    Ok(())
                }
            }
        })
    }
}

fn ports(n: u16) -> Vec<SocketAddr> {
    (1..=n).map(addr).collect()
}

/// Sends `n` requests one by one, letting the driver run between them; returns how many each
/// endpoint served (successfully or not).
async fn send<S>(balance: &mut S, n: usize, faults: &Faults) -> HashMap<SocketAddr, usize>
where
    S: Service<(), Response = SocketAddr, Error = BoxError>,
{
    let _ = faults;
    let mut served = HashMap::new();
    for _ in 0..n {
        let result = balance.ready().await.unwrap().call(()).await;
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                let text = e.to_string();
                text.split(' ').next().unwrap().parse().unwrap()
            }
        };
        *served.entry(a).or_insert(0) += 1;
        tokio::task::yield_now().await;
    }
    served
}

fn stats_of(stats: &[EndpointStats], a: SocketAddr) -> &EndpointStats {
    stats.iter().find(|s| s.endpoint().addr() == a).unwrap()
}

fn ejected(stats: &[EndpointStats]) -> usize {
    stats
        .iter()
        .filter(|s| matches!(s.state(), EndpointState::Ejected { .. }))
        .count()
}

async fn settle(n: usize, endpoints: impl Fn() -> Vec<EndpointStats>) {
    for _ in 0..1000 {
        if endpoints().iter().filter(|s| s.in_service()).count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never reached {n} endpoints in service: {:?}", endpoints());
}

fn builder() -> Builder<RoundRobin> {
    Balance::builder(RoundRobin::with_seed(1))
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_for_a_growing_time_then_return() {
    let faults = Faults::default();
    let bad = addr(1);
    faults.fail(bad, true);
    let detection = OutlierDetection::new()
        .max_ejection_percent(50)
        .unwrap()
        .base_ejection_time(Duration::from_secs(30))
        .unwrap();
    let mut balance = builder()
        .outlier_detection(detection)
        .build(Static::from_addrs(ports(4)), faults.make())
        .unwrap();
    settle(4, || balance.endpoints()).await;

    // Round-robin over 4: the bad endpoint fails every 4th request; its 5th failure ejects it.
    let served = send(&mut balance, 20, &faults).await;
    assert_eq!(served[&bad], 5, "{served:?}");
    tokio::task::yield_now().await;
    let stats = balance.endpoints();
    let s = stats_of(&stats, bad);
    assert!(
        matches!(
            s.state(),
            EndpointState::Ejected {
                multiplier: 1,
                reason: EjectReason::ConsecutiveFailures { failures: 5 },
                ..
            }
        ),
        "{s:?}"
    );
    assert!(!s.in_service());
    assert_eq!(s.ejections(), 1);
    assert_eq!(s.errors(), 5);

    // Ejected: no more requests reach it.
    let served = send(&mut balance, 30, &faults).await;
    assert!(!served.contains_key(&bad), "{served:?}");

    // Back after 30 s, with a clean run: it takes traffic and, still failing, is ejected
    // again at its 5th new failure, this time for 60 s.
    tokio::time::sleep(Duration::from_secs(30)).await;
    settle(4, || balance.endpoints()).await;
    let served = send(&mut balance, 40, &faults).await;
    assert_eq!(served[&bad], 5, "{served:?}");
    tokio::task::yield_now().await;
    let stats = balance.endpoints();
    let EndpointState::Ejected {
        until, multiplier, ..
    } = stats_of(&stats, bad).state().clone()
    else {
        panic!("not ejected: {stats:?}");
    };
    assert_eq!(multiplier, 2);
    let left = until - tokio::time::Instant::now();
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(
        balance
            .endpoints()
            .iter()
            .filter(|s| s.in_service())
            .count(),
        3
    );
    tokio::time::sleep(Duration::from_secs(16)).await;
    settle(4, || balance.endpoints()).await;

    // Healthy again: a success ends the run, and the multiplier decays with time in service.
    faults.fail(bad, false);
    let served = send(&mut balance, 40, &faults).await;
    assert_eq!(served[&bad], 10);
    assert_eq!(stats_of(&balance.endpoints(), bad).ejections(), 2);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_max_share_ejected() {
    let faults = Faults::default();
    for p in 1..=3 {
        faults.fail(addr(p), true);
    }
    // 10 endpoints at the default 10 %: one ejection at a time.
    let mut balance = builder()
        .outlier_detection(OutlierDetection::new())
        .build(Static::from_addrs(ports(10)), faults.make())
        .unwrap();
    settle(10, || balance.endpoints()).await;
    send(&mut balance, 200, &faults).await;
    let stats = balance.endpoints();
    assert_eq!(ejected(&stats), 1, "{stats:?}");
    // The other two failing endpoints kept their runs and keep failing.
    let still = stats
        .iter()
        .filter(|s| s.in_service() && s.endpoint().addr().port() <= 3)
        .count();
    assert_eq!(still, 2);

    // At 20 %, two.
    let mut balance = builder()
        .outlier_detection(OutlierDetection::new().max_ejection_percent(20).unwrap())
        .build(Static::from_addrs(ports(10)), faults.make())
        .unwrap();
    settle(10, || balance.endpoints()).await;
    send(&mut balance, 200, &faults).await;
    assert_eq!(ejected(&balance.endpoints()), 2);

    // At 0 %, still one: at least one endpoint may always be ejected.
    let mut balance = builder()
        .outlier_detection(OutlierDetection::new().max_ejection_percent(0).unwrap())
        .build(Static::from_addrs(ports(10)), faults.make())
        .unwrap();
    settle(10, || balance.endpoints()).await;
    send(&mut balance, 200, &faults).await;
    assert_eq!(ejected(&balance.endpoints()), 1);
}

#[tokio::test(start_paused = true)]
async fn below_the_panic_threshold_every_endpoint_serves() {
    let faults = Faults::default();
    for p in 1..=3 {
        faults.fail(addr(p), true);
    }
    let detection = OutlierDetection::new()
        .max_ejection_percent(100)
        .unwrap()
        .consecutive_failures(2)
        .unwrap();
    let mut balance = builder()
        .outlier_detection(detection.clone())
        .build(Static::from_addrs(ports(4)), faults.make())
        .unwrap();
    settle(4, || balance.endpoints()).await;
    // Two of four ejected leaves 50 %: not below the threshold, so they stay out.
    faults.fail(addr(3), false);
    send(&mut balance, 40, &faults).await;
    let stats = balance.endpoints();
    assert_eq!(ejected(&stats), 2, "{stats:?}");
    assert_eq!(stats.iter().filter(|s| s.in_service()).count(), 2);

    // A third failure streak: 25 % healthy is below 50 %: panic, all four serve again, and the
    // ejected ones still show as ejected.
    faults.fail(addr(3), true);
    send(&mut balance, 40, &faults).await;
    let stats = balance.endpoints();
    assert_eq!(ejected(&stats), 3, "{stats:?}");
    assert_eq!(stats.iter().filter(|s| s.in_service()).count(), 4);
    let served = send(&mut balance, 8, &faults).await;
    assert_eq!(served.len(), 4, "{served:?}");

    // Panic mode off (threshold 0): ejected endpoints stay out even when all are.
    let mut balance = builder()
        .outlier_detection(detection)
        .panic_threshold(0)
        .build(Static::from_addrs(ports(4)), faults.make())
        .unwrap();
    settle(4, || balance.endpoints()).await;
    send(&mut balance, 40, &faults).await;
    let stats = balance.endpoints();
    assert_eq!(
        stats.iter().filter(|s| s.in_service()).count(),
        1,
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_ejects_with_enough_requests_only() {
    let faults = Faults::default();
    let detection = OutlierDetection::new()
        .without_consecutive_failures()
        .failure_rate(FailureRate::new(50, 20).unwrap())
        .interval(Duration::from_secs(10))
        .unwrap()
        .max_ejection_percent(50)
        .unwrap();
    let mut balance = builder()
        .outlier_detection(detection)
        .build(Static::from_addrs(ports(2)), faults.make())
        .unwrap();
    settle(2, || balance.endpoints()).await;
    let bad = addr(1);
    // 10 requests each, all of bad's failing: below the minimum of 20, no ejection.
    faults.fail(bad, true);
    send(&mut balance, 20, &faults).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(ejected(&balance.endpoints()), 0);
    // 30 each, two in three of bad's failing: 20 of 30 is at least 50 %: ejected at the
    // interval's end.
    for i in 0..60 {
        faults.fail(bad, i % 6 != 0);
        send(&mut balance, 1, &faults).await;
    }
    assert_eq!(
        ejected(&balance.endpoints()),
        0,
        "only at the interval's end"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stats = balance.endpoints();
    let s = stats_of(&stats, bad);
    assert!(
        matches!(
            s.state(),
            EndpointState::Ejected {
                reason: EjectReason::FailureRate {
                    failures: 20,
                    requests: 30
                },
                ..
            }
        ),
        "{s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn active_checks_take_out_and_return_endpoints() {
    let faults = Faults::default();
    let sick = addr(2);
    let check = HealthCheck::new(Duration::from_secs(1))
        .and_then(|c| c.timeout(Duration::from_millis(100)))
        .and_then(|c| c.unhealthy_threshold(3))
        .and_then(|c| c.healthy_threshold(2))
        .unwrap();
    let mut balance = builder()
        .health_check(check, faults.probe())
        .build(Static::from_addrs(ports(3)), faults.make())
        .unwrap();
    settle(3, || balance.endpoints()).await;
    faults.fail_probe(sick, true);
    // Probes run within 0.1 s of the client, then 0.9 to 1 s apart: by 1.75 s two have
    // failed, and the third runs between 1.8 and 2.1 s.
    tokio::time::sleep(Duration::from_millis(1750)).await;
    assert!(stats_of(&balance.endpoints(), sick).in_service());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = balance.endpoints();
    assert!(
        matches!(
            stats_of(&stats, sick).state(),
            EndpointState::Unhealthy {
                failed_checks: 3,
                ..
            }
        ),
        "{stats:?}"
    );
    let served = send(&mut balance, 12, &faults).await;
    assert!(!served.contains_key(&sick));
    // Passing again: one pass within 0.85 s is not enough; two within 2.1 s are.
    faults.fail_probe(sick, false);
    tokio::time::sleep(Duration::from_millis(850)).await;
    assert!(!stats_of(&balance.endpoints(), sick).in_service());
    tokio::time::sleep(Duration::from_millis(1250)).await;
    settle(3, || balance.endpoints()).await;
    assert!(stats_of(&balance.endpoints(), sick).is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_counts_as_failed() {
    let faults = Faults::default();
    let slow = service_fn(|_: Endpoint| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<(), BoxError>(())
    });
    let check = HealthCheck::new(Duration::from_secs(1))
        .and_then(|c| c.timeout(Duration::from_millis(200)))
        .and_then(|c| c.unhealthy_threshold(1))
        .unwrap();
    let balance = builder()
        .health_check(check, slow)
        .panic_threshold(0)
        .build(Static::from_addrs(ports(1)), faults.make())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = balance.endpoints();
    let EndpointState::Unhealthy { last_error, .. } = stats[0].state() else {
        panic!("{stats:?}");
    };
    assert!(last_error.contains("timed out after 200ms"), "{last_error}");
}

#[tokio::test(start_paused = true)]
async fn passing_checks_end_an_ejection_early() {
    let faults = Faults::default();
    let bad = addr(1);
    faults.fail(bad, true);
    let check = HealthCheck::new(Duration::from_secs(1))
        .and_then(|c| c.healthy_threshold(2))
        .unwrap();
    let mut balance = builder()
        .outlier_detection(OutlierDetection::new().max_ejection_percent(50).unwrap())
        .health_check(check, faults.probe())
        .build(Static::from_addrs(ports(2)), faults.make())
        .unwrap();
    settle(2, || balance.endpoints()).await;
    send(&mut balance, 10, &faults).await;
    assert_eq!(ejected(&balance.endpoints()), 1);
    // Its probes pass (the request path was what broke, now fixed): back within two
    // intervals instead of 30 s.
    faults.fail(bad, false);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stats = balance.endpoints();
    assert!(stats_of(&stats, bad).is_ready(), "{stats:?}");
    assert_eq!(stats_of(&stats, bad).ejections(), 1);
}

#[cfg(feature = "http")]
#[test]
fn http_status_classifier_counts_5xx_and_grpc_unavailable() {
    let ok = http::Response::new(());
    let mut bad = http::Response::new(());
    *bad.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    let mut not_found = http::Response::new(());
    *not_found.status_mut() = http::StatusCode::NOT_FOUND;
    let mut grpc = http::Response::new(());
    grpc.headers_mut()
        .insert("grpc-status", http::HeaderValue::from_static("14"));
    let mut grpc_ok = http::Response::new(());
    grpc_ok
        .headers_mut()
        .insert("grpc-status", http::HeaderValue::from_static("0"));
    let err: BoxError = "reset".into();
    assert_eq!(HttpStatus.classify(Ok(&ok)), Outcome::Success);
    assert_eq!(HttpStatus.classify(Ok(&not_found)), Outcome::Success);
    assert_eq!(HttpStatus.classify(Ok(&grpc_ok)), Outcome::Success);
    assert_eq!(HttpStatus.classify(Ok(&bad)), Outcome::Failure);
    assert_eq!(HttpStatus.classify(Ok(&grpc)), Outcome::Failure);
    assert_eq!(
        Classify::<http::Response<()>>::classify(&HttpStatus, Err(&err)),
        Outcome::Failure
    );
    assert_eq!(
        Classify::<u8>::classify(&TransportErrors, Err(&err)),
        Outcome::Failure
    );
}

#[test]
fn bad_settings_are_refused_naming_the_value() {
    let e = OutlierDetection::new().consecutive_failures(0).unwrap_err();
    assert!(e.to_string().contains("consecutive_failures 0"), "{e}");
    let e = OutlierDetection::new()
        .max_ejection_percent(101)
        .unwrap_err();
    assert!(e.to_string().contains("101"), "{e}");
    let e = FailureRate::new(0, 10).unwrap_err();
    assert!(e.to_string().contains("failure_rate.percent 0"), "{e}");
    let e = OutlierDetection::new()
        .base_ejection_time(Duration::ZERO)
        .unwrap_err();
    assert!(e.to_string().contains("base_ejection_time 0ns"), "{e}");
    let e = HealthCheck::new(Duration::from_secs(1))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .unwrap_err();
    assert!(e.to_string().contains("health_check.timeout 2s"), "{e}");
    let e = HealthCheck::new(Duration::from_millis(5)).unwrap_err();
    assert!(e.to_string().contains("health_check.interval 5ms"), "{e}");
    let e = HealthCheck::new(Duration::from_secs(1))
        .unwrap()
        .unhealthy_threshold(0)
        .unwrap_err();
    assert!(e.to_string().contains("unhealthy_threshold 0"), "{e}");
    let e = OutlierDetection::new()
        .interval(Duration::ZERO)
        .unwrap_err();
    assert!(e.to_string().contains("0ns"), "{e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let faults = Faults::default();
        let e = builder()
            .panic_threshold(150)
            .build(Static::from_addrs(ports(1)), faults.make())
            .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidHealth { .. }), "{e}");
        assert!(e.to_string().contains("150"), "{e}");
        let e = builder()
            .outlier_detection(
                OutlierDetection::new()
                    .max_ejection_time(Duration::from_secs(1))
                    .unwrap(),
            )
            .build(Static::from_addrs(ports(1)), faults.make())
            .unwrap_err();
        assert!(e.to_string().contains("base_ejection_time 30s"), "{e}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the outcomes, no more than the bound is ejected at any moment (for a fixed
    /// endpoint set: the bound is checked at ejection time, see `OutlierDetection`).
    #[test]
    fn ejections_never_exceed_the_bound(
        n in 1u16..12,
        percent in 0u32..=100,
        outcomes in proptest::collection::vec((0u16..12, any::<bool>(), 0u64..40), 1..150),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let faults = Faults::default();
            let detection = OutlierDetection::new()
                .consecutive_failures(2)
                .unwrap()
                .base_ejection_time(Duration::from_secs(1))
                .unwrap()
                .max_ejection_percent(percent)
                .unwrap();
            let mut balance = builder()
                .outlier_detection(detection)
                .build(Static::from_addrs(ports(n)), faults.make())
                .unwrap();
            settle(usize::from(n), || balance.endpoints()).await;
            let bound = (usize::from(n) * percent as usize / 100).max(1);
            for (target, failing, pause_ms) in outcomes {
                faults.fail(addr(target % n + 1), failing);
                send(&mut balance, 1, &faults).await;
                tokio::time::sleep(Duration::from_millis(pause_ms * 25)).await;
                let now_ejected = ejected(&balance.endpoints());
                prop_assert!(now_ejected <= bound, "{now_ejected} ejected > bound {bound}");
            }
            Ok(())
        })?;
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_abandoned_by_a_per_try_timeout_count_as_failures() {
    use crate::retry::{AssumeIdempotent, Budget, RetryLayer};
    use tower::Layer;

    let stalled = addr(1);
    let make = service_fn(move |ep: Endpoint| async move {
        let a = ep.addr();
        Ok::<_, BoxError>(service_fn(move |()| async move {
            if a == stalled {
                std::future::pending::<()>().await;
            }
            Ok::<SocketAddr, BoxError>(a)
        }))
    });
    let balance = builder()
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(3)
                .unwrap()
                .max_ejection_percent(50)
                .unwrap(),
        )
        .build(Static::from_addrs(ports(3)), make)
        .unwrap();
    settle(3, || balance.endpoints()).await;
    let mut retry = RetryLayer::new(AssumeIdempotent::new())
        .budget(Arc::new(Budget::default()))
        .per_try_timeout(Duration::from_millis(100))
        .unwrap()
        .layer(balance.clone());
    for _ in 0..12 {
        let answer = retry.ready().await.unwrap().call(()).await.unwrap();
        assert_ne!(answer, stalled);
        tokio::task::yield_now().await;
    }
    let stats = balance.endpoints();
    let s = stats_of(&stats, stalled);
    assert!(
        matches!(
            s.state(),
            EndpointState::Ejected {
                reason: EjectReason::ConsecutiveFailures { failures: 3 },
                ..
            }
        ),
        "{s:?}"
    );
    // Abandoned attempts are no longer in flight.
    assert_eq!(s.in_flight(), 0);
}
