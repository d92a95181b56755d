//! Configuration errors of the hashing pickers.

use super::maglev::Maglev;
use super::ring::RingHash;

/// A hashing picker setting that cannot work, naming the value given.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HashConfigError {
    /// Zero points per endpoint: no endpoint would own any of the ring.
    #[error("ring replicas must be at least 1, got 0")]
    ZeroReplicas,
    /// Ring size bounds that are zero, inverted, or above [`RingHash::RING_SIZE_LIMIT`].
    #[error(
        "ring size must satisfy 1 <= min <= max <= {limit}, got min {min} and max {max}",
        limit = RingHash::RING_SIZE_LIMIT
    )]
    InvalidRingSize {
        /// The smallest ring size given.
        min: u64,
        /// The largest ring size given.
        max: u64,
    },
    /// A Maglev table size that is not prime. Maglev's permutations visit every slot only
    /// when the table size is prime.
    #[error("maglev table size must be prime, got {0}")]
    TableSizeNotPrime(u32),
    /// A Maglev table size above [`Maglev::MAX_TABLE_SIZE`].
    #[error("maglev table size must be at most {max}, got {0}", max = Maglev::MAX_TABLE_SIZE)]
    TableSizeTooLarge(u32),
    /// A bounded-load ε that is zero, negative, NaN or infinite.
    #[error("bounded-load epsilon must be a finite number greater than zero, got {0}")]
    InvalidEpsilon(f64),
}
