//! Counters and gauges through the [`metrics`](https://docs.rs/metrics/0.24) facade crate:
//! per endpoint, per balancer, per authorization layer, and for TLS handshakes.
//!
//! With feature `metrics`, every [`Balance`](crate::balance::Balance) and every authorization
//! layer records into whichever `metrics` recorder is installed (Prometheus through
//! `metrics-exporter-prometheus`, OpenTelemetry, StatsD, ...). Without a recorder the facade
//! discards everything, at the cost of a branch. Install the recorder **before** building
//! balancers and layers: handles are registered when those are built or when an endpoint is
//! discovered, and a handle registered before any recorder was installed stays a no-op.
//!
//! The [`Balance::endpoints`](crate::balance::Balance::endpoints) snapshot shows the same
//! per-endpoint numbers (and more: states, last errors) without any dependency; poll it if you
//! export metrics some other way.
//!
//! # Names
//!
//! Names follow the Prometheus conventions: a `tower_mesh_` prefix, the unit as a suffix
//! (`_seconds`), `_total` on counters, base units (seconds, not milliseconds), and labels for
//! what varies (<https://prometheus.io/docs/practices/naming/>). A Prometheus-compatible
//! OpenTelemetry pipeline keeps them as they are; units are also passed to the recorder
//! ([`describe`]).
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | [`tower_mesh_endpoint_requests_total`](ENDPOINT_REQUESTS) | counter | `balancer`, `endpoint` | requests | requests sent to the endpoint (counted when sent) |
//! | [`tower_mesh_endpoint_errors_total`](ENDPOINT_ERRORS) | counter | `balancer`, `endpoint` | requests | of those, failures as the balancer's [classifier](crate::health::Classify) judged them |
//! | [`tower_mesh_endpoint_requests_in_flight`](ENDPOINT_IN_FLIGHT) | gauge | `balancer`, `endpoint` | requests | requests sent and not yet finished |
//! | [`tower_mesh_endpoint_rtt_ewma_seconds`](ENDPOINT_RTT) | gauge | `balancer`, `endpoint` | seconds | the Peak-EWMA round-trip estimate as last updated; only for pickers that time requests ([`PeakEwma`](crate::balance::PeakEwma)), from the first sample on |
//! | [`tower_mesh_endpoint_in_service`](ENDPOINT_IN_SERVICE) | gauge | `balancer`, `endpoint` | 0 or 1 | 1 while the endpoint takes new requests (ready, or ejected while the balancer panics) |
//! | [`tower_mesh_endpoint_ejections_total`](ENDPOINT_EJECTIONS) | counter | `balancer`, `endpoint`, `reason` = `consecutive_failures` \| `failure_rate` | ejections | [outlier detection](crate::health::OutlierDetection) ejected the endpoint |
//! | [`tower_mesh_endpoint_health_transitions_total`](ENDPOINT_HEALTH_TRANSITIONS) | counter | `balancer`, `endpoint`, `state` = `healthy` \| `unhealthy` | transitions | [active health checks](crate::health::HealthCheck) changed their verdict |
//! | [`tower_mesh_endpoint_connect_failures_total`](ENDPOINT_CONNECT_FAILURES) | counter | `balancer`, `endpoint` | attempts | creating the endpoint's client failed (it is retried with backoff) |
//! | [`tower_mesh_balancer_endpoints`](BALANCER_ENDPOINTS) | gauge | `balancer`, `state` = `ready` \| `connecting` \| `backoff` \| `ejected` \| `unhealthy` | endpoints | endpoints discovery names, by state (as [`EndpointState`](crate::balance::EndpointState)) |
//! | [`tower_mesh_balancer_endpoint_changes_total`](BALANCER_ENDPOINT_CHANGES) | counter | `balancer`, `change` = `added` \| `removed` | endpoints | discovery added or removed an endpoint |
//! | [`tower_mesh_balancer_panic_mode`](BALANCER_PANIC) | gauge | `balancer` | 0 or 1 | 1 while too few endpoints are healthy and health is ignored ([panic threshold](crate::balance::Builder::panic_threshold)) |
//! | [`tower_mesh_retry_attempts_total`](RETRY_ATTEMPTS) | counter | `balancer` | requests | retries sent (not counting first attempts) |
//! | [`tower_mesh_retry_hedges_total`](RETRY_HEDGES) | counter | `balancer` | requests | hedged requests sent |
//! | [`tower_mesh_retry_budget_refusals_total`](RETRY_BUDGET_REFUSALS) | counter | `balancer` | requests | retries or hedges the [budget](crate::retry::Budget) refused |
//! | [`tower_mesh_authz_decisions_total`](AUTHZ_DECISIONS) | counter | `direction` = `inbound` \| `outbound`, `layer`, `outcome` = `allow` \| `deny` \| `audit_deny` \| `invalid` \| `unauthenticated` | requests | what an authorization layer did with a request (below) |
//! | [`tower_mesh_tls_handshakes_total`](TLS_HANDSHAKES) | counter | `side` = `client` \| `server`, `outcome` = `ok` \| `failed` \| `timeout` | handshakes | TLS handshakes of a `TlsConnectLayer` or `TlsAcceptor` (feature `tls`): `failed` is a refused handshake or peer certificate, `timeout` one that outlasted the handshake timeout; a failed TCP connection is not counted |
//!
//! Labels:
//! - `balancer`: the balancer's name, [`Builder::name`](crate::balance::Builder::name)
//!   (default `"default"`). Name every balancer of a process differently; balancers that
//!   share a name and an endpoint add up in the counters and in-flight gauges and overwrite
//!   each other's RTT gauge.
//! - `endpoint`: the endpoint's socket address as text, `10.0.0.7:8080` or
//!   `[2001:db8::7]:8080`.
//! - `layer`: the authorization layer's name, `AuthzLayer::name` or `EgressLayer::name`
//!   (feature `authz`; default `"default"`).
//!
//! Authorization outcomes: `allow`, the policy allowed the request and it was forwarded;
//! `deny`, the policy denied it (403, or `EgressDenied`); `audit_deny`, the policy denied it
//! but is in audit mode, so it was forwarded; `invalid`, the request could not be read one
//! way and was refused before any judgement (400, or `InvalidRequest`); `unauthenticated`, its
//! bearer token was invalid (401, inbound only). Outcomes, not rules, are counted: rule names
//! come from a policy that can be reloaded at any time, so a label per rule would cost a
//! registry lookup per request; the deciding rule is in the `debug` log of every refusal and
//! in the `AuthzDecision` request extension.
//!
//! # When values are published
//!
//! The request path does not get slower. A balancer already counts every endpoint's requests,
//! failures, requests in flight and RTT in atomics ([`Load`]); its driver
//! task reads those counters every [interval](crate::balance::Builder::metrics_interval)
//! ([`DEFAULT_INTERVAL`], 1 s) and publishes the change since the last reading
//! (`Counter::increment(delta)`), along with the gauges. So a scrape may lag the truth by up
//! to one interval. The per-endpoint handles are registered once, when discovery names the
//! endpoint; a publication costs no registry lookup and a few atomic operations per endpoint.
//!
//! Events are published when they happen: ejections, health-check transitions, client
//! creation failures, panic mode, endpoints added and removed.
//!
//! TLS acceptors and connect layers register their counters when they are built, and count
//! once per handshake. An authorization layer registers its five counters when it is first applied
//! (`Layer::layer`), so counting a decision is one atomic load and one atomic add in the
//! recorder.
//!
//! With feature `metrics` the driver task runs until its balancer is dropped (without it, it
//! may end once discovery has ended), waking once per interval.
//!
//! Gauges that count (`requests_in_flight`, `in_service`, `balancer_endpoints`,
//! `panic_mode`) are kept by increments of the change each balancer saw, so balancers sharing
//! a name sum instead of fighting; the RTT gauge is set.
//!
//! # Cardinality
//!
//! Each endpoint adds 9 series (10 with a timing picker) per balancer it is in; each balancer
//! 8 series more, each authorization layer 5, and TLS 6 in all. A service with 3 balancers over 200
//! endpoints each exports 5,424 series. Endpoint addresses are the only unbounded label: a
//! balancer over a fleet that is replaced every deploy makes new series every deploy.
//!
//! The facade cannot delete a series, so a removed endpoint's series are retired instead.
//! When discovery removes an endpoint, its balancer at once brings its in-service gauge (and
//! RTT gauge) to 0, and keeps reading the endpoint's counters until its last request in
//! flight has finished, so requests that were in flight at removal and fail are still
//! counted. Then it brings the in-flight gauge to 0 and drops every handle it held for the
//! endpoint: nothing more is recorded for it, and a recorder that expires idle series removes
//! them (`metrics-exporter-prometheus`: `PrometheusBuilder::idle_timeout`). A balancer that is
//! dropped does the same for all of its endpoints at once, without waiting for requests still
//! in flight.
//!
//! # Recorders and tasks
//!
//! The driver is a spawned task, so it records through the recorder current on the thread
//! that polls it: in an application, a global recorder
//! ([`metrics::set_global_recorder`], or an exporter's
//! `install`). A local recorder (`metrics::with_local_recorder`) is seen only if the whole
//! runtime runs inside it, as in the example below: a current-thread runtime driven by
//! `block_on` within the closure.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tower::ServiceExt;
//! use tower_mesh::balance::{Balance, RoundRobin};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//!
//! # fn main() -> Result<(), tower_mesh::BoxError> {
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_time()
//!     .start_paused(true)
//!     .build()?;
//! metrics::with_local_recorder(&recorder, || {
//!     runtime.block_on(async {
//!         let make = tower::service_fn(|_: Endpoint| async {
//!             Ok::<_, std::convert::Infallible>(tower::service_fn(|_: ()| async {
//!                 Ok::<_, std::convert::Infallible>("pong")
//!             }))
//!         });
//!         let balance = Balance::builder(RoundRobin::new())
//!             .name("payments")
//!             .build(Static::from_addrs(["127.0.0.1:8080".parse()?]), make)?;
//!         for _ in 0..3 {
//!             balance.clone().oneshot(()).await?;
//!         }
//!         // The driver publishes once a second (the clock is paused: this takes no time).
//!         tokio::time::sleep(Duration::from_millis(1500)).await;
//!         Ok::<_, tower_mesh::BoxError>(())
//!     })
//! })?;
//!
//! let requests = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
//!     let key = key.key();
//!     let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
//!     (key.name() == tower_mesh::metrics::ENDPOINT_REQUESTS
//!         && labels == [("balancer", "payments"), ("endpoint", "127.0.0.1:8080")])
//!         .then_some(value)
//! });
//! assert_eq!(requests, Some(DebugValue::Counter(3)));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ::metrics::{
    Counter, Gauge, SharedString, Unit, counter, describe_counter, describe_gauge, gauge,
};
use tokio::time::Instant;

