//! The `metrics` feature: exact counts through a `DebuggingRecorder`.
//!
//! Each test installs its own recorder as the thread's local recorder around a current-thread
//! runtime (`with_local_recorder(.., || runtime.block_on(..))`), so the balancer's driver,
//! a task spawned on that runtime, records into it too, and tests running in parallel see only
//! their own metrics. The recorder's snapshots consume what they read (counters and gauges go
//! back to 0), so [`Recorded`] adds each snapshot up: exact for counters and for the gauges
//! this crate keeps by increments, and the RTT gauge keeps its last value.
#![cfg(feature = "metrics")]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::oneshot;
use tower::{Service, ServiceExt, service_fn};
use tower_mesh::BoxError;
use tower_mesh::balance::{Balance, PeakEwma, RoundRobin};
use tower_mesh::discover::{Static, Watch};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::health::{HealthCheck, OutlierDetection};
use tower_mesh::metrics::{
    BALANCER_ENDPOINT_CHANGES, BALANCER_ENDPOINTS, BALANCER_PANIC, DEFAULT_INTERVAL,
    ENDPOINT_CONNECT_FAILURES, ENDPOINT_EJECTIONS, ENDPOINT_ERRORS, ENDPOINT_HEALTH_TRANSITIONS,
    ENDPOINT_IN_FLIGHT, ENDPOINT_IN_SERVICE, ENDPOINT_REQUESTS, ENDPOINT_RTT, InvalidInterval,
};

/// What a test endpoint does with a request.
enum Req {
    /// Answer at once: success or failure.
    Answer(bool),
    /// Answer when told, with the value sent (a dropped sender is a failure).
    Wait(oneshot::Receiver<bool>),
    /// Succeed after this long.
    Sleep(Duration),
}

/// The error of a test endpoint: which one failed.
#[derive(Debug)]
struct Failed(u16);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "endpoint {} failed", self.0)
    }
}

impl std::error::Error for Failed {}

/// A client answering with its endpoint's port, or failing with [`Failed`].
fn client(
    port: u16,
) -> impl Service<Req, Response = u16, Error = Failed, Future: Send> + Clone + Send + Sync {
    service_fn(move |req: Req| async move {
        let ok = match req {
            Req::Answer(ok) => ok,
            Req::Wait(rx) => rx.await.unwrap_or(false),
            Req::Sleep(d) => {
                tokio::time::sleep(d).await;
                true
            }
        };
        if ok { Ok(port) } else { Err(Failed(port)) }
    })
}

/// A MakeService of [`client`]s.
fn make() -> impl Service<
    Endpoint,
    Response = impl Service<Req, Response = u16, Error = Failed, Future: Send>
               + Clone
               + Send
               + Sync
               + 'static,
    Error = Infallible,
    Future: Send,
> + Send
+ 'static {
    service_fn(|ep: Endpoint| async move { Ok::<_, Infallible>(client(ep.addr().port())) })
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs `test` on a paused current-thread runtime with a fresh recorder as the local one.
fn with_recorder<F, Fut>(test: F)
where
    F: FnOnce(Recorded) -> Fut,
    Fut: Future<Output = ()>,
{
    let recorder = DebuggingRecorder::new();
    let recorded = Recorded {
        snapshotter: recorder.snapshotter(),
        values: HashMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(recorded)));
}

/// Every value the recorder saw, added up over its snapshots.
struct Recorded {
    snapshotter: Snapshotter,
    values: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Recorded {
    /// The value of `name` with exactly `labels`; `None` if never registered.
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let sum = self
                .values
                .entry((key.name().to_owned(), labels))
                .or_insert(0.0);
            match value {
                DebugValue::Counter(n) => *sum += n as f64,
                DebugValue::Gauge(g) if key.name() == ENDPOINT_RTT => {
                    if g.0 != 0.0 {
                        *sum = g.0;
                    }
                }
                DebugValue::Gauge(g) => *sum += g.0,
                DebugValue::Histogram(_) => panic!("no histograms expected: {key:?}"),
            }
        }
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        self.values.get(&(name.to_owned(), wanted)).copied()
    }

    /// Like [`get`](Self::get) for an endpoint's series.
    fn endpoint(&mut self, name: &str, balancer: &str, port: u16) -> Option<f64> {
        let endpoint = addr(port).to_string();
        self.get(name, &[("balancer", balancer), ("endpoint", &endpoint)])
    }

    /// The balancer's endpoints in `state`.
    fn in_state(&mut self, balancer: &str, state: &str) -> Option<f64> {
        self.get(
            BALANCER_ENDPOINTS,
            &[("balancer", balancer), ("state", state)],
        )
    }
}

