//! The driver's health machinery: ejection, active checks, panic mode and parking.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tower::Service;

use super::{Driver, State};
use crate::balance::pick::Pick;
use crate::balance::stats::EndpointState;
use crate::discover::Update;
use crate::endpoint::Endpoint;
use crate::error::BoxError;
use crate::health::{EjectReason, HealthCheck, HealthConfig, Probe, Record};
use crate::load::{Alarm, Load};

/// Aborts a probe task when dropped, so no probe outlives its endpoint or its balancer.
pub(super) struct ProbeTask(pub(super) AbortHandle);

impl Drop for ProbeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One probe's result: endpoint, generation, outcome.
pub(super) type ProbeResult = (SocketAddr, u64, Result<(), String>);

/// The driver's health machinery, present when outlier detection or health checks are on.
pub(super) struct Health {
    pub(super) config: HealthConfig,
    pub(super) probe_tx: mpsc::UnboundedSender<ProbeResult>,
    /// When the next outlier-detection interval ends.
    pub(super) next_interval: Option<Instant>,
    /// Whether the last reconcile found the balancer in panic mode.
    pub(super) panic: bool,
    /// Entries whose health is worth reporting (`Record::is_notable`).
    pub(super) notable: BTreeSet<SocketAddr>,
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
    /// The load counters of a connected endpoint.
    fn load_of(&self, addr: &SocketAddr, state: &State) -> Option<&Load> {
        match state {
            State::Ready(i) => self.ready.loads.get(*i),
            State::Parked => self.parked.get(addr).map(|(_, load)| load),
            _ => None,
        }
    }

    /// Endpoints with a client: in service or parked.
    fn connected(&self) -> usize {
        self.ready.clients.len() + self.parked.len()
    }

