//! Performance-aware pickers through a real `Balance`, under paused time: a fleet with one slow
//! endpoint, an open-loop load, and the share of requests each picker sends to the slow one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceExt, service_fn};
use tower_mesh::balance::{Balance, LeastRequest, PeakEwma, Pick, PickRequest, RoundRobin};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;

const FAST: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_millis(10);

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000 + i))
}

/// Runs 10 endpoints (the first one 10x slower) for `warmup + measure` at `rate` requests per
/// second, and returns the slow endpoint's share of the requests sent during `measure`.
async fn slow_share<P>(picker: P) -> f64
where
    P: Pick + PickRequest<()>,
{
    let make = service_fn(|ep: Endpoint| async move {
        let a = ep.addr();
        let latency = if a == addr(0) { SLOW } else { FAST };
        Ok::<_, Infallible>(service_fn(move |()| async move {
            tokio::time::sleep(latency).await;
            Ok::<_, Infallible>(a)
        }))
    });
    let mut balance = Balance::builder(picker)
        .build(Static::from_addrs((0..10).map(addr)), make)
        .expect("valid configuration");
    while balance.ready_len() < 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let counts: Arc<Mutex<HashMap<SocketAddr, u64>>> = Arc::default();
    let warmup = 2_000; // requests
    let total = 12_000;
    let mut tick = tokio::time::interval(Duration::from_micros(500)); // 2,000 requests/s
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        tick.tick().await;
        let fut = balance.ready().await.expect("ready").call(());
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            let served = fut.await.expect("request succeeds");
            if n >= warmup {
                *counts.lock().unwrap().entry(served).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let counts = counts.lock().unwrap();
    let measured: u64 = counts.values().sum();
    assert_eq!(measured, (total - warmup) as u64);
    counts.get(&addr(0)).copied().unwrap_or(0) as f64 / measured as f64
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn peak_ewma_avoids_a_slow_endpoint_and_least_request_beats_round_robin() {
    let rr = slow_share(RoundRobin::with_seed(1)).await;
    let lr = slow_share(LeastRequest::with_seed(1)).await;
    let ewma = slow_share(PeakEwma::with_seed(1)).await;
    println!(
        "slow endpoint share: round-robin {rr:.4}, least-request {lr:.4}, peak-ewma {ewma:.4}"
    );
    assert!((rr - 0.1).abs() < 0.001, "round-robin ignores speed: {rr}");
    assert!(
        lr < rr,
        "least-request {lr} must send the slow endpoint less than round-robin {rr}"
    );
    assert!(
        ewma < 0.05,
        "peak-ewma sends the slow endpoint {ewma}, at least 5%"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stalled_endpoint_is_avoided_before_its_first_response() {
    // Endpoint 0 never answers; without in-flight evidence its estimate would stay at the
    // 30 ms default and it would keep winning comparisons against 40 ms endpoints.
    let make = service_fn(|ep: Endpoint| async move {
        let a = ep.addr();
        Ok::<_, Infallible>(service_fn(move |()| async move {
            if a == addr(0) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok::<_, Infallible>(a)
        }))
    });
    let mut balance = Balance::builder(PeakEwma::with_seed(3))
        .build(Static::from_addrs((0..2).map(addr)), make)
        .expect("valid configuration");
    while balance.ready_len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut stuck = Vec::new();
    for _ in 0..200 {
        let fut = balance.ready().await.unwrap().call(());
        stuck.push(tokio::spawn(fut));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = balance.endpoints();
    let to_stalled = stats[0].requests();
    assert!(
        to_stalled < 20,
        "{to_stalled} of 200 requests went to the stalled endpoint"
    );
    for t in stuck {
        t.abort();
    }
}
