use std::net::SocketAddr;

use tokio::time::Instant;

use super::chunked::Chunked;
use crate::endpoint::{Endpoint, Weight};
use crate::error::{BoxError, NoEndpoints};
use crate::load::{Decay, Load};

/// The table-building half of a picker: what it precomputes from the endpoint set.
///
/// A balancer calls [`build`](Pick::build) once per endpoint-set change, on its background
/// driver task, never on a request's task, and publishes the table in an immutable snapshot.
/// Per request it calls [`PickRequest::pick`] with that table. Everything expensive belongs in
/// `build`; `pick` should be a few nanoseconds of reads.
///
/// Each clone of a [`Balance`](super::Balance) has its own [`Cursor`](Pick::Cursor) (a position
/// in a schedule, a random number generator), so pickers keep shared writes off the request path:
/// two tasks on two cores picking at once touch no common cache line.
pub trait Pick: Send + Sync + 'static {
    /// The precomputed, immutable table picks are made from.
    type Table: Send + Sync + 'static;
    /// Per-clone mutable state.
    type Cursor: Send + Sync + 'static;

    /// Builds the table for a new endpoint set. Indices into `endpoints` are what
    /// [`PickRequest::pick`] returns.
    ///
    /// The order is the balancer's slot order, not sorted: an endpoint keeps its index while it
    /// stays in the set, a new endpoint is appended, and a removal moves the last endpoint into
    /// the hole (so one change republishes in microseconds at 10,000 endpoints). It depends on
    /// the history of changes, so a picker whose table must be the same on every client for
    /// the same set (consistent hashing) orders endpoints itself, by address.
    fn build(&self, endpoints: &[EndpointView<'_>]) -> Self::Table;

    /// Whether [`build_with_unready`](Pick::build_with_unready) should be called instead of
    /// [`build`](Pick::build). Default `false`: collecting the endpoints out of the set costs
    /// the driver a pass over every endpoint per rebuild.
    fn wants_unready(&self) -> bool {
        false
    }

    /// Like [`build`](Pick::build), and also sees the endpoints discovery names that are not in
    /// the set (connecting, backing off, ejected or unhealthy), for pickers that weigh a group's
    /// health, such as [`Locality`](super::Locality). Called only when
    /// [`wants_unready`](Pick::wants_unready) says so; the default builds from `ready` alone.
    fn build_with_unready(
        &self,
        ready: &[EndpointView<'_>],
        unready: &[EndpointView<'_>],
    ) -> Self::Table {
        let _ = unready;
        self.build(ready)
    }

    /// The cursor for the `clone`-th clone of the balancer (0 for the first). Seeded pickers
    /// derive the cursor from their seed and `clone`, so a run is reproducible.
    fn cursor(&self, clone: u64) -> Self::Cursor;

    /// `Some(decay)` when this picker weighs endpoints by latency. The balancer then reads the
    /// clock once per request, hands the reading to [`PickRequest::pick`] through
    /// [`Loads::now`], and times the request into the chosen endpoint's RTT estimate (see
    /// [`load`](crate::load)), which forgets with time constant `decay`. The default, `None`,
    /// costs no clock read at all.
    fn rtt_decay(&self) -> Option<Decay> {
        None
    }
}

/// The per-request half of a picker.
pub trait PickRequest<Req>: Pick {
    /// Chooses an endpoint for `req`: an index below `loads.len()`, or `None` when the picker
    /// has nothing to offer. `table` was built from the same endpoint set as `loads`.
    fn pick(
        &self,
        table: &Self::Table,
        cursor: &mut Self::Cursor,
        loads: &Loads<'_>,
        req: &Req,
    ) -> Option<usize>;

    /// Whether endpoint `index` may serve `req` at all: a retry that has tried every endpoint
    /// the picker chose falls back to the next untried endpoint this accepts. The default
    /// accepts every endpoint; a picker that confines requests to a group (by label) accepts
    /// only the group's.
    fn eligible(&self, table: &Self::Table, req: &Req, index: usize) -> bool {
        let _ = (table, req, index);
        true
    }

    /// The error a request gets when [`pick`](PickRequest::pick) offered nothing. The default
    /// is [`NoEndpoints`]; a picker that refuses for a reason of its own (no endpoint matches the
    /// request's selector) names it.
    fn refusal(&self, table: &Self::Table, req: &Req) -> BoxError {
        let _ = (table, req);
        NoEndpoints::new(std::time::Duration::ZERO).into()
    }
}

/// What a picker sees of one endpoint when it builds its table.
#[derive(Debug, Clone, Copy)]
pub struct EndpointView<'a> {
    endpoint: &'a Endpoint,
}

impl<'a> EndpointView<'a> {
    /// A view of `endpoint`.
    pub fn new(endpoint: &'a Endpoint) -> Self {
        EndpointView { endpoint }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// Its weight.
    pub fn weight(&self) -> Weight {
        self.endpoint.weight()
    }
}

/// The live load of every endpoint in a snapshot, by index.
///
/// A picker that wraps another over part of the set (by zone, by label) hands the inner
/// picker a [`subset`](Loads::subset): the same loads, renumbered.
#[derive(Debug, Clone, Copy)]
pub struct Loads<'a> {
    repr: Repr<'a>,
    now: Option<Instant>,
    /// `now` in the time of every load here (a balancer's share one epoch): its one
    /// conversion per pick. `None` for loads a picker was handed on its own.
    nanos: Option<u64>,
    /// Index maps of nested subsets, innermost last; `maps[..depth]` are in use.
    maps: [&'a [u32]; MAX_DEPTH],
    depth: u8,
}

/// How many subsets may be nested (a wrapping picker inside another inside another...).
pub const MAX_DEPTH: usize = 4;

/// A balancer's snapshot keeps loads in shared chunks (so one endpoint change republishes in
/// microseconds); a picker tested on its own passes a plain slice. The branch between the two is
/// the same for every request of a process, so it is predicted for free.
#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Slice(&'a [Load]),
    Chunked(&'a Chunked<Load>),
}

impl<'a> Loads<'a> {
    /// Loads of endpoints `0..loads.len()`.
    #[inline]
    pub fn new(loads: &'a [Load]) -> Self {
        Loads::from_repr(Repr::Slice(loads), None)
    }

    /// Loads with the time the request started, for pickers that time requests.
    #[inline]
    pub fn with_now(loads: &'a [Load], now: Instant) -> Self {
        Loads::from_repr(Repr::Slice(loads), Some(now))
    }

    /// A snapshot's loads; `now` is the request's start, also in nanoseconds since the
    /// epoch every load of the snapshot shares.
    #[inline]
    pub(crate) fn chunked(loads: &'a Chunked<Load>, now: Option<(Instant, u64)>) -> Self {
        let mut loads = Loads::from_repr(Repr::Chunked(loads), now.map(|(now, _)| now));
        loads.nanos = now.map(|(_, nanos)| nanos);
        loads
    }

    #[inline]
    fn from_repr(repr: Repr<'a>, now: Option<Instant>) -> Self {
        Loads {
            repr,
            now,
            nanos: None,
            maps: [&[]; MAX_DEPTH],
            depth: 0,
        }
    }

    /// [`now`](Self::now) in `load`'s time (nanoseconds since its epoch): converted once per
    /// pick for a balancer's loads, which share an epoch. `None` without timing.
    #[inline]
    pub(crate) fn nanos(&self, load: &Load) -> Option<u64> {
        match self.nanos {
            Some(nanos) => Some(nanos),
            None => self.now.map(|now| load.since_epoch(now)),
        }
    }

    /// The loads of the endpoints `map` names, renumbered: index `i` of the result is index
    /// `map[i]` of `self`. Costs nothing to make; each `get` follows the maps.
    ///
    /// # Panics
    ///
    /// When nested more than [`MAX_DEPTH`] deep, or (at `get`) when `map` names an index
    /// `self` does not have.
    #[inline]
    pub fn subset(&self, map: &'a [u32]) -> Loads<'a> {
        let depth = usize::from(self.depth);
        if depth == MAX_DEPTH {
            too_deep();
        }
        let mut maps = self.maps;
        maps[depth] = map;
        Loads {
            repr: self.repr,
            now: self.now,
            nanos: self.nanos,
            maps,
            depth: self.depth + 1,
        }
    }

    /// When the request started, if the picker asked for timing
    /// ([`Pick::rtt_decay`]).
    #[inline]
    pub fn now(&self) -> Option<Instant> {
        self.now
    }

    /// The number of endpoints.
    #[inline]
    pub fn len(&self) -> usize {
        match self.depth {
            0 => match self.repr {
                Repr::Slice(loads) => loads.len(),
                Repr::Chunked(loads) => loads.len(),
            },
            d => self.maps[usize::from(d) - 1].len(),
        }
    }

    /// Whether there are no endpoints.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The load of endpoint `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    #[inline]
    pub fn get(&self, index: usize) -> &'a Load {
        let index = self.base_index(index);
        let load = match self.repr {
            Repr::Slice(loads) => loads.get(index),
            Repr::Chunked(loads) => loads.get(index),
        };
        match load {
            Some(load) => load,
            None => out_of_bounds(index, self.len()),
        }
    }

    /// `index` in the unmapped set.
    #[inline]
    fn base_index(&self, mut index: usize) -> usize {
        for map in self.maps[..usize::from(self.depth)].iter().rev() {
            match map.get(index) {
                Some(&i) => index = i as usize,
                None => out_of_bounds(index, map.len()),
            }
        }
        index
    }
}

#[cold]
#[inline(never)]
fn too_deep() -> ! {
    panic!("loads nested more than {MAX_DEPTH} subsets deep")
}

#[cold]
#[inline(never)]
fn out_of_bounds(index: usize, len: usize) -> ! {
    panic!("endpoint index {index} out of bounds for {len} endpoints")
}
