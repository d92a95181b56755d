use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{Seed, clone_start};

/// Round-robin: each clone of the balancer walks the endpoint list in address order.
///
/// Every [`Balance`](super::Balance) clone has its own cursor, so clones never contend on a
/// shared counter (measured: a cursor shared by two cores costs ~5x a private one). Within one
/// clone, counts differ by at most one across endpoints after any number of picks. Clones
/// start at different, seeded offsets, so a hundred freshly cloned handles do not all send their
/// first request to the same endpoint. Weights are ignored; use [`Weighted`](super::Weighted)
/// for them.
///
/// Choose it when endpoints are alike and requests cost about the same.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::RoundRobin;
///
/// let rr = RoundRobin::with_seed(7); // reproducible starting offsets
/// # drop((rr, RoundRobin::new()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    seed: Seed,
}

impl RoundRobin {
    /// Round-robin with clone offsets seeded from the operating system.
    pub fn new() -> Self {
        RoundRobin::default()
    }

    /// Round-robin with reproducible clone offsets.
    pub fn with_seed(seed: u64) -> Self {
        RoundRobin {
            seed: Seed::fixed(seed),
        }
    }
}

impl Pick for RoundRobin {
    type Table = ();
    type Cursor = Position;

    fn build(&self, _: &[EndpointView<'_>]) {}

    fn cursor(&self, clone: u64) -> Position {
        Position::new(clone_start(self.seed, clone))
    }
}

impl<Req> PickRequest<Req> for RoundRobin {
    #[inline]
    fn pick(&self, _: &(), cursor: &mut Position, loads: &Loads<'_>, _: &Req) -> Option<usize> {
        cursor.next(loads.len())
    }
}

/// A clone's position in a cyclic sequence: round-robin order or a weighted schedule.
#[derive(Debug, Clone)]
pub struct Position {
    at: usize,
    start: u64,
    fresh: bool,
}

impl Position {
    pub(crate) fn new(start: u64) -> Self {
        Position {
            at: 0,
            start,
            fresh: true,
        }
    }

    /// The next index in `0..len`, advancing; `None` when `len` is zero.
    #[inline]
    pub(crate) fn next(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        if self.at >= len || self.fresh {
            self.fix(len);
        }
        let i = self.at;
        self.at += 1;
        if self.at == len {
            self.at = 0;
        }
        Some(i)
    }

    #[cold]
    fn fix(&mut self, len: usize) {
        if self.fresh {
            self.fresh = false;
            // A u64 reduced modulo a usize length fits a usize.
            self.at = (self.start % len as u64) as usize;
        } else {
            self.at %= len;
        }
    }
}
