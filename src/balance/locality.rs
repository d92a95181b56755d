//! Locality-aware routing: prefer the client's own zone, spill evenly, fail over in order.
//!
//! Sources: Envoy's zone-aware routing and priority levels with their overprovisioning factor
//! (see [`Locality`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{PickRng, Seed};
use crate::error::ConfigError;

/// Inner cursors kept per clone; zones beyond this many share them.
const CURSORS: usize = 8;

/// Locality-aware routing around any picker: requests stay in the client's own zone while it
/// has the capacity for them, the excess spills to the other zones of the client's region in
/// proportion to their spare capacity, and when the region degrades, traffic fails over to
/// other regions. Within the zone chosen, the inner picker `P` picks as usual.
///
/// # How a zone is chosen
///
/// Endpoints name their zone and region ([`Endpoint::with_zone`](crate::endpoint::Endpoint::with_zone),
/// [`with_region`](crate::endpoint::Endpoint::with_region); etcd metadata and file fields carry
/// both). Every rebuild counts, per zone, the endpoints in service (`h`) and all the endpoints
/// discovery names there, in service or not (`t`: connecting, ejected and unhealthy ones too).
///
/// 1. **Priority levels** (Envoy's priority load with its overprovisioning factor, default
///    1.4): level 0 is the client's region (the client's zone alone when no region is set),
///    level 1 everything else. Level 0 takes `min(1, 1.4 × h₀ / t₀)` of the traffic, level 1
///    the rest; a level with nothing in service takes nothing. So a region keeps all its
///    traffic until more than 1 − 1/1.4 ≈ 29 % of it is out, then fails over gradually.
/// 2. **Zone-aware routing within the region** (Envoy's zone-aware routing): with `u_z` the
///    zone's share of the region's endpoints in service and `c_z` its share of the region's
///    *clients*, the client's own zone keeps everything while `u_local ≥ c_local`, and
///    otherwise keeps `u_local / c_local` of it; the residual goes to the other zones in
///    proportion to their surplus `u_z − c_z`. If every zone's clients do the same, every
///    endpoint in service carries the same load. Client shares default to the zones' shares
///    of all endpoints (`t`), which is exact when clients are deployed like servers; set them
///    with [`client_shares`](Self::client_shares) otherwise.
/// 3. **Level 1** is shared by zones in proportion to their endpoints in service.
///
/// Endpoints without a zone form a zone of their own, which is never the client's.
///
/// The balancer's [panic threshold](super::Builder::panic_threshold) applies first, to the
/// whole set: while it panics, every endpoint counts as in service here too. Lower it (or set
/// it to 0) when whole zones or regions may fail and the failover order must hold.
///
/// # Cost
///
/// The shares are computed per rebuild, on the balancer's driver task. A pick draws one random
/// number, finds its zone among a few thresholds, and runs the inner picker on that zone's
/// endpoints through [`Loads::subset`]: a few nanoseconds over the inner picker.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::{LeastRequest, Locality};
///
/// let picker = Locality::new(LeastRequest::new(), "eu-west-1a")
///     .region("eu-west-1")
///     .overprovisioning(1.4)?;
/// # drop(picker);
/// # Ok::<(), tower_mesh::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Locality<P> {
    inner: P,
    zone: Arc<str>,
    region: Option<Arc<str>>,
    overprovisioning: f64,
    client_shares: Option<BTreeMap<Arc<str>, f64>>,
    seed: Seed,
}

impl<P> Locality<P> {
    /// Locality-aware routing for a client in `zone`, with `inner` picking within a zone.
    pub fn new(inner: P, zone: impl Into<Arc<str>>) -> Self {
        Locality {
            inner,
            zone: zone.into(),
            region: None,
            overprovisioning: 1.4,
            client_shares: None,
            seed: Seed::default(),
        }
    }