/// Waits past the driver's next publication (and settles whatever was ready to run).
async fn publication() {
    tokio::time::sleep(DEFAULT_INTERVAL + Duration::from_millis(1)).await;
}

/// Lets the driver run until `n` endpoints are ready.
async fn settle<P: tower_mesh::balance::Pick, S>(balance: &Balance<P, S>, n: usize) {
    for _ in 0..100 {
        if balance.ready_len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never {n} ready endpoints, has {}", balance.ready_len());
}

#[test]
fn requests_and_errors_per_endpoint_are_exact_and_published_each_interval() {
    with_recorder(|mut rec| async move {
        let balance = Balance::builder(RoundRobin::new())
            .name("exact")
            .build(Static::from_addrs([addr(9001), addr(9002)]), make())
            .expect("build");
        settle(&balance, 2).await;
        let mut sent: HashMap<u16, (u64, u64)> = HashMap::new();
        // One clone: its round-robin cursor alternates between the two endpoints.
        let mut caller = balance.clone();
        for i in 0..25u32 {
            let ok = i % 3 != 0;
            let answer = caller.ready().await.expect("ready").call(Req::Answer(ok));
            let port = match answer.await {
                Ok(port) => port,
                Err(e) => e.downcast_ref::<Failed>().expect("endpoint failure").0,
            };
            let counts = sent.entry(port).or_default();
            counts.0 += 1;
            counts.1 += u64::from(!ok);
        }
        assert_eq!(sent.len(), 2, "both endpoints served: {sent:?}");
        assert_eq!(sent.values().map(|c| c.0).sum::<u64>(), 25);

        // Nothing is published before the first interval has passed.
        assert_eq!(rec.endpoint(ENDPOINT_REQUESTS, "exact", 9001), Some(0.0));
        publication().await;
        for (port, (requests, errors)) in &sent {
            assert_eq!(
                rec.endpoint(ENDPOINT_REQUESTS, "exact", *port),
                Some(*requests as f64)
            );
            assert_eq!(
                rec.endpoint(ENDPOINT_ERRORS, "exact", *port),
                Some(*errors as f64)
            );
            assert_eq!(rec.endpoint(ENDPOINT_IN_FLIGHT, "exact", *port), Some(0.0));
            assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "exact", *port), Some(1.0));
        }
        // The same numbers as the no-dependency snapshot.
        for stats in balance.endpoints() {
            let port = stats.endpoint().addr().port();
            assert_eq!(sent[&port], (stats.requests(), stats.errors()));
        }
        assert_eq!(rec.in_state("exact", "ready"), Some(2.0));
        assert_eq!(rec.in_state("exact", "connecting"), Some(0.0));
        assert_eq!(
            rec.get(
                BALANCER_ENDPOINT_CHANGES,
                &[("balancer", "exact"), ("change", "added")]
            ),
            Some(2.0)
        );
        // A round-robin picker does not time requests: no RTT series.
        assert_eq!(rec.endpoint(ENDPOINT_RTT, "exact", 9001), None);

        // More traffic: the next publication adds exactly the difference.
        for _ in 0..4 {
            balance
                .clone()
                .oneshot(Req::Answer(false))
                .await
                .unwrap_err();
        }
        publication().await;
        let total: f64 = [9001, 9002]
            .iter()
            .map(|p| rec.endpoint(ENDPOINT_ERRORS, "exact", *p).expect("series"))
            .sum();
        let before: u64 = sent.values().map(|c| c.1).sum();
        assert_eq!(total, (before + 4) as f64);

        // Dropping the balancer (every clone) takes back its gauges.
        drop((balance, caller));
        tokio::task::yield_now().await;
        assert_eq!(rec.in_state("exact", "ready"), Some(0.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "exact", 9001), Some(0.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "exact", 9002), Some(0.0));
    });
}

