//! The label-routing picker.

use std::fmt;
use std::sync::Arc;

use super::super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::table::LabelTable;
use super::{LabelRouteError, NoMatchingEndpoints, SelectLabel};
use crate::error::BoxError;
use crate::load::Decay;

/// Routes each request to the endpoints whose label `key` has the value the request selects,
/// and lets an inner picker choose among them. See the [module docs](super).
///
/// # Defaults
///
/// - fallback: [`Fallback::Fail`], as Envoy's subset balancer (`NO_FALLBACK`): a request for a
///   version that is not deployed fails loudly rather than silently reaching another version.
/// - requests that select no value: every ready endpoint, picked by the inner picker as if it
///   stood alone (change with [`default_value`](LabelRoute::default_value)).
pub struct LabelRoute<P, X> {
    inner: P,
    key: Arc<str>,
    select: X,
    fallback: Fallback,
    default_value: Option<Box<str>>,
}

/// Where a request goes when no ready endpoint carries the label value it selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fallback {
    /// Fail the request with [`NoMatchingEndpoints`] (Envoy's `NO_FALLBACK`). The default.
    #[default]
    Fail,
    /// Send it to any ready endpoint, whatever its labels (Envoy's `ANY_ENDPOINT`).
    Any,
    /// Send it to the endpoints carrying this value of the same label, such as `"stable"`
    /// (Envoy's `DEFAULT_SUBSET`); when none is ready either, fail with
    /// [`NoMatchingEndpoints`] naming both values.
    Value(String),
}

/// A [`LabelRoute`]'s per-clone state: the inner picker's cursor for requests routed to every
/// endpoint, and one per label value.
///
/// One cursor per value keeps the inner picker's guarantees within each group: a
/// [`RoundRobin`](crate::balance::RoundRobin) cursor shared by groups of different sizes would
/// wrap at the wrong lengths and starve endpoints. A clone allocates a group's cursor the
/// first time it routes a request to a group beyond those it has seen, once per group, never
/// again. Cursors belong to a group's position in the sorted values, so a set change that adds
/// or removes a whole value hands some cursors to a neighbouring group; inner cursors stay
/// valid for any group (they are only positions and random states).
#[derive(Debug, Clone)]
pub struct LabelCursor<C> {
    clone: u64,
    all: C,
    groups: Vec<C>,
}

impl<P> LabelRoute<P, ()> {
    /// Routes by label `key`, with the value taken from each request by the closure `select`,
    /// picking with `inner` within the group. The key must not be empty or only whitespace.
    ///
    /// This constructor exists for closures: its bound tells the compiler that the value
    /// borrows from the request. Named selector types go to [`new`](LabelRoute::new).
    pub fn from_fn<Req, F>(
        inner: P,
        key: impl Into<String>,
        select: F,
    ) -> Result<LabelRoute<P, F>, LabelRouteError>
    where
        F: Fn(&Req) -> Option<&str> + Send + Sync + 'static,
    {
        LabelRoute::new(inner, key, select)
    }
}

impl<P, X> LabelRoute<P, X> {
    /// Routes by label `key`, with the value taken from each request by `select` (any
    /// [`SelectLabel`]), picking with `inner` within the group. The key must not be empty or
    /// only whitespace.
    pub fn new(inner: P, key: impl Into<String>, select: X) -> Result<Self, LabelRouteError> {
        let key = key.into();
        if key.trim().is_empty() {
            return Err(LabelRouteError::InvalidKey(key));
        }
        Ok(LabelRoute {
            inner,
            key: key.into(),
            select,
            fallback: Fallback::default(),
            default_value: None,
        })
    }

    /// Sets where requests go whose value no ready endpoint carries.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Routes requests that select no value as if they selected `value` (the fallback then
    /// applies to them too), instead of to every endpoint: for example, keep untagged traffic
    /// off canaries with `default_value("stable")`.
    pub fn default_value(mut self, value: impl Into<String>) -> Self {
        self.default_value = Some(value.into().into_boxed_str());
        self
    }

    /// The label key routed by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fallback.
    pub fn fallback_policy(&self) -> &Fallback {
        &self.fallback
    }

    /// The inner picker.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }

    /// The selector.
    pub fn selector(&self) -> &X {
        &self.select
    }

    /// The inner picker, consuming the route.
    pub fn into_inner(self) -> P {
        self.inner
    }

    fn fallback_value(&self) -> Option<&str> {
        match &self.fallback {
            Fallback::Value(value) => Some(value),
            Fallback::Fail | Fallback::Any => None,
        }
    }

    /// Where `req` goes in `table`.
    #[inline]
    fn route<'r, Req, T>(&'r self, table: &LabelTable<T>, req: &'r Req) -> Route<'r>
    where
        X: SelectLabel<Req>,
    {
        let Some(value) = self.select.select(req).or(self.default_value.as_deref()) else {
            return Route::All;
        };
        if let Some(g) = table.find(value) {
            return Route::Group(g);
        }
        match self.fallback {
            Fallback::Any => Route::All,
            Fallback::Fail => Route::Refuse(value),
            Fallback::Value(_) => table.fallback().map_or(Route::Refuse(value), Route::Group),
        }
    }
}