use crate::health::EjectReason;
use crate::load::Load;

/// Counter: requests sent to an endpoint. Labels `balancer`, `endpoint`.
pub const ENDPOINT_REQUESTS: &str = "tower_mesh_endpoint_requests_total";
/// Counter: requests to an endpoint that failed, as classified. Labels `balancer`, `endpoint`.
pub const ENDPOINT_ERRORS: &str = "tower_mesh_endpoint_errors_total";
/// Gauge: requests in flight to an endpoint. Labels `balancer`, `endpoint`.
pub const ENDPOINT_IN_FLIGHT: &str = "tower_mesh_endpoint_requests_in_flight";
/// Gauge: an endpoint's Peak-EWMA round-trip estimate, in seconds. Labels `balancer`,
/// `endpoint`.
pub const ENDPOINT_RTT: &str = "tower_mesh_endpoint_rtt_ewma_seconds";
/// Gauge: 1 while an endpoint takes new requests. Labels `balancer`, `endpoint`.
pub const ENDPOINT_IN_SERVICE: &str = "tower_mesh_endpoint_in_service";
/// Counter: ejections of an endpoint. Labels `balancer`, `endpoint`, `reason`.
pub const ENDPOINT_EJECTIONS: &str = "tower_mesh_endpoint_ejections_total";
/// Counter: health-check verdict changes of an endpoint. Labels `balancer`, `endpoint`,
/// `state`.
pub const ENDPOINT_HEALTH_TRANSITIONS: &str = "tower_mesh_endpoint_health_transitions_total";
/// Counter: failures to create an endpoint's client. Labels `balancer`, `endpoint`.
pub const ENDPOINT_CONNECT_FAILURES: &str = "tower_mesh_endpoint_connect_failures_total";
/// Gauge: a balancer's endpoints by state. Labels `balancer`, `state`.
pub const BALANCER_ENDPOINTS: &str = "tower_mesh_balancer_endpoints";
/// Counter: endpoints discovery added to or removed from a balancer. Labels `balancer`,
/// `change`.
pub const BALANCER_ENDPOINT_CHANGES: &str = "tower_mesh_balancer_endpoint_changes_total";
/// Gauge: 1 while a balancer is in panic mode. Label `balancer`.
pub const BALANCER_PANIC: &str = "tower_mesh_balancer_panic_mode";
/// Counter: retries sent. Label `balancer`.
pub const RETRY_ATTEMPTS: &str = "tower_mesh_retry_attempts_total";
/// Counter: hedged requests sent. Label `balancer`.
pub const RETRY_HEDGES: &str = "tower_mesh_retry_hedges_total";
/// Counter: retries and hedges the retry budget refused. Label `balancer`.
pub const RETRY_BUDGET_REFUSALS: &str = "tower_mesh_retry_budget_refusals_total";
/// Counter: authorization decisions. Labels `direction`, `layer`, `outcome`.
pub const AUTHZ_DECISIONS: &str = "tower_mesh_authz_decisions_total";
/// Counter: TLS handshakes. Labels `side`, `outcome`.
pub const TLS_HANDSHAKES: &str = "tower_mesh_tls_handshakes_total";

