use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::ready;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, stream};
use proptest::prelude::*;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::balance::{Balance, RoundRobin};
use crate::discover::{Update, Watch};
use crate::endpoint::Endpoint;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ep(port: u16) -> Endpoint {
    Endpoint::new(addr(port))
}

fn ports(eps: &[Endpoint]) -> Vec<u16> {
    eps.iter().map(|e| e.addr().port()).collect()
}

fn by_index(index: usize, count: usize, k: usize) -> Subsetting {
    Subsetting::by_index(index, count, k).unwrap()
}

/// Per-endpoint client counts over all `count` clients by index.
fn client_counts(count: usize, n: usize, k: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for i in 0..count {
        for j in by_index(i, count, k).indices(n) {
            counts[j] += 1;
        }
    }
    counts
}

/// What one client's subset does when the endpoint at position `r` of `n` is removed:
/// `(entered, left)` in old positions.
fn churn_on_remove(s: &Subsetting, n: usize, r: usize) -> (Vec<usize>, Vec<usize>) {
    let old: Vec<usize> = s.indices(n).collect();
    // Renumbering into the old ring keeps the order, so both lists are ascending.
    let new: Vec<usize> = s
        .indices(n - 1)
        .map(|j| if j >= r { j + 1 } else { j })
        .collect();
    (difference(&new, &old), difference(&old, &new))
}

/// The elements of ascending `a` not in ascending `b`.
fn difference(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut b = b.iter().peekable();
    for &x in a {
        while b.next_if(|&&y| y < x).is_some() {}
        if b.peek() != Some(&&x) {
            out.push(x);
        }
    }
    out
}

/// Checks the documented churn bound for one client and one removal; returns whether the
/// two-new-connections case happened.
fn check_churn(s: &Subsetting, n: usize, r: usize) -> Result<bool, TestCaseError> {
    let k = s.size();
    let (entered, left) = churn_on_remove(s, n, r);
    let had_r = s.indices(n).any(|j| j == r);
    let old_len = s.indices(n).len();
    prop_assert!(
        entered.len() <= 1 + usize::from(had_r),
        "{s:?} n={n} r={r}: entered {entered:?}"
    );
    let left_live: Vec<_> = left.iter().filter(|&&j| j != r).collect();
    prop_assert!(left_live.len() <= 1, "{s:?} n={n} r={r}: left {left:?}");
    // Sizes stay min(k, n).
    prop_assert_eq!(old_len - left.len() + entered.len(), k.min(n - 1));
    Ok(entered.len() == 2)
}

#[test]
fn bad_values_are_typed_errors_naming_them() {
    assert_eq!(Subsetting::by_index(0, 0, 1), Err(SubsetError::ZeroClients));
    let err = Subsetting::by_index(7, 7, 1).unwrap_err();
    assert_eq!(err, SubsetError::IndexOutOfRange { index: 7, count: 7 });
    assert_eq!(
        err.to_string(),
        "invalid client index 7: must be less than the client count 7"
    );
    assert_eq!(Subsetting::by_index(0, 1, 0), Err(SubsetError::ZeroSize));
    assert_eq!(Subsetting::by_id("", 3), Err(SubsetError::EmptyId));
    assert_eq!(Subsetting::by_id("pod-a", 0), Err(SubsetError::ZeroSize));
    assert_eq!(by_index(0, 1, 2).with_size(0), Err(SubsetError::ZeroSize));
    assert_eq!(
        SubsetError::ZeroSize.to_string(),
        "invalid subset size 0: must be at least 1"
    );
    assert_eq!(
        SubsetError::ZeroClients.to_string(),
        "invalid client count 0: must be at least 1"
    );
}

#[test]
fn accessors_report_what_was_built() {
    let s = by_index(2, 5, 3);
    assert_eq!(s.size(), 3);
    assert_eq!(s.index(), Some((2, 5)));
    assert_eq!(s.with_size(4).unwrap().size(), 4);
    assert_eq!(s.with_size(4).unwrap().index(), Some((2, 5)));
    let id = Subsetting::by_id("pod-a", 3).unwrap();
    assert_eq!(id.index(), None);
    assert_eq!(id, Subsetting::by_id(String::from("pod-a"), 3).unwrap());
    assert_ne!(id, Subsetting::by_id("pod-b", 3).unwrap());
}

