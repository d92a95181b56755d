//! Label subsets through a real `Balance` under paused time: requests that select a label
//! value reach only the endpoints carrying it (with the inner picker's spread preserved),
//! misses follow each fallback, requests without a selector reach every endpoint, groups follow
//! discovery, and with `http` a header selects the value.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceExt, service_fn};
use tower_mesh::balance::label::{Fallback, LabelRoute, NoMatchingEndpoints, SelectLabel};
use tower_mesh::balance::{Balance, Pick, RoundRobin};
use tower_mesh::discover::{Static, Watch};
use tower_mesh::endpoint::Endpoint;
use tower_mesh::error::BoxError;

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i))
}

/// A request that may name a version.
#[derive(Debug, Clone)]
struct Req(Option<&'static str>);

#[derive(Debug, Clone, Copy)]
struct ByVersion;

impl SelectLabel<Req> for ByVersion {
    fn select<'r>(&self, req: &'r Req) -> Option<&'r str> {
        req.0
    }
}

/// Endpoint `i` labelled `version=v` (no `version` label for `None`).
fn endpoint(i: u16, version: Option<&str>) -> Endpoint {
    let ep = Endpoint::new(addr(i)).with_label("team", "core");
    match version {
        Some(v) => ep.with_label("version", v),
        None => ep,
    }
}

/// Requests served, per endpoint address; every endpoint client counts into it.
type Served = Arc<Mutex<HashMap<SocketAddr, u64>>>;

/// A MakeService whose clients answer any request `R` with their address, counting every call
/// into `served`.
fn make<R: Send + 'static>(
    served: Served,
) -> impl Service<
    Endpoint,
    Response = impl Service<R, Response = SocketAddr, Error = Infallible, Future: Send>
               + Clone
               + Send
               + Sync
               + 'static,
    Error = Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    service_fn(move |ep: Endpoint| {
        let served = served.clone();
        let a = ep.addr();
        std::future::ready(Ok(service_fn(move |_: R| {
            *served.lock().unwrap().entry(a).or_default() += 1;
            std::future::ready(Ok::<_, Infallible>(a))
        })))
    })
}

async fn settle<P: Pick, S>(balance: &Balance<P, S>, n: usize) {
    for _ in 0..1000 {
        if balance.ready_len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("balancer never reached {n} ready endpoints");
}

async fn send<S, R>(balance: &mut S, req: R) -> Result<SocketAddr, BoxError>
where
    S: Service<R, Response = SocketAddr, Error = BoxError>,
{
    balance.ready().await?.call(req).await
}

/// Two canaries (1, 4), three stable endpoints (0, 2, 5), one without the label (3).
fn fleet() -> Static {
    Static::new([
        endpoint(0, Some("stable")),
        endpoint(1, Some("canary")),
        endpoint(2, Some("stable")),
        endpoint(3, None),
        endpoint(4, Some("canary")),
        endpoint(5, Some("stable")),
    ])
}

fn route(fallback: Fallback) -> LabelRoute<RoundRobin, ByVersion> {
    LabelRoute::new(RoundRobin::with_seed(9), "version", ByVersion)
        .expect("valid key")
        .fallback(fallback)
}

/// The counts served since the last call.
fn take(served: &Served) -> HashMap<SocketAddr, u64> {
    std::mem::take(&mut *served.lock().unwrap())
}

fn counts(pairs: &[(u16, u64)]) -> HashMap<SocketAddr, u64> {
    pairs.iter().map(|&(i, n)| (addr(i), n)).collect()
}

fn no_match(err: &BoxError) -> &NoMatchingEndpoints {
    err.downcast_ref::<NoMatchingEndpoints>()
        .unwrap_or_else(|| panic!("expected NoMatchingEndpoints, got {err}"))
}

#[tokio::test(start_paused = true)]
async fn selector_hit_reaches_only_its_group_and_round_robin_spreads_evenly_within_it() {
    let served = Served::default();
    let mut balance = Balance::builder(route(Fallback::Fail))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    // Alternate the groups: each keeps its own round-robin cycle (one cursor shared by groups
    // of sizes 2 and 3 would send every canary request to one canary).
    for k in 0..600 {
        let req = Req(Some(if k % 2 == 0 { "canary" } else { "stable" }));
        send(&mut balance, req).await.expect("a matching endpoint");
    }
    assert_eq!(
        take(&served),
        counts(&[(1, 150), (4, 150), (0, 100), (2, 100), (5, 100)])
    );
    // Another clone of the balancer has its own cursors and keeps the same guarantee.
    let mut other = balance.clone();
    for _ in 0..6 {
        send(&mut other, Req(Some("canary"))).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(1, 3), (4, 3)]));
}

