use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use super::error::RetryConfigError;

/// A retry budget: how many retries (and hedges) recent traffic has earned.
///
/// Within any window of `ttl`, the retries allowed are
///
/// ```text
/// floor(min_per_sec × ttl) + floor(retry_ratio × requests in the window)
/// ```
///
/// minus the retries and hedges already taken in that window, as in linkerd's and tower's
/// budgets (both after Finagle's `RetryBudget`). The floor lets a quiet client retry at all;
/// the ratio caps what retries add to the load when an endpoint fails, so a fleet of clients
/// cannot turn one failing server into a retry storm that takes the rest down.
///
/// # Defaults
///
/// [`Budget::default`] is tower's and linkerd's: `ttl` 10 s, `min_per_sec` 10, `retry_ratio`
/// 0.2 (retries add at most 20% to the load, plus 10 a second).
///
/// # The window
///
/// Requests and retries are counted in a ring of ten buckets of `ttl / 10` each, one atomic
/// counter per bucket (epoch-tagged, so no lock and no reset pass). The window is the current
/// bucket and the nine before it, so a request or a retry counts for between `0.9 × ttl` and
/// `ttl` after it happened. A [`Retry`](super::Retry) deposits its requests in batches (see
/// there), which only ever makes the budget stricter.
///
/// One budget is shared, through an `Arc`, by every clone of a `Retry` and by any other
/// `Retry` given the same budget.
pub struct Budget {
    start: Instant,
    ttl: Duration,
    min_per_sec: u32,
    ratio: f64,
    /// floor(min_per_sec × ttl in seconds).
    reserve: u64,
    bucket_nanos: u64,
    /// Requests per bucket, packed with the bucket's epoch.
    requests: [AtomicU64; SLOTS],
    /// Retries of past buckets, packed with the bucket's epoch; the newest bucket is `head`.
    retries: [AtomicU64; SLOTS],
    /// Retries of the newest bucket that has any, packed with its epoch. Every withdrawal is a
    /// compare-and-swap here, so two callers can never both take the last retry.
    head: AtomicU64,
    total_requests: AtomicU64,
    total_retries: AtomicU64,
    total_hedges: AtomicU64,
    total_refused: AtomicU64,
}

/// Counters of a [`Budget`] since it was made, from [`Budget::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// Requests deposited (first attempts of logical requests).
    pub requests: u64,
    /// Retries the budget granted.
    pub retries: u64,
    /// Hedges the budget granted.
    pub hedges: u64,
    /// Retries and hedges the budget refused.
    pub refused: u64,
}

/// What a withdrawal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Withdrawal {
    Retry,
    Hedge,
}