#[test]
fn clients_partition_the_ring_when_sizes_divide() {
    let eps: Vec<Endpoint> = (1..=6).map(ep).collect();
    assert_eq!(ports(&by_index(0, 3, 2).select(&eps)), [1, 2]);
    assert_eq!(ports(&by_index(1, 3, 2).select(&eps)), [3, 4]);
    assert_eq!(ports(&by_index(2, 3, 2).select(&eps)), [5, 6]);
    // A window that wraps comes back sorted by address.
    assert_eq!(ports(&by_index(2, 3, 3).select(&eps)), [1, 5, 6]);
    assert_eq!(by_index(2, 3, 3).indices(6).collect::<Vec<_>>(), [0, 4, 5]);
}

#[test]
fn fewer_endpoints_than_k_gives_every_client_all() {
    let eps: Vec<Endpoint> = (1..=3).map(ep).collect();
    for i in 0..4 {
        assert_eq!(ports(&by_index(i, 4, 3).select(&eps)), [1, 2, 3]);
        assert_eq!(ports(&by_index(i, 4, 10).select(&eps)), [1, 2, 3]);
    }
    let id = Subsetting::by_id("pod-a", 5).unwrap();
    assert_eq!(ports(&id.select(&eps)), [1, 2, 3]);
    assert!(id.select(&[]).is_empty());
    assert_eq!(id.indices(0).len(), 0);
}

#[test]
fn select_ignores_input_order_and_keeps_the_later_duplicate() {
    let s = by_index(1, 4, 3);
    let sorted: Vec<Endpoint> = (1..=12).map(ep).collect();
    let mut shuffled = sorted.clone();
    shuffled.reverse();
    shuffled.swap(2, 9);
    assert_eq!(s.select(&sorted), s.select(&shuffled));
    assert_eq!(ports(&s.select(&sorted)), [4, 5, 6]);

    // Port 5 twice: the later entry's metadata wins, and the ring still has 12 positions.
    let mut dup = sorted.clone();
    dup.insert(0, ep(5).with_zone("old"));
    dup.push(ep(5).with_zone("new"));
    let got = s.select(&dup);
    assert_eq!(ports(&got), [4, 5, 6]);
    assert_eq!(got[1].zone(), Some("new"));
}

/// Every (n, k, count, r) up to small sizes: the balance bound, and the churn bound on every
/// removal, including that its "two new connections" case really occurs (the bound is tight).
#[test]
fn exhaustive_small_rings_meet_both_bounds() {
    let mut two_entered = false;
    for n in 1..=20 {
        for k in 1..=n + 1 {
            for count in 1..=10 {
                let counts = client_counts(count, n, k);
                let (lo, hi) = if k >= n {
                    (count, count)
                } else {
                    ((count * k) / n, (count * k).div_ceil(n))
                };
                for (j, c) in counts.iter().enumerate() {
                    assert!(
                        (lo..=hi).contains(c),
                        "n={n} k={k} count={count}: endpoint {j} has {c} clients, not {lo}..={hi}"
                    );
                }
                if n < 2 {
                    continue;
                }
                for i in 0..count {
                    for r in 0..n {
                        two_entered |= check_churn(&by_index(i, count, k), n, r).unwrap();
                    }
                }
            }
        }
    }
    assert!(two_entered, "the two-new-connections case never occurred");
}

