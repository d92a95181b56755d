//! Property tests of the pickers' selection maths, through the public `Pick` and `PickRequest`
//! traits: round-robin fairness, exact and smooth weighted shares, the alias table's exact
//! probabilities, sampling convergence, and seeded determinism.

use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tower_mesh::balance::{
    EndpointView, Loads, Pick, PickRequest, Random, RoundRobin, Weighted, WeightedRandom,
};
use tower_mesh::endpoint::{Endpoint, Weight};
use tower_mesh::load::Load;

/// Endpoints with these weights, at addresses sorted in the same order (as `Pick::build`
/// requires).
fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let port = 1000 + u16::try_from(i).expect("test sets are small");
            Endpoint::new(SocketAddr::from(([127, 0, 0, 1], port)))
                .with_weight(Weight::new(w).expect("test weights are non-zero"))
        })
        .collect()
}

/// A picker's table for these weights, and one load per endpoint.
fn table<P: Pick>(picker: &P, weights: &[u32]) -> (P::Table, Vec<Load>) {
    let eps = endpoints(weights);
    let views: Vec<EndpointView<'_>> = eps.iter().map(EndpointView::new).collect();
    let loads = (0..eps.len()).map(|_| Load::new()).collect();
    (picker.build(&views), loads)
}

/// `count` picks by the `clone`-th cursor, each checked to be a valid index.
fn picks<P: PickRequest<()>>(picker: &P, weights: &[u32], clone: u64, count: usize) -> Vec<usize> {
    let (table, loads) = table(picker, weights);
    let mut cursor = picker.cursor(clone);
    (0..count)
        .map(|_| {
            let i = picker
                .pick(&table, &mut cursor, &Loads::new(&loads), &())
                .expect("a non-empty set always yields a pick");
            assert!(i < weights.len(), "index {i} out of 0..{}", weights.len());
            i
        })
        .collect()
}

fn counts(picks: &[usize], n: usize) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for &i in picks {
        c[i] += 1;
    }
    c
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Fixed-seed proptest configuration: the same cases on every run, no regression files.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7077_e12d),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Weight vectors: arbitrary, sharing a common factor (so the gcd reduction matters), or all
/// equal (the schedule-free path).
fn weight_vectors() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        4 => prop::collection::vec(1u32..=1000, 1..=64),
        2 => (2u32..=50, prop::collection::vec(1u32..=20, 1..=64))
            .prop_map(|(g, v)| v.into_iter().map(|w| w * g).collect()),
        1 => (1u32..=1000, 1usize..=64).prop_map(|(w, n)| vec![w; n]),
    ]
}

/// How far a binomial count may stray from its mean in these tests.
///
/// Bernstein's inequality for a sum of `picks` independent indicators with success probability
/// `p` (variance `v = picks·p·(1-p)`) gives `P(|X - picks·p| >= t) <= 2·exp(-t² / (2(v + t/3)))`,
/// for every `p`, however small, with no normal approximation. Solving for a right-hand side of
/// `delta = 1e-12` gives `t = L/3 + sqrt(L²/9 + 2·L·v)` with `L = ln(2/delta) ≈ 28.3`, about
/// 7.5 standard deviations when `v` is large. Summed over every endpoint of every case in this
/// file (well under 10⁵ counts), the chance of a false failure stays below 10⁻⁷; a picker biased
/// by even a few percent on a heavy endpoint still fails by many tolerances.
fn tolerance(picks: u64, p: f64) -> f64 {
    let l = (2.0f64 / 1e-12).ln();
    let v = picks as f64 * p * (1.0 - p);
    l / 3.0 + (l * l / 9.0 + 2.0 * l * v).sqrt()
}

