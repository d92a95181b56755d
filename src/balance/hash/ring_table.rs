//! The ring: sorted SHA-1 points with a bucket index, built in O(points).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use super::key::KeyHash;
use super::placement::Name;
use crate::balance::pick::EndpointView;

/// A [`RingHash`](super::RingHash) table: every endpoint's points on the 64-bit ring, sorted,
/// with an index of buckets over them.
///
/// A key hash `h` belongs to the endpoint owning the first point `>= h`, wrapping around to the
/// smallest point. See the [module docs](super) for where points are placed.
///
/// # Layout
///
/// The ring is split into `2^b` equal buckets by the top `b` bits of the hash, with `2^b` the
/// smallest power of two at least the number of points (and at least 256). Each point is one
/// `u64`: its low `64 - b` bits (the top `b` are its bucket's number) above `b` bits of owner
/// index, which fit because there are at least as many buckets as endpoints. A `u32` per
/// bucket gives the position of its first point. A lookup reads one index slot and then, nearly
/// always, one cache line of points: 12 to 16 bytes of memory per point in all.
#[derive(Clone, PartialEq, Eq)]
pub struct RingTable {
    entries: Vec<u64>,
    index: Vec<u32>,
    bits: u32,
    weights: Vec<u32>,
    total_weight: u64,
}

impl RingTable {
    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the ring has no endpoints.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The number of points on the ring.
    pub fn point_count(&self) -> usize {
        self.entries.len()
    }

    /// The endpoint owning `hash`: the owner of the first point `>= hash`, wrapping around.
    /// `None` for an empty ring.
    #[inline]
    pub fn lookup(&self, hash: KeyHash) -> Option<usize> {
        self.owner_at(self.position(hash.get())?)
    }

    /// Every point in ring order, as `(point, endpoint index)`. Points with equal values are
    /// ordered by address, then replica; the first of them owns the hashes up to that value.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u64, usize)> + '_ {
        let shift = 64 - self.bits;
        let mask = self.owner_mask();
        let mut bucket = 0usize;
        (0..self.entries.len()).map(move |pos| {
            // Advance to the bucket holding `pos`: the last `k` with `index[k] <= pos`.
            while self
                .index
                .get(bucket + 1)
                .is_some_and(|&next| next as usize <= pos)
            {
                bucket += 1;
            }
            let e = self.entries[pos];
            (
                (bucket as u64) << shift | e >> self.bits,
                (e & mask) as usize,
            )
        })
    }

    /// The position of the first point `>= hash`, wrapping around.
    #[inline]
    pub(super) fn position(&self, hash: u64) -> Option<usize> {
        let bucket = (hash >> (64 - self.bits)) as usize;
        let lo = *self.index.get(bucket)? as usize;
        let hi = *self.index.get(bucket + 1)? as usize;
        // Points of this bucket compare by their low bits; the key's low bits shifted up
        // compare the same way against `point << b | owner` (see `pack`).
        let key = hash << self.bits;
        let pos = lo + self.entries.get(lo..hi)?.partition_point(|&e| e < key);
        Some(if pos == self.entries.len() { 0 } else { pos })
    }

    /// The owner of the point at `pos`.
    #[inline]
    pub(super) fn owner_at(&self, pos: usize) -> Option<usize> {
        Some((self.entries.get(pos)? & self.owner_mask()) as usize)
    }

    /// The weight of endpoint `i` and the total weight.
    #[inline]
    pub(super) fn weight(&self, i: usize) -> Option<(u64, u64)> {
        Some((u64::from(*self.weights.get(i)?), self.total_weight))
    }

    fn owner_mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// Builds the ring for `endpoints` with the given point counts per endpoint (in the same
    /// order as `endpoints`), taking points already computed from `cache` and leaving there
    /// exactly the points of this set.
    pub(super) fn build(
        endpoints: &[EndpointView<'_>],
        counts: &[u32],
        cache: &mut PointCache,
    ) -> RingTable {
        // One count per endpoint: the caller computes them from these endpoints' weights.
        debug_assert_eq!(counts.len(), endpoints.len());
        let n = endpoints.len().min(counts.len());
        let endpoints = &endpoints[..n];
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight().get()).collect();
        let total_weight = weights.iter().map(|&w| u64::from(w)).sum();
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        // Positions are stored as u32; a ring that large (2^32 points, 32 GiB) cannot be built
        // anyway, and the configured maximum is far below it.
        let Ok(total) = u32::try_from(total) else {
            tracing::error!(points = total, "ring too large; publishing an empty ring");
            return RingTable::empty(weights, total_weight);
        };
        // At least as many buckets as points (so about one point per bucket) and as endpoints
        // (so owner indices fit in the low bits).
        let bits = (u64::from(total).max(n as u64))
            .next_power_of_two()
            .trailing_zeros()
            .max(MIN_BUCKET_BITS);
        let buckets = 1usize << bits;

        // Points in address order, then replica order; ties in point value keep this order
        // through the stable sorts below.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| endpoints[i].addr());
        cache.fill(endpoints, counts, &order);
        let lists: Vec<(usize, &[u64])> = order
            .iter()
            .map(|&i| (i, cache.get(endpoints[i].addr(), counts[i])))
            .collect();

        // Counting sort by bucket: count, prefix-sum into bucket starts, scatter.
        let shift = 64 - bits;
        let mut index = vec![0u32; buckets + 1];
        for &(_, points) in &lists {
            for &p in points {
                index[(p >> shift) as usize + 1] += 1;
            }
        }
        for k in 0..buckets {
            index[k + 1] += index[k];
        }
        // `fill` computed exactly `counts[i]` points for each endpoint, so this is `total`.
        let placed: usize = lists.iter().map(|&(_, points)| points.len()).sum();
        let mut entries = vec![0u64; placed];
        for &(i, points) in &lists {
            for &p in points {
                let slot = &mut index[(p >> shift) as usize];
                // `i < n <= 2^bits`, so the owner fits in the low `bits` bits.
                entries[*slot as usize] = p << bits | i as u64;
                *slot += 1;
            }
        }
        // Each bucket's cursor now holds its end, which is the next bucket's start.
        index.copy_within(0..buckets, 1);
        index[0] = 0;

        // Sort within buckets (about one point each) by point value, stably.
        let mask = (1u64 << bits) - 1;
        for k in 0..buckets {
            let bucket = &mut entries[index[k] as usize..index[k + 1] as usize];
            for j in 1..bucket.len() {
                let mut at = j;
                while at > 0 && bucket[at - 1] & !mask > bucket[at] & !mask {
                    bucket.swap(at - 1, at);
                    at -= 1;
                }
            }
        }
        RingTable {
            entries,
            index,
            bits,
            weights,
            total_weight,
        }
    }

    fn empty(weights: Vec<u32>, total_weight: u64) -> RingTable {
        RingTable {
            entries: Vec::new(),
            index: vec![0; (1 << MIN_BUCKET_BITS) + 1],
            bits: MIN_BUCKET_BITS,
            weights,
            total_weight,
        }
    }
}

