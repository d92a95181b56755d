//! Ring hash: balance, determinism and minimal disruption, computed exactly over arcs.

use super::*;

proptest! {
    #![proptest_config(config(24))]

    /// Determinism: tables built from the same endpoints listed in any order are identical once
    /// indices are mapped back to addresses, so every key maps identically.
    #[test]
    fn tables_do_not_depend_on_insertion_order(
        addrs in addrs(1..=40),
        weights in prop::collection::vec(1u32..=5, 40),
        shuffle in any::<u64>(),
    ) {
        let eps = weighted(&addrs, &weights);
        let mut other = eps.clone();
        let len = other.len();
        for i in (1..len).rev() {
            other.swap(i, (shuffle.rotate_left(i as u32) % (i as u64 + 1)) as usize);
        }
        let sorted_eps = sorted(eps.clone());
        let ring = small_ring(16);
        for (a, b) in [(&eps, &other), (&eps, &sorted_eps)] {
            prop_assert_eq!(
                ring_owners(&ring.ring(&views(a)), a),
                ring_owners(&ring.ring(&views(b)), b)
            );
            let maglev = maglev().table_size(4099).unwrap();
            prop_assert_eq!(
                mapped(&maglev.table(&views(a)), a),
                mapped(&maglev.table(&views(b)), b)
            );
        }
    }

    /// A picker reuses points computed by its earlier builds; through any sequence of sets and
    /// weights, its rings are exactly those a fresh picker builds.
    #[test]
    fn cached_points_give_the_same_rings_as_a_fresh_build(
        sets in prop::collection::vec(
            (addrs(0..=12), prop::collection::vec(1u32..=4, 12)),
            1..6,
        ),
        shared in addrs(4),
    ) {
        let warm = small_ring(24);
        for (addrs, weights) in sets {
            // Overlapping sets, so some points come from the cache.
            let all: Vec<SocketAddr> = addrs.into_iter().chain(shared.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
            let eps = weighted(&all, &weights);
            prop_assert_eq!(warm.ring(&views(&eps)), small_ring(24).ring(&views(&eps)));
        }
    }

    /// The bucket-indexed lookup agrees with a plain binary search over the sorted points, at
    /// every point, next to it, and at random hashes.
    #[test]
    fn ring_lookup_matches_a_binary_search(
        addrs in addrs(1..=30),
        weights in prop::collection::vec(1u32..=3, 30),
        replicas in 1u32..=200,
        hashes in prop::collection::vec(any::<u64>(), 64),
    ) {
        let eps = sorted(weighted(&addrs, &weights));
        let table = small_ring(replicas).ring(&views(&eps));
        let points: Vec<(u64, usize)> = table.points().collect();
        prop_assert!(points.windows(2).all(|w| w[0].0 <= w[1].0));
        let naive = |h: u64| {
            let at = points.partition_point(|&(p, _)| p < h);
            points[if at == points.len() { 0 } else { at }].1
        };
        let probes = points
            .iter()
            .flat_map(|&(p, _)| [p.wrapping_sub(1), p, p.wrapping_add(1)])
            .chain(hashes)
            .chain([0, u64::MAX]);
        for h in probes {
            prop_assert_eq!(table.lookup(KeyHash::from_u64(h)), Some(naive(h)), "hash {:#x}", h);
        }
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Minimal disruption, default settings, equal weights: removing one of N endpoints moves
    /// exactly the keys it owned (to anywhere), and adding one moves keys only to it, exactly
    /// its new share.
    #[test]
    fn ring_changes_move_only_the_changed_endpoints_keys(
        addrs in addrs(2..=40),
        pick in any::<prop::sample::Index>(),
    ) {
        let all = sorted(weighted(&addrs, &[]));
        let gone = all[pick.index(all.len())].addr();
        let rest: Vec<Endpoint> = all.iter().filter(|e| e.addr() != gone).cloned().collect();
        let picker = ring();
        let (before, after) = (picker.ring(&views(&all)), picker.ring(&views(&rest)));
        check_removal(&before, &all, &after, &rest, gone)?;
    }

    /// The same with weights, where the rule keeps other endpoints' points: the removed
    /// endpoint is not the only lightest one, and no ring-size bound is in play.
    #[test]
    fn weighted_ring_changes_move_only_the_changed_endpoints_keys(
        addrs in addrs(3..=30),
        weights in prop::collection::vec(1u32..=6, 30),
        pick in any::<prop::sample::Index>(),
    ) {
        let all = sorted(weighted(&addrs, &weights));
        let w_min = all.iter().map(|e| e.weight()).min().unwrap();
        let candidates: Vec<&Endpoint> = all
            .iter()
            .filter(|e| e.weight() > w_min || all.iter().filter(|o| o.weight() == w_min).count() > 1)
            .collect();
        prop_assume!(!candidates.is_empty());
        let gone = candidates[pick.index(candidates.len())].addr();
        let rest: Vec<Endpoint> = all.iter().filter(|e| e.addr() != gone).cloned().collect();
        let picker = small_ring(64);
        let (before, after) = (picker.ring(&views(&all)), picker.ring(&views(&rest)));
        check_removal(&before, &all, &after, &rest, gone)?;
    }
}

/// Removal from `before` to `after` moves exactly `gone`'s arcs, and (read backwards) adding
/// `gone` moves keys only to it.
fn check_removal(
    before: &RingTable,
    all: &[Endpoint],
    after: &RingTable,
    rest: &[Endpoint],
    gone: SocketAddr,
) -> Result<(), TestCaseError> {
    let gone_index = all.iter().position(|e| e.addr() == gone).unwrap();
    let gone_share = ring_shares(before)[gone_index];
    let removal = ring_moves(before, all, after, rest);
    for &(from, to, _) in &removal {
        prop_assert_eq!(
            from,
            gone,
            "a key moved from {} to {}, not from the removed endpoint",
            from,
            to
        );
    }
    let moved: u128 = removal.iter().map(|m| m.2).sum();
    prop_assert_eq!(
        moved,
        gone_share,
        "exactly the removed endpoint's share moves"
    );
    let addition = ring_moves(after, rest, before, all);
    for &(from, to, _) in &addition {
        prop_assert_eq!(
            to,
            gone,
            "a key moved from {} to {}, not to the added endpoint",
            from,
            to
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(6))]

    /// Balance, default settings, N = 100, equal weights: the largest exact share is at most
    /// 1.15 × the mean.
    #[test]
    fn ring_peak_to_mean_at_100_endpoints(addrs in addrs(100)) {
        let eps = sorted(weighted(&addrs, &[]));
        let table = ring().ring(&views(&eps));
        let shares = ring_shares(&table);
        prop_assert_eq!(shares.iter().sum::<u128>(), 1 << 64);
        let peak = *shares.iter().max().unwrap() as f64 / (2f64.powi(64) / 100.0);
        prop_assert!(peak <= 1.15, "peak-to-mean {:.4}", peak);
    }

    /// Weighted ring, default settings: every endpoint's exact share is at most 1.15 × its
    /// weight's share of the total.
    #[test]
    fn ring_shares_follow_weights(
        addrs in addrs(20..=40),
        weights in prop::collection::vec(1u32..=4, 40),
    ) {
        let eps = sorted(weighted(&addrs, &weights));
        let table = ring().ring(&views(&eps));
        let total: f64 = eps.iter().map(|e| f64::from(e.weight().get())).sum();
        for (e, &share) in eps.iter().zip(&ring_shares(&table)) {
            let ratio = share as f64 / 2f64.powi(64) / (f64::from(e.weight().get()) / total);
            prop_assert!(ratio <= 1.15, "{} (weight {}) holds {:.4}× its share", e.addr(), e.weight(), ratio);
        }
    }
}
