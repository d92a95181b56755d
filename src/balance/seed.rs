//! Seeds for pickers' per-clone randomness.

/// Where a picker's randomness comes from: the OS once at construction, or a fixed seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seed(u64);

impl Seed {
    pub(crate) fn fixed(seed: u64) -> Self {
        Seed(seed)
    }

    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

impl Default for Seed {
    fn default() -> Self {
        use rand::RngExt;
        Seed(rand::rng().random())
    }
}

/// Where clone `clone` of a cyclic picker starts: the very first clone at 0 (so tests read
/// naturally), later clones at seeded offsets, so freshly cloned handles do not all send their
/// first request to the same endpoint.
pub(crate) fn clone_start(seed: Seed, clone: u64) -> u64 {
    if clone == 0 {
        0
    } else {
        mix(seed.get(), clone)
    }
}

/// Mixes a seed and a clone index into an independent-looking 64-bit value (SplitMix64's
/// finalizer, Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014).
pub(crate) fn mix(seed: u64, clone: u64) -> u64 {
    let mut z = seed ^ clone.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A clone's private random number generator (xoshiro256++ from `rand`).
#[derive(Debug, Clone)]
pub struct PickRng(rand::rngs::SmallRng);

impl PickRng {
    pub(crate) fn new(seed: u64, clone: u64) -> Self {
        use rand::SeedableRng;
        PickRng(rand::rngs::SmallRng::seed_from_u64(mix(seed, clone)))
    }

    /// A uniform value in `0..n`; `n` must be non-zero.
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        use rand::RngExt;
        self.0.random_range(0..n)
    }

    /// A uniform value in `0..n`; `n` must be non-zero.
    #[inline]
    pub(crate) fn below_u64(&mut self, n: u64) -> u64 {
        use rand::RngExt;
        self.0.random_range(0..n)
    }
}