#[test]
fn hashed_ids_balance_like_a_binomial() {
    let (clients, n, k) = (1000, 200, 20);
    let mut counts = vec![0usize; n];
    for c in 0..clients {
        let s = Subsetting::by_id(format!("client-{c}"), k).unwrap();
        let chosen: Vec<usize> = s.indices(n).collect();
        assert_eq!(chosen.len(), k);
        for j in chosen {
            counts[j] += 1;
        }
    }
    let mean = (clients * k) as f64 / n as f64;
    let p = k as f64 / n as f64;
    let sd = (clients as f64 * p * (1.0 - p)).sqrt();
    for (j, &c) in counts.iter().enumerate() {
        assert!(
            (c as f64 - mean).abs() <= 5.0 * sd,
            "endpoint {j}: {c} clients, mean {mean}, sd {sd}"
        );
    }
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    // Neighbouring endpoints share most of their clients, so the spread is checked loosely.
    assert!(
        (0.5 * sd..=1.5 * sd).contains(&var.sqrt()),
        "spread {} against binomial sd {sd}",
        var.sqrt()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The property: for random client counts (1..=500), endpoint counts (1..=2000)
    /// and k, every endpoint's client count is ⌊C·k/N⌋ or ⌈C·k/N⌉ (so within 1 of the mean),
    /// each subset is min(k, N) distinct endpoints, and removing one endpoint changes each
    /// client's subset by at most the documented bound.
    #[test]
    fn by_index_balance_size_and_churn(
        (count, n, k, r) in (1usize..=500, 1usize..=2000)
            .prop_flat_map(|(c, n)| (Just(c), Just(n), 1..=n + 10, 0..n))
    ) {
        let mut counts = vec![0usize; n];
        for i in 0..count {
            let s = by_index(i, count, k);
            let chosen: Vec<usize> = s.indices(n).collect();
            prop_assert_eq!(chosen.len(), k.min(n));
            // Ascending, hence distinct; and in range.
            prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(chosen.iter().all(|&j| j < n));
            for &j in &chosen {
                counts[j] += 1;
            }
            if n >= 2 {
                check_churn(&s, n, r)?;
            }
        }
        let mean = (count * k.min(n)) as f64 / n as f64;
        for (j, &c) in counts.iter().enumerate() {
            prop_assert!(
                (c as f64 - mean).abs() < 1.0,
                "endpoint {} has {} clients, mean {}", j, c, mean
            );
        }
    }

    /// The stable-id variant: sizes and the churn bound hold for any ids.
    #[test]
    fn by_id_size_and_churn(
        ids in proptest::collection::vec("[a-z0-9-]{1,24}", 1..50),
        (n, k, r) in (1usize..=2000).prop_flat_map(|n| (Just(n), 1..=n + 10, 0..n)),
    ) {
        for id in &ids {
            let s = Subsetting::by_id(id, k).unwrap();
            prop_assert!(n == 0 || s.start(n) < n);
            let chosen: Vec<usize> = s.indices(n).collect();
            prop_assert_eq!(chosen.len(), k.min(n));
            prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]));
            if n >= 2 {
                check_churn(&s, n, r)?;
            }
        }
    }

    /// Resizing the client fleet from C to C+1 replaces at most min(k, ⌈N/(C+1)⌉) endpoints of
    /// each remaining client's subset.
    #[test]
    fn client_count_change_moves_a_bounded_window(
        (count, n, k) in (1usize..=499, 1usize..=2000)
            .prop_flat_map(|(c, n)| (Just(c), Just(n), 1..=n))
    ) {
        let bound = k.min(n.div_ceil(count + 1));
        for i in 0..count {
            let old: Vec<usize> = by_index(i, count, k).indices(n).collect();
            let new: Vec<usize> = by_index(i, count + 1, k).indices(n).collect();
            let moved = difference(&new, &old).len();
            prop_assert!(moved <= bound, "client {}: {} moved, bound {}", i, moved, bound);
        }
    }

    /// `select` on real endpoints equals `indices` on the address-sorted list, whatever the
    /// input order.
    #[test]
    fn select_matches_indices_on_the_sorted_set(
        ports_in in proptest::collection::vec(1u16..400, 0..200),
        (index, count) in (1usize..=50).prop_flat_map(|c| (0..c, Just(c))),
        k in 1usize..=60,
    ) {
        let s = by_index(index, count, k);
        let eps: Vec<Endpoint> = ports_in.iter().map(|&p| ep(p)).collect();
        let sorted: Vec<u16> = ports_in.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let want: Vec<u16> = s.indices(sorted.len()).map(|j| sorted[j]).collect();
        prop_assert_eq!(ports(&s.select(&eps)), want);
    }

    /// Random update sequences through the adapter: after each burst, the consumer's set (the
    /// emitted updates applied in order) is exactly `select` of the full set, and the emitted
    /// diff is minimal.
    #[test]
    fn adapter_tracks_select_through_random_bursts(
        bursts in proptest::collection::vec(
            proptest::collection::vec((0u8..3, 1u16..60, any::<bool>()), 1..12), 1..25),
        (index, count, k) in (1usize..=8).prop_flat_map(|c| (0..c, Just(c), 1usize..=12)),
    ) {
        let s = by_index(index, count, k);
        let (watch, updates) = Watch::new();
        let mut subset = Subset::new(updates, s);
        let mut full: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
        let mut seen: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
        for burst in bursts {
            for (kind, port, zone) in burst {
                let e = if zone { ep(port).with_zone("z") } else { ep(port) };
                match kind {
                    0 => {
                        full.insert(e.addr(), e.clone());
                        watch.insert(e).unwrap();
                    }
                    1 => {
                        full.remove(&addr(port));
                        watch.remove(addr(port)).unwrap();
                    }
                    _ => {
                        let list: Vec<Endpoint> = (port..port + 5).map(ep).collect();
                        full = list.iter().map(|e| (e.addr(), e.clone())).collect();
                        watch.reset(list).unwrap();
                    }
                }
            }
            let before = seen.clone();
            let mut emitted = Vec::new();
            while let Some(item) = subset.next().now_or_never() {
                emitted.push(item.expect("the watch is open").unwrap());
            }
            for u in &emitted {
                match u {
                    Update::Insert(e) => { seen.insert(e.addr(), e.clone()); }
                    Update::Remove(a) => { seen.remove(a); }
                    Update::Reset(list) => {
                        seen = list.iter().map(|e| (e.addr(), e.clone())).collect();
                    }
                }
            }
            let all: Vec<Endpoint> = full.values().cloned().collect();
            let want = s.select(&all);
            prop_assert_eq!(seen.values().cloned().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(subset.selected(), &want[..]);
            let changed = want.iter().filter(|e| before.get(&e.addr()) != Some(e)).count()
                + before.keys().filter(|a| !seen.contains_key(a)).count();
            match emitted.as_slice() {
                [Update::Reset(_)] => {}
                diffs => prop_assert_eq!(diffs.len(), changed),
            }
        }
    }
}