    /// When the earliest ejection ends.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        let health = self.health.as_ref()?;
        health
            .notable
            .iter()
            .filter_map(|a| self.entries.get(a)?.health.ejected.map(|e| e.until))
            .min()
    }

    /// Ejects `addr` unless the max ejection share is reached. Returns whether it did.
    fn try_eject(&mut self, addr: SocketAddr, reason: EjectReason, now: Instant) -> bool {
        let connected = self.connected();
        let Some(health) = &mut self.health else {
            return false;
        };
        let Some(outlier) = &health.config.outlier else {
            return false;
        };
        let ejected = health
            .notable
            .iter()
            .filter(|a| {
                self.entries
                    .get(a)
                    .is_some_and(|e| e.health.ejected.is_some())
            })
            .count();
        let max = outlier.max_ejected(connected);
        let Some(entry) = self.entries.get_mut(&addr) else {
            return false;
        };
        if entry.health.ejected.is_some() {
            return false;
        }
        if ejected >= max {
            tracing::debug!(
                endpoint = %addr,
                %reason,
                ejected,
                max,
                "not ejecting: the max ejection share is reached"
            );
            return false;
        }
        #[cfg(feature = "metrics")]
        self.metrics.ejected(addr, &reason);
        let time = entry.health.eject(now, reason, outlier);
        tracing::warn!(
            endpoint = %addr,
            %reason,
            ejections = entry.health.ejections,
            for_ = ?time,
            "endpoint ejected"
        );
        health.notable.insert(addr);
        self.status_changed = true;
        true
    }

    /// A failure completed a run of consecutive failures somewhere: eject the endpoints whose
    /// run is long enough.
    pub(super) fn on_alarm(&mut self) {
        let Some(threshold) = self
            .health
            .as_ref()
            .and_then(|h| h.config.outlier.as_ref()?.consecutive)
        else {
            return;
        };
        let now = Instant::now();
        let tripped: Vec<(SocketAddr, u64)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.health.ejected.is_none())
            .filter_map(|(addr, e)| {
                let run = self.load_of(addr, &e.state)?.consecutive_failures();
                (run >= u64::from(threshold)).then_some((*addr, run))
            })
            .collect();
        let mut changed = false;
        for (addr, failures) in tripped {
            changed |= self.try_eject(addr, EjectReason::ConsecutiveFailures { failures }, now);
        }
        if changed {
            self.reconcile();
        }
    }

    /// Ends the ejections that are due.
    pub(super) fn on_expiry(&mut self) {
        let now = Instant::now();
        let due: Vec<SocketAddr> = match &self.health {
            Some(h) => h
                .notable
                .iter()
                .filter(|a| {
                    self.entries
                        .get(a)
                        .and_then(|e| e.health.ejected)
                        .is_some_and(|e| e.until <= now)
                })
                .copied()
                .collect(),
            None => return,
        };
        for addr in due {
            self.end_ejection(addr, "ejection time over");
        }
        self.reconcile();
    }

    /// Returns `addr` from ejection with a clean failure run.
    fn end_ejection(&mut self, addr: SocketAddr, why: &'static str) {
        let Some(entry) = self.entries.get(&addr) else {
            return;
        };
        let (finished, errors) = match self.load_of(&addr, &entry.state) {
            Some(load) => {
                load.reset_consecutive();
                (load.finished(), load.errors())
            }
            None => (0, 0),
        };
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        entry.health.ejected = None;
        entry.health.base_finished = finished;
        entry.health.base_errors = errors;
        tracing::info!(endpoint = %addr, why, "endpoint back from ejection");
        self.status_changed = true;
    }

    /// One outlier-detection interval ended: failure rates, and multiplier decay.
    pub(super) fn on_interval(&mut self) {
        let now = Instant::now();
        let Some(health) = &mut self.health else {
            return;
        };
        let Some(outlier) = health.config.outlier.clone() else {
            return;
        };
        health.next_interval = Some(now + outlier.interval);
        let mut tripped = Vec::new();
        let addrs: Vec<SocketAddr> = self.entries.keys().copied().collect();
        for addr in addrs {
            let Some(entry) = self.entries.get(&addr) else {
                continue;
            };
            if entry.health.ejected.is_some() {
                continue;
            }
            let Some((finished, errors)) = self
                .load_of(&addr, &entry.state)
                .map(|l| (l.finished(), l.errors()))
            else {
                continue;
            };
            let Some(entry) = self.entries.get_mut(&addr) else {
                continue;
            };
            let record = &mut entry.health;
            let requests = finished.saturating_sub(record.base_finished);
            let failures = errors.saturating_sub(record.base_errors);
            record.base_finished = finished;
            record.base_errors = errors;
            if !record.unhealthy {
                // An interval in service: the ejection multiplier decays.
                record.multiplier = record.multiplier.saturating_sub(1);
            }
            if let Some(rate) = &outlier.failure_rate
                && rate.trips(requests, failures)
            {
                tripped.push((addr, EjectReason::FailureRate { failures, requests }));
            }
        }
        let mut changed = false;
        for (addr, reason) in tripped {
            changed |= self.try_eject(addr, reason, now);
        }
        if changed {
            self.reconcile();
        }
    }

    /// One probe finished.
    pub(super) fn on_probe(&mut self, (addr, generation, result): ProbeResult) {
        let Some(health) = &mut self.health else {
            return;
        };
        let Some((check, _)) = &health.config.check else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&addr) else {
            return;
        };
        if entry.generation != generation || !matches!(entry.state, State::Ready(_) | State::Parked)
        {
            return;
        }
        let record = &mut entry.health;
        let mut changed = false;
        let mut end_ejection = false;
        match result {
            Ok(()) => {
                record.passes = record.passes.saturating_add(1);
                record.check_failures = 0;
                if record.passes >= check.healthy_threshold {
                    if record.unhealthy {
                        record.unhealthy = false;
                        changed = true;
                        #[cfg(feature = "metrics")]
                        self.metrics.health_changed(addr, true);
                        tracing::info!(endpoint = %addr, "endpoint healthy again");
                    }
                    end_ejection = record.ejected.is_some();
                }
            }
            Err(error) => {
                record.passes = 0;
                record.check_failures = record.check_failures.saturating_add(1);
                if !record.unhealthy && record.check_failures >= check.unhealthy_threshold {
                    record.unhealthy = true;
                    changed = true;
                    #[cfg(feature = "metrics")]
                    self.metrics.health_changed(addr, false);
                    tracing::warn!(
                        endpoint = %addr,
                        failed_checks = record.check_failures,
                        %error,
                        "endpoint failed its health checks"
                    );
                }
                if record.last_check_error.as_deref() != Some(&error) {
                    record.last_check_error = Some(error);
                    changed |= record.unhealthy;
                }
            }
        }
        if record.is_notable() {
            health.notable.insert(addr);
        } else {
            health.notable.remove(&addr);
        }
        if end_ejection {
            self.end_ejection(addr, "active health checks passed");
            changed = true;
        }
        if changed {
            self.status_changed = true;
            self.reconcile();
        }
    }

    /// Publishes exactly the connected endpoints that should take requests: those in service,
    /// or all of them while fewer than the panic threshold are.
    pub(super) fn reconcile(&mut self) {
        let Some(health) = &self.health else {
            return;
        };
        let total = self.connected();
        let out: Vec<SocketAddr> = health
            .notable
            .iter()
            .filter(|a| {
                self.entries.get(a).is_some_and(|e| {
                    e.health.out_of_service() && matches!(e.state, State::Ready(_) | State::Parked)
                })
            })
            .copied()
            .collect();
        let healthy = total - out.len().min(total);
        let panic = health.config.panics(healthy, total);
        if panic != health.panic {
            if panic {
                tracing::warn!(
                    healthy,
                    total,
                    threshold = health.config.panic_threshold,
                    "too few healthy endpoints: panic mode, using every endpoint"
                );
            } else {
                tracing::info!(healthy, total, "panic mode over");
            }
            self.status_changed = true;
            #[cfg(feature = "metrics")]
            self.metrics.panic(panic);
        }
        if let Some(health) = &mut self.health {
            health.panic = panic;
        }
        // Park what should not serve.
        if !panic {
            for addr in &out {
                if let Some(State::Ready(index)) = self.entries.get(addr).map(|e| &e.state) {
                    let index = *index;
                    self.park(*addr, index);
                }
            }
        }
        // Return what should serve.
        let back: Vec<SocketAddr> = self
            .parked
            .keys()
            .filter(|a| {
                panic
                    || !self
                        .entries
                        .get(a)
                        .is_some_and(|e| e.health.out_of_service())
            })
            .copied()
            .collect();
        for addr in back {
            self.unpark(addr);
        }
    }

    fn park(&mut self, addr: SocketAddr, index: usize) {
        let client = self.ready.clients.swap_remove(index);
        let load = self.ready.loads.swap_remove(index);
        self.ready.endpoints.swap_remove(index);
        if let Some(moved) = self.ready.endpoints.get(index)
            && let Some(entry) = self.entries.get_mut(&moved.addr())
        {
            entry.state = State::Ready(index);
        }
        if let (Some(client), Some(load)) = (client, load) {
            self.parked.insert(addr, (client, load));
        }
        if let Some(entry) = self.entries.get_mut(&addr) {
            entry.state = State::Parked;
        }
        self.ready_changed = true;
        self.status_changed = true;
    }

    fn unpark(&mut self, addr: SocketAddr) {
        let (Some((client, load)), Some(entry)) =
            (self.parked.remove(&addr), self.entries.get_mut(&addr))
        else {
            return;
        };
        let index = self.ready.clients.push(client);
        self.ready.loads.push(load);
        self.ready.endpoints.push(Arc::clone(&entry.endpoint));
        entry.state = State::Ready(index);
        self.ready_changed = true;
        self.status_changed = true;
    }
}