#[test]
fn in_flight_rises_and_returns_to_zero() {
    with_recorder(|mut rec| async move {
        let balance = Balance::builder(RoundRobin::new())
            .name("in-flight")
            .metrics_interval(Duration::from_millis(250))
            .expect("interval")
            .build(Static::from_addrs([addr(9001)]), make())
            .expect("build");
        settle(&balance, 1).await;
        let mut gates = Vec::new();
        let mut calls = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            gates.push(tx);
            calls.push(tokio::spawn(balance.clone().oneshot(Req::Wait(rx))));
        }
        tokio::time::sleep(Duration::from_millis(260)).await;
        assert_eq!(
            rec.endpoint(ENDPOINT_IN_FLIGHT, "in-flight", 9001),
            Some(3.0)
        );
        assert_eq!(
            rec.endpoint(ENDPOINT_REQUESTS, "in-flight", 9001),
            Some(3.0)
        );
        // Two succeed, one fails.
        for (i, gate) in gates.into_iter().enumerate() {
            gate.send(i != 1).expect("call waiting");
        }
        let mut failures = 0;
        for call in calls {
            failures += usize::from(call.await.expect("join").is_err());
        }
        assert_eq!(failures, 1);
        tokio::time::sleep(Duration::from_millis(260)).await;
        assert_eq!(
            rec.endpoint(ENDPOINT_IN_FLIGHT, "in-flight", 9001),
            Some(0.0)
        );
        assert_eq!(rec.endpoint(ENDPOINT_ERRORS, "in-flight", 9001), Some(1.0));
    });
}

#[test]
fn an_ejection_is_counted_when_it_happens() {
    with_recorder(|mut rec| async move {
        let detection = OutlierDetection::new()
            .consecutive_failures(3)
            .expect("threshold");
        let balance = Balance::builder(RoundRobin::new())
            .name("eject")
            .outlier_detection(detection)
            .build(Static::from_addrs([addr(9001), addr(9002)]), make())
            .expect("build");
        settle(&balance, 2).await;
        // Every request fails; the first endpoint to fail three times in a row is ejected (at
        // most one of two: the max ejection share).
        while balance.ready_len() == 2 {
            let _ = balance.clone().oneshot(Req::Answer(false)).await;
            tokio::task::yield_now().await;
        }
        let ejected = balance
            .endpoints()
            .into_iter()
            .find(|s| !s.in_service())
            .expect("an ejected endpoint");
        let port = ejected.endpoint().addr().port();
        let other = if port == 9001 { 9002 } else { 9001 };
        let endpoint = addr(port).to_string();
        let ejections = |rec: &mut Recorded, port: u16, reason: &str| {
            let endpoint = addr(port).to_string();
            rec.get(
                ENDPOINT_EJECTIONS,
                &[
                    ("balancer", "eject"),
                    ("endpoint", &endpoint),
                    ("reason", reason),
                ],
            )
        };
        // At the event, before any publication.
        assert_eq!(
            ejections(&mut rec, port, "consecutive_failures"),
            Some(1.0),
            "{endpoint}"
        );
        assert_eq!(ejections(&mut rec, port, "failure_rate"), Some(0.0));
        assert_eq!(
            ejections(&mut rec, other, "consecutive_failures"),
            Some(0.0)
        );
        publication().await;
        assert_eq!(rec.in_state("eject", "ejected"), Some(1.0));
        assert_eq!(rec.in_state("eject", "ready"), Some(1.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "eject", port), Some(0.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "eject", other), Some(1.0));
        assert_eq!(
            rec.endpoint(ENDPOINT_ERRORS, "eject", port),
            Some(ejected.errors() as f64)
        );
    });
}

