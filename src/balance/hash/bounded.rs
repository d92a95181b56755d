//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018).

use super::error::HashConfigError;
use super::ring_table::RingTable;
use crate::balance::pick::Loads;

/// The load bound of [`RingHash::bounded_loads`](super::RingHash::bounded_loads): how far above
/// its fair share an endpoint may be loaded before keys walk past it.
///
/// With `L` requests in flight across the ring when a request is placed, total weight `W`, and
/// the request being placed counted in the average, endpoint `i` of weight `wᵢ` has capacity
///
/// ```text
/// capacityᵢ = ⌈(1 + ε) · (L + 1) · wᵢ / W⌉      (computed in f64, in this order)
/// ```
///
/// (with equal weights, `⌈(1 + ε) · average⌉` where `average = (L + 1) / N`). It takes the
/// request only while its in-flight count is below its capacity, so placing the request never
/// lifts it above the capacity. Capacities sum to more than `L`, so some endpoint always has
/// room and the walk ends.
///
/// # Defaults
///
/// ε = 0.25: an endpoint carries at most 25% more than its share. The paper's analysis and
/// Vimeo's production experience with it (the origin of HAProxy's `hash-balance-factor`,
/// usually set to 125) find this keeps most keys on their own endpoint while capping hot
/// spots. Smaller ε balances more tightly and moves more keys; larger ε keeps more affinity.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::hash::LoadBound;
///
/// let bound = LoadBound::new(0.5)?;
/// // 4 endpoints of equal weight, 7 requests in flight: capacity ⌈1.5 × 8 / 4⌉ = 3.
/// assert_eq!(bound.capacity(7, 1, 4), 3);
/// assert!(LoadBound::new(0.0).is_err());
/// assert_eq!(LoadBound::default().epsilon(), 0.25);
/// # Ok::<(), tower_mesh::balance::hash::HashConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadBound {
    epsilon: f64,
}

impl LoadBound {
    /// The default ε.
    pub const DEFAULT_EPSILON: f64 = 0.25;

    /// A bound with this ε.
    ///
    /// # Errors
    ///
    /// [`HashConfigError::InvalidEpsilon`] when ε is zero, negative, NaN or infinite.
    pub fn new(epsilon: f64) -> Result<Self, HashConfigError> {
        if epsilon.is_finite() && epsilon > 0.0 {
            Ok(LoadBound { epsilon })
        } else {
            Err(HashConfigError::InvalidEpsilon(epsilon))
        }
    }

    /// ε.
    pub fn epsilon(self) -> f64 {
        self.epsilon
    }

    /// The capacity of an endpoint of weight `weight` out of `total_weight` when
    /// `in_flight` requests are in flight across the ring, not counting the one being placed.
    #[inline]
    pub fn capacity(self, in_flight: u64, weight: u64, total_weight: u64) -> u64 {
        let fair = (in_flight as f64 + 1.0) * weight as f64 / total_weight as f64;
        // Non-negative and finite for any weights, so the cast is exact up to 2^53.
        ((1.0 + self.epsilon) * fair).ceil() as u64
    }

    /// The endpoint for `hash`: the first one clockwise from it with room.
    pub(super) fn pick(self, ring: &RingTable, loads: &Loads<'_>, hash: u64) -> Option<usize> {
        let start = ring.position(hash)?;
        let first = ring.owner_at(start)?;
        let load = |i: usize| (i < loads.len()).then(|| loads.get(i).in_flight());
        // Every capacity is at least 1: an idle endpoint always has room. This spares the
        // O(N) sum below in a lightly loaded system.
        if load(first)? == 0 {
            return Some(first);
        }
        let total: u64 = (0..loads.len()).map(|i| loads.get(i).in_flight()).sum();
        let points = ring.point_count();
        let mut rejected = usize::MAX;
        let mut pos = start;
        for _ in 0..points {
            let i = ring.owner_at(pos)?;
            if i != rejected {
                let (weight, total_weight) = ring.weight(i)?;
                if load(i)? < self.capacity(total, weight, total_weight) {
                    return Some(i);
                }
                rejected = i;
            }
            pos += 1;
            if pos == points {
                pos = 0;
            }
        }
        // Unreachable with a consistent view of the loads (see the type docs); other requests
        // finishing or starting during the walk can make it so. The key's own endpoint then.
        Some(first)
    }
}

impl Default for LoadBound {
    fn default() -> Self {
        LoadBound {
            epsilon: Self::DEFAULT_EPSILON,
        }
    }
}
