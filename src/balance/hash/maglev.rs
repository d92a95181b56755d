//! Maglev hashing (Eisenbud et al., NSDI 2016): a prime-sized lookup table, one read per key.

use std::fmt;

use super::error::HashConfigError;
use super::fallback::WithFallback;
use super::key::{ExtractKey, KeyHash};
use super::placement::Name;
use crate::balance::Random;
use crate::balance::pick::{EndpointView, Loads, Pick, PickRequest};

/// Maglev consistent hashing: a lookup table of prime size `M`, filled from one permutation per
/// endpoint, so a pick is one multiplication and one read.
///
/// Each endpoint holds table entries in proportion to its weight (with equal weights, entry
/// counts differ by at most one), and a membership change remaps only a little more than the
/// changed endpoint's own share. See the [module docs](super#maglev) for the exact
/// construction.
///
/// `F` extracts the key ([`ExtractKey`]); requests without a key go to the fallback picker `B`.
///
/// # Defaults
///
/// - table size: [`DEFAULT_TABLE_SIZE`](Self::DEFAULT_TABLE_SIZE) = 65,537, the paper's
///   choice: 256 KiB, fits in L2 cache, built in 1.2 ms for 1,000 endpoints; keep it above
///   100× the number of endpoints (the paper's advice) so that entry counts, which differ by
///   at most one, stay within 1% of each other. A larger prime (655,373 for up to ~6,500
///   endpoints) costs 10× the memory and build time and also disrupts less on a change.
/// - fallback for requests without a key: [`Random`], seeded from the operating system.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::hash::Maglev;
///
/// let maglev = Maglev::new(|key: &String| Some(key.clone())).table_size(655_373)?;
/// assert!(Maglev::new(|key: &String| Some(key.clone())).table_size(65_536).is_err());
/// # drop(maglev);
/// # Ok::<(), tower_mesh::balance::hash::HashConfigError>(())
/// ```
#[derive(Clone)]
pub struct Maglev<F, B = Random> {
    key: F,
    fallback: B,
    table_size: u32,
}

/// Constants, defined on `Maglev<()>` so that `Maglev::DEFAULT_TABLE_SIZE` needs no type
/// annotations.
impl Maglev<()> {
    /// The default table size, a prime.
    pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
    /// The largest table size accepted: the largest prime below 2²⁴ (64 MiB of table).
    pub const MAX_TABLE_SIZE: u32 = 16_777_213;
}

impl<F> Maglev<F, Random> {
    /// Maglev hashing of the key `key` extracts, with the defaults.
    pub fn new(key: F) -> Self {
        Maglev {
            key,
            fallback: Random::new(),
            table_size: Maglev::DEFAULT_TABLE_SIZE,
        }
    }
}

impl<F, B> Maglev<F, B> {
    /// Sets the table size `M`.
    ///
    /// # Errors
    ///
    /// [`HashConfigError::TableSizeNotPrime`] when `M` is not prime,
    /// [`HashConfigError::TableSizeTooLarge`] above [`MAX_TABLE_SIZE`](Maglev::MAX_TABLE_SIZE).
    pub fn table_size(mut self, size: u32) -> Result<Self, HashConfigError> {
        if size > Maglev::MAX_TABLE_SIZE {
            return Err(HashConfigError::TableSizeTooLarge(size));
        }
        if !is_prime(size) {
            return Err(HashConfigError::TableSizeNotPrime(size));
        }
        self.table_size = size;
        Ok(self)
    }

    /// Sets the picker for requests without a key.
    pub fn fallback<B2>(self, fallback: B2) -> Maglev<F, B2> {
        Maglev {
            key: self.key,
            fallback,
            table_size: self.table_size,
        }
    }

    /// Builds only the lookup table for these endpoints (what [`Pick::build`] does, without
    /// the fallback's table).
    pub fn table(&self, endpoints: &[EndpointView<'_>]) -> MaglevTable {
        let table = MaglevTable::build(endpoints, self.table_size);
        tracing::debug!(
            endpoints = endpoints.len(),
            size = self.table_size,
            "maglev table built"
        );
        table
    }
}

/// A [`Maglev`] picker's lookup table: `M` entries, each an endpoint index.
///
/// Key hash `h` reads entry `⌊h × M / 2⁶⁴⌋`: the table splits the hash space into `M` equal
/// arcs (a multiplication instead of a division by `M`).
#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    entries: Vec<u32>,
    endpoints: usize,
}