#[test]
fn a_removed_endpoint_drains_then_leaves() {
    with_recorder(|mut rec| async move {
        let (watch, updates) = Watch::new();
        watch.insert(Endpoint::new(addr(9001))).expect("insert");
        watch.insert(Endpoint::new(addr(9002))).expect("insert");
        let balance = Balance::builder(RoundRobin::new())
            .name("drain")
            .build(updates, make())
            .expect("build");
        settle(&balance, 2).await;
        // One request in flight on each endpoint.
        // (From one clone, whose round-robin cursor alternates.)
        let mut gates = HashMap::new();
        let mut calls = Vec::new();
        let mut caller = balance.clone();
        for _ in 0..2 {
            let (tx, rx) = oneshot::channel();
            let call = caller.ready().await.expect("ready").call(Req::Wait(rx));
            calls.push(tokio::spawn(call));
            tokio::task::yield_now().await;
            let busy = balance
                .endpoints()
                .into_iter()
                .find(|s| s.in_flight() == 1 && !gates.contains_key(&s.endpoint().addr().port()))
                .expect("the request's endpoint");
            gates.insert(busy.endpoint().addr().port(), tx);
        }
        watch.remove(addr(9001)).expect("remove");
        settle(&balance, 1).await;
        publication().await;
        assert_eq!(
            rec.get(
                BALANCER_ENDPOINT_CHANGES,
                &[("balancer", "drain"), ("change", "removed")]
            ),
            Some(1.0)
        );
        assert_eq!(rec.in_state("drain", "ready"), Some(1.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "drain", 9001), Some(0.0));
        // Still draining: its request is in flight.
        assert_eq!(rec.endpoint(ENDPOINT_IN_FLIGHT, "drain", 9001), Some(1.0));

        // It fails after removal, and is still counted.
        gates
            .remove(&9001)
            .expect("gate")
            .send(false)
            .expect("send");
        gates.remove(&9002).expect("gate").send(true).expect("send");
        for call in calls {
            let _ = call.await.expect("join");
        }
        publication().await;
        assert_eq!(rec.endpoint(ENDPOINT_IN_FLIGHT, "drain", 9001), Some(0.0));
        assert_eq!(rec.endpoint(ENDPOINT_ERRORS, "drain", 9001), Some(1.0));
        assert_eq!(rec.endpoint(ENDPOINT_REQUESTS, "drain", 9001), Some(1.0));
        assert_eq!(rec.endpoint(ENDPOINT_IN_FLIGHT, "drain", 9002), Some(0.0));
        assert_eq!(rec.endpoint(ENDPOINT_ERRORS, "drain", 9002), Some(0.0));

        // Gone from the series: later traffic lands on the other endpoint only.
        balance
            .clone()
            .oneshot(Req::Answer(false))
            .await
            .unwrap_err();
        publication().await;
        assert_eq!(rec.endpoint(ENDPOINT_REQUESTS, "drain", 9001), Some(1.0));
        assert_eq!(rec.endpoint(ENDPOINT_REQUESTS, "drain", 9002), Some(2.0));
    });
}

#[test]
fn peak_ewma_latency_is_a_gauge_in_seconds() {
    with_recorder(|mut rec| async move {
        let balance = Balance::builder(PeakEwma::new())
            .name("rtt")
            .build(Static::from_addrs([addr(9001)]), make())
            .expect("build");
        settle(&balance, 1).await;
        for _ in 0..3 {
            balance
                .clone()
                .oneshot(Req::Sleep(Duration::from_millis(20)))
                .await
                .expect("answer");
        }
        publication().await;
        let rtt = rec.endpoint(ENDPOINT_RTT, "rtt", 9001).expect("rtt series");
        let expected = balance.endpoints()[0]
            .rtt()
            .expect("an estimate")
            .as_secs_f64();
        assert!((rtt - expected).abs() < 1e-9, "{rtt} vs {expected}");
        assert!((0.015..=0.021).contains(&rtt), "{rtt}");
    });
}

#[test]
fn client_creation_failures_are_counted_and_shown_backing_off() {
    with_recorder(|mut rec| async move {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&attempts);
        let failing = service_fn(move |ep: Endpoint| {
            let n = counted.fetch_add(1, SeqCst);
            async move {
                if n < 2 {
                    Err::<_, BoxError>("connection refused".into())
                } else {
                    Ok(client(ep.addr().port()))
                }
            }
        });
        let balance = Balance::builder(RoundRobin::new())
            .name("connect")
            .reconnect_backoff(Duration::from_secs(3), Duration::from_secs(3))
            .build(Static::from_addrs([addr(9001)]), failing)
            .expect("build");
        publication().await;
        assert_eq!(
            rec.endpoint(ENDPOINT_CONNECT_FAILURES, "connect", 9001),
            Some(1.0)
        );
        assert_eq!(rec.in_state("connect", "backoff"), Some(1.0));
        assert_eq!(rec.in_state("connect", "ready"), Some(0.0));
        tokio::time::sleep(Duration::from_secs(6)).await;
        settle(&balance, 1).await;
        assert_eq!(attempts.load(SeqCst), 3);
        publication().await;
        assert_eq!(
            rec.endpoint(ENDPOINT_CONNECT_FAILURES, "connect", 9001),
            Some(2.0)
        );
        assert_eq!(rec.in_state("connect", "backoff"), Some(0.0));
        assert_eq!(rec.in_state("connect", "ready"), Some(1.0));
    });
}

