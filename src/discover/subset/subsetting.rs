use std::cmp::Reverse;
use std::iter::FusedIterator;
use std::num::NonZeroUsize;
use std::ops::Range;

use super::SubsetError;
use crate::endpoint::Endpoint;

/// How one client chooses its subset of the endpoints: its position on the ring and the subset
/// size `k`.
///
/// Built valid by [`Subsetting::by_index`] (evenly spaced positions, the exact balance bound)
/// or [`Subsetting::by_id`] (a hashed position, statistical balance). The choice itself is a
/// pure function of the position, `k` and the set of endpoint addresses: see the
/// [module docs](super) for the algorithm and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subsetting {
    position: Position,
    size: NonZeroUsize,
}

/// Where a client sits on the ring, as the fraction `p` in `[0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Position {
    /// `p = index / count`; invariant: `index < count`.
    Index { index: usize, count: usize },
    /// `p = hash / 2^64`.
    Hash(u64),
}

/// The positions a [`Subsetting`] chooses in an address-sorted list, ascending.
///
/// Returned by [`Subsetting::indices`]. The window is contiguous on the ring, so in list order
/// it is at most two runs: the wrapped tail `0..a` and the run `s..len`.
#[derive(Debug, Clone)]
pub struct Indices {
    head: Range<usize>,
    tail: Range<usize>,
}

impl Subsetting {
    /// Client `index` of `count` clients, keeping `size` endpoints.
    ///
    /// Clients sit at the evenly spaced positions `index / count`; every endpoint then has
    /// either ⌊`count`·`size`/n⌋ or ⌈`count`·`size`/n⌉ clients (n endpoints).
    ///
    /// # Errors
    ///
    /// [`SubsetError::ZeroSize`], [`SubsetError::ZeroClients`] or
    /// [`SubsetError::IndexOutOfRange`], naming the value.
    pub fn by_index(index: usize, count: usize, size: usize) -> Result<Self, SubsetError> {
        let size = NonZeroUsize::new(size).ok_or(SubsetError::ZeroSize)?;
        if count == 0 {
            return Err(SubsetError::ZeroClients);
        }
        if index >= count {
            return Err(SubsetError::IndexOutOfRange { index, count });
        }
        Ok(Subsetting {
            position: Position::Index { index, count },
            size,
        })
    }

    /// The client with the stable id `id` (a pod or host name, say), keeping `size` endpoints.
    ///
    /// The position is the XXH3 hash of the id's bytes, so no client needs to know the others;
    /// the balance across clients is statistical (binomial, see the [module docs](super)).
    ///
    /// # Errors
    ///
    /// [`SubsetError::ZeroSize`] or [`SubsetError::EmptyId`].
    pub fn by_id(id: impl AsRef<[u8]>, size: usize) -> Result<Self, SubsetError> {
        let size = NonZeroUsize::new(size).ok_or(SubsetError::ZeroSize)?;
        let id = id.as_ref();
        if id.is_empty() {
            return Err(SubsetError::EmptyId);
        }
        Ok(Subsetting {
            position: Position::Hash(xxhash_rust::xxh3::xxh3_64(id)),
            size,
        })
    }

    /// The subset size `k`.
    pub fn size(&self) -> usize {
        self.size.get()
    }

    /// This client's `(index, count)`, for a subsetting built by [`Subsetting::by_index`].
    pub fn index(&self) -> Option<(usize, usize)> {
        match self.position {
            Position::Index { index, count } => Some((index, count)),
            Position::Hash(_) => None,
        }
    }

    /// The same client and position with another subset size.
    ///
    /// # Errors
    ///
    /// [`SubsetError::ZeroSize`].
    pub fn with_size(self, size: usize) -> Result<Self, SubsetError> {
        let size = NonZeroUsize::new(size).ok_or(SubsetError::ZeroSize)?;
        Ok(Subsetting { size, ..self })
    }

    /// Where the window starts in an address-sorted list of `len` endpoints: ⌊p·`len`⌋, which
    /// is below `len` whenever `len > 0`.
    pub fn start(&self, len: usize) -> usize {
        // u128: the products cannot overflow, and the divisions are exact floors.
        let len = len as u128;
        let start = match self.position {
            Position::Index { index, count } => index as u128 * len / count as u128,
            Position::Hash(h) => (u128::from(h) * len) >> 64,
        };
        // start <= len - 1 fits in usize because len does.
        start as usize
    }

    /// The positions this client keeps in an address-sorted, duplicate-free list of `len`
    /// endpoints, ascending: `min(k, len)` distinct positions.
    pub fn indices(&self, len: usize) -> Indices {
        let k = self.size.get();
        if len <= k {
            return Indices {
                head: 0..len,
                tail: 0..0,
            };
        }
        let start = self.start(len);
        let end = start + k;
        if end <= len {
            Indices {
                head: start..end,
                tail: 0..0,
            }
        } else {
            Indices {
                head: 0..end - len,
                tail: start..len,
            }
        }
    }

    /// The endpoints this client keeps, sorted by address.
    ///
    /// `endpoints` may come in any order; when an address appears twice the later entry wins,
    /// as in [`Update::Reset`](crate::discover::Update::Reset). Every client that sees the same
    /// set of addresses computes from the same ring, whatever order its copy is in.
    pub fn select(&self, endpoints: &[Endpoint]) -> Vec<Endpoint> {
        // Sort (address, newest first) pairs, then keep the first of each address.
        let mut order: Vec<_> = endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| (ep.addr(), Reverse(i)))
            .collect();
        order.sort_unstable();
        order.dedup_by_key(|(addr, _)| *addr);
        self.indices(order.len())
            .map(|j| endpoints[order[j].1.0].clone())
            .collect()
    }
}

impl Iterator for Indices {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.head.next().or_else(|| self.tail.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.head.len() + self.tail.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Indices {}

impl FusedIterator for Indices {}
