use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::round_robin::Position;
use super::seed::{Seed, clone_start};
use crate::error::ConfigError;

/// Smooth weighted round-robin with exact shares.
///
/// Over every full cycle of the schedule each endpoint receives exactly its weight's share of
/// picks, and at no point does an endpoint run ahead of its ideal share (`picks × weight /
/// total`) by one pick or more, counted from the cycle start; from any starting point the lead
/// stays under two picks. That is the smoothness of nginx's smooth weighted round-robin and of
/// gRPC's static-stride scheduler (gRFC A58), without their per-pick cost: nginx's scan is O(n)
/// per pick under a lock, and a static-stride scheduler may skip many slots per pick when
/// weights are skewed and, measured here, lets light endpoints run ahead by up to ten picks.
///
/// # Algorithm
///
/// The schedule is computed once per endpoint-set change with WF²Q, worst-case fair weighted
/// fair queueing (Bennett and Zhang, INFOCOM 1996): weights are divided by their greatest
/// common divisor; then for each slot `t` of the cycle, among the endpoints that are not ahead of
/// their ideal share (`picks_i / w_i <= t / total`), the one whose next pick is due earliest
/// (smallest `(picks_i + 1) / w_i`, ties to the lower address) takes the slot. Two binary heaps
/// make that O(log n) per slot with exact integer arithmetic. A pick is then one read of
/// the schedule at the clone's cursor: O(1), no lock, no shared write.
///
/// # Limits
///
/// The schedule has one `u32` per slot, `total / gcd` slots. Past
/// [`Weighted::DEFAULT_MAX_SCHEDULE`] slots (4 MiB), the weights are scaled down to fit,
/// each keeping at least 1, and a warning is logged: shares are then exact for the scaled
/// weights, and each endpoint's share is within `n` slots (for `n` endpoints) of its ideal
/// share of the limit. Equal weights cost no schedule at all. The limit can be set with
/// [`Weighted::max_schedule`], up to [`Weighted::MAX_SCHEDULE_LIMIT`].
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::Weighted;
///
/// let weighted = Weighted::with_seed(1);
/// # drop((weighted, Weighted::new()));
/// ```
#[derive(Debug, Clone)]
pub struct Weighted {
    seed: Seed,
    max_schedule: usize,
}

/// A [`Weighted`] picker's table: one full cycle of picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    order: Vec<u32>,
    scaled: bool,
}

impl Weighted {
    /// The largest schedule built before weights are scaled down: 2²⁰ slots.
    pub const DEFAULT_MAX_SCHEDULE: usize = 1 << 20;

    /// Weighted round-robin with clone offsets seeded from the operating system.
    pub fn new() -> Self {
        Weighted {
            seed: Seed::default(),
            max_schedule: Self::DEFAULT_MAX_SCHEDULE,
        }
    }

    /// Weighted round-robin with reproducible clone offsets.
    pub fn with_seed(seed: u64) -> Self {
        Weighted {
            seed: Seed::fixed(seed),
            max_schedule: Self::DEFAULT_MAX_SCHEDULE,
        }
    }

    /// The largest value [`Weighted::max_schedule`] accepts: 2²⁴ slots (64 MiB).
    pub const MAX_SCHEDULE_LIMIT: usize = 1 << 24;

    /// Sets the largest schedule length before weights are scaled down (a schedule of one slot
    /// per endpoint is always allowed). Zero, or more than [`Weighted::MAX_SCHEDULE_LIMIT`], is
    /// refused naming the value.
    pub fn max_schedule(mut self, slots: usize) -> Result<Self, ConfigError> {
        if slots == 0 || slots > Self::MAX_SCHEDULE_LIMIT {
            return Err(ConfigError::InvalidScheduleLimit(slots));
        }
        self.max_schedule = slots;
        Ok(self)
    }

    /// Builds the schedule for these weights, in endpoint order.
    pub fn schedule(&self, weights: &[u32]) -> Schedule {
        build_schedule(weights, self.max_schedule)
    }
}

impl Default for Weighted {
    fn default() -> Self {
        Weighted::new()
    }
}

impl Schedule {
    /// Endpoint indices, in pick order, for one full cycle.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Whether the weights had to be scaled down to fit the schedule limit.
    pub fn is_scaled(&self) -> bool {
        self.scaled
    }
}