#[test]
fn health_transitions_and_panic_mode_are_counted_when_they_happen() {
    with_recorder(|mut rec| async move {
        let failing: Arc<Mutex<HashSet<u16>>> = Arc::new(Mutex::new(HashSet::from([9001])));
        let down = Arc::clone(&failing);
        let probe = service_fn(move |ep: Endpoint| {
            let fails = down.lock().expect("lock").contains(&ep.addr().port());
            async move {
                if fails {
                    Err::<(), BoxError>("probe failed".into())
                } else {
                    Ok(())
                }
            }
        });
        let check = HealthCheck::new(Duration::from_millis(100))
            .and_then(|c| c.unhealthy_threshold(1))
            .and_then(|c| c.healthy_threshold(1))
            .expect("check");
        let balance = Balance::builder(RoundRobin::new())
            .name("probed")
            .health_check(check, probe)
            .build(
                Static::from_addrs([addr(9001), addr(9002), addr(9003)]),
                make(),
            )
            .expect("build");
        settle(&balance, 3).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let transitions = |rec: &mut Recorded, port: u16, state: &str| {
            let endpoint = addr(port).to_string();
            rec.get(
                ENDPOINT_HEALTH_TRANSITIONS,
                &[
                    ("balancer", "probed"),
                    ("endpoint", &endpoint),
                    ("state", state),
                ],
            )
        };
        let panic = |rec: &mut Recorded| rec.get(BALANCER_PANIC, &[("balancer", "probed")]);
        assert_eq!(balance.ready_len(), 2);
        assert_eq!(transitions(&mut rec, 9001, "unhealthy"), Some(1.0));
        assert_eq!(transitions(&mut rec, 9002, "unhealthy"), Some(0.0));
        assert_eq!(panic(&mut rec), Some(0.0));

        // One healthy endpoint of three is below the 50 % threshold: panic mode, at once.
        failing.lock().expect("lock").insert(9002);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(transitions(&mut rec, 9002, "unhealthy"), Some(1.0));
        assert_eq!(panic(&mut rec), Some(1.0));
        publication().await;
        assert_eq!(rec.in_state("probed", "unhealthy"), Some(2.0));
        assert_eq!(rec.in_state("probed", "ready"), Some(1.0));
        // In panic mode every endpoint serves.
        assert_eq!(rec.endpoint(ENDPOINT_IN_SERVICE, "probed", 9001), Some(1.0));

        failing.lock().expect("lock").clear();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(transitions(&mut rec, 9001, "healthy"), Some(1.0));
        assert_eq!(transitions(&mut rec, 9002, "healthy"), Some(1.0));
        assert_eq!(transitions(&mut rec, 9003, "healthy"), Some(0.0));
        assert_eq!(panic(&mut rec), Some(0.0));
        publication().await;
        assert_eq!(rec.in_state("probed", "ready"), Some(3.0));
        assert_eq!(rec.in_state("probed", "unhealthy"), Some(0.0));
    });
}

#[test]
fn a_zero_interval_is_refused_by_name() {
    let err: InvalidInterval = Balance::builder(RoundRobin::new())
        .metrics_interval(Duration::ZERO)
        .expect_err("zero refused");
    assert_eq!(err.interval(), Duration::ZERO);
    assert_eq!(
        err.to_string(),
        "metrics interval must be greater than zero, got 0ns"
    );
}

#[cfg(feature = "authz")]
mod authz {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use http::{Method, Request, Response, StatusCode};
    use tower::{Layer, ServiceExt, service_fn};
    use tower_mesh::authz::jwt::{Algorithm, JwksSource, JwtAuthenticator};
    use tower_mesh::authz::policy::{Policy, SharedPolicy};
    use tower_mesh::authz::{AuthzLayer, EgressDenied, EgressLayer, InvalidRequest};
    use tower_mesh::metrics::AUTHZ_DECISIONS;

    use super::{Recorded, with_recorder};

    fn outcome(rec: &mut Recorded, direction: &str, layer: &str, outcome: &str) -> Option<f64> {
        rec.get(
            AUTHZ_DECISIONS,
            &[
                ("direction", direction),
                ("layer", layer),
                ("outcome", outcome),
            ],
        )
    }