impl Budget {
    /// A budget allowing `floor(min_per_sec × ttl)` retries per window of `ttl`, plus
    /// `retry_ratio` retries per request in the window (`0.2`: one retry per five requests).
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::InvalidTtl`] unless `ttl` is from 1 s to 60 s;
    /// [`RetryConfigError::InvalidRetryRatio`] unless `retry_ratio` is from 0 to 1000.
    pub fn new(
        ttl: Duration,
        min_per_sec: u32,
        retry_ratio: f64,
    ) -> Result<Budget, RetryConfigError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(RetryConfigError::InvalidTtl(ttl));
        }
        if !(0.0..=MAX_RATIO).contains(&retry_ratio) {
            return Err(RetryConfigError::InvalidRetryRatio(retry_ratio));
        }
        // Exact: ttl is at most 60 s, so the product is below 2^38.
        let reserve = (f64::from(min_per_sec) * ttl.as_secs_f64()).floor() as u64;
        // ttl is at least 1 s, so a bucket is at least 100 ms.
        let bucket_nanos = (ttl / SLOTS as u32).as_nanos() as u64;
        Ok(Budget {
            start: Instant::now(),
            ttl,
            min_per_sec,
            ratio: retry_ratio,
            reserve,
            bucket_nanos,
            requests: Default::default(),
            retries: Default::default(),
            head: AtomicU64::new(0),
            total_requests: AtomicU64::new(0),
            total_retries: AtomicU64::new(0),
            total_hedges: AtomicU64::new(0),
            total_refused: AtomicU64::new(0),
        })
    }

    /// The window.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Retries allowed per second of the window regardless of traffic.
    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// Retries allowed per request in the window.
    pub fn retry_ratio(&self) -> f64 {
        self.ratio
    }

    /// Counters since the budget was made: requests deposited, retries and hedges granted,
    /// withdrawals refused.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            requests: self.total_requests.load(Relaxed),
            retries: self.total_retries.load(Relaxed),
            hedges: self.total_hedges.load(Relaxed),
            refused: self.total_refused.load(Relaxed),
        }
    }

    /// Counts `n` requests made at `at` or later. Counting them at `at` makes them expire no
    /// later than they would have, so a late deposit only ever makes the budget stricter;
    /// requests whose bucket has already left the ring are dropped.
    pub(crate) fn deposit(&self, n: u64, at: Instant) {
        if n == 0 {
            return;
        }
        self.total_requests.fetch_add(n, Relaxed);
        let epoch = self.epoch(at);
        let slot = &self.requests[(epoch % SLOTS as u64) as usize];
        let mut current = slot.load(Relaxed);
        loop {
            let (tag, count) = unpack(current);
            let next = match tag.cmp(&epoch) {
                std::cmp::Ordering::Equal => pack(epoch, count.saturating_add(n)),
                std::cmp::Ordering::Less => pack(epoch, n),
                // The slot already holds a newer bucket: these requests have expired.
                std::cmp::Ordering::Greater => return,
            };
            match slot.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes one retry (or hedge) from the budget now, if the window allows it.
    pub(crate) fn withdraw(&self, kind: Withdrawal) -> bool {
        let granted = self.withdraw_at(Instant::now());
        let counter = match (granted, kind) {
            (false, _) => &self.total_refused,
            (true, Withdrawal::Retry) => &self.total_retries,
            (true, Withdrawal::Hedge) => &self.total_hedges,
        };
        counter.fetch_add(1, Relaxed);
        granted
    }

    fn withdraw_at(&self, now: Instant) -> bool {
        let now_epoch = self.epoch(now);
        let mut head = self.head.load(Acquire);
        loop {
            let (head_epoch, head_count) = unpack(head);
            // Another caller's clock may be a little ahead; its bucket is the current one.
            let epoch = now_epoch.max(head_epoch);
            let (requests, retries) = self.window(epoch, head_epoch, head_count);
            if retries >= self.allowed(requests) {
                return false;
            }
            let next = if head_epoch == epoch {
                if head_count == COUNT_MAX {
                    return false;
                }
                pack(epoch, head_count + 1)
            } else {
                // Archive the head's bucket before moving on. `fetch_max` keeps the newest
                // value: a stale caller can only write an older epoch or a smaller count of
                // the same one, and the window never counts the head's epoch from the ring.
                self.retries[(head_epoch % SLOTS as u64) as usize].fetch_max(head, AcqRel);
                pack(epoch, 1)
            };
            match self.head.compare_exchange_weak(head, next, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(actual) => head = actual,
            }
        }
    }

    /// Requests and retries counted in the window ending in bucket `epoch`.
    fn window(&self, epoch: u64, head_epoch: u64, head_count: u64) -> (u64, u64) {
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1);
        let live = |tag: u64| (oldest..=epoch).contains(&tag);
        let requests = self
            .requests
            .iter()
            .map(|slot| unpack(slot.load(Relaxed)))
            .filter(|&(tag, _)| live(tag))
            .fold(0u64, |sum, (_, count)| sum.saturating_add(count));
        let archived = self
            .retries
            .iter()
            .map(|slot| unpack(slot.load(Acquire)))
            .filter(|&(tag, _)| live(tag) && tag != head_epoch)
            .fold(0u64, |sum, (_, count)| sum.saturating_add(count));
        let head = if live(head_epoch) { head_count } else { 0 };
        (requests, archived.saturating_add(head))
    }

    /// Retries the window allows for `requests` requests in it.
    fn allowed(&self, requests: u64) -> u64 {
        // `as` saturates; ratio × requests is below 2^64 for any count the ring can hold.
        self.reserve
            .saturating_add((self.ratio * requests as f64).floor() as u64)
    }

    /// The bucket `at` falls in.
    fn epoch(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.start).as_nanos();
        (nanos / u128::from(self.bucket_nanos)) as u64 & EPOCH_MAX
    }
}

impl Default for Budget {
    /// tower's and linkerd's defaults: `ttl` 10 s, `min_per_sec` 10, `retry_ratio` 0.2.
    fn default() -> Self {
        Budget::new(DEFAULT_TTL, DEFAULT_MIN_PER_SEC, DEFAULT_RATIO)
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("ttl", &self.ttl)
            .field("min_per_sec", &self.min_per_sec)
            .field("retry_ratio", &self.ratio)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A bucket's epoch in the high bits, its count in the low bits: one atomic word, so a bucket
/// is reused (a new epoch, the count restarted) by a single compare-and-swap.
fn pack(epoch: u64, count: u64) -> u64 {
    (epoch << COUNT_BITS) | count.min(COUNT_MAX)
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> COUNT_BITS, word & COUNT_MAX)
}

/// Buckets in the ring.
const SLOTS: usize = 10;
/// Bits of a bucket's count: 2^28 − 1 requests or retries per bucket, saturating (fewer
/// requests counted, and a full retry bucket refuses: both stricter).
const COUNT_BITS: u32 = 28;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
/// 36 bits of epoch: with buckets of at least 100 ms, they wrap after 218 years.
const EPOCH_MAX: u64 = (1 << (64 - COUNT_BITS)) - 1;
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(60);
const MAX_RATIO: f64 = 1000.0;
const DEFAULT_TTL: Duration = Duration::from_secs(10);
const DEFAULT_MIN_PER_SEC: u32 = 10;
const DEFAULT_RATIO: f64 = 0.2;