/// How often a balancer publishes its endpoints' counters and gauges unless
/// [`Builder::metrics_interval`](crate::balance::Builder::metrics_interval) says otherwise:
/// 1 s, finer than any usual scrape interval (Prometheus defaults to 1 min; 10 to 30 s is
/// common). Each publication costs the driver task one hash-map lookup, four relaxed atomic
/// loads and the recorder updates of what changed, per endpoint; nothing on the request path.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The `layer` label of an authorization layer that was not given a name.
#[cfg(feature = "authz")]
pub(crate) const DEFAULT_NAME: &str = "default";

/// Describes every metric of this crate (unit and help text) to the installed recorder.
///
/// Balancers and authorization layers call it when they are built, so calling it yourself is
/// needed only to have the descriptions before the first of those is built.
pub fn describe() {
    let counters: &[(&'static str, Unit, &'static str)] = &[
        (
            ENDPOINT_REQUESTS,
            Unit::Count,
            "Requests sent to the endpoint.",
        ),
        (
            ENDPOINT_ERRORS,
            Unit::Count,
            "Requests to the endpoint that failed, as the balancer's classifier judged them.",
        ),
        (
            ENDPOINT_EJECTIONS,
            Unit::Count,
            "Times outlier detection ejected the endpoint.",
        ),
        (
            ENDPOINT_HEALTH_TRANSITIONS,
            Unit::Count,
            "Times active health checks changed their verdict on the endpoint.",
        ),
        (
            ENDPOINT_CONNECT_FAILURES,
            Unit::Count,
            "Failures to create the endpoint's client.",
        ),
        (
            BALANCER_ENDPOINT_CHANGES,
            Unit::Count,
            "Endpoints discovery added to or removed from the balancer.",
        ),
        (RETRY_ATTEMPTS, Unit::Count, "Retries sent."),
        (RETRY_HEDGES, Unit::Count, "Hedged requests sent."),
        (
            RETRY_BUDGET_REFUSALS,
            Unit::Count,
            "Retries and hedges the retry budget refused.",
        ),
        (
            AUTHZ_DECISIONS,
            Unit::Count,
            "What an authorization layer did with a request.",
        ),
        (
            TLS_HANDSHAKES,
            Unit::Count,
            "TLS handshakes, by side and outcome.",
        ),
    ];
    for &(name, unit, help) in counters {
        describe_counter!(name, unit, help);
    }
    let gauges: &[(&'static str, Unit, &'static str)] = &[
        (
            ENDPOINT_IN_FLIGHT,
            Unit::Count,
            "Requests sent to the endpoint and not yet finished.",
        ),
        (
            ENDPOINT_RTT,
            Unit::Seconds,
            "The endpoint's Peak-EWMA round-trip estimate as last updated.",
        ),
        (
            ENDPOINT_IN_SERVICE,
            Unit::Count,
            "1 while the endpoint takes new requests.",
        ),
        (
            BALANCER_ENDPOINTS,
            Unit::Count,
            "Endpoints discovery names, by state.",
        ),
        (
            BALANCER_PANIC,
            Unit::Count,
            "1 while too few endpoints are healthy and health is ignored.",
        ),
    ];
    for &(name, unit, help) in gauges {
        describe_gauge!(name, unit, help);
    }
}

