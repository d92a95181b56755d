//! The background task that turns discovery updates into published snapshots.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::chunked::Staging;
use super::pick::{EndpointView, Pick};
use super::snapshot::{Snapshot, StatusRow};
use super::stats::EndpointState;
use crate::discover::Update;
use crate::endpoint::Endpoint;
use crate::error::BoxError;
use crate::health::{HealthConfig, Record};
use crate::load::{Alarm, Load};

mod health;

use self::health::{
    Health, ProbeResult, ProbeTask, health_state, next_probe, probe_loop, rung, sleep_until,
};

/// How often the driver looks for retired snapshots to drop while some are still held.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// State the driver shares with every balancer clone.
pub(crate) struct Published<T, S> {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot<T, S>>>,
    /// Endpoints discovery named that are not simply ready and healthy (connecting, backing
    /// off, ejected, unhealthy, or with past ejections), for `Balance::endpoints`.
    pub(crate) pending: Mutex<Vec<StatusRow>>,
    /// Balancer clones waiting in `poll_ready` for a non-empty set, by clone id.
    pub(crate) waiters: Mutex<HashMap<u64, Waker>>,
    /// The epoch of every endpoint's [`Load`]: a pick converts its clock reading once.
    pub(crate) epoch: tokio::time::Instant,
}

/// The driver's configuration from the builder.
pub(crate) struct Settings {
    pub(crate) backoff: Backoff,
    /// Seeds the reconnect and probe jitter.
    pub(crate) seed: u64,
    pub(crate) health: HealthConfig,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::BalancerMetrics,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// Exponential from `min`, capped at `max`, with "equal jitter": uniform in `[d/2, d]`, so
    /// endpoints that failed together do not retry together.
    fn delay(&self, failures: u32, rng: &mut SmallRng) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let d = self.min.saturating_mul(1u32 << exp).min(self.max);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos / 2 + rng.random_range(0..=nanos / 2))
    }
}

enum Done<S> {
    Made(Result<S, BoxError>),
    RetryDue,
}

enum State {
    Queued,
    Connecting(AbortHandle),
    Backoff {
        abort: AbortHandle,
        last_error: String,
    },
    /// Client made; published (in address order with the others that arrived since the last
    /// publish) by the next publish. The client waits in `Driver::arrived`.
    Arrived,
    /// Published at this index of [`Ready`].
    Ready(usize),
    /// Client made, but out of service for its health; client and load wait in
    /// `Driver::parked`.
    Parked,
}

struct Entry {
    endpoint: Arc<Endpoint>,
    generation: u64,
    failures: u32,
    state: State,
    health: Record,
    /// The endpoint's probe task, aborted when the entry goes.
    probe: Option<ProbeTask>,
}

impl Entry {
    fn new(endpoint: Endpoint, generation: u64) -> Self {
        Entry {
            endpoint: Arc::new(endpoint),
            generation,
            failures: 0,
            state: State::Queued,
            health: Record::default(),
            probe: None,
        }
    }

    fn abort(&self) {
        match &self.state {
            State::Connecting(abort) | State::Backoff { abort, .. } => abort.abort(),
            State::Queued | State::Arrived | State::Ready(_) | State::Parked => {}
        }
    }

    fn ready_index(&self) -> Option<usize> {
        match self.state {
            State::Ready(index) => Some(index),
            _ => None,
        }
    }
}

/// The ready endpoints in slot order, as the driver edits them between publishes.
struct Ready<S> {
    clients: Staging<S>,
    loads: Staging<Load>,
    endpoints: Staging<Arc<Endpoint>>,
}

pub(crate) struct Driver<P: Pick, D, M, S> {
    picker: Arc<P>,
    discover: Pin<Box<D>>,
    discover_done: bool,
    make: M,
    published: Arc<Published<P::Table, S>>,
    entries: BTreeMap<SocketAddr, Entry>,
    ready: Ready<S>,
    arrived: BTreeMap<SocketAddr, S>,
    /// Clients and loads of endpoints out of service for their health.
    parked: BTreeMap<SocketAddr, (S, Load)>,
    health: Option<Health>,
    /// The health alarm, when consecutive-failure ejection is on (apart from `Health`
    /// apart so the driver loop can wait on it while handling other events).
    alarm: Option<Alarm>,
    /// Probe results, when health checks are on.
    probe_rx: Option<mpsc::UnboundedReceiver<ProbeResult>>,
    /// Addresses of the entries that are not ready, for `Balance::endpoints`.
    not_ready: BTreeSet<SocketAddr>,
    tasks: JoinSet<Done<S>>,
    task_ids: HashMap<Id, (SocketAddr, u64)>,
    queued: Vec<SocketAddr>,
    generation: u64,
    ready_changed: bool,
    status_changed: bool,
    backoff: Backoff,
    rng: SmallRng,
    empty_since: Instant,
    /// Replaced snapshots that balancer clones may still hold. Dropping a snapshot releases
    /// every endpoint in it, O(n) work that must not land on a request's task, so the driver
    /// keeps each one until it holds the last reference and drops it here.
    retired: Vec<Arc<Snapshot<P::Table, S>>>,
    /// When to look at `retired` again; `None` while it is empty.
    reap_at: Option<Instant>,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::BalancerMetrics,
}