    /// The client's region: zones of endpoints in this region are level 0 with the client's
    /// own zone. Without it, level 0 is the client's zone alone.
    pub fn region(mut self, region: impl Into<Arc<str>>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Envoy's overprovisioning factor: how much capacity a level is assumed to have beyond
    /// what it needs. From 1 to 100; NaN, infinite or out-of-range values are refused naming
    /// the value.
    pub fn overprovisioning(mut self, factor: f64) -> Result<Self, ConfigError> {
        if !(factor.is_finite() && (1.0..=100.0).contains(&factor)) {
            return Err(ConfigError::InvalidLocality {
                setting: "overprovisioning",
                value: factor.to_string(),
            });
        }
        self.overprovisioning = factor;
        Ok(self)
    }

    /// How the region's clients are spread over its zones, as relative weights (they need not
    /// sum to 1); zones not named have no clients. Each weight must be finite and at least 0,
    /// and one must be positive.
    pub fn client_shares<Z: Into<Arc<str>>>(
        mut self,
        shares: impl IntoIterator<Item = (Z, f64)>,
    ) -> Result<Self, ConfigError> {
        let mut map = BTreeMap::new();
        for (zone, share) in shares {
            let zone = zone.into();
            if !(share.is_finite() && share >= 0.0) {
                return Err(ConfigError::InvalidLocality {
                    setting: "client_shares",
                    value: format!("{zone}={share}"),
                });
            }
            map.insert(zone, share);
        }
        if !map.values().any(|&s| s > 0.0) {
            return Err(ConfigError::InvalidLocality {
                setting: "client_shares",
                value: "no positive share".to_owned(),
            });
        }
        self.client_shares = Some(map);
        Ok(self)
    }

    /// A fixed seed for the zone draws, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Seed::fixed(seed);
        self
    }

    /// The inner picker.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: fmt::Debug> fmt::Debug for Locality<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locality")
            .field("inner", &self.inner)
            .field("zone", &self.zone)
            .field("region", &self.region)
            .field("overprovisioning", &self.overprovisioning)
            .field("client_shares", &self.client_shares)
            .finish()
    }
}

/// A [`Locality`] picker's table: one inner table per zone with endpoints in service, and the
/// share of traffic each zone gets.
pub struct LocalityTable<T> {
    zones: Vec<Zone<T>>,
    /// Cumulative shares as fractions of 2⁶⁴: zone `i` gets draws below `thresholds[i]`
    /// (and at or above the previous threshold).
    thresholds: Vec<u64>,
}

struct Zone<T> {
    name: Option<Arc<str>>,
    share: f64,
    /// Indices of the zone's endpoints in the whole set.
    map: Vec<u32>,
    table: T,
}

impl<T> LocalityTable<T> {
    /// Each zone with endpoints in service and the share of requests it gets, largest first
    /// (`None` names endpoints without a zone).
    pub fn shares(&self) -> Vec<(Option<&str>, f64)> {
        let mut shares: Vec<_> = self
            .zones
            .iter()
            .map(|z| (z.name.as_deref(), z.share))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares
    }
}

impl<T> fmt::Debug for LocalityTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalityTable")
            .field("shares", &self.shares())
            .finish()
    }
}

/// A clone's state: the zone draw and one inner cursor per zone (zones beyond eight share).
pub struct LocalityCursor<C> {
    rng: PickRng,
    inner: Vec<C>,
}

impl<C> fmt::Debug for LocalityCursor<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalityCursor").finish_non_exhaustive()
    }
}

/// Per-zone counts while building.
#[derive(Default)]
struct Count {
    ready: Vec<u32>,
    total: usize,
    region: Option<Arc<str>>,
}

impl<P: Pick> Locality<P> {
    /// The zones' shares of traffic, from their counts.
    fn shares(&self, zones: &BTreeMap<Option<Arc<str>>, Count>) -> BTreeMap<Option<Arc<str>>, f64> {
        let local = |name: &Option<Arc<str>>, count: &Count| -> bool {
            match name {
                Some(z) if **z == *self.zone => true,
                Some(_) => self.region.is_some() && count.region == self.region,
                None => false,
            }
        };
        let (mut h0, mut t0, mut h1) = (0usize, 0usize, 0usize);
        for (name, count) in zones {
            if local(name, count) {
                h0 += count.ready.len();
                t0 += count.total;
            } else {
                h1 += count.ready.len();
            }
        }
        let load0 = match (h0, h1) {
            (0, _) => 0.0,
            (_, 0) => 1.0,
            _ => (self.overprovisioning * h0 as f64 / t0 as f64).min(1.0),
        };
        let load1 = if h1 == 0 { 0.0 } else { 1.0 - load0 };

        let mut shares = BTreeMap::new();
        // Level 0: zone-aware within the region.
        if load0 > 0.0 {
            let level0: Vec<(&Option<Arc<str>>, &Count)> =
                zones.iter().filter(|(n, c)| local(n, c)).collect();
            let client_total: f64 = level0.iter().map(|(n, c)| self.client_share(n, c)).sum();
            let mine = level0
                .iter()
                .find(|(n, _)| n.as_deref() == Some(&*self.zone));
            let u = |c: &Count| c.ready.len() as f64 / h0 as f64;
            let cs = |n: &Option<Arc<str>>, c: &Count| {
                if client_total > 0.0 {
                    self.client_share(n, c) / client_total
                } else {
                    0.0
                }
            };
            let keep = match mine {
                Some((n, c)) if !c.ready.is_empty() => {
                    let (u_mine, c_mine) = (u(c), cs(n, c));
                    if u_mine >= c_mine || (h0 == c.ready.len()) {
                        1.0
                    } else {
                        u_mine / c_mine
                    }
                }
                _ => 0.0,
            };
            if keep > 0.0
                && let Some((n, _)) = mine
            {
                shares.insert((*n).clone(), load0 * keep);
            }
            let others: Vec<_> = level0
                .iter()
                .filter(|(n, c)| n.as_deref() != Some(&*self.zone) && !c.ready.is_empty())
                .collect();
            let surplus: Vec<f64> = others
                .iter()
                .map(|(n, c)| (u(c) - cs(n, c)).max(0.0))
                .collect();
            let total_surplus: f64 = surplus.iter().sum();
            for ((n, c), s) in others.iter().zip(&surplus) {
                let part = if total_surplus > 0.0 {
                    s / total_surplus
                } else {
                    u(c) / others.iter().map(|(_, c)| u(c)).sum::<f64>()
                };
                *shares.entry((*n).clone()).or_insert(0.0) += load0 * (1.0 - keep) * part;
            }
        }
        // Level 1: by endpoints in service.
        if load1 > 0.0 {
            for (name, count) in zones {
                if !local(name, count) && !count.ready.is_empty() {
                    *shares.entry(name.clone()).or_insert(0.0) +=
                        load1 * count.ready.len() as f64 / h1 as f64;
                }
            }
        }
        shares
    }

