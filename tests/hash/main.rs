//! Properties of the consistent-hashing pickers (issue 12), through the public API.
//!
//! Shares and disruption are computed exactly — a ring endpoint's share is the measure of the
//! 64-bit hash space it owns, summed over arcs between breakpoints; a Maglev endpoint's share is
//! its count of table entries — never estimated by hashing sampled keys.
//!
//! Proptest cases are few where a case builds large tables, so the file stays fast in debug
//! builds; the cases are fixed by seed, and every bound is stated beside its assertion.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tower::{Service, ServiceExt};
use tower_mesh::balance::hash::{
    ExtractKey, HashConfigError, HashKey, KeyHash, LoadBound, Maglev, MaglevTable, RingHash,
    RingTable, WithFallback,
};
use tower_mesh::balance::{Balance, EndpointView, Loads, Pick, PickRequest, Random, RoundRobin};
use tower_mesh::discover::{Static, Watch};
use tower_mesh::endpoint::{Endpoint, Weight};
use tower_mesh::load::{InFlight, Load};

mod api;
mod bounded;
mod maglev;
mod ring;

type Key = fn(&u64) -> Option<u64>;

fn by_value(k: &u64) -> Option<u64> {
    Some(*k)
}

fn ring() -> RingHash<Key> {
    RingHash::new(by_value as Key)
}

fn maglev() -> Maglev<Key> {
    Maglev::new(by_value as Key)
}

/// Fixed-seed proptest configuration: the same cases on every run, no regression files.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x4a54_1e12),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `n` distinct addresses, IPv4 and IPv6 mixed.
fn addrs(n: impl Into<prop::collection::SizeRange>) -> impl Strategy<Value = Vec<SocketAddr>> {
    let addr = prop_oneof![
        4 => (any::<u32>(), 1u16..).prop_map(|(ip, port)| SocketAddr::from((Ipv4Addr::from(ip), port))),
        1 => (any::<u128>(), 1u16..).prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
    ];
    prop::collection::btree_set(addr, n).prop_shuffle_vec()
}

trait ShuffleVec {
    fn prop_shuffle_vec(self) -> BoxedStrategy<Vec<SocketAddr>>;
}

impl<S: Strategy<Value = BTreeSet<SocketAddr>> + 'static> ShuffleVec for S {
    fn prop_shuffle_vec(self) -> BoxedStrategy<Vec<SocketAddr>> {
        self.prop_map(|set| set.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
            .boxed()
    }
}

fn weighted(addrs: &[SocketAddr], weights: &[u32]) -> Vec<Endpoint> {
    addrs
        .iter()
        .zip(weights.iter().chain(std::iter::repeat(&1)))
        .map(|(&a, &w)| Endpoint::new(a).with_weight(Weight::new(w).expect("weights are >= 1")))
        .collect()
}

fn views(endpoints: &[Endpoint]) -> Vec<EndpointView<'_>> {
    endpoints.iter().map(EndpointView::new).collect()
}

/// Endpoints sorted by address, as a balancer hands them to `Pick::build`.
fn sorted(mut endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
    endpoints.sort_by_key(Endpoint::addr);
    endpoints
}

/// Exact ownership of a ring: `(breakpoint, owner address)` for every point, in ring order.
/// The owner of breakpoint `p` owns the hashes in `(previous breakpoint, p]`.
fn ring_owners(table: &RingTable, endpoints: &[Endpoint]) -> Vec<(u64, SocketAddr)> {
    table
        .points()
        .map(|(p, i)| (p, endpoints[i].addr()))
        .collect()
}

/// The exact measure of hash space each endpoint owns, in units of 1 (out of 2⁶⁴).
fn ring_shares(table: &RingTable) -> Vec<u128> {
    let mut shares = vec![0u128; table.len()];
    let points: Vec<(u64, usize)> = table.points().collect();
    let Some(&(last, _)) = points.last() else {
        return shares;
    };
    let mut prev = last;
    for &(p, owner) in &points {
        // The first point also owns the wrap-around arc (last, 2⁶⁴) ∪ [0, first].
        shares[owner] += u128::from(p.wrapping_sub(prev));
        if points.len() == 1 {
            shares[owner] = 1 << 64;
        }
        prev = p;
    }
    shares
}

/// Compares two rings over every elementary arc of the union of their points (between
/// consecutive breakpoints both rings are constant), returning `(from, to, measure)` for every
/// arc whose owner differs.
fn ring_moves(
    a: &RingTable,
    a_eps: &[Endpoint],
    b: &RingTable,
    b_eps: &[Endpoint],
) -> Vec<(SocketAddr, SocketAddr, u128)> {
    let mut cuts: Vec<u64> = a.points().chain(b.points()).map(|(p, _)| p).collect();
    cuts.push(u64::MAX);
    cuts.sort_unstable();
    cuts.dedup();
    let owner = |t: &RingTable, eps: &[Endpoint], h: u64| {
        eps[t.lookup(KeyHash::from_u64(h)).expect("non-empty ring")].addr()
    };
    let mut moves = Vec::new();
    let mut prev: Option<u64> = None;
    for &c in &cuts {
        // Arc (prev, c]; the first arc is [0, c].
        let measure = match prev {
            None => u128::from(c) + 1,
            Some(p) => u128::from(c - p),
        };
        let (from, to) = (owner(a, a_eps, c), owner(b, b_eps, c));
        if from != to {
            moves.push((from, to, measure));
        }
        prev = Some(c);
    }
    moves
}

fn mapped(table: &MaglevTable, endpoints: &[Endpoint]) -> Vec<SocketAddr> {
    table
        .entries()
        .iter()
        .map(|&i| endpoints[i as usize].addr())
        .collect()
}

fn entry_counts(table: &MaglevTable) -> Vec<u64> {
    let mut counts = vec![0u64; table.len()];
    for &e in table.entries() {
        counts[e as usize] += 1;
    }
    counts
}

/// A ring small enough to build fast in debug builds, with no ring-size bound in play.
fn small_ring(replicas: u32) -> RingHash<Key> {
    ring()
        .replicas(replicas)
        .and_then(|r| r.ring_size(1, RingHash::RING_SIZE_LIMIT))
        .expect("valid settings")
}