/// Resolves when the health alarm rings; never without one.
pub(super) async fn rung(alarm: Option<&Alarm>) {
    match alarm {
        Some(alarm) => alarm.rung().await,
        None => std::future::pending().await,
    }
}

/// The next probe result; never without health checks.
pub(super) async fn next_probe(
    rx: Option<&mut mpsc::UnboundedReceiver<ProbeResult>>,
) -> Option<ProbeResult> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Probes one endpoint every interval (each wait shortened by up to a tenth, at random), the
/// first within a tenth of an interval, until aborted or the driver is gone.
pub(super) async fn probe_loop(
    probe: Probe,
    check: HealthCheck,
    endpoint: Endpoint,
    generation: u64,
    results: mpsc::UnboundedSender<ProbeResult>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let tenth = u64::try_from((check.interval / 10).as_nanos()).unwrap_or(u64::MAX);
    tokio::time::sleep(Duration::from_nanos(rng.random_range(0..=tenth))).await;
    let addr = endpoint.addr();
    loop {
        let result = match tokio::time::timeout(check.timeout, probe.check(endpoint.clone())).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("probe timed out after {:?}", check.timeout)),
        };
        if results.send((addr, generation, result)).is_err() {
            return;
        }
        let wait = check.interval - Duration::from_nanos(rng.random_range(0..=tenth));
        tokio::time::sleep(wait).await;
    }
}

/// The state `Balance::endpoints` shows for a connected endpoint.
pub(super) fn health_state(record: &Record) -> EndpointState {
    if let Some(ejection) = &record.ejected {
        EndpointState::Ejected {
            until: ejection.until,
            multiplier: record.multiplier,
            reason: ejection.reason,
        }
    } else if record.unhealthy {
        EndpointState::Unhealthy {
            failed_checks: record.check_failures,
            last_error: record.last_check_error.clone().unwrap_or_default(),
        }
    } else {
        EndpointState::Ready
    }
}
