//! The table of a hashing picker together with its fallback picker's table.

/// A hashing picker's table: the consistent-hash table `T` ([`RingTable`](super::RingTable) or
/// [`MaglevTable`](super::MaglevTable)) and the table of the fallback picker that serves
/// requests without a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithFallback<T, B> {
    pub(super) table: T,
    pub(super) fallback: B,
}

impl<T, B> WithFallback<T, B> {
    /// The consistent-hash table.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// The fallback picker's table.
    pub fn fallback(&self) -> &B {
        &self.fallback
    }
}