fn next_now<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<Option<S::Item>> {
    s.next().now_or_never()
}

#[test]
fn first_emission_is_a_reset_then_minimal_diffs() {
    let (watch, updates) = Watch::new();
    let mut subset = Subset::new(updates, by_index(1, 4, 3));
    assert!(next_now(&mut subset).is_none(), "nothing to say yet");
    watch.reset((1..=12).map(ep)).unwrap();
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset(vec![ep(4), ep(5), ep(6)]))))
    );
    assert!(next_now(&mut subset).is_none());

    // Metadata of a chosen endpoint changes: one insert.
    watch.insert(ep(5).with_zone("a")).unwrap();
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Insert(ep(5).with_zone("a")))))
    );
    // Metadata of an unchosen endpoint changes: nothing.
    watch.insert(ep(9).with_zone("a")).unwrap();
    assert!(next_now(&mut subset).is_none());

    // A chosen endpoint leaves: N = 11, start ⌊11/4⌋ = 2, so ports 3, 4, 6.
    watch.remove(addr(5)).unwrap();
    let mut got = vec![
        next_now(&mut subset).unwrap().unwrap().unwrap(),
        next_now(&mut subset).unwrap().unwrap().unwrap(),
    ];
    got.sort_by_key(|u| format!("{u:?}"));
    assert_eq!(got, [Update::Insert(ep(3)), Update::Remove(addr(5))]);
    assert!(next_now(&mut subset).is_none());
    assert_eq!(ports(subset.selected()), [3, 4, 6]);
    assert_eq!(subset.full_len(), 11);
}

