//! Bounded loads: no endpoint above its capacity at any placement.

use super::*;

/// One bounded-loads step: place `key` or finish the `n`-th request in flight.
#[derive(Debug, Clone)]
enum Op {
    Place(u64),
    Finish(prop::sample::Index),
}

fn ops(finishes: bool) -> impl Strategy<Value = Vec<Op>> {
    let place = any::<u64>().prop_map(Op::Place);
    let op = if finishes {
        prop_oneof![3 => place, 2 => any::<prop::sample::Index>().prop_map(Op::Finish)].boxed()
    } else {
        place.boxed()
    };
    prop::collection::vec(op, 1..400)
}

/// Runs `ops` through a bounded-load ring over `eps`, checking at every placement that the
/// chosen endpoint ends at most at its capacity (and within the issue's
/// `⌈(1+ε)·L·wᵢ/W⌉ + 1`), and that the key stays on its own endpoint whenever that one has
/// room. `after_step` sees the loads after each step.
fn run_bounded(
    eps: &[Endpoint],
    bound: LoadBound,
    ops: &[Op],
    mut after_step: impl FnMut(&[u64]) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let picker = small_ring(8).bounded_loads(bound);
    let table = picker.build(&views(eps));
    let loads: Vec<Load> = eps.iter().map(|_| Load::new()).collect();
    let weights: Vec<u64> = eps.iter().map(|e| u64::from(e.weight().get())).collect();
    let total_weight: u64 = weights.iter().sum();
    let mut cursor = picker.cursor(0);
    let mut in_flight: Vec<InFlight> = Vec::new();
    for op in ops {
        match op {
            Op::Place(key) => {
                let before: Vec<u64> = loads.iter().map(|l| l.in_flight()).collect();
                let total: u64 = before.iter().sum();
                let i = picker
                    .pick(&table, &mut cursor, &Loads::new(&loads), key)
                    .expect("a ring with endpoints always picks");
                let cap = bound.capacity(total, weights[i], total_weight);
                prop_assert!(
                    before[i] < cap,
                    "endpoint {} at {} of capacity {}",
                    i,
                    before[i],
                    cap
                );
                // The issue's form: the average excluding the request, plus one.
                let share = total as f64 * weights[i] as f64 / total_weight as f64;
                let issue = ((1.0 + bound.epsilon()) * share).ceil() as u64 + 1;
                prop_assert!(
                    before[i] < issue,
                    "endpoint {} ends at {} > {}",
                    i,
                    before[i] + 1,
                    issue
                );
                let own = table.table().lookup(KeyHash::of(key)).unwrap();
                if before[own] < bound.capacity(total, weights[own], total_weight) {
                    prop_assert_eq!(i, own, "the key's own endpoint had room");
                }
                in_flight.push(loads[i].start());
            }
            Op::Finish(which) => {
                if !in_flight.is_empty() {
                    let at = which.index(in_flight.len());
                    drop(in_flight.swap_remove(at));
                }
            }
        }
        let now: Vec<u64> = loads.iter().map(|l| l.in_flight()).collect();
        after_step(&now)?;
    }
    Ok(())
}

fn epsilons() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.25), Just(0.01), 0.001f64..3.0]
}

proptest! {
    #![proptest_config(config(64))]

    /// Bounded loads, any sequence of placements and completions, equal weights: a placement
    /// never lifts an endpoint above ⌈(1+ε)·avg⌉ with avg = (L+1)/N counting the request being
    /// placed, so above ⌈(1+ε)·L/N⌉ + 1 with avg excluding it (the issue's bound).
    #[test]
    fn bounded_loads_cap_every_placement(
        addrs in addrs(1..=12),
        eps in epsilons(),
        ops in ops(true),
        skew in 0u64..4,
    ) {
        let endpoints = sorted(weighted(&addrs, &[]));
        let bound = LoadBound::new(eps).unwrap();
        // Skewed keys: a few hot keys most of the time.
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|op| match op {
                Op::Place(k) if skew > 0 && k % 4 < skew => Op::Place(k % 3),
                op => op,
            })
            .collect();
        // The bounds are checked at every placement inside `run_bounded`; completions only
        // lower loads, so nothing else can exceed them.
        run_bounded(&endpoints, bound, &ops, |loads| {
            prop_assert!(loads.iter().sum::<u64>() <= ops.len() as u64);
            Ok(())
        })?;
    }

    /// Arrivals only: at every moment, no endpoint holds more than ⌈(1+ε)·L/N⌉ of the L
    /// requests in flight; weighted, no more than ⌈(1+ε)·L·wᵢ/W⌉.
    #[test]
    fn bounded_loads_cap_every_endpoint_under_arrivals(
        addrs in addrs(1..=12),
        weights in prop::collection::vec(1u32..=4, 12),
        eps in epsilons(),
        ops in ops(false),
    ) {
        let endpoints = sorted(weighted(&addrs, &weights));
        let w: Vec<u64> = endpoints.iter().map(|e| u64::from(e.weight().get())).collect();
        let total_w: u64 = w.iter().sum();
        let bound = LoadBound::new(eps).unwrap();
        run_bounded(&endpoints, bound, &ops, |loads| {
            let total: u64 = loads.iter().sum();
            for (i, &l) in loads.iter().enumerate() {
                // capacity(L - 1, ..) is the capacity with L requests counted.
                let cap = bound.capacity(total.saturating_sub(1), w[i], total_w);
                prop_assert!(l <= cap, "endpoint {} holds {} of {}, capacity {}", i, l, total, cap);
            }
            Ok(())
        })?;
    }
}

/// The issue's form of the bound, checked directly at every placement of a sequence of
/// arrivals and departures with one very hot key.
#[test]
fn bounded_loads_hot_key_spreads_within_the_bound() {
    let eps: Vec<Endpoint> = (1..=10)
        .map(|i| Endpoint::new(SocketAddr::from(([10, 0, 0, i], 80))))
        .collect();
    let picker = small_ring(8).bounded_loads(LoadBound::default());
    let table = picker.build(&views(&eps));
    let loads: Vec<Load> = eps.iter().map(|_| Load::new()).collect();
    let mut cursor = picker.cursor(0);
    let mut held = Vec::new();
    for step in 0..1000u64 {
        let total: u64 = loads.iter().map(|l| l.in_flight()).sum();
        let i = picker
            .pick(&table, &mut cursor, &Loads::new(&loads), &7)
            .unwrap();
        held.push(loads[i].start());
        let bound = (1.25 * total as f64 / 10.0).ceil() as u64 + 1;
        assert!(
            loads[i].in_flight() <= bound,
            "step {step}: {} > {bound}",
            loads[i].in_flight()
        );
        if step % 3 == 2 {
            drop(held.remove(0));
        }
    }
    // Without the bound, all ~667 requests would sit on one endpoint; with it, the hot key
    // spills clockwise to as many endpoints as it needs (about 667 / 84).
    let used = loads.iter().filter(|l| l.in_flight() > 0).count();
    assert!(used >= 7, "the hot key spilled to only {used} endpoints");
}