impl MaglevTable {
    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints
    }

    /// Whether the table has no endpoints.
    pub fn is_empty(&self) -> bool {
        self.endpoints == 0
    }

    /// Every entry: the index of the endpoint owning that arc of the hash space. Empty when
    /// there are no endpoints.
    pub fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// The entry that hash `hash` reads.
    #[inline]
    pub fn slot(&self, hash: KeyHash) -> usize {
        // The product is below M * 2^64, so the high half is below M.
        ((u128::from(hash.get()) * self.entries.len() as u128) >> 64) as usize
    }

    /// The endpoint owning `hash`, or `None` when there are no endpoints.
    #[inline]
    pub fn lookup(&self, hash: KeyHash) -> Option<usize> {
        self.entries.get(self.slot(hash)).map(|&i| i as usize)
    }

    fn build(endpoints: &[EndpointView<'_>], size: u32) -> MaglevTable {
        let n = endpoints.len();
        let m = size as usize;
        if n == 0 || m == 0 {
            return MaglevTable {
                entries: Vec::new(),
                endpoints: n,
            };
        }
        if n > m {
            tracing::warn!(
                endpoints = n,
                size,
                "maglev table smaller than the endpoint set; some endpoints get no entries"
            );
        }
        let Ok(n32) = u32::try_from(n) else {
            tracing::error!(endpoints = n, "too many endpoints for a maglev table");
            return MaglevTable {
                entries: Vec::new(),
                endpoints: n,
            };
        };
        let mut order: Vec<u32> = (0..n32).collect();
        order.sort_by_key(|&i| endpoints[i as usize].addr());
        let mut turns: Vec<Turn> = order
            .iter()
            .map(|&i| {
                let e = &endpoints[i as usize];
                let (h1, h2) = Name::new(e.addr()).digest_pair();
                // Both remainders are below m <= 2^24, so they fit a usize.
                Turn {
                    index: i,
                    weight: u64::from(e.weight().get()),
                    credit: 0,
                    next: (h1 % m as u64) as usize,
                    skip: (h2 % (m as u64 - 1).max(1)) as usize + 1,
                }
            })
            .collect();
        let w_max = turns.iter().map(|t| t.weight).max().unwrap_or(1);

        let mut entries = vec![EMPTY; m];
        let mut filled = 0;
        // Each round, every endpoint gains its weight in credit and takes a turn per `w_max` of
        // credit: the heaviest endpoints every round, an endpoint of half that weight every
        // other round. A turn claims the next free entry of the endpoint's permutation
        // `(offset + j × skip) mod M`, which visits every entry because M is prime.
        while filled < m {
            for t in &mut turns {
                t.credit += t.weight;
                if t.credit < w_max {
                    continue;
                }
                t.credit -= w_max;
                let mut c = t.next;
                while entries[c] != EMPTY {
                    c += t.skip;
                    if c >= m {
                        c -= m;
                    }
                }
                entries[c] = t.index;
                c += t.skip;
                if c >= m {
                    c -= m;
                }
                t.next = c;
                filled += 1;
                if filled == m {
                    break;
                }
            }
        }
        MaglevTable {
            entries,
            endpoints: n,
        }
    }
}

impl fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaglevTable")
            .field("endpoints", &self.endpoints)
            .field("size", &self.entries.len())
            .finish()
    }
}

impl<F, B> Pick for Maglev<F, B>
where
    F: Send + Sync + 'static,
    B: Pick,
{
    type Table = WithFallback<MaglevTable, B::Table>;
    type Cursor = B::Cursor;

    fn build(&self, endpoints: &[EndpointView<'_>]) -> Self::Table {
        WithFallback {
            table: self.table(endpoints),
            fallback: self.fallback.build(endpoints),
        }
    }

    fn cursor(&self, clone: u64) -> B::Cursor {
        self.fallback.cursor(clone)
    }
}

impl<Req, F, B> PickRequest<Req> for Maglev<F, B>
where
    F: ExtractKey<Req>,
    B: PickRequest<Req>,
{
    #[inline]
    fn pick(
        &self,
        table: &Self::Table,
        cursor: &mut B::Cursor,
        loads: &Loads<'_>,
        req: &Req,
    ) -> Option<usize> {
        let Some(hash) = self.key.key_hash(req) else {
            return self.fallback.pick(&table.fallback, cursor, loads, req);
        };
        if table.table.len() != loads.len() {
            return None;
        }
        let picked = table.table.lookup(hash);
        tracing::trace!(hash = hash.get(), endpoint = ?picked, "maglev pick");
        picked
    }
}

impl<F, B: fmt::Debug> fmt::Debug for Maglev<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("table_size", &self.table_size)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// One endpoint's state while the table fills.
struct Turn {
    index: u32,
    weight: u64,
    credit: u64,
    next: usize,
    skip: usize,
}

/// Trial division; table sizes are at most 2^24, so at most ~2,000 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

const EMPTY: u32 = u32::MAX;