impl fmt::Debug for RingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingTable")
            .field("endpoints", &self.len())
            .field("points", &self.point_count())
            .field("buckets", &(1u64 << self.bits))
            .finish()
    }
}

/// Points computed by earlier builds, by address: SHA-1 is most of the cost of a build, and
/// from one endpoint set to the next most endpoints are unchanged. Holds exactly the endpoints
/// of the last build, each with as many points as it needed (replica `j` of an address is the
/// same point whatever the count, so a list only ever grows or is cut short).
#[derive(Debug, Default)]
pub(super) struct PointCache {
    points: HashMap<SocketAddr, Vec<u64>>,
}

impl PointCache {
    /// Computes the missing points of every endpoint and forgets endpoints not in the set.
    fn fill(&mut self, endpoints: &[EndpointView<'_>], counts: &[u32], order: &[usize]) {
        let addrs: Vec<SocketAddr> = order.iter().map(|&i| endpoints[i].addr()).collect();
        // `addrs` is sorted, so membership is a binary search.
        self.points
            .retain(|addr, _| addrs.binary_search(addr).is_ok());
        for &i in order {
            let list = self.points.entry(endpoints[i].addr()).or_default();
            let have = u32::try_from(list.len()).unwrap_or(u32::MAX);
            if have < counts[i] {
                let mut name = Name::new(endpoints[i].addr());
                list.extend((have..counts[i]).map(|r| name.point(r)));
            }
        }
    }

    /// The first `count` points of `addr`, which `fill` has computed.
    fn get(&self, addr: SocketAddr, count: u32) -> &[u64] {
        let list = self.points.get(&addr).map_or(&[][..], Vec::as_slice);
        &list[..list.len().min(count as usize)]
    }

    /// Points held.
    pub(super) fn len(&self) -> usize {
        self.points.values().map(Vec::len).sum()
    }
}

/// At least 256 buckets, so the shifts stay in range and tiny rings need no special case.
const MIN_BUCKET_BITS: u32 = 8;
