//! Seeded stress tests of a real `Balance` per picker: random inserts, removes, subset resets
//! and picks through a `Watch`, checking after every settled batch that picks only ever reach
//! endpoints in the current set, plus the empty-set timeout.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};
use tower_mesh::NoEndpoints;
use tower_mesh::balance::{
    Balance, Pick, PickRequest, Random, RoundRobin, Weighted, WeightedRandom,
};
use tower_mesh::discover::Watch;
use tower_mesh::endpoint::{Endpoint, Weight};

/// Events per picker.
const EVENTS: usize = 100_000;
/// Distinct addresses events draw from.
const POOL: u16 = 24;
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// SplitMix64: a tiny seeded generator, so the event sequence is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant for a stress test).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A random endpoint from the pool with a weight in 1..=8.
fn endpoint(rng: &mut Rng) -> Endpoint {
    let port = 1 + rng.below(u64::from(POOL)) as u16;
    let weight = Weight::new(1 + rng.below(8) as u32).expect("non-zero");
    Endpoint::new(addr(port)).with_weight(weight)
}

/// Which per-picker fairness property to check on top of set membership.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fairness {
    /// Since the last set change, each clone's counts differ by at most one.
    RoundRobin,
    /// Since the last set change, no endpoint runs 2 or more picks ahead of its weight's
    /// share within one clone (the smoothness bound from an arbitrary starting slot).
    Weighted,
    /// Random pickers: membership only.
    None,
}