impl Pick for Weighted {
    type Table = Schedule;
    type Cursor = Position;

    fn build(&self, endpoints: &[EndpointView<'_>]) -> Schedule {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight().get()).collect();
        self.schedule(&weights)
    }

    fn cursor(&self, clone: u64) -> Position {
        Position::new(clone_start(self.seed, clone))
    }
}

impl<Req> PickRequest<Req> for Weighted {
    #[inline]
    fn pick(
        &self,
        table: &Schedule,
        cursor: &mut Position,
        loads: &Loads<'_>,
        _: &Req,
    ) -> Option<usize> {
        if table.order.is_empty() {
            // Equal weights: plain round-robin over the endpoints.
            return cursor.next(loads.len());
        }
        let slot = cursor.next(table.order.len())?;
        Some(table.order[slot] as usize)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn build_schedule(weights: &[u32], max_schedule: usize) -> Schedule {
    let n = weights.len();
    let empty = Schedule {
        order: Vec::new(),
        scaled: false,
    };
    if n == 0 || weights.iter().all(|&w| w == weights[0]) {
        return empty;
    }
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x) / g.max(1)).collect();
    let mut total: u64 = w.iter().sum();
    let cap = max_schedule.max(n) as u64;
    let scaled = total > cap;
    if scaled {
        // Proportional scaling into `cap`: one slot each, plus each endpoint's rounded-down
        // share of the remaining `cap - n`, so the scaled total never exceeds `cap`.
        let room = cap - (n as u64).min(cap);
        let before = total;
        for x in &mut w {
            *x = 1 + (u128::from(*x - 1) * u128::from(room) / u128::from(before)) as u64;
        }
        total = w.iter().sum();
        tracing::warn!(
            slots = before,
            max = cap,
            "weighted schedule too long for the configured limit; weights scaled down"
        );
    }
    Schedule {
        order: wf2q(&w, total),
        scaled,
    }
}

/// Reverse-ordered heap key: the rational `num / den`, ties broken by endpoint index.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    num: u64,
    den: u64,
    idx: u32,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // num/den < onum/oden  <=>  num*oden < onum*den; both products fit in u128.
        (u128::from(self.num) * u128::from(other.den))
            .cmp(&(u128::from(other.num) * u128::from(self.den)))
            .then(self.idx.cmp(&other.idx))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One WF²Q cycle over integer weights summing to `total`.
fn wf2q(w: &[u64], total: u64) -> Vec<u32> {
    let mut picks = vec![0u64; w.len()];
    // Eligible endpoints by virtual finish time (picks+1)/w.
    let mut eligible: BinaryHeap<Reverse<Key>> = w
        .iter()
        .enumerate()
        .map(|(i, &wi)| {
            Reverse(Key {
                num: 1,
                den: wi,
                idx: i as u32,
            })
        })
        .collect();
    // Endpoints ahead of their share, by virtual start time picks/w.
    let mut waiting: BinaryHeap<Reverse<Key>> = BinaryHeap::new();
    let mut order = Vec::with_capacity(total as usize);
    for t in 0..total {
        // Eligible once picks/w <= t/total.
        while let Some(Reverse(k)) = waiting.peek() {
            if u128::from(k.num) * u128::from(total) > u128::from(t) * u128::from(k.den) {
                break;
            }
            let i = k.idx as usize;
            waiting.pop();
            eligible.push(Reverse(Key {
                num: picks[i] + 1,
                den: w[i],
                idx: i as u32,
            }));
        }
        // Some endpoint is always eligible: the picks so far sum to t, so at least one endpoint
        // has picks_i <= t * w_i / total.
        let Some(Reverse(k)) = eligible.pop() else {
            break;
        };
        let i = k.idx as usize;
        order.push(k.idx);
        picks[i] += 1;
        if u128::from(picks[i]) * u128::from(total) <= u128::from(t + 1) * u128::from(w[i]) {
            eligible.push(Reverse(Key {
                num: picks[i] + 1,
                den: w[i],
                idx: k.idx,
            }));
        } else {
            waiting.push(Reverse(Key {
                num: picks[i],
                den: w[i],
                idx: k.idx,
            }));
        }
    }
    order
}