/// A metrics interval of zero, refused by
/// [`Builder::metrics_interval`](crate::balance::Builder::metrics_interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("metrics interval must be greater than zero, got {0:?}")]
pub struct InvalidInterval(pub(crate) Duration);

impl InvalidInterval {
    /// The interval given.
    pub fn interval(&self) -> Duration {
        self.0
    }
}

/// Where an endpoint stands, for [`BALANCER_ENDPOINTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Ready,
    Connecting,
    Backoff,
    Ejected,
    Unhealthy,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Ready,
        Phase::Connecting,
        Phase::Backoff,
        Phase::Ejected,
        Phase::Unhealthy,
    ];

    fn label(self) -> &'static str {
        match self {
            Phase::Ready => "ready",
            Phase::Connecting => "connecting",
            Phase::Backoff => "backoff",
            Phase::Ejected => "ejected",
            Phase::Unhealthy => "unhealthy",
        }
    }
}

/// One balancer's metrics, owned by its driver task.
pub(crate) struct BalancerMetrics {
    name: SharedString,
    interval: Duration,
    next: Instant,
    endpoints: HashMap<SocketAddr, EndpointMetrics>,
    /// Counters of endpoints removed (or re-created) while requests were in flight on them.
    draining: Vec<Tracked>,
    added: Counter,
    removed: Counter,
    phases: [Level; 5],
    /// Endpoints seen in each phase during the current publication.
    counted: [u64; 5],
    panic: Level,
}