#[test]
fn a_burst_is_recomputed_once_with_no_intermediate_states() {
    let (watch, updates) = Watch::new();
    // k = 1 at the start of the ring: each insert below a lower port would move the choice.
    let mut subset = Subset::new(updates, by_index(0, 1, 1));
    for port in (1..=50).rev() {
        watch.insert(ep(port)).unwrap();
    }
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset(vec![ep(1)]))))
    );
    assert!(next_now(&mut subset).is_none());
    for port in 1..=49 {
        watch.remove(addr(port)).unwrap();
    }
    // 49 removals, one recomputation. The diff (remove 1, insert 50) is longer than the
    // one-endpoint subset, so it goes out as a reset.
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset(vec![ep(50)]))))
    );
    assert!(next_now(&mut subset).is_none());
}

#[test]
fn upstream_reset_becomes_the_minimal_diff_or_a_reset() {
    let (watch, updates) = Watch::new();
    let mut subset = Subset::new(updates, by_index(0, 2, 4));
    watch.reset((1..=10).map(ep)).unwrap();
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset((1..=4).map(ep).collect()))))
    );
    // Same set again: nothing.
    watch.reset((1..=10).map(ep)).unwrap();
    assert!(next_now(&mut subset).is_none());
    // One endpoint added below all others: the start stays 0, so the window gains port 0 and
    // drops port 4.
    watch.reset((0..=10).map(ep)).unwrap();
    let a = next_now(&mut subset).unwrap().unwrap().unwrap();
    let b = next_now(&mut subset).unwrap().unwrap().unwrap();
    assert!(next_now(&mut subset).is_none());
    let mut got = vec![a, b];
    got.sort_by_key(|u| format!("{u:?}"));
    assert_eq!(got, [Update::Insert(ep(0)), Update::Remove(addr(4))]);
    // A wholly new set: one reset, not eight updates.
    watch.reset((100..=110).map(ep)).unwrap();
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset((100..=103).map(ep).collect()))))
    );
    // Everything gone: an empty reset.
    watch.reset([]).unwrap();
    assert_eq!(next_now(&mut subset), Some(Some(Ok(Update::Reset(vec![])))));
}

#[tokio::test]
async fn errors_pass_through_after_the_updates_before_them() {
    let source = stream::iter([
        Ok(Update::Insert(ep(1))),
        Err("registry down"),
        Ok(Update::Insert(ep(2))),
    ]);
    let items: Vec<Result<Update, &str>> = Subset::new(source, by_index(0, 1, 2)).collect().await;
    assert_eq!(
        items,
        [
            Ok(Update::Reset(vec![ep(1)])),
            Err("registry down"),
            Ok(Update::Insert(ep(2))),
        ]
    );
}

#[test]
fn a_handle_keeps_the_stream_open_and_moves_the_window() {
    let source = stream::iter([Ok::<_, Infallible>(Update::Reset(
        (1..=12).map(ep).collect(),
    ))]);
    let mut subset = Subset::new(source, by_index(0, 4, 3));
    let handle = subset.handle();
    let other = handle.clone();
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset(vec![ep(1), ep(2), ep(3)]))))
    );
    // The source has ended, but handles remain.
    assert!(next_now(&mut subset).is_none());

    // The fleet shrank to 2 clients and this one is now index 1: ports 7, 8, 9.
    handle.set_clients(1, 2).unwrap();
    assert_eq!(handle.get(), by_index(1, 2, 3));
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Reset(vec![ep(7), ep(8), ep(9)]))))
    );
    assert_eq!(subset.subsetting(), by_index(1, 2, 3));
    // Setting the same value again does nothing; a bad value is refused and changes nothing.
    other.set(by_index(1, 2, 3));
    assert!(next_now(&mut subset).is_none());
    assert_eq!(
        other.set_clients(2, 2),
        Err(SubsetError::IndexOutOfRange { index: 2, count: 2 })
    );
    assert_eq!(other.set_clients(0, 0), Err(SubsetError::ZeroClients));
    assert!(next_now(&mut subset).is_none());
    // A larger k at the same position: one more endpoint, as one insert.
    other.set(by_index(1, 2, 4));
    assert_eq!(
        next_now(&mut subset),
        Some(Some(Ok(Update::Insert(ep(10)))))
    );

    drop(handle);
    assert!(next_now(&mut subset).is_none(), "one handle remains");
    drop(other);
    assert_eq!(
        next_now(&mut subset),
        Some(None),
        "source ended, no handles"
    );
    assert_eq!(next_now(&mut subset), Some(None));
}

