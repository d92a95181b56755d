//! Deterministic subsetting benchmarks at N = 2,000 endpoints (the bar: one subset
//! computation ≤ 1 ms).
//!
//! Groups:
//!
//! - `select`: `Subsetting::select` over 2,000 endpoints given in a shuffled order (so the
//!   address sort is paid, as for a fresh discovery list), for k ∈ {10, 100, 1000}, by index
//!   (client 137 of 500) and by id (a hashed pod name). `indices` is the window alone on an
//!   already sorted list.
//! - `adapter`: the `Subset` stream's cost per upstream update with 2,000 endpoints in its
//!   full set, k = 100, fed by a real `Watch`: `insert_remove` sends one update per iteration
//!   (alternately inserting and removing a 2,001st endpoint, which moves the window) and drains
//!   the emitted diff, so every iteration is one recomputation; `metadata_chosen` changes the
//!   zone of an endpoint inside the subset (one `Insert` out); `burst_100` sends 100 updates
//!   before draining (one recomputation), reported per burst.
//!
//! Run with `cargo bench --bench subset`; medians are in
//! `target/criterion/<group>/<bench>/new/estimates.json`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::task::{Context, Poll, Waker};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use tower_mesh::discover::subset::{Subset, Subsetting};
use tower_mesh::discover::{Watch, WatchUpdates};
use tower_mesh::endpoint::Endpoint;

const N: usize = 2_000;

fn addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("index fits u32");
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i * 7), 8080))
}

/// N endpoints in a fixed pseudo-random order (Fisher–Yates with a fixed LCG).
fn shuffled(n: usize) -> Vec<Endpoint> {
    let mut eps: Vec<Endpoint> = (0..n).map(|i| Endpoint::new(addr(i))).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..eps.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        eps.swap(i, j);
    }
    eps
}

fn select(c: &mut Criterion) {
    let eps = shuffled(N);
    let mut g = c.benchmark_group("select");
    for k in [10, 100, 1000] {
        let by_index = Subsetting::by_index(137, 500, k).expect("valid");
        let by_id = Subsetting::by_id("checkout-7f9c4d-x2kq1", k).expect("valid");
        g.bench_with_input(BenchmarkId::new("by_index", k), &k, |b, _| {
            b.iter(|| by_index.select(black_box(&eps)))
        });
        g.bench_with_input(BenchmarkId::new("by_id", k), &k, |b, _| {
            b.iter(|| by_id.select(black_box(&eps)))
        });
        g.bench_with_input(BenchmarkId::new("indices", k), &k, |b, _| {
            b.iter(|| by_index.indices(black_box(N)).sum::<usize>())
        });
    }
    g.finish();
}

/// Drains everything the stream has ready; returns how many updates came out.
fn drain(subset: &mut Subset<WatchUpdates>, cx: &mut Context<'_>) -> usize {
    let mut n = 0;
    while let Poll::Ready(Some(item)) = subset.poll_next_unpin(cx) {
        black_box(item.expect("infallible"));
        n += 1;
    }
    n
}

fn primed() -> (Watch, Subset<WatchUpdates>, Context<'static>) {
    let (watch, updates) = Watch::new();
    let subsetting = Subsetting::by_index(137, 500, 100).expect("valid");
    let mut subset = Subset::new(updates, subsetting);
    let mut cx = Context::from_waker(Waker::noop());
    watch.reset(shuffled(N)).expect("open");
    assert_eq!(drain(&mut subset, &mut cx), 1, "the first set is one reset");
    assert_eq!(subset.selected().len(), 100);
    (watch, subset, cx)
}

fn adapter(c: &mut Criterion) {
    let mut g = c.benchmark_group("adapter");

    {
        let (watch, mut subset, mut cx) = primed();
        // Below every other address, so it shifts the whole ring by one position.
        let extra = Endpoint::new(SocketAddr::from((Ipv4Addr::new(9, 0, 0, 1), 8080)));
        let mut present = false;
        g.bench_function("insert_remove", |b| {
            b.iter(|| {
                if present {
                    watch.remove(extra.addr()).expect("open");
                } else {
                    watch.insert(extra.clone()).expect("open");
                }
                present = !present;
                drain(&mut subset, &mut cx)
            })
        });
    }

    {
        let (watch, mut subset, mut cx) = primed();
        let chosen = subset.selected()[50].clone();
        let zoned = [chosen.clone().with_zone("a"), chosen.with_zone("b")];
        let mut flip = 0;
        g.bench_function("metadata_chosen", |b| {
            b.iter(|| {
                watch.insert(zoned[flip].clone()).expect("open");
                flip ^= 1;
                let out = drain(&mut subset, &mut cx);
                debug_assert_eq!(out, 1);
                out
            })
        });
    }

    {
        let (watch, mut subset, mut cx) = primed();
        let extras: Vec<Endpoint> = (0..100)
            .map(|i| Endpoint::new(SocketAddr::from((Ipv4Addr::new(9, 0, 1, i), 8080))))
            .collect();
        let mut present = false;
        g.bench_function("burst_100", |b| {
            b.iter(|| {
                for e in &extras {
                    if present {
                        watch.remove(e.addr()).expect("open");
                    } else {
                        watch.insert(e.clone()).expect("open");
                    }
                }
                present = !present;
                drain(&mut subset, &mut cx)
            })
        });
    }

    g.finish();
}

criterion_group!(benches, select, adapter);
criterion_main!(benches);