impl BalancerMetrics {
    /// Registers the balancer's own series under `name`; the first publication is due one
    /// `interval` from now.
    pub(crate) fn new(name: &Arc<str>, interval: Duration) -> Self {
        describe();
        let name = SharedString::from(Arc::clone(name));
        let change = |change: &'static str| {
            counter!(
                BALANCER_ENDPOINT_CHANGES,
                "balancer" => name.clone(),
                "change" => change,
            )
        };
        BalancerMetrics {
            added: change("added"),
            removed: change("removed"),
            phases: Phase::ALL.map(|phase| {
                Level::new(gauge!(
                    BALANCER_ENDPOINTS,
                    "balancer" => name.clone(),
                    "state" => phase.label(),
                ))
            }),
            counted: [0; 5],
            panic: Level::new(gauge!(BALANCER_PANIC, "balancer" => name.clone())),
            name,
            interval,
            next: Instant::now() + interval,
            endpoints: HashMap::new(),
            draining: Vec::new(),
        }
    }

    /// When the next publication is due.
    pub(crate) fn next_publication(&self) -> Instant {
        self.next
    }

    /// Discovery named a new endpoint: registers its series.
    pub(crate) fn added(&mut self, addr: SocketAddr) {
        self.added.increment(1);
        let name = &self.name;
        self.endpoints
            .entry(addr)
            .or_insert_with(|| EndpointMetrics::new(name, addr));
    }

    /// Discovery removed an endpoint whose counters, if it had a client, are `load`.
    pub(crate) fn removed(&mut self, addr: SocketAddr, load: Option<&Load>) {
        let Some(mut endpoint) = self.endpoints.remove(&addr) else {
            return;
        };
        self.removed.increment(1);
        if let Some(load) = load {
            endpoint.track(load, &mut self.draining);
        }
        if let Some(mut current) = endpoint.current.take() {
            current.flush();
            self.draining.push(current);
        }
        endpoint.leave();
    }

    /// Creating the endpoint's client failed.
    pub(crate) fn connect_failed(&self, addr: SocketAddr) {
        if let Some(endpoint) = self.endpoints.get(&addr) {
            endpoint.connect_failures.increment(1);
        }
    }

    /// Outlier detection ejected the endpoint.
    pub(crate) fn ejected(&self, addr: SocketAddr, reason: &EjectReason) {
        if let Some(endpoint) = self.endpoints.get(&addr) {
            match reason {
                EjectReason::ConsecutiveFailures { .. } => endpoint.ejections[0].increment(1),
                EjectReason::FailureRate { .. } => endpoint.ejections[1].increment(1),
            }
        }
    }

    /// Active health checks found the endpoint healthy again, or unhealthy.
    pub(crate) fn health_changed(&self, addr: SocketAddr, healthy: bool) {
        if let Some(endpoint) = self.endpoints.get(&addr) {
            endpoint.health[usize::from(!healthy)].increment(1);
        }
    }

    /// The balancer entered or left panic mode.
    pub(crate) fn panic(&mut self, on: bool) {
        self.panic.publish(u64::from(on));
    }

    /// One endpoint's state at this publication; call for every endpoint discovery names,
    /// then [`finish`](Self::finish).
    pub(crate) fn observe(
        &mut self,
        addr: SocketAddr,
        load: Option<&Load>,
        phase: Phase,
        in_service: bool,
    ) {
        self.counted[phase as usize] += 1;
        let Some(endpoint) = self.endpoints.get_mut(&addr) else {
            return;
        };
        match load {
            Some(load) => endpoint.track(load, &mut self.draining),
            None => {
                // No client now (being re-created): its old counters drain.
                if let Some(mut current) = endpoint.current.take() {
                    current.flush();
                    self.draining.push(current);
                }
            }
        }
        if let Some(current) = &mut endpoint.current {
            current.flush();
            if let Some(rtt) = current.load.last_rtt() {
                let name = &self.name;
                endpoint
                    .rtt
                    .get_or_insert_with(|| {
                        gauge!(
                            ENDPOINT_RTT,
                            "balancer" => name.clone(),
                            "endpoint" => endpoint.label.clone(),
                        )
                    })
                    .set(rtt.as_secs_f64());
            }
        }
        endpoint.in_service.publish(u64::from(in_service));
    }

    /// Ends a publication: flushes the draining counters and the per-state gauges, and sets
    /// the next one an interval from now.
    pub(crate) fn finish(&mut self) {
        self.draining.retain_mut(|tracked| {
            tracked.flush();
            let busy = tracked.in_flight > 0;
            if !busy {
                tracked.retire();
            }
            busy
        });
        for (level, counted) in self.phases.iter_mut().zip(&mut self.counted) {
            level.publish(std::mem::take(counted));
        }
        self.next = Instant::now() + self.interval;
    }
}

