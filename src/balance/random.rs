use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{PickRng, Seed};

/// Uniform random choice.
///
/// Each clone of the balancer has its own small, fast generator (xoshiro256++ from `rand`),
/// seeded from the picker's seed and the clone's index, so picks are reproducible with
/// [`Random::with_seed`] and never contend across cores. Weights are ignored; use
/// [`WeightedRandom`](super::WeightedRandom) for them.
///
/// Choose it over round-robin when many independent clients share endpoints and should not
/// march in lockstep.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::Random;
///
/// let random = Random::with_seed(42);
/// # drop((random, Random::new()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Random {
    seed: Seed,
}

impl Random {
    /// Random choice seeded from the operating system.
    pub fn new() -> Self {
        Random::default()
    }

    /// Random choice with a fixed seed, for reproducible runs. Picks are indices into the
    /// endpoint list sorted by address, so a run repeats exactly when the addresses sort the
    /// same way.
    pub fn with_seed(seed: u64) -> Self {
        Random {
            seed: Seed::fixed(seed),
        }
    }
}

impl Pick for Random {
    type Table = ();
    type Cursor = PickRng;

    fn build(&self, _: &[EndpointView<'_>]) {}

    fn cursor(&self, clone: u64) -> PickRng {
        PickRng::new(self.seed.get(), clone)
    }
}

impl<Req> PickRequest<Req> for Random {
    #[inline]
    fn pick(&self, _: &(), rng: &mut PickRng, loads: &Loads<'_>, _: &Req) -> Option<usize> {
        match loads.len() {
            0 => None,
            1 => Some(0),
            n => Some(rng.below(n)),
        }
    }
}