    /// RFC 8037, appendix A.2: an Ed25519 public key.
    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn inbound_decisions_are_counted_by_outcome() {
        with_recorder(|mut rec| async move {
            let policy = |mode: &str| {
                SharedPolicy::new(
                    Policy::from_toml_str(&format!(
                        r#"
                        mode = "{mode}"
                        [[rules]]
                        name = "public"
                        action = "allow"
                        to.paths = ["/public/**"]
                        "#
                    ))
                    .expect("policy"),
                )
            };
            let calls = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&calls);
            let app = service_fn(move |_: Request<()>| {
                seen.fetch_add(1, SeqCst);
                async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) }
            });
            let jwt = JwtAuthenticator::builder("https://issuer", "api")
                .algorithms([Algorithm::EdDSA])
                .jwks(JwksSource::memory(JWKS))
                .build()
                .expect("authenticator");
            let server = AuthzLayer::new(policy("enforce"))
                .name("api")
                .jwt(jwt)
                .layer(app.clone());
            let get = |target: &str| {
                Request::get(target)
                    .header("host", "api")
                    .body(())
                    .expect("request")
            };
            let status = |res: Result<Response<String>, _>| res.expect("response").status();
            for _ in 0..3 {
                assert_eq!(
                    status(server.clone().oneshot(get("/public/a")).await),
                    StatusCode::OK
                );
            }
            for _ in 0..2 {
                assert_eq!(
                    status(server.clone().oneshot(get("/admin")).await),
                    StatusCode::FORBIDDEN
                );
            }
            assert_eq!(
                status(server.clone().oneshot(get("/public%2F..%2Fadmin")).await),
                StatusCode::BAD_REQUEST
            );
            let mut bad_token = get("/public/a");
            bad_token.headers_mut().insert(
                http::header::AUTHORIZATION,
                "Bearer not-a-token".parse().expect("header"),
            );
            assert_eq!(
                status(server.clone().oneshot(bad_token).await),
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(calls.load(SeqCst), 3);
            assert_eq!(outcome(&mut rec, "inbound", "api", "allow"), Some(3.0));
            assert_eq!(outcome(&mut rec, "inbound", "api", "deny"), Some(2.0));
            assert_eq!(outcome(&mut rec, "inbound", "api", "invalid"), Some(1.0));
            assert_eq!(
                outcome(&mut rec, "inbound", "api", "unauthenticated"),
                Some(1.0)
            );
            assert_eq!(outcome(&mut rec, "inbound", "api", "audit_deny"), Some(0.0));

            // Audit mode: a denial is forwarded and counted as such.
            let audit = AuthzLayer::new(policy("audit")).name("audited").layer(app);
            assert_eq!(
                status(audit.clone().oneshot(get("/admin")).await),
                StatusCode::OK
            );
            assert_eq!(
                status(audit.oneshot(get("/public/b")).await),
                StatusCode::OK
            );
            assert_eq!(calls.load(SeqCst), 5);
            assert_eq!(
                outcome(&mut rec, "inbound", "audited", "audit_deny"),
                Some(1.0)
            );
            assert_eq!(outcome(&mut rec, "inbound", "audited", "allow"), Some(1.0));
            assert_eq!(outcome(&mut rec, "inbound", "audited", "deny"), Some(0.0));
            // The first layer's counts did not move.
            assert_eq!(outcome(&mut rec, "inbound", "api", "allow"), Some(3.0));
            // Named before use: no series under the default name.
            assert_eq!(outcome(&mut rec, "inbound", "default", "allow"), None);
        });
    }

    #[test]
    fn outbound_decisions_are_counted_by_outcome() {
        with_recorder(|mut rec| async move {
            let policy = Policy::from_toml_str(
                r#"
                [[rules]]
                name = "read-catalog"
                action = "allow"
                to.hosts = ["catalog.svc"]
                to.methods = ["GET"]
                to.paths = ["/items/**"]
                "#,
            )
            .expect("policy");
            let calls = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&calls);
            let client = service_fn(move |_: Request<()>| {
                seen.fetch_add(1, SeqCst);
                async { Ok::<_, std::convert::Infallible>(()) }
            });
            let egress = EgressLayer::new(SharedPolicy::new(policy))
                .name("catalog")
                .layer(client);
            let send = |method: Method, uri: &str| {
                egress.clone().oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .body(())
                        .expect("request"),
                )
            };
            for _ in 0..2 {
                send(Method::GET, "http://catalog.svc/items/1")
                    .await
                    .expect("allowed");
            }
            let denied = send(Method::DELETE, "http://catalog.svc/items/1")
                .await
                .expect_err("denied");
            assert!(denied.is::<EgressDenied>());
            let lowercase = Method::from_bytes(b"get").expect("method");
            let invalid = send(lowercase, "http://catalog.svc/items/1")
                .await
                .expect_err("invalid");
            assert!(invalid.is::<InvalidRequest>());
            assert_eq!(calls.load(SeqCst), 2);
            assert_eq!(outcome(&mut rec, "outbound", "catalog", "allow"), Some(2.0));
            assert_eq!(outcome(&mut rec, "outbound", "catalog", "deny"), Some(1.0));
            assert_eq!(
                outcome(&mut rec, "outbound", "catalog", "invalid"),
                Some(1.0)
            );
            // An egress layer never authenticates.
            assert_eq!(
                outcome(&mut rec, "outbound", "catalog", "unauthenticated"),
                Some(0.0)
            );
        });
    }
}