#[tokio::test]
async fn dropping_the_last_handle_wakes_a_waiting_stream() {
    let source = stream::iter([Ok::<_, Infallible>(Update::Reset(vec![ep(1)]))]);
    let mut subset = Subset::new(source, by_index(0, 1, 1));
    let handle = subset.handle();
    assert_eq!(subset.next().await, Some(Ok(Update::Reset(vec![ep(1)]))));
    let waiter = tokio::spawn(async move { subset.next().await });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    drop(handle);
    let end = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the drop")
        .unwrap();
    assert_eq!(end, None);
}

/// A MakeService whose clients answer with their endpoint's address.
fn make_echo() -> impl tower::Service<
    Endpoint,
    Response = impl tower::Service<(), Response = SocketAddr, Error = Infallible, Future: Send>
               + Clone
               + Send
               + Sync
               + 'static,
    Error = Infallible,
    Future: Send,
> + Send
+ 'static {
    service_fn(|e: Endpoint| {
        let a = e.addr();
        ready(Ok::<_, Infallible>(service_fn(move |()| {
            ready(Ok::<_, Infallible>(a))
        })))
    })
}

async fn settle<P: crate::balance::Pick, S>(balance: &Balance<P, S>, want: &[u16]) {
    let want: Vec<SocketAddr> = want.iter().map(|&p| addr(p)).collect();
    for _ in 0..1000 {
        let ready: Vec<SocketAddr> = balance
            .endpoints()
            .iter()
            .filter(|s| s.is_ready())
            .map(|s| s.endpoint().addr())
            .collect();
        let all = balance.endpoints().len();
        if ready == want && all == want.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "balancer never held exactly {want:?}: has {:?}",
        balance.endpoints()
    );
}

#[tokio::test(start_paused = true)]
async fn only_the_subset_becomes_ready_in_a_real_balancer() {
    let (watch, updates) = Watch::new();
    let subset = Subset::new(updates, by_index(1, 4, 3));
    let handle = subset.handle();
    let mut balance = Balance::builder(RoundRobin::new())
        .build(subset, make_echo())
        .unwrap();

    watch.reset((1..=12).map(ep)).unwrap();
    settle(&balance, &[4, 5, 6]).await;
    let mut hits = BTreeSet::new();
    for _ in 0..30 {
        let svc = balance.ready().await.unwrap();
        hits.insert(svc.call(()).await.unwrap().port());
    }
    assert_eq!(hits, BTreeSet::from([4, 5, 6]));

    // A chosen endpoint leaves discovery: N = 11, the window moves to ports 3, 4, 6.
    watch.remove(addr(5)).unwrap();
    settle(&balance, &[3, 4, 6]).await;
    // An unchosen endpoint's metadata changes: the balancer is not bothered.
    watch.insert(ep(11).with_zone("b")).unwrap();
    settle(&balance, &[3, 4, 6]).await;

    // The client fleet is resized: index 3 of 4 now, ports 10, 11, 12 (11 with its zone).
    handle.set_clients(3, 4).unwrap();
    settle(&balance, &[10, 11, 12]).await;
    let zones: Vec<Option<String>> = balance
        .endpoints()
        .iter()
        .map(|s| s.endpoint().zone().map(str::to_owned))
        .collect();
    assert_eq!(zones, [None, Some("b".to_owned()), None]);
    let mut hits = BTreeSet::new();
    for _ in 0..30 {
        let svc = balance.ready().await.unwrap();
        hits.insert(svc.call(()).await.unwrap().port());
    }
    assert_eq!(hits, BTreeSet::from([10, 11, 12]));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Subsetting>();
    check::<Indices>();
    check::<SubsetError>();
    check::<SubsetHandle>();
    check::<Subset<crate::discover::WatchUpdates>>();
    let s = Subset::new(Watch::new().1, by_index(0, 1, 1));
    assert!(format!("{s:?}").contains("Subset"));
    assert!(format!("{:?}", s.handle()).contains("SubsetHandle"));
}