#[tokio::test(start_paused = true)]
async fn miss_with_fail_fallback_is_refused_naming_key_and_value_without_any_call() {
    let served = Served::default();
    let mut balance = Balance::builder(route(Fallback::Fail))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    let err = send(&mut balance, Req(Some("beta")))
        .await
        .expect_err("no endpoint is labelled beta");
    let err = no_match(&err);
    assert_eq!(
        (err.key(), err.value(), err.fallback()),
        ("version", "beta", None)
    );
    assert!(take(&served).is_empty(), "no endpoint client was called");
    // The balancer keeps serving requests that do match.
    let a = send(&mut balance, Req(Some("canary"))).await.unwrap();
    assert!(a == addr(1) || a == addr(4), "{a} is no canary");
}

#[tokio::test(start_paused = true)]
async fn miss_with_any_fallback_reaches_every_endpoint() {
    let served = Served::default();
    let mut balance = Balance::builder(route(Fallback::Any))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    for _ in 0..60 {
        send(&mut balance, Req(Some("beta")))
            .await
            .expect("any endpoint");
    }
    let all: Vec<(u16, u64)> = (0..6).map(|i| (i, 10)).collect();
    assert_eq!(take(&served), counts(&all));
}

#[tokio::test(start_paused = true)]
async fn miss_with_value_fallback_reaches_that_group_and_fails_when_it_is_empty_too() {
    let served = Served::default();
    let mut balance = Balance::builder(route(Fallback::value("stable")))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    for _ in 0..30 {
        send(&mut balance, Req(Some("beta"))).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(0, 10), (2, 10), (5, 10)]));

    let mut balance = Balance::builder(route(Fallback::value("old")))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    let err = send(&mut balance, Req(Some("beta"))).await.unwrap_err();
    let err = no_match(&err);
    assert_eq!((err.value(), err.fallback()), ("beta", Some("old")));
    assert!(take(&served).is_empty(), "no endpoint client was called");
}

#[tokio::test(start_paused = true)]
async fn no_selector_reaches_every_endpoint_unless_a_default_value_is_set() {
    let served = Served::default();
    let mut balance = Balance::builder(route(Fallback::Fail))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    for _ in 0..60 {
        send(&mut balance, Req(None)).await.unwrap();
    }
    let all: Vec<(u16, u64)> = (0..6).map(|i| (i, 10)).collect();
    assert_eq!(take(&served), counts(&all));

    let mut balance = Balance::builder(route(Fallback::Fail).default_value("stable"))
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    for _ in 0..30 {
        send(&mut balance, Req(None)).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(0, 10), (2, 10), (5, 10)]));
}

#[tokio::test(start_paused = true)]
async fn groups_follow_label_changes_from_discovery() {
    let served = Served::default();
    let (watch, updates) = Watch::new();
    let mut balance = Balance::builder(route(Fallback::Fail))
        .build(updates, make::<Req>(served.clone()))
        .unwrap();
    watch.insert(endpoint(0, Some("canary"))).unwrap();
    watch.insert(endpoint(1, Some("stable"))).unwrap();
    settle(&balance, 2).await;
    for _ in 0..4 {
        assert_eq!(
            send(&mut balance, Req(Some("canary"))).await.unwrap(),
            addr(0)
        );
    }

    // Promote: endpoint 1 becomes the canary, endpoint 0 goes back to stable.
    watch.insert(endpoint(0, Some("stable"))).unwrap();
    watch.insert(endpoint(1, Some("canary"))).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    take(&served);
    for _ in 0..4 {
        send(&mut balance, Req(Some("canary"))).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(1, 4)]));

    // The canary label disappears: canary requests are refused, stable ones still served.
    watch.insert(endpoint(1, None)).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let err = send(&mut balance, Req(Some("canary"))).await.unwrap_err();
    assert_eq!(no_match(&err).value(), "canary");
    assert_eq!(
        send(&mut balance, Req(Some("stable"))).await.unwrap(),
        addr(0)
    );
    assert_eq!(take(&served), counts(&[(0, 1)]));

    // A new canary endpoint arrives and takes the canary requests.
    watch.insert(endpoint(2, Some("canary"))).unwrap();
    settle(&balance, 3).await;
    assert_eq!(
        send(&mut balance, Req(Some("canary"))).await.unwrap(),
        addr(2)
    );
}

