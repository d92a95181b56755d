//! Random endpoint-set updates and keys fed to both consistent-hash tables (ring and Maglev).
//!
//! After every update both tables are rebuilt and checked: every lookup names a live endpoint;
//! the ring's bucket index agrees with a plain binary search over its points; both tables are
//! identical when built from the endpoints in reverse order; Maglev fills every entry, with
//! counts differing by at most one under equal weights; and the ring moves keys only from or to
//! the endpoint that changed, measured exactly over arcs, whenever the point-count rule keeps
//! everyone else's points (the lightest weight unchanged). Bounded-load picks never choose an
//! endpoint at its capacity.
#![no_main]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use tower_mesh::balance::hash::{KeyHash, LoadBound, Maglev, MaglevTable, RingHash, RingTable};
use tower_mesh::balance::{EndpointView, Loads, Pick, PickRequest};
use tower_mesh::endpoint::{Endpoint, Weight};
use tower_mesh::load::Load;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn key(k: &u64) -> Option<KeyHash> {
    Some(KeyHash::from_u64(*k))
}

type Key = fn(&u64) -> Option<KeyHash>;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(replicas), Some(size), Some(eps)) = (input.byte(), input.byte(), input.byte()) else {
        return;
    };
    let ring = RingHash::new(key as Key)
        .replicas(u32::from(replicas % 32) + 1)
        .and_then(|r| r.ring_size(1, RingHash::RING_SIZE_LIMIT))
        .expect("valid ring settings");
    let bound = LoadBound::new(f64::from(eps % 200 + 1) / 100.0).expect("positive epsilon");
    let bounded = ring.clone().bounded_loads(bound);
    let maglev = Maglev::new(key as Key)
        .table_size([7, 251, 4099][usize::from(size % 3)])
        .expect("prime");

    let mut set: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    let mut previous: Option<(Vec<Endpoint>, RingTable)> = None;
    while let Some(op) = input.byte() {
        let changed = match op % 4 {
            0 | 1 if set.len() < 64 => {
                let Some(port) = input.u16() else { break };
                let Some(host) = input.byte() else { break };
                let addr = if op % 4 == 0 {
                    SocketAddr::from((Ipv4Addr::new(10, 0, 0, host), port))
                } else {
                    SocketAddr::from((
                        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(host)),
                        port,
                    ))
                };
                let weight = u32::from(input.byte().unwrap_or(0) % 4) + 1;
                set.insert(addr, weight);
                Some(addr)
            }
            2 if !set.is_empty() => {
                let Some(at) = input.byte() else { break };
                let addr = *set
                    .keys()
                    .nth(usize::from(at) % set.len())
                    .expect("in range");
                set.remove(&addr);
                Some(addr)
            }
            _ => None,
        };

        let eps: Vec<Endpoint> = set
            .iter()
            .map(|(&a, &w)| Endpoint::new(a).with_weight(Weight::new(w).expect("w >= 1")))
            .collect();
        let views: Vec<EndpointView<'_>> = eps.iter().map(EndpointView::new).collect();
        let reversed: Vec<EndpointView<'_>> = views.iter().rev().copied().collect();
        let n = eps.len();

        let table = ring.ring(&views);
        check_ring(&table, n);
        let mapped = |t: &RingTable, v: &[EndpointView<'_>]| -> Vec<(u64, SocketAddr)> {
            t.points().map(|(p, i)| (p, v[i].addr())).collect()
        };
        assert_eq!(
            mapped(&table, &views),
            mapped(&ring.ring(&reversed), &reversed)
        );

        let m = maglev.table(&views);
        check_maglev(&m, &eps);
        let entries = |t: &MaglevTable, v: &[EndpointView<'_>]| -> Vec<SocketAddr> {
            t.entries().iter().map(|&i| v[i as usize].addr()).collect()
        };
        assert_eq!(
            entries(&m, &views),
            entries(&maglev.table(&reversed), &reversed)
        );

        if let (Some(addr), Some((old_eps, old_table))) = (changed, &previous) {
            let w_min = |e: &[Endpoint]| e.iter().map(|e| e.weight()).min();
            if w_min(old_eps) == w_min(&eps) {
                check_moves(old_table, old_eps, &table, &eps, addr);
            }
        }

        // Keys: plain and bounded picks through the `Pick` API, with arbitrary loads.
        let loads: Vec<Load> = (0..n).map(|_| Load::new()).collect();
        let mut guards = Vec::new();
        for (i, load) in loads.iter().enumerate() {
            for _ in 0..input.bytes(1).first().map_or(0, |b| b % 4) {
                guards.push((i, load.start()));
            }
        }
        let full_table = bounded.build(&views);
        let mut cursor = bounded.cursor(0);
        let weights: Vec<u64> = eps.iter().map(|e| u64::from(e.weight().get())).collect();
        let total_weight: u64 = weights.iter().sum();
        for chunk in input.bytes(16).chunks(8) {
            let mut k = [0u8; 8];
            k[..chunk.len()].copy_from_slice(chunk);
            let k = u64::from_le_bytes(k);
            let owner = table.lookup(KeyHash::from_u64(k));
            assert_eq!(owner.is_some(), n > 0);
            assert!(owner.is_none_or(|i| i < n));
            let slot = m.lookup(KeyHash::from_u64(k));
            assert_eq!(slot.is_some(), n > 0);
            assert!(slot.is_none_or(|i| i < n));
            let in_flight: u64 = loads.iter().map(|l| l.in_flight()).sum();
            match bounded.pick(&full_table, &mut cursor, &Loads::new(&loads), &k) {
                Some(i) => {
                    let cap = bound.capacity(in_flight, weights[i], total_weight);
                    assert!(loads[i].in_flight() < cap, "endpoint {i} at capacity {cap}");
                }
                None => assert_eq!(n, 0),
            }
        }
        drop(guards);
        previous = Some((eps, table));
    }
});