#[cfg(feature = "tls")]
#[allow(dead_code, unreachable_pub)]
#[path = "tls/pki.rs"]
mod pki;

#[cfg(feature = "tls")]
mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tower::{BoxError, Layer, ServiceExt};
    use tower_mesh::endpoint::Endpoint;
    use tower_mesh::identity::TrustDomain;
    use tower_mesh::metrics::TLS_HANDSHAKES;
    use tower_mesh::tls::{
        Credentials, HandshakeFailed, HandshakeTimeout, TlsAcceptor, TlsConfig, TlsConnectLayer,
        TrustBundle, TrustStore,
    };

    use super::Recorded;
    use super::pki::{Ca, Leaf};
    use metrics_util::debugging::DebuggingRecorder;

    const SERVER: &str = "spiffe://test.example/server";

    fn config(leaf: &Leaf, ca: &Ca, timeout: Duration) -> TlsConfig {
        let trust = TrustStore::new().with_spiffe(
            TrustDomain::parse("test.example").expect("trust domain"),
            TrustBundle::from_der([ca.cert.clone()]).expect("bundle"),
        );
        TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
            .credentials(Credentials::from_der(leaf.chain.clone(), leaf.key_der()).expect("creds"))
            .trust(trust)
            .handshake_timeout(timeout)
            .build()
            .expect("config")
    }

    async fn connect(
        layer: &TlsConnectLayer,
        addr: SocketAddr,
        expect: &str,
    ) -> Result<(), BoxError> {
        let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
        layer
            .layer(tcp)
            .oneshot(Endpoint::new(addr).with_identity(expect))
            .await
            .map(drop)
    }

    fn handshakes(rec: &mut Recorded, side: &str, outcome: &str) -> Option<f64> {
        rec.get(TLS_HANDSHAKES, &[("side", side), ("outcome", outcome)])
    }

    #[test]
    fn handshakes_are_counted_by_side_and_outcome() {
        let recorder = DebuggingRecorder::new();
        let mut rec = Recorded {
            snapshotter: recorder.snapshotter(),
            values: Default::default(),
        };
        // Real sockets and real time: a paused clock would fire the handshake timeouts while
        // the runtime waits for the network.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let ca = Ca::root("test CA");
                let long = Duration::from_secs(10);
                let server = config(&ca.spiffe_leaf(SERVER), &ca, long);
                let client = config(&ca.spiffe_leaf("spiffe://test.example/client"), &ca, long);

                // A server behind our acceptor reporting each handshake's end.
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                let acceptor = TlsAcceptor::new(server);
                let (done_tx, mut done) = mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let result = acceptor.clone().oneshot(tcp).await.map(drop);
                        if done_tx.send(result).is_err() {
                            return;
                        }
                    }
                });
                let layer = TlsConnectLayer::new(client.clone());

                connect(&layer, addr, SERVER).await.expect("handshake");
                done.recv().await.expect("server side").expect("accepted");
                assert_eq!(handshakes(&mut rec, "client", "ok"), Some(1.0));
                assert_eq!(handshakes(&mut rec, "server", "ok"), Some(1.0));

                // The server is not who the endpoint says: the client refuses it, and the
                // server sees the client's alert.
                let refused = connect(&layer, addr, "spiffe://test.example/other")
                    .await
                    .expect_err("identity mismatch");
                assert!(refused.is::<HandshakeFailed>(), "{refused}");
                let alerted = done.recv().await.expect("server side").expect_err("alert");
                assert!(alerted.is::<HandshakeFailed>(), "{alerted}");
                assert_eq!(handshakes(&mut rec, "client", "failed"), Some(1.0));
                assert_eq!(handshakes(&mut rec, "server", "failed"), Some(1.0));

                // A peer that never answers: a timeout, on a connector with a short one.
                let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let silent_addr = silent.local_addr().expect("addr");
                let impatient = TlsConnectLayer::new(config(
                    &ca.spiffe_leaf("spiffe://test.example/client"),
                    &ca,
                    Duration::from_millis(200),
                ));
                let timed_out = connect(&impatient, silent_addr, SERVER)
                    .await
                    .expect_err("timeout");
                assert!(timed_out.is::<HandshakeTimeout>(), "{timed_out}");
                assert_eq!(handshakes(&mut rec, "client", "timeout"), Some(1.0));

                // A refused TCP connection is not a handshake.
                drop(silent);
                connect(&layer, silent_addr, SERVER)
                    .await
                    .expect_err("connection refused");
                assert_eq!(handshakes(&mut rec, "client", "failed"), Some(1.0));
                assert_eq!(handshakes(&mut rec, "client", "ok"), Some(1.0));
                assert_eq!(handshakes(&mut rec, "server", "timeout"), Some(0.0));
            });
        });
    }
}