impl<P, D, E, M, S> Driver<P, D, M, S>
where
    P: Pick,
    D: Stream<Item = Result<Update, E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
    M: Service<Endpoint, Response = S> + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(
        picker: Arc<P>,
        discover: D,
        make: M,
        published: Arc<Published<P::Table, S>>,
        settings: Settings,
        empty_since: Instant,
    ) -> Self {
        let Settings {
            backoff,
            seed,
            health,
            #[cfg(feature = "metrics")]
            metrics,
        } = settings;
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let probe_rx = health.check.is_some().then_some(probe_rx);
        // Registered only when something can ring it: a run of consecutive failures.
        let watch_runs = health
            .outlier
            .as_ref()
            .is_some_and(|o| o.consecutive.is_some());
        let alarm = watch_runs.then(Alarm::new);
        let health = health.is_enabled().then(|| {
            let next_interval = health.outlier.as_ref().map(|o| Instant::now() + o.interval);
            Health {
                config: health,
                probe_tx,
                next_interval,
                panic: false,
                notable: BTreeSet::new(),
            }
        });
        Driver {
            parked: BTreeMap::new(),
            health,
            alarm,
            probe_rx,
            picker,
            discover: Box::pin(discover),
            discover_done: false,
            make,
            published,
            entries: BTreeMap::new(),
            ready: Ready {
                clients: Staging::default(),
                loads: Staging::default(),
                endpoints: Staging::default(),
            },
            not_ready: BTreeSet::new(),
            arrived: BTreeMap::new(),
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
            queued: Vec::new(),
            generation: 0,
            ready_changed: false,
            status_changed: false,
            backoff,
            rng: SmallRng::seed_from_u64(seed),
            empty_since,
            retired: Vec::new(),
            reap_at: None,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// Runs until discovery has ended and no client creation is outstanding, or until the
    /// balancer is dropped (which aborts this task). The last published set stays published.
    pub(crate) async fn run(mut self) {
        // Every change applied in one turn is published before discovery is polled again:
        // `test_util::MockDiscovery::synced` relies on it (a source sees its next item asked
        // for only once what it sent before is visible to requests).
        loop {
            self.start_queued().await;
            if self.ready_changed {
                self.publish();
            }
            if self.status_changed {
                self.publish_status();
            }
            let expiry = self.next_expiry();
            let interval = self.health.as_ref().and_then(|h| h.next_interval);
            #[cfg(feature = "metrics")]
            let publication = Some(self.metrics.next_publication());
            #[cfg(not(feature = "metrics"))]
            let publication: Option<Instant> = None;
            tokio::select! {
                biased;
                item = self.discover.next(), if !self.discover_done => {
                    self.on_discover(item);
                    // Apply every update already waiting before rebuilding once.
                    while !self.discover_done {
                        match self.discover.next().now_or_never() {
                            Some(item) => self.on_discover(item),
                            None => break,
                        }
                    }
                }
                Some(done) = self.tasks.join_next_with_id() => {
                    self.on_done(done);
                    while let Some(done) = self.tasks.try_join_next_with_id() {
                        self.on_done(done);
                    }
                }
                () = sleep_until(self.reap_at), if self.reap_at.is_some() => self.reap(),
                () = rung(self.alarm.as_ref()), if self.alarm.is_some() => self.on_alarm(),
                Some(result) = next_probe(self.probe_rx.as_mut()), if self.probe_rx.is_some() => {
                    self.on_probe(result);
                    while let Some(result) = self.probe_rx.as_mut().and_then(|rx| rx.try_recv().ok()) {
                        self.on_probe(result);
                    }
                }
                () = sleep_until(expiry), if expiry.is_some() => self.on_expiry(),
                () = sleep_until(interval), if interval.is_some() => self.on_interval(),
                () = sleep_until(publication), if publication.is_some() => self.publish_metrics(),
                else => break,
            }
        }
        tracing::debug!("discovery ended; endpoint set is final");
    }

    fn on_discover(&mut self, item: Option<Result<Update, E>>) {
        match item {
            None => {
                tracing::debug!("discovery stream ended; keeping the current endpoint set");
                self.discover_done = true;
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                tracing::warn!(error = %e, "discovery failed; keeping the last endpoint set");
            }
            Some(Ok(Update::Insert(ep))) => self.insert(ep),
            Some(Ok(Update::Remove(addr))) => self.remove(addr),
            Some(Ok(Update::Reset(list))) => {
                let mut next: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
                for ep in list {
                    next.insert(ep.addr(), ep);
                }
                let gone: Vec<SocketAddr> = self
                    .entries
                    .keys()
                    .filter(|a| !next.contains_key(a))
                    .copied()
                    .collect();
                for addr in gone {
                    self.remove(addr);
                }
                for ep in next.into_values() {
                    self.insert(ep);
                }
            }
        }
    }

    fn insert(&mut self, ep: Endpoint) {
        let addr = ep.addr();
        if let Some(entry) = self.entries.get_mut(&addr) {
            if *entry.endpoint == ep {
                return;
            }
            if entry.endpoint.identity() == ep.identity() {
                // Metadata only: keep the client and its load counters.
                tracing::debug!(endpoint = %addr, "endpoint metadata changed");
                entry.endpoint = Arc::new(ep);
                match entry.ready_index() {
                    Some(index) => {
                        self.ready
                            .endpoints
                            .replace(index, Arc::clone(&entry.endpoint));
                        self.ready_changed = true;
                    }
                    None => self.status_changed = true,
                }
                return;
            }
            // A different expected identity needs a client built for it.
            entry.abort();
            let was_ready = entry.ready_index();
            let was_parked = matches!(entry.state, State::Parked);
            self.generation += 1;
            *entry = Entry::new(ep, self.generation);
            if let Some(index) = was_ready {
                self.unpublish(index);
            }
            if was_ready.is_some() || was_parked {
                self.not_ready.insert(addr);
            }
            self.arrived.remove(&addr);
            self.parked.remove(&addr);
            if let Some(health) = &mut self.health {
                health.notable.remove(&addr);
            }
        } else {
            tracing::debug!(endpoint = %addr, "endpoint discovered");
            #[cfg(feature = "metrics")]
            self.metrics.added(addr);
            self.generation += 1;
            self.entries.insert(addr, Entry::new(ep, self.generation));
            self.not_ready.insert(addr);
        }
        self.queued.push(addr);
        self.status_changed = true;
    }

    fn remove(&mut self, addr: SocketAddr) {
        if let Some(entry) = self.entries.remove(&addr) {
            tracing::debug!(endpoint = %addr, "endpoint removed");
            entry.abort();
            #[cfg(feature = "metrics")]
            self.metrics.removed(
                addr,
                match entry.state {
                    State::Ready(index) => self.ready.loads.get(index),
                    State::Parked => self.parked.get(&addr).map(|(_, load)| load),
                    _ => None,
                },
            );
            if let Some(health) = &mut self.health
                && health.notable.remove(&addr)
            {
                self.status_changed = true;
            }
            match entry.ready_index() {
                Some(index) => self.unpublish(index),
                None => {
                    self.arrived.remove(&addr);
                    self.parked.remove(&addr);
                    self.not_ready.remove(&addr);
                    self.status_changed = true;
                }
            }
        }
    }

    /// Adds a ready endpoint to the set being published, with fresh counters (and, with health
    /// checks, starts its probe).
    fn publish_ready(&mut self, addr: SocketAddr, client: S) {
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        let load = Load::with_epoch(self.published.epoch);
        if let Some(health) = &self.health {
            if let (Some(alarm), Some(n)) = (
                &self.alarm,
                health.config.outlier.as_ref().and_then(|o| o.consecutive),
            ) {
                load.arm(alarm, n);
            }
            if let Some((check, probe)) = &health.config.check {
                let seed = self.rng.random();
                let task = tokio::spawn(probe_loop(
                    probe.clone(),
                    check.clone(),
                    Endpoint::clone(&entry.endpoint),
                    entry.generation,
                    health.probe_tx.clone(),
                    seed,
                ));
                entry.probe = Some(ProbeTask(task.abort_handle()));
            }
        }
        entry.failures = 0;
        entry.health = Record::default();
        let index = self.ready.clients.push(client);
        self.ready.loads.push(load);
        self.ready.endpoints.push(Arc::clone(&entry.endpoint));
        entry.state = State::Ready(index);
        self.not_ready.remove(&addr);
        self.status_changed = true;
    }

    /// Takes the ready endpoint at `index` out of the set the next publish shows. The last
    /// ready endpoint moves into its place.
    fn unpublish(&mut self, index: usize) {
        self.ready.clients.swap_remove(index);
        self.ready.loads.swap_remove(index);
        self.ready.endpoints.swap_remove(index);
        if let Some(moved) = self.ready.endpoints.get(index)
            && let Some(entry) = self.entries.get_mut(&moved.addr())
        {
            entry.state = State::Ready(index);
        }
        self.ready_changed = true;
    }

    /// Starts client creation for queued endpoints.
    async fn start_queued(&mut self) {
        while let Some(addr) = self.queued.pop() {
            let Some(entry) = self.entries.get(&addr) else {
                continue;
            };
            if !matches!(entry.state, State::Queued) {
                continue;
            }
            let (ep, generation) = (Endpoint::clone(&entry.endpoint), entry.generation);
            let fut = match self.make.ready().await {
                Ok(make) => make.call(ep),
                Err(e) => {
                    self.failed(addr, generation, e.into().to_string());
                    continue;
                }
            };
            // Many clients are ready at once (hyper-util's pooled client connects lazily): one
            // poll here saves a task spawn per endpoint, a third of a 10,000-endpoint reset.
            let mut fut = Box::pin(fut);
            if let Some(made) = (&mut fut).now_or_never() {
                self.made(addr, made.map_err(Into::into));
                continue;
            }
            let abort = self
                .tasks
                .spawn(async move { Done::Made(fut.await.map_err(Into::into)) });
            self.task_ids.insert(abort.id(), (addr, generation));
            if let Some(entry) = self.entries.get_mut(&addr) {
                entry.state = State::Connecting(abort);
            }
        }
    }

    fn on_done(&mut self, done: Result<(Id, Done<S>), JoinError>) {
        let (id, done) = match done {
            Ok((id, done)) => (id, Ok(done)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some((addr, generation)) = self.task_ids.remove(&id) else {
            return;
        };
        match self.entries.get(&addr) {
            Some(entry) if entry.generation == generation => {}
            // Removed or replaced since this task started.
            _ => return,
        }
        match done {
            Ok(Done::Made(made)) => self.made(addr, made),
            Ok(Done::RetryDue) => {
                if let Some(entry) = self.entries.get_mut(&addr) {
                    entry.state = State::Queued;
                }
                self.queued.push(addr);
            }
            Err(e) if e.is_cancelled() => {}
            Err(_) => self.failed(addr, generation, "client creation panicked".to_owned()),
        }
    }

    /// Client creation for the current generation of `addr` finished.
    fn made(&mut self, addr: SocketAddr, made: Result<S, BoxError>) {
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        match made {
            Ok(client) => {
                tracing::debug!(endpoint = %addr, "endpoint client ready");
                entry.state = State::Arrived;
                self.arrived.insert(addr, client);
                self.ready_changed = true;
            }
            Err(e) => {
                let generation = entry.generation;
                self.failed(addr, generation, e.to_string());
            }
        }
    }

    fn failed(&mut self, addr: SocketAddr, generation: u64, error: String) {
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        #[cfg(feature = "metrics")]
        self.metrics.connect_failed(addr);
        let delay = self.backoff.delay(entry.failures, &mut self.rng);
        tracing::warn!(
            endpoint = %addr,
            failures = entry.failures,
            retry_in = ?delay,
            error = %error,
            "endpoint client creation failed; will retry"
        );
        let abort = self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            Done::RetryDue
        });
        self.task_ids.insert(abort.id(), (addr, generation));
        entry.state = State::Backoff {
            abort,
            last_error: error,
        };
        self.status_changed = true;
    }

    fn publish(&mut self) {
        self.ready_changed = false;
        for (addr, client) in std::mem::take(&mut self.arrived) {
            self.publish_ready(addr, client);
        }
        if self.health.is_some() {
            // Membership changed: the share in service, and so panic mode, may have too.
            self.reconcile();
        }
        let endpoints = self.ready.endpoints.publish();
        let views: Vec<EndpointView<'_>> = endpoints.iter().map(|e| EndpointView::new(e)).collect();
        let table = if self.picker.wants_unready() {
            let unready: Vec<EndpointView<'_>> = self
                .entries
                .values()
                .filter(|e| !matches!(e.state, State::Ready(_)))
                .map(|e| EndpointView::new(&e.endpoint))
                .collect();
            self.picker.build_with_unready(&views, &unready)
        } else {
            self.picker.build(&views)
        };
        drop(views);
        let clients = self.ready.clients.publish();
        let loads = self.ready.loads.publish();
        let was_empty = self.published.snapshot.load().is_empty();
        let empty_since = if clients.is_empty() {
            if !was_empty {
                self.empty_since = Instant::now();
            }
            Some(self.empty_since)
        } else {
            None
        };
        let ready = clients.len();
        let snapshot = Snapshot {
            table,
            clients,
            loads,
            endpoints,
            empty_since,
        };
        let old = self.published.snapshot.swap(Arc::new(snapshot));
        self.retired.push(old);
        self.reap();
        tracing::debug!(ready, known = self.entries.len(), "endpoint set published");
        if ready > 0 {
            let waiters = std::mem::take(&mut *lock(&self.published.waiters));
            for waker in waiters.into_values() {
                waker.wake();
            }
        } else {
            tracing::warn!(known = self.entries.len(), "no ready endpoints");
        }
    }

    /// Publishes every endpoint's counters and gauges (feature `metrics`; never called
    /// without it).
    fn publish_metrics(&mut self) {
        #[cfg(feature = "metrics")]
        {
            use crate::metrics::Phase;
            for (addr, entry) in &self.entries {
                let (load, phase, in_service) = match &entry.state {
                    State::Queued | State::Connecting(_) | State::Arrived => {
                        (None, Phase::Connecting, false)
                    }
                    State::Backoff { .. } => (None, Phase::Backoff, false),
                    State::Ready(index) => {
                        (self.ready.loads.get(*index), health_phase(entry), true)
                    }
                    State::Parked => (
                        self.parked.get(addr).map(|(_, load)| load),
                        health_phase(entry),
                        false,
                    ),
                };
                self.metrics.observe(*addr, load, phase, in_service);
            }
            self.metrics.finish();
            // Every wake restarts the reap timer of the loop, and this one comes each interval.
            self.reap();
        }
    }

    /// Drops the retired snapshots no balancer clone holds any more, and, while some are
    /// still held, sets when to look again. (A fixed deadline, not a sleep restarted at every
    /// turn of the loop: events more often than the interval would put the reaping off for
    /// ever.)
    fn reap(&mut self) {
        self.retired.retain(|s| Arc::strong_count(s) > 1);
        self.reap_at = match (self.retired.is_empty(), self.reap_at) {
            (true, _) => None,
            (false, Some(at)) if at > Instant::now() => Some(at),
            (false, _) => Some(Instant::now() + REAP_INTERVAL),
        };
    }

    fn publish_status(&mut self) {
        self.status_changed = false;
        let notable = self.health.as_ref().map(|h| &h.notable);
        let addrs: BTreeSet<SocketAddr> = match notable {
            Some(notable) => self.not_ready.union(notable).copied().collect(),
            None => self.not_ready.clone(),
        };
        let rows = addrs
            .iter()
            .filter_map(|addr| {
                let e = self.entries.get(addr)?;
                let (load, in_service) = match &e.state {
                    State::Ready(i) => (self.ready.loads.get(*i).cloned(), true),
                    State::Parked => (self.parked.get(addr).map(|(_, l)| l.clone()), false),
                    _ => (None, false),
                };
                let state = match &e.state {
                    State::Queued | State::Connecting(_) | State::Arrived => {
                        EndpointState::Connecting {
                            failures: e.failures,
                        }
                    }
                    State::Backoff { last_error, .. } => EndpointState::Backoff {
                        failures: e.failures,
                        last_error: last_error.clone(),
                    },
                    State::Ready(_) | State::Parked => health_state(&e.health),
                };
                Some(StatusRow {
                    endpoint: Arc::clone(&e.endpoint),
                    state,
                    load,
                    ejections: e.health.ejections,
                    in_service,
                })
            })
            .collect();
        *lock(&self.published.pending) = rows;
    }
}

/// The metrics phase of a connected endpoint.
#[cfg(feature = "metrics")]
fn health_phase(entry: &Entry) -> crate::metrics::Phase {
    use crate::metrics::Phase;
    if entry.health.ejected.is_some() {
        Phase::Ejected
    } else if entry.health.unhealthy {
        Phase::Unhealthy
    } else {
        Phase::Ready
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a single replace or take).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