impl Drop for BalancerMetrics {
    /// The balancer is gone: last counts, and every gauge it raised back to 0.
    fn drop(&mut self) {
        for (_, mut endpoint) in self.endpoints.drain() {
            if let Some(mut current) = endpoint.current.take() {
                current.flush();
                current.retire();
            }
            endpoint.leave();
        }
        for mut tracked in self.draining.drain(..) {
            tracked.flush();
            tracked.retire();
        }
        for level in &mut self.phases {
            level.publish(0);
        }
        self.panic.publish(0);
    }
}

/// The series of one endpoint of a balancer.
struct EndpointMetrics {
    label: SharedString,
    series: Arc<LoadSeries>,
    /// The counters of the endpoint's current client.
    current: Option<Tracked>,
    /// Registered at the first RTT sample, so pickers that do not time requests show none.
    rtt: Option<Gauge>,
    in_service: Level,
    /// By reason: consecutive failures, failure rate.
    ejections: [Counter; 2],
    /// By new state: healthy, unhealthy.
    health: [Counter; 2],
    connect_failures: Counter,
}

impl EndpointMetrics {
    fn new(name: &SharedString, addr: SocketAddr) -> Self {
        let label = SharedString::from(addr.to_string());
        let series = |metric: &'static str| {
            counter!(
                metric,
                "balancer" => name.clone(),
                "endpoint" => label.clone(),
            )
        };
        let ejection = |reason: &'static str| {
            counter!(
                ENDPOINT_EJECTIONS,
                "balancer" => name.clone(),
                "endpoint" => label.clone(),
                "reason" => reason,
            )
        };
        let health = |state: &'static str| {
            counter!(
                ENDPOINT_HEALTH_TRANSITIONS,
                "balancer" => name.clone(),
                "endpoint" => label.clone(),
                "state" => state,
            )
        };
        EndpointMetrics {
            series: Arc::new(LoadSeries {
                requests: series(ENDPOINT_REQUESTS),
                errors: series(ENDPOINT_ERRORS),
                in_flight: gauge!(
                    ENDPOINT_IN_FLIGHT,
                    "balancer" => name.clone(),
                    "endpoint" => label.clone(),
                ),
            }),
            current: None,
            rtt: None,
            in_service: Level::new(gauge!(
                ENDPOINT_IN_SERVICE,
                "balancer" => name.clone(),
                "endpoint" => label.clone(),
            )),
            ejections: [ejection("consecutive_failures"), ejection("failure_rate")],
            health: [health("healthy"), health("unhealthy")],
            connect_failures: series(ENDPOINT_CONNECT_FAILURES),
            label,
        }
    }

    /// Makes `load` the tracked counters; counters tracked before (an older client's) drain.
    fn track(&mut self, load: &Load, draining: &mut Vec<Tracked>) {
        if let Some(current) = &self.current {
            if current.load.key() == load.key() {
                return;
            }
            if let Some(mut old) = self.current.take() {
                old.flush();
                draining.push(old);
            }
        }
        self.current = Some(Tracked::new(Arc::clone(&self.series), load.clone()));
    }

    /// The endpoint left: its gauges go to 0 (in flight: once its requests drained).
    fn leave(&mut self) {
        self.in_service.publish(0);
        if let Some(rtt) = self.rtt.take() {
            rtt.set(0.0);
        }
    }
}

/// The handles fed from one endpoint's [`Load`].
struct LoadSeries {
    requests: Counter,
    errors: Counter,
    in_flight: Gauge,
}