#[tokio::test(start_paused = true)]
async fn closure_selector_routes_through_a_balancer() {
    let served = Served::default();
    let picker = LabelRoute::from_fn(RoundRobin::new(), "version", |r: &Req| r.0).unwrap();
    let mut balance = Balance::builder(picker)
        .build(fleet(), make::<Req>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    for _ in 0..4 {
        send(&mut balance, Req(Some("canary"))).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(1, 2), (4, 2)]));
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn header_selects_the_group_of_http_requests() {
    use http::{HeaderName, Request};
    use tower_mesh::balance::label::Header;

    let served = Served::default();
    let picker = LabelRoute::new(
        RoundRobin::new(),
        "version",
        Header::new(HeaderName::from_static("x-version")),
    )
    .unwrap();
    let mut balance = Balance::builder(picker)
        .build(fleet(), make::<Request<()>>(served.clone()))
        .unwrap();
    settle(&balance, 6).await;
    let req = |version: Option<&str>| {
        let mut b = Request::builder().uri("http://svc/");
        if let Some(v) = version {
            b = b.header("X-Version", v);
        }
        b.body(()).unwrap()
    };
    for _ in 0..4 {
        send(&mut balance, req(Some("canary"))).await.unwrap();
    }
    assert_eq!(take(&served), counts(&[(1, 2), (4, 2)]));
    let err = send(&mut balance, req(Some("beta"))).await.unwrap_err();
    let err = no_match(&err);
    assert_eq!((err.key(), err.value()), ("version", "beta"));
    assert!(take(&served).is_empty(), "no endpoint client was called");
    for _ in 0..6 {
        send(&mut balance, req(None)).await.unwrap();
    }
    assert_eq!(take(&served).len(), 6, "no header: every endpoint");
}

#[tokio::test(start_paused = true)]
async fn retries_stay_in_the_selected_group() {
    use tower::Layer;
    use tower_mesh::retry::{AssumeIdempotent, Budget, RetryLayer};

    // Two canaries that fail, one stable endpoint that answers.
    let served: Served = Arc::default();
    let counts = served.clone();
    let make = service_fn(move |ep: Endpoint| {
        let counts = counts.clone();
        let a = ep.addr();
        let canary = ep.label("version") == Some("canary");
        std::future::ready(Ok::<_, Infallible>(service_fn(move |_: Req| {
            *counts.lock().unwrap().entry(a).or_default() += 1;
            std::future::ready(if canary {
                Err::<SocketAddr, BoxError>("canary broke".into())
            } else {
                Ok(a)
            })
        })))
    });
    let eps = vec![
        endpoint(1, Some("canary")),
        endpoint(2, Some("canary")),
        endpoint(3, Some("stable")),
    ];
    let picker = LabelRoute::new(RoundRobin::with_seed(1), "version", ByVersion).unwrap();
    let balance = Balance::builder(picker)
        .build(Static::new(eps), make)
        .unwrap();
    settle(&balance, 3).await;
    let mut retry = RetryLayer::new(AssumeIdempotent::new())
        .budget(Arc::new(Budget::default()))
        .max_attempts(3)
        .unwrap()
        .layer(balance);
    for _ in 0..4 {
        let err = retry
            .ready()
            .await
            .unwrap()
            .call(Req(Some("canary")))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "canary broke");
    }
    let served = served.lock().unwrap();
    assert_eq!(
        served.get(&addr(3)),
        None,
        "a canary retry reached stable: {served:?}"
    );
    // Three attempts each, over the two canaries.
    assert_eq!(served.values().sum::<u64>(), 12, "{served:?}");
}