fn check_ring(table: &RingTable, n: usize) {
    assert_eq!(table.len(), n);
    let points: Vec<(u64, usize)> = table.points().collect();
    assert_eq!(points.len(), table.point_count());
    assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "points sorted");
    let mut seen = vec![false; n];
    for &(_, i) in &points {
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s), "every endpoint has a point");
    for &(p, _) in &points {
        for h in [p.wrapping_sub(1), p, p.wrapping_add(1)] {
            let at = points.partition_point(|&(q, _)| q < h);
            let naive = points[if at == points.len() { 0 } else { at }].1;
            assert_eq!(table.lookup(KeyHash::from_u64(h)), Some(naive));
        }
    }
}

fn check_maglev(table: &MaglevTable, eps: &[Endpoint]) {
    let n = eps.len();
    assert_eq!(table.len(), n);
    if n == 0 {
        assert!(table.entries().is_empty());
        return;
    }
    let mut counts = vec![0u64; n];
    for &e in table.entries() {
        counts[e as usize] += 1;
    }
    let equal = eps.iter().all(|e| e.weight() == eps[0].weight());
    if equal {
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(
            max.zip(min).is_some_and(|(max, min)| max - min <= 1),
            "{counts:?}"
        );
    }
}

/// Between two rings, every arc whose owner differs moves from or to `changed`.
fn check_moves(
    a: &RingTable,
    a_eps: &[Endpoint],
    b: &RingTable,
    b_eps: &[Endpoint],
    changed: SocketAddr,
) {
    if a.is_empty() || b.is_empty() {
        return;
    }
    let mut cuts: Vec<u64> = a.points().chain(b.points()).map(|(p, _)| p).collect();
    cuts.push(u64::MAX);
    for c in cuts {
        let from = a_eps[a.lookup(KeyHash::from_u64(c)).expect("non-empty")].addr();
        let to = b_eps[b.lookup(KeyHash::from_u64(c)).expect("non-empty")].addr();
        assert!(
            from == to || from == changed || to == changed,
            "{from} -> {to}, changed {changed}"
        );
    }
}