/// One [`Load`] and what of it was published.
struct Tracked {
    series: Arc<LoadSeries>,
    load: Load,
    requests: u64,
    errors: u64,
    in_flight: u64,
}

impl Tracked {
    /// A `Load` counts from zero, so everything it holds is still to publish.
    fn new(series: Arc<LoadSeries>, load: Load) -> Self {
        Tracked {
            series,
            load,
            requests: 0,
            errors: 0,
            in_flight: 0,
        }
    }

    /// Publishes what changed since the last flush.
    fn flush(&mut self) {
        let requests = self.load.requests();
        if requests > self.requests {
            self.series.requests.increment(requests - self.requests);
            self.requests = requests;
        }
        let errors = self.load.errors();
        if errors > self.errors {
            self.series.errors.increment(errors - self.errors);
            self.errors = errors;
        }
        let in_flight = self.load.in_flight();
        if in_flight != self.in_flight {
            // Exact: both are far below 2^53.
            self.series
                .in_flight
                .increment(in_flight as f64 - self.in_flight as f64);
            self.in_flight = in_flight;
        }
    }

    /// Takes back this load's share of the in-flight gauge; nothing more is read from it.
    fn retire(&mut self) {
        if self.in_flight > 0 {
            self.series.in_flight.decrement(self.in_flight as f64);
            self.in_flight = 0;
        }
    }
}

/// A gauge kept by increments: this owner's contribution, and the handle.
struct Level {
    gauge: Gauge,
    published: u64,
}

impl Level {
    fn new(gauge: Gauge) -> Self {
        Level {
            gauge,
            published: 0,
        }
    }

    /// Moves this owner's contribution to `value`.
    fn publish(&mut self, value: u64) {
        if value != self.published {
            self.gauge.increment(value as f64 - self.published as f64);
            self.published = value;
        }
    }
}

/// The counters of a retry layer. To be created once per layer (registration is a registry
/// lookup), then counting is an atomic add.
#[derive(Debug, Clone)]
pub(crate) struct RetryMetrics {
    attempts: Counter,
    hedges: Counter,
    refusals: Counter,
}

impl RetryMetrics {
    /// Registers the counters with label `balancer` = `name` (the name of the balancer the
    /// retries go through, so they join its series).
    pub(crate) fn new(name: &Arc<str>) -> Self {
        describe();
        let name = SharedString::from(Arc::clone(name));
        RetryMetrics {
            attempts: counter!(RETRY_ATTEMPTS, "balancer" => name.clone()),
            hedges: counter!(RETRY_HEDGES, "balancer" => name.clone()),
            refusals: counter!(RETRY_BUDGET_REFUSALS, "balancer" => name),
        }
    }

    /// A retry was sent (not the first attempt).
    pub(crate) fn retried(&self) {
        self.attempts.increment(1);
    }

    /// A hedged request was sent.
    pub(crate) fn hedged(&self) {
        self.hedges.increment(1);
    }

    /// The budget refused a retry or a hedge.
    pub(crate) fn refused_by_budget(&self) {
        self.refusals.increment(1);
    }
}

/// The decision counters of one authorization layer: named when the layer is configured,
/// registered when it is first applied ([`register`](Self::register)), so a layer renamed
/// before use leaves no series under its old name.
#[cfg(feature = "authz")]
#[derive(Debug, Clone)]
pub(crate) struct AuthzMetrics {
    direction: &'static str,
    name: Arc<str>,
    counters: std::sync::OnceLock<AuthzCounters>,
}

#[cfg(feature = "authz")]
#[derive(Debug, Clone)]
struct AuthzCounters {
    allow: Counter,
    deny: Counter,
    audit_deny: Counter,
    invalid: Counter,
    unauthenticated: Counter,
}

#[cfg(feature = "authz")]
impl AuthzMetrics {
    /// The counters of the layer `name` (`direction` `"inbound"` or `"outbound"`), not yet
    /// registered.
    pub(crate) fn new(direction: &'static str, name: Arc<str>) -> Self {
        AuthzMetrics {
            direction,
            name,
            counters: std::sync::OnceLock::new(),
        }
    }

    /// The counters of an unnamed layer.
    pub(crate) fn unnamed(direction: &'static str) -> Self {
        Self::new(direction, Arc::from(DEFAULT_NAME))
    }

    /// Whether the layer still has the default name.
    pub(crate) fn is_unnamed(&self) -> bool {
        &*self.name == DEFAULT_NAME
    }