    fn client_share(&self, name: &Option<Arc<str>>, count: &Count) -> f64 {
        match (&self.client_shares, name) {
            (Some(map), Some(z)) => map.get(z).copied().unwrap_or(0.0),
            (Some(_), None) => 0.0,
            (None, _) => count.total as f64,
        }
    }
}

impl<P: Pick> Pick for Locality<P> {
    type Table = LocalityTable<P::Table>;
    type Cursor = LocalityCursor<P::Cursor>;

    fn build(&self, endpoints: &[EndpointView<'_>]) -> Self::Table {
        self.build_with_unready(endpoints, &[])
    }

    fn wants_unready(&self) -> bool {
        true
    }

    fn build_with_unready(
        &self,
        ready: &[EndpointView<'_>],
        unready: &[EndpointView<'_>],
    ) -> Self::Table {
        let mut zones: BTreeMap<Option<Arc<str>>, Count> = BTreeMap::new();
        let key = |v: &EndpointView<'_>| v.endpoint().zone().map(Arc::<str>::from);
        for (i, view) in ready.iter().enumerate() {
            let count = zones.entry(key(view)).or_default();
            count.ready.push(u32::try_from(i).unwrap_or(u32::MAX));
            count.total += 1;
            if count.region.is_none() {
                count.region = view.endpoint().region().map(Arc::from);
            }
        }
        for view in unready {
            let count = zones.entry(key(view)).or_default();
            count.total += 1;
            if count.region.is_none() {
                count.region = view.endpoint().region().map(Arc::from);
            }
        }
        let shares = self.shares(&zones);
        let mut table = LocalityTable {
            zones: Vec::new(),
            thresholds: Vec::new(),
        };
        let total: f64 = shares.values().sum();
        let mut cumulative = 0.0;
        for (name, count) in zones {
            let share = shares.get(&name).copied().unwrap_or(0.0);
            if count.ready.is_empty() || share <= 0.0 {
                continue;
            }
            let views: Vec<EndpointView<'_>> =
                count.ready.iter().map(|&i| ready[i as usize]).collect();
            cumulative += share / total;
            table.thresholds.push(fraction(cumulative));
            table.zones.push(Zone {
                name,
                share: share / total,
                map: count.ready,
                table: self.inner.build(&views),
            });
        }
        if let Some(last) = table.thresholds.last_mut() {
            *last = u64::MAX;
        }
        table
    }

    fn cursor(&self, clone: u64) -> Self::Cursor {
        LocalityCursor {
            rng: PickRng::new(self.seed.get(), clone),
            inner: (0..CURSORS).map(|_| self.inner.cursor(clone)).collect(),
        }
    }

    fn rtt_decay(&self) -> Option<crate::load::Decay> {
        self.inner.rtt_decay()
    }
}

/// `x` in `[0, 1]` as a fraction of 2⁶⁴, saturating.
fn fraction(x: f64) -> u64 {
    if x >= 1.0 {
        u64::MAX
    } else {
        (x * 18_446_744_073_709_551_616.0) as u64
    }
}

impl<P: PickRequest<Req>, Req> PickRequest<Req> for Locality<P> {
    #[inline]
    fn pick(
        &self,
        table: &Self::Table,
        cursor: &mut Self::Cursor,
        loads: &Loads<'_>,
        req: &Req,
    ) -> Option<usize> {
        let at = match table.zones.len() {
            0 => return None,
            1 => 0,
            n => {
                let draw = cursor.rng.below_u64(u64::MAX);
                table
                    .thresholds
                    .iter()
                    .position(|&t| draw < t)
                    .unwrap_or(n - 1)
            }
        };
        let zone = &table.zones[at];
        let inner = &mut cursor.inner[at % CURSORS];
        let i = self
            .inner
            .pick(&zone.table, inner, &loads.subset(&zone.map), req)?;
        zone.map.get(i).map(|&i| i as usize)
    }

    fn eligible(&self, table: &Self::Table, req: &Req, index: usize) -> bool {
        // Cold: only a retry that has tried everything its picks offered gets here.
        let Ok(index) = u32::try_from(index) else {
            return false;
        };
        table.zones.iter().any(|zone| {
            zone.map
                .iter()
                .position(|&i| i == index)
                .is_some_and(|local| self.inner.eligible(&zone.table, req, local))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::balance::RoundRobin;
    use crate::endpoint::Endpoint;

    fn endpoints(zones: &[(u8, u8, bool)]) -> (Vec<Endpoint>, Vec<Endpoint>) {
        // (zone, region, in service)
        let (mut ready, mut unready) = (Vec::new(), Vec::new());
        for (i, &(zone, region, up)) in zones.iter().enumerate() {
            let ep = Endpoint::new(SocketAddr::from(([10, 0, 0, 1], i as u16 + 1)))
                .with_zone(format!("z{zone}"))
                .with_region(format!("r{region}"));
            if up { ready.push(ep) } else { unready.push(ep) }
        }
        (ready, unready)
    }

    fn table(
        picker: &Locality<RoundRobin>,
        ready: &[Endpoint],
        unready: &[Endpoint],
    ) -> LocalityTable<()> {
        let r: Vec<_> = ready.iter().map(EndpointView::new).collect();
        let u: Vec<_> = unready.iter().map(EndpointView::new).collect();
        picker.build_with_unready(&r, &u)
    }

    #[test]
    fn bad_settings_are_refused_naming_the_value() {
        let p = || Locality::new(RoundRobin::new(), "a");
        assert!(
            p().overprovisioning(0.5)
                .unwrap_err()
                .to_string()
                .contains("0.5")
        );
        assert!(
            p().overprovisioning(f64::NAN)
                .unwrap_err()
                .to_string()
                .contains("NaN")
        );
        let e = p().client_shares([("a", -1.0)]).unwrap_err();
        assert!(e.to_string().contains("a=-1"), "{e}");
        assert!(p().client_shares([("a", 0.0)]).is_err());
    }

    proptest! {
        /// Shares are a distribution over zones with endpoints in service; a healthy region
        /// whose clients are spread like its endpoints keeps everything local.
        #[test]
        fn shares_form_a_distribution(
            zones in proptest::collection::vec((0u8..4, 0u8..2, any::<bool>()), 1..40),
            factor in 1.0f64..3.0,
        ) {
            let picker = Locality::new(RoundRobin::with_seed(1), "z0")
                .region("r0")
                .overprovisioning(factor)
                .unwrap();
            let (ready, unready) = endpoints(&zones);
            let t = table(&picker, &ready, &unready);
            let shares = t.shares();
            if ready.is_empty() {
                prop_assert!(shares.is_empty());
            } else {
                let sum: f64 = shares.iter().map(|s| s.1).sum();
                prop_assert!((sum - 1.0).abs() < 1e-9, "{shares:?}");
                for (zone, share) in &shares {
                    prop_assert!(*share > 0.0 && *share <= 1.0 + 1e-12);
                    let z = zone.unwrap();
                    prop_assert!(ready.iter().any(|e| e.zone() == Some(z)), "{z} has none in service");
                }
            }
            // Everything in service, local zone present in the client's region: all local.
            let all: Vec<Endpoint> = ready.iter().chain(&unready).cloned().collect();
            let local_present = all.iter().any(|e| e.zone() == Some("z0") && e.region() == Some("r0"));
            if local_present {
                let t = table(&picker, &all, &[]);
                prop_assert_eq!(t.shares(), vec![(Some("z0"), 1.0)]);
            }
        }
    }
}