/// Asserts every endpoint's count is within [`tolerance`] of `picks · w_i / W`.
fn assert_shares(counts: &[u64], weights: &[u32]) {
    let picks: u64 = counts.iter().sum();
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
        let p = f64::from(w) / total;
        let expected = picks as f64 * p;
        let tol = tolerance(picks, p);
        assert!(
            (c as f64 - expected).abs() <= tol,
            "endpoint {i} (weight {w} of {total}): {c} picks, expected {expected:.1} ± {tol:.1}"
        );
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Within one clone, after any number of picks, no endpoint is more than one pick ahead of
    /// another, and the clone walks the endpoints in address order.
    #[test]
    fn round_robin_counts_differ_by_at_most_one(
        n in 1usize..=64,
        count in 0usize..5000,
        clone in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let picker = RoundRobin::with_seed(seed);
        let picks = picks(&picker, &vec![1; n], clone, count);
        let c = counts(&picks, n);
        let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        prop_assert!(max - min <= 1, "counts {:?}", c);
        for pair in picks.windows(2) {
            prop_assert_eq!(pair[1], (pair[0] + 1) % n);
        }
    }

    /// Weighted: over each of several consecutive full cycles every endpoint gets exactly
    /// `w_i / gcd` picks, and over every prefix of picks since the clone's start no endpoint runs
    /// ahead of its ideal share by 2 picks or more (by 1 or more when starting from slot 0).
    #[test]
    fn weighted_exact_shares_and_smoothness(
        weights in weight_vectors(),
        clone in 1u64..,
        seed in any::<u64>(),
    ) {
        let picker = Weighted::with_seed(seed);
        let (table, _) = table(&picker, &weights);
        prop_assert!(!table.is_scaled());
        let n = weights.len();
        let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w)));
        let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
        let cycle = if table.order().is_empty() { n } else { table.order().len() };
        prop_assert_eq!(cycle as u64, reduced.iter().sum::<u64>());
        // Clone 0 starts at slot 0 (bound: lead < 1); other clones at a seeded offset (< 2).
        for (clone, bound) in [(0, 1), (clone, 2)] {
            check_weighted_cycles(&picker, &weights, &reduced, clone, cycle, bound)?;
        }
    }

    /// Weights whose reduced total exceeds the schedule limit are scaled down: the schedule
    /// fits the limit, keeps every endpoint, never gives a heavier endpoint fewer slots than a
    /// lighter one, and stays smooth for the scaled weights.
    #[test]
    fn weighted_scaled_schedule_is_bounded_and_complete(
        weights in prop::collection::vec(1u32..=1_000_000, 2..=32),
        max in 1usize..=256,
    ) {
        let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w)));
        let reduced: u64 = weights.iter().map(|&w| u64::from(w) / g).sum();
        let cap = max.max(weights.len());
        prop_assume!(reduced > cap as u64);
        let picker = Weighted::with_seed(1).max_schedule(max).unwrap();
        let (table, _) = table(&picker, &weights);
        prop_assert!(table.is_scaled());
        let order = table.order();
        prop_assert!(!order.is_empty());
        prop_assert!(order.len() <= cap, "{} slots for a limit of {}", order.len(), cap);
        let slots = counts(&order.iter().map(|&i| i as usize).collect::<Vec<_>>(), weights.len());
        for (i, &s) in slots.iter().enumerate() {
            prop_assert!(s >= 1, "endpoint {} lost every slot: {:?}", i, slots);
        }
        for i in 0..weights.len() {
            for j in 0..weights.len() {
                if weights[i] > weights[j] {
                    prop_assert!(slots[i] >= slots[j], "weights {:?} got slots {:?}", weights, slots);
                }
            }
        }
        // Picks follow the schedule: from slot 0, shares of the scaled weights with lead < 1.
        check_weighted_cycles(&picker, &weights, &slots, 0, order.len(), 1)?;
    }

    /// The alias table gives endpoint `i` probability exactly `w_i / W`.
    #[test]
    fn alias_table_probabilities_are_exact(
        weights in prop_oneof![
            prop::collection::vec(1u32..=1000, 1..=64),
            prop::collection::vec(1u32..=u32::MAX, 1..=64),
            prop::collection::vec(prop_oneof![Just(1u32), Just(u32::MAX)], 1..=64),
        ],
    ) {
        let table = WeightedRandom::with_seed(0).alias_table(&weights);
        let n = weights.len() as u128;
        prop_assert_eq!(table.len(), weights.len());
        for (i, &w) in weights.iter().enumerate() {
            prop_assert_eq!(table.probability_numerator(i), n * u128::from(w), "endpoint {}", i);
        }
        // The table built through `Pick::build` is the same table.
        let (built, _) = self::table(&WeightedRandom::with_seed(0), &weights);
        prop_assert_eq!(built, table);
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Weighted random picks converge to the weight shares.
    #[test]
    fn weighted_random_sampling_converges(
        weights in prop_oneof![
            prop::collection::vec(1u32..=1000, 1..=64),
            prop::collection::vec(1u32..=10, 2..=8),
        ],
        seed in any::<u64>(),
        clone in any::<u64>(),
    ) {
        let picks = picks(&WeightedRandom::with_seed(seed), &weights, clone, 200_000);
        assert_shares(&counts(&picks, weights.len()), &weights);
    }

    /// Uniform random picks converge to equal shares, whatever the endpoints' weights.
    #[test]
    fn random_sampling_is_uniform(
        weights in prop::collection::vec(1u32..=1000, 1..=64),
        seed in any::<u64>(),
        clone in any::<u64>(),
    ) {
        let picks = picks(&Random::with_seed(seed), &weights, clone, 100_000);
        assert_shares(&counts(&picks, weights.len()), &vec![1; weights.len()]);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Every picker: the same seed gives the same picks for the same clone, from fresh picker
    /// values.
    #[test]
    fn same_seed_same_picks(
        weights in prop::collection::vec(1u32..=100, 1..=32),
        seed in any::<u64>(),
        clone in any::<u64>(),
    ) {
        let count = 300;
        prop_assert_eq!(
            picks(&RoundRobin::with_seed(seed), &weights, clone, count),
            picks(&RoundRobin::with_seed(seed), &weights, clone, count)
        );
        prop_assert_eq!(
            picks(&Random::with_seed(seed), &weights, clone, count),
            picks(&Random::with_seed(seed), &weights, clone, count)
        );
        prop_assert_eq!(
            picks(&Weighted::with_seed(seed), &weights, clone, count),
            picks(&Weighted::with_seed(seed), &weights, clone, count)
        );
        prop_assert_eq!(
            picks(&WeightedRandom::with_seed(seed), &weights, clone, count),
            picks(&WeightedRandom::with_seed(seed), &weights, clone, count)
        );
    }

    /// Random: clones of one seed, and one clone of different seeds, pick differently (with
    /// two or more endpoints, 200 picks agree by chance with probability at most 2⁻²⁰⁰).
    #[test]
    fn random_sequences_differ_by_clone_and_seed(
        n in 2usize..=64,
        seed in any::<u64>(),
        clone in any::<u64>(),
        other in any::<u64>(),
    ) {
        prop_assume!(clone != other);
        let weights = vec![1; n];
        let base = picks(&Random::with_seed(seed), &weights, clone, 200);
        prop_assert_ne!(&base, &picks(&Random::with_seed(seed), &weights, other, 200));
        prop_assert_ne!(&base, &picks(&Random::with_seed(seed ^ 1), &weights, clone, 200));
        prop_assert_ne!(&base, &picks(&WeightedRandom::with_seed(seed), &weights, other, 200));
    }

    /// Seeded round-robin clones start at different offsets, so a hundred fresh handles do not
    /// all send their first request to the same endpoint (they would with probability n⁻⁹⁹).
    #[test]
    fn round_robin_clones_start_spread(n in 2usize..=64, seed in any::<u64>()) {
        let weights = vec![1; n];
        for picker in [&RoundRobin::with_seed(seed) as &dyn FirstPick, &Weighted::with_seed(seed)] {
            let first: Vec<usize> = (0..100).map(|clone| picker.first(&weights, clone)).collect();
            prop_assert_eq!(first[0], 0, "clone 0 starts at index 0");
            prop_assert!(first.iter().any(|&i| i != first[0]), "all clones start at {}", first[0]);
        }
    }
}

/// The first pick of a clone, for pickers of different types in one loop.
trait FirstPick {
    fn first(&self, weights: &[u32], clone: u64) -> usize;
}

impl<P: PickRequest<()>> FirstPick for P {
    fn first(&self, weights: &[u32], clone: u64) -> usize {
        picks(self, weights, clone, 1)[0]
    }
}

/// Three full cycles of `clone`'s picks: exact shares `shares[i]` per cycle, and after every
/// pick `picks_i · W - t · w_i < bound · W` for the endpoint just picked (only a pick can raise
/// an endpoint's lead, so checking the picked one after each pick checks every prefix).
fn check_weighted_cycles(
    picker: &Weighted,
    weights: &[u32],
    shares: &[u64],
    clone: u64,
    cycle: usize,
    bound: u64,
) -> Result<(), TestCaseError> {
    let total: u64 = shares.iter().sum();
    let cycles = 3;
    let picks = picks(picker, weights, clone, cycle * cycles);
    let mut got = vec![0u64; weights.len()];
    for (t, &i) in picks.iter().enumerate() {
        got[i] += 1;
        let t = t as u64 + 1;
        let (ahead, ideal) = (got[i] * total, t * shares[i]);
        prop_assert!(
            ahead < ideal + bound * total,
            "clone {}: endpoint {} has {} picks after {} (ideal {:.2}, bound {})",
            clone,
            i,
            got[i],
            t,
            ideal as f64 / total as f64,
            bound
        );
        if t.is_multiple_of(cycle as u64) {
            let k = t / cycle as u64;
            let want: Vec<u64> = shares.iter().map(|&s| s * k).collect();
            prop_assert_eq!(&got, &want, "after {} cycles (clone {})", k, clone);
        }
    }
    Ok(())
}