/// Two endpoints, port 9501 failing every request; `bad` counts its calls.
fn half_failing(
    bad: Arc<AtomicUsize>,
) -> impl Service<
    Endpoint,
    Response = impl Service<(), Response = u16, Error = Failed, Future: Send> + Clone + Send + Sync,
    Error = Infallible,
    Future: Send,
> + Send
+ 'static {
    service_fn(move |ep: Endpoint| {
        let bad = bad.clone();
        async move {
            let port = ep.addr().port();
            Ok::<_, Infallible>(service_fn(move |()| {
                if port == 9501 {
                    bad.fetch_add(1, SeqCst);
                }
                async move {
                    if port == 9501 {
                        Err(Failed(port))
                    } else {
                        Ok(port)
                    }
                }
            }))
        }
    })
}

#[test]
fn retries_and_budget_refusals_are_counted_under_the_balancers_name() {
    use tower_mesh::mesh::Mesh;
    use tower_mesh::metrics::{RETRY_ATTEMPTS, RETRY_BUDGET_REFUSALS};
    use tower_mesh::retry::{AssumeIdempotent, Budget, RetryLayer};

    with_recorder(|mut rec| async move {
        let bad = Arc::new(AtomicUsize::new(0));
        let retry = RetryLayer::new(AssumeIdempotent::new())
            .backoff(Duration::ZERO, Duration::ZERO)
            .unwrap();
        let mut stack = Mesh::builder(RoundRobin::with_seed(1))
            .name("retried")
            .without_outlier_detection()
            .retry(retry)
            .build(
                Static::from_addrs([addr(9501), addr(9502)]),
                half_failing(bad.clone()),
            )
            .unwrap();
        for _ in 0..20 {
            assert_eq!(stack.ready().await.unwrap().call(()).await.unwrap(), 9502);
        }
        // Every call to the failing endpoint was a first attempt, retried on the other.
        let retried = bad.load(SeqCst) as f64;
        assert!(retried > 0.0);
        assert_eq!(
            rec.get(RETRY_ATTEMPTS, &[("balancer", "retried")]),
            Some(retried)
        );
        assert_eq!(
            rec.get(RETRY_BUDGET_REFUSALS, &[("balancer", "retried")]),
            Some(0.0)
        );

        // A budget that allows nothing: each failure comes back, refused and counted.
        let none = Arc::new(Budget::new(Duration::from_secs(10), 0, 0.0).unwrap());
        let retry = RetryLayer::new(AssumeIdempotent::new()).budget(none);
        let bad = Arc::new(AtomicUsize::new(0));
        let mut stack = Mesh::builder(RoundRobin::with_seed(1))
            .name("starved")
            .without_outlier_detection()
            .retry(retry)
            .build(
                Static::from_addrs([addr(9501), addr(9502)]),
                half_failing(bad.clone()),
            )
            .unwrap();
        let mut failures = 0.0;
        for _ in 0..20 {
            if stack.ready().await.unwrap().call(()).await.is_err() {
                failures += 1.0;
            }
        }
        assert_eq!(failures, bad.load(SeqCst) as f64);
        assert!(failures > 0.0);
        assert_eq!(
            rec.get(RETRY_BUDGET_REFUSALS, &[("balancer", "starved")]),
            Some(failures)
        );
        assert_eq!(
            rec.get(RETRY_ATTEMPTS, &[("balancer", "starved")]),
            Some(0.0)
        );
    });
}