    /// Registers the counters with the current recorder, once; later calls do nothing.
    pub(crate) fn register(&self) {
        self.counters.get_or_init(|| {
            describe();
            let name = SharedString::from(Arc::clone(&self.name));
            let direction = self.direction;
            let outcome = |outcome: &'static str| {
                counter!(
                    AUTHZ_DECISIONS,
                    "direction" => direction,
                    "layer" => name.clone(),
                    "outcome" => outcome,
                )
            };
            AuthzCounters {
                allow: outcome("allow"),
                deny: outcome("deny"),
                audit_deny: outcome("audit_deny"),
                invalid: outcome("invalid"),
                unauthenticated: outcome("unauthenticated"),
            }
        });
    }

    fn count(&self, outcome: impl FnOnce(&AuthzCounters) -> &Counter) {
        if let Some(counters) = self.counters.get() {
            outcome(counters).increment(1);
        }
    }

    /// The request was forwarded: allowed, or denied by a policy in audit mode.
    pub(crate) fn forwarded(&self, decision: &crate::authz::policy::Decision) {
        match decision.verdict() {
            crate::authz::policy::Verdict::Allow => self.count(|c| &c.allow),
            crate::authz::policy::Verdict::Deny => self.count(|c| &c.audit_deny),
        }
    }

    /// The policy denied the request.
    pub(crate) fn denied(&self) {
        self.count(|c| &c.deny);
    }

    /// The request could not be read one way.
    pub(crate) fn invalid(&self) {
        self.count(|c| &c.invalid);
    }

    /// The request's bearer token was invalid.
    pub(crate) fn unauthenticated(&self) {
        self.count(|c| &c.unauthenticated);
    }
}

/// The handshake counters of one TLS acceptor or connector, registered when it is built.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsMetrics {
    ok: Counter,
    failed: Counter,
    timeout: Counter,
}

#[cfg(feature = "tls")]
impl TlsMetrics {
    /// Registers the counters of `side`, `"client"` or `"server"`.
    pub(crate) fn new(side: &'static str) -> Arc<Self> {
        describe();
        let outcome =
            |outcome: &'static str| counter!(TLS_HANDSHAKES, "side" => side, "outcome" => outcome);
        Arc::new(TlsMetrics {
            ok: outcome("ok"),
            failed: outcome("failed"),
            timeout: outcome("timeout"),
        })
    }

    /// Runs `handshake` and counts how it ended. Errors that are not the handshake's (the
    /// TCP connection under it failed) are not counted.
    pub(crate) async fn observe<T>(
        self: Arc<Self>,
        handshake: impl std::future::Future<Output = Result<T, tower::BoxError>>,
    ) -> Result<T, tower::BoxError> {
        use crate::tls::{BadPeerCertificate, HandshakeFailed, HandshakeTimeout};
        let result = handshake.await;
        match &result {
            Ok(_) => self.ok.increment(1),
            Err(e) if e.is::<HandshakeTimeout>() => self.timeout.increment(1),
            Err(e) if e.is::<HandshakeFailed>() || e.is::<BadPeerCertificate>() => {
                self.failed.increment(1);
            }
            Err(_) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// A metric's name, labels and value.
    type Value = (String, Vec<(String, String)>, DebugValue);

    #[test]
    fn retry_counters_count_once_per_call_under_the_balancer_label() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            let retry = RetryMetrics::new(&Arc::from("payments"));
            retry.retried();
            retry.retried();
            retry.hedged();
            retry.clone().refused_by_budget();
        });
        let mut values: Vec<Value> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (key.name().to_owned(), labels, value)
            })
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let label = vec![("balancer".to_owned(), "payments".to_owned())];
        assert_eq!(
            values,
            [
                (
                    RETRY_ATTEMPTS.to_owned(),
                    label.clone(),
                    DebugValue::Counter(2)
                ),
                (
                    RETRY_BUDGET_REFUSALS.to_owned(),
                    label.clone(),
                    DebugValue::Counter(1)
                ),
                (RETRY_HEDGES.to_owned(), label, DebugValue::Counter(1)),
            ]
        );
    }

    #[test]
    fn a_level_moves_its_gauge_by_the_difference_only() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            let gauge = gauge!("level");
            let mut a = Level::new(gauge.clone());
            let mut b = Level::new(gauge);
            a.publish(3);
            b.publish(2);
            a.publish(1);
            b.publish(2);
        });
        let values = snapshotter.snapshot().into_vec();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].3, DebugValue::Gauge(3.0.into()));
    }
}
