//! A balanced request allocates nothing in steady state, for every picker.
//!
//! A counting `#[global_allocator]` forwards to the system allocator and counts. For each
//! picker the test builds a `Balance` over four always-ready in-process endpoints on a
//! current-thread runtime, warms up with 1,000 requests, then counts allocations during 10,000
//! `poll_ready` + `call` + `.await` requests. Two controls show the counter would catch a
//! regression: a `Box::new` counts, and the same loop through endpoints whose response future
//! is boxed counts at least one allocation per request. This binary holds a single test, so no
//! other test allocates on another thread while it counts.

// The library forbids unsafe code; this test binary needs it only for the allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll};

use tower::{Service, ServiceExt};
use tower_mesh::balance::{
    Balance, LeastRequest, PeakEwma, PickRequest, Random, RoundRobin, Weighted, WeightedRandom,
};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::{Endpoint, Weight};

const REQUESTS: u64 = 10_000;
const WARM_UP: u64 = 1_000;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// An always-ready endpoint client whose response future is plain data.
#[derive(Clone)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// The control: an always-ready client that allocates once per request (a boxed future).
#[derive(Clone)]
struct Boxed;

impl Service<u64> for Boxed {
    type Response = u64;
    type Error = Infallible;
    type Future = Pin<Box<Ready<Result<u64, Infallible>>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        Box::pin(ready(Ok(req)))
    }
}

fn endpoints() -> Vec<Endpoint> {
    [(9001, 1), (9002, 2), (9003, 3), (9004, 1)]
        .into_iter()
        .map(|(port, w)| {
            Endpoint::new(([127, 0, 0, 1], port).into()).with_weight(Weight::new(w).unwrap())
        })
        .collect()
}

async fn requests<S>(svc: &mut S, n: u64)
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    for i in 0..n {
        let ready = svc.ready().await.expect("ready");
        black_box(ready.call(black_box(i)).await.expect("response"));
    }
}

/// Allocations during `REQUESTS` steady-state requests through a balancer with `picker`.
async fn measure<P, C>(picker: P, client: C) -> u64
where
    P: PickRequest<u64>,
    C: Service<u64, Response = u64, Error = Infallible> + Clone + Send + Sync + 'static,
{
    let make = tower::service_fn(move |_: Endpoint| {
        let client = client.clone();
        async move { Ok::<_, Infallible>(client) }
    });
    let mut balance = Balance::builder(picker)
        .build(Static::new(endpoints()), make)
        .expect("valid config");
    while balance.ready_len() != 4 {
        tokio::task::yield_now().await;
    }
    requests(&mut balance, WARM_UP).await;
    let before = ALLOCS.load(SeqCst);
    requests(&mut balance, REQUESTS).await;
    let allocs = ALLOCS.load(SeqCst) - before;
    let served: u64 = balance.endpoints().iter().map(|e| e.requests()).sum();
    assert_eq!(
        served,
        WARM_UP + REQUESTS,
        "every request went through the balancer"
    );
    allocs
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let before = ALLOCS.load(SeqCst);
    let boxed = Box::new(black_box(7u64));
    assert_eq!(ALLOCS.load(SeqCst) - before, 1, "the counter counts");
    drop(black_box(boxed));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let control = measure(RoundRobin::with_seed(1), Boxed).await;
        assert!(control >= REQUESTS, "a boxing client must count: {control}");
        let rows = [
            ("RoundRobin", measure(RoundRobin::with_seed(1), Echo).await),
            ("Random", measure(Random::with_seed(1), Echo).await),
            ("Weighted", measure(Weighted::with_seed(1), Echo).await),
            (
                "WeightedRandom",
                measure(WeightedRandom::with_seed(1), Echo).await,
            ),
            (
                "LeastRequest",
                measure(LeastRequest::with_seed(1), Echo).await,
            ),
            ("PeakEwma", measure(PeakEwma::with_seed(1), Echo).await),
        ];
        for (name, allocs) in rows {
            assert_eq!(
                allocs, 0,
                "{name}: {allocs} allocations in {REQUESTS} requests"
            );
        }
    });
}