/// Per-clone pick counts since the last set change.
#[derive(Default)]
struct Since {
    counts: HashMap<SocketAddr, u64>,
    picks: u64,
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn round_robin_stress() {
    stress(RoundRobin::with_seed(11), Fairness::RoundRobin, 1).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn random_stress() {
    stress(Random::with_seed(12), Fairness::None, 2).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn weighted_stress() {
    stress(Weighted::with_seed(13), Fairness::Weighted, 3).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn weighted_random_stress() {
    stress(WeightedRandom::with_seed(14), Fairness::None, 4).await;
}

/// With no endpoint, `poll_ready` waits out the ready timeout, then fails with `NoEndpoints`
/// (and no endpoint client was ever made or called); after an endpoint comes and goes, the wait
/// restarts from the moment the set emptied.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn empty_set_fails_with_no_endpoints_after_the_ready_timeout() {
    let (watch, updates) = Watch::new();
    let made = Arc::new(AtomicUsize::new(0));
    let called = Arc::new(AtomicUsize::new(0));
    let mut balance = Balance::builder(RoundRobin::with_seed(5))
        .ready_timeout(READY_TIMEOUT)
        .seed(5)
        .build(updates, make(made.clone(), called.clone()))
        .expect("valid configuration");

    let start = Instant::now();
    let early = tokio::time::timeout(READY_TIMEOUT / 2, balance.ready()).await;
    assert!(
        early.is_err(),
        "poll_ready must wait for discovery before failing"
    );
    let err = balance.ready().await.expect_err("an empty set must fail");
    let no = err
        .downcast_ref::<NoEndpoints>()
        .unwrap_or_else(|| panic!("not NoEndpoints: {err}"));
    assert_eq!(no.waited(), READY_TIMEOUT);
    assert_eq!(
        start.elapsed(),
        READY_TIMEOUT,
        "fails exactly at the deadline"
    );
    assert_eq!((made.load(SeqCst), called.load(SeqCst)), (0, 0));

    // One endpoint arrives: requests reach it. Then it leaves again.
    let one = Endpoint::new(addr(1));
    watch.insert(one.clone()).expect("balancer alive");
    settle(&balance, &BTreeMap::from([(one.addr(), one.clone())])).await;
    assert_eq!(
        balance
            .ready()
            .await
            .expect("ready")
            .call(())
            .await
            .expect("served"),
        addr(1)
    );
    watch.remove(one.addr()).expect("balancer alive");
    settle(&balance, &BTreeMap::new()).await;
    let emptied = Instant::now();
    let err = balance
        .ready()
        .await
        .expect_err("an empty set must fail again");
    assert!(
        err.downcast_ref::<NoEndpoints>().is_some(),
        "not NoEndpoints: {err}"
    );
    assert_eq!(
        emptied.elapsed(),
        READY_TIMEOUT,
        "the wait restarts when the set empties"
    );
    assert_eq!((made.load(SeqCst), called.load(SeqCst)), (1, 1));
}

/// Runs [`EVENTS`] seeded events against a balancer with two clones.
///
/// Updates go straight to the `Watch`; before the next pick the test lets the driver publish
/// until the balancer reports exactly the expected endpoints, all ready. Then every pick must
/// be answered by an endpoint of that set (each client answers with its own address), and the
/// picker's fairness property must hold since the last change. Picks on an empty set must fail
/// with `NoEndpoints`.
async fn stress<P>(picker: P, fairness: Fairness, seed: u64)
where
    P: PickRequest<()> + std::fmt::Debug,
{
    let (watch, updates) = Watch::new();
    let made = Arc::new(AtomicUsize::new(0));
    let called = Arc::new(AtomicUsize::new(0));
    let first = Balance::builder(picker)
        .ready_timeout(READY_TIMEOUT)
        .seed(seed)
        .build(updates, make(made, called))
        .expect("valid configuration");
    let mut clones = [first.clone(), first];
    let mut since: [Since; 2] = Default::default();
    let mut rng = Rng(seed);
    let mut expected: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    let mut dirty = false;
    let (mut served, mut failed, mut batches) = (0u64, 0u64, 0u64);

    let mut churn = 0;
    for event in 0..EVENTS {
        // Phases of 1,000 events alternate at random between heavy churn (half the events are
        // updates) and steady traffic (one in fifty), so fairness is checked over long runs of
        // picks as well as short ones.
        if event % 1_000 == 0 {
            churn = if rng.below(2) == 0 { 50 } else { 2 };
        }
        let kind = if rng.below(100) < churn {
            rng.below(100)
        } else {
            100
        };
        match kind {
            // Insert a new endpoint or change an existing one's weight.
            0..=59 => {
                let ep = endpoint(&mut rng);
                watch.insert(ep.clone()).expect("balancer alive");
                expected.insert(ep.addr(), ep);
                dirty = true;
            }
            // Remove an address (present or not).
            60..=92 => {
                let a = addr(1 + rng.below(u64::from(POOL)) as u16);
                watch.remove(a).expect("balancer alive");
                expected.remove(&a);
                dirty = true;
            }
            // Reset to a random subset (possibly empty, possibly naming an address twice: the
            // later entry wins).
            93..=99 => {
                let len = rng.below(u64::from(POOL) / 2 + 1);
                let list: Vec<Endpoint> = (0..len).map(|_| endpoint(&mut rng)).collect();
                expected = list.iter().map(|ep| (ep.addr(), ep.clone())).collect();
                watch.reset(list).expect("balancer alive");
                dirty = true;
            }
            // Pick through one of the two clones.
            _ => {
                if dirty {
                    settle(&clones[0], &expected).await;
                    since = Default::default();
                    dirty = false;
                    batches += 1;
                }
                let c = rng.below(2) as usize;
                if expected.is_empty() {
                    let err = clones[c]
                        .ready()
                        .await
                        .expect_err("no endpoints to be ready with");
                    assert!(
                        err.downcast_ref::<NoEndpoints>().is_some(),
                        "not NoEndpoints: {err}"
                    );
                    failed += 1;
                    continue;
                }
                let svc = clones[c].ready().await.expect("a non-empty set is ready");
                let got = svc.call(()).await.expect("echo clients never fail");
                assert!(
                    expected.contains_key(&got),
                    "picked {got}, which is not in the current set {:?}",
                    expected.keys().collect::<Vec<_>>()
                );
                check_fairness(fairness, &mut since[c], &expected, got);
                served += 1;
            }
        }
    }
    // The sequence must have exercised every path, or the test proves little.
    assert!(
        served > 50_000 && failed > 0 && batches > 10_000,
        "{served} {failed} {batches}"
    );
}

/// Checks the picker's fairness property after pick `got` by one clone.
fn check_fairness(
    fairness: Fairness,
    since: &mut Since,
    set: &BTreeMap<SocketAddr, Endpoint>,
    got: SocketAddr,
) {
    since.picks += 1;
    let count = {
        let c = since.counts.entry(got).or_default();
        *c += 1;
        *c
    };
    match fairness {
        Fairness::RoundRobin => {
            let min = set
                .keys()
                .map(|a| since.counts.get(a).copied().unwrap_or(0))
                .min();
            assert!(
                count <= min.unwrap_or(0) + 1,
                "round-robin: {got} has {count} picks, another endpoint {min:?}, since the last change"
            );
        }
        Fairness::Weighted => {
            // Only a pick raises an endpoint's lead, so checking the picked one checks all.
            let total: u64 = set.values().map(|e| u64::from(e.weight().get())).sum();
            let w = u64::from(set[&got].weight().get());
            assert!(
                count * total < since.picks * w + 2 * total,
                "weighted: {got} (weight {w} of {total}) has {count} of {} picks since the last change",
                since.picks
            );
        }
        Fairness::None => {}
    }
}

/// Lets the driver run until `balance` reports exactly `expected`, every endpoint ready.
async fn settle<P: Pick, S>(balance: &Balance<P, S>, expected: &BTreeMap<SocketAddr, Endpoint>) {
    for round in 0..1_000 {
        let now = balance.endpoints();
        let matches = now.len() == expected.len()
            && balance.ready_len() == expected.len()
            && now
                .iter()
                .zip(expected.values())
                .all(|(s, e)| s.is_ready() && s.endpoint() == e);
        if matches {
            return;
        }
        if round < 100 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    panic!(
        "the balancer never converged on {:?}; it reports {:?}",
        expected.values().collect::<Vec<_>>(),
        balance.endpoints()
    );
}

/// A MakeService whose clients answer every request with their endpoint's address, counting
/// clients made and requests served.
fn make(
    made: Arc<AtomicUsize>,
    called: Arc<AtomicUsize>,
) -> impl Service<
    Endpoint,
    Response = impl Service<(), Response = SocketAddr, Error = Infallible, Future: Send>
               + Clone
               + Send
               + Sync
               + 'static,
    Error = Infallible,
    Future: Send,
> + Send
+ 'static {
    service_fn(move |ep: Endpoint| {
        made.fetch_add(1, SeqCst);
        let called = called.clone();
        async move {
            Ok::<_, Infallible>(service_fn(move |()| {
                called.fetch_add(1, SeqCst);
                let a = ep.addr();
                async move { Ok::<_, Infallible>(a) }
            }))
        }
    })
}
