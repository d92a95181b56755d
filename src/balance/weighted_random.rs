use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{PickRng, Seed};

/// Weighted random choice in O(1) per pick, by the alias method.
///
/// Each endpoint is chosen with probability exactly `weight / total`. The table is Vose's
/// alias table ("A linear algorithm for generating random numbers with a given distribution",
/// IEEE TSE 1991), built in O(n) per endpoint-set change in exact integer arithmetic: column
/// `i` keeps itself with odds `threshold_i / total` and otherwise yields its alias. A pick is one
/// uniform column and one uniform draw below `total`, both unbiased.
///
/// Choose it over [`Weighted`](super::Weighted) when many clients share the endpoints and
/// should not synchronise, or when weights change often and huge totals would make a schedule
/// long.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::WeightedRandom;
///
/// let picker = WeightedRandom::with_seed(3);
/// let table = picker.alias_table(&[1, 3]);
/// assert_eq!(table.probability_numerator(1), 2 * 3); // n × weight, out of n × total
/// # drop(WeightedRandom::new());
/// ```
#[derive(Debug, Clone, Default)]
pub struct WeightedRandom {
    seed: Seed,
}

/// A [`WeightedRandom`] picker's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTable {
    threshold: Vec<u64>,
    alias: Vec<u32>,
    total: u64,
}

impl WeightedRandom {
    /// Weighted random choice seeded from the operating system.
    pub fn new() -> Self {
        WeightedRandom::default()
    }

    /// Weighted random choice with a fixed seed. Picks are indices into the endpoint list sorted
    /// by address, so a run repeats exactly when the addresses sort the same way.
    pub fn with_seed(seed: u64) -> Self {
        WeightedRandom {
            seed: Seed::fixed(seed),
        }
    }

    /// Builds the alias table for these weights, in endpoint order.
    pub fn alias_table(&self, weights: &[u32]) -> AliasTable {
        AliasTable::new(weights)
    }
}

impl AliasTable {
    fn new(weights: &[u32]) -> Self {
        let n = weights.len();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        // Each column holds `total` units; endpoint i needs `w_i * n` units in all.
        let mut need: Vec<u128> = weights.iter().map(|&w| u128::from(w) * n as u128).collect();
        let cap = u128::from(total);
        let mut threshold = vec![total; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| need[i] < cap);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            // need[s] < cap = total, so it fits a u64.
            threshold[s] = need[s] as u64;
            alias[s] = l as u32;
            need[l] -= cap - need[s];
            if need[l] < cap {
                large.pop();
                small.push(l);
            }
        }
        // Whatever remains fills its own column exactly (up to no rounding: all integer).
        AliasTable {
            threshold,
            alias,
            total,
        }
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.threshold.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.threshold.is_empty()
    }

    /// `n × total × P(endpoint i)`, exactly; equals `n × weight_i` for a correct table.
    pub fn probability_numerator(&self, i: usize) -> u128 {
        let cap = u128::from(self.total);
        let mut units = u128::from(self.threshold[i]);
        for (j, &a) in self.alias.iter().enumerate() {
            if a as usize == i && j != i {
                units += cap - u128::from(self.threshold[j]);
            }
        }
        units
    }

    #[inline]
    fn sample(&self, rng: &mut PickRng) -> usize {
        let col = rng.below(self.threshold.len());
        if rng.below_u64(self.total) < self.threshold[col] {
            col
        } else {
            self.alias[col] as usize
        }
    }
}

impl Pick for WeightedRandom {
    type Table = AliasTable;
    type Cursor = PickRng;

    fn build(&self, endpoints: &[EndpointView<'_>]) -> AliasTable {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight().get()).collect();
        AliasTable::new(&weights)
    }

    fn cursor(&self, clone: u64) -> PickRng {
        PickRng::new(self.seed.get(), clone)
    }
}

impl<Req> PickRequest<Req> for WeightedRandom {
    #[inline]
    fn pick(
        &self,
        table: &AliasTable,
        rng: &mut PickRng,
        loads: &Loads<'_>,
        _: &Req,
    ) -> Option<usize> {
        if table.is_empty() || table.len() != loads.len() {
            return None;
        }
        Some(table.sample(rng))
    }
}