/// A request's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'r> {
    /// Every ready endpoint.
    All,
    /// One group.
    Group(usize),
    /// Nowhere: no endpoint carries this value.
    Refuse(&'r str),
}

impl<C> LabelCursor<C> {
    /// The cursor of group `g`, made on first use.
    #[inline]
    fn group<P: Pick<Cursor = C>>(&mut self, g: usize, inner: &P) -> &mut C {
        if g >= self.groups.len() {
            self.grow(g, inner);
        }
        &mut self.groups[g]
    }

    #[cold]
    #[inline(never)]
    fn grow<P: Pick<Cursor = C>>(&mut self, g: usize, inner: &P) {
        while self.groups.len() <= g {
            let n = self.groups.len() as u64 + 1;
            // A distinct clone number per group, so seeded inner cursors draw independent
            // streams (or start at independent offsets) in each group.
            let clone = self.clone.wrapping_add(n.wrapping_mul(GROUP_STRIDE));
            self.groups.push(inner.cursor(clone));
        }
    }
}

impl<P: fmt::Debug, X> fmt::Debug for LabelRoute<P, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelRoute")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .field("select", &std::any::type_name::<X>())
            .field("fallback", &self.fallback)
            .field("default_value", &self.default_value)
            .finish()
    }
}

impl<P: Clone, X: Clone> Clone for LabelRoute<P, X> {
    fn clone(&self) -> Self {
        LabelRoute {
            inner: self.inner.clone(),
            key: self.key.clone(),
            select: self.select.clone(),
            fallback: self.fallback.clone(),
            default_value: self.default_value.clone(),
        }
    }
}

impl Fallback {
    /// [`Fallback::Value`] of `value`.
    pub fn value(value: impl Into<String>) -> Self {
        Fallback::Value(value.into())
    }
}

impl<P, X> Pick for LabelRoute<P, X>
where
    P: Pick,
    X: Send + Sync + 'static,
{
    type Table = LabelTable<P::Table>;
    type Cursor = LabelCursor<P::Cursor>;

    fn build(&self, endpoints: &[EndpointView<'_>]) -> Self::Table {
        LabelTable::build(
            &self.inner,
            &self.key,
            self.fallback_value(),
            endpoints,
            None,
        )
    }

    fn wants_unready(&self) -> bool {
        self.inner.wants_unready()
    }

    fn build_with_unready(
        &self,
        ready: &[EndpointView<'_>],
        unready: &[EndpointView<'_>],
    ) -> Self::Table {
        LabelTable::build(
            &self.inner,
            &self.key,
            self.fallback_value(),
            ready,
            Some(unready),
        )
    }

    fn cursor(&self, clone: u64) -> Self::Cursor {
        LabelCursor {
            clone,
            all: self.inner.cursor(clone),
            groups: Vec::new(),
        }
    }

    fn rtt_decay(&self) -> Option<Decay> {
        self.inner.rtt_decay()
    }
}

impl<P, X, Req> PickRequest<Req> for LabelRoute<P, X>
where
    P: PickRequest<Req>,
    X: SelectLabel<Req>,
{
    #[inline]
    fn pick(
        &self,
        table: &Self::Table,
        cursor: &mut Self::Cursor,
        loads: &Loads<'_>,
        req: &Req,
    ) -> Option<usize> {
        match self.route(table, req) {
            Route::All => self.inner.pick(table.all(), &mut cursor.all, loads, req),
            Route::Group(g) => {
                let group = table.group(g);
                let cursor = cursor.group(g, &self.inner);
                let i = self
                    .inner
                    .pick(&group.table, cursor, &loads.subset(&group.map), req)?;
                group.map.get(i).map(|&i| i as usize)
            }
            Route::Refuse(_) => None,
        }
    }

    fn eligible(&self, table: &Self::Table, req: &Req, index: usize) -> bool {
        match self.route(table, req) {
            Route::All => self.inner.eligible(table.all(), req, index),
            Route::Group(g) => {
                let group = table.group(g);
                u32::try_from(index).is_ok_and(|i| group.map.contains(&i))
            }
            Route::Refuse(_) => false,
        }
    }

    fn refusal(&self, table: &Self::Table, req: &Req) -> BoxError {
        match self.route(table, req) {
            Route::All => self.inner.refusal(table.all(), req),
            Route::Group(g) => self.inner.refusal(&table.group(g).table, req),
            Route::Refuse(value) => NoMatchingEndpoints::new(
                self.key.clone(),
                value.to_owned(),
                self.fallback_value().map(str::to_owned),
            )
            .into(),
        }
    }
}

/// Spreads group numbers across the clone-number space (2^64 / golden ratio).
const GROUP_STRIDE: u64 = 0x9E37_79B9_7F4A_7C15;
