//! Watches a run: which endpoints left service (ejected or unhealthy) and which came back, and
//! the retry budget's counters over time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower_mesh::balance::{Balance, EndpointState, Pick};
use tower_mesh::retry::{Budget, BudgetStats};

/// A task sampling `Balance::endpoints` and `Budget::stats` every [`PERIOD`].
pub(crate) struct Monitor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Observed>,
}

/// What the samples showed, per port.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    ports: BTreeMap<u16, Seen>,
    /// The budget's counters, sampled.
    pub(crate) budget: Vec<(Instant, BudgetStats)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Samples in which it was ejected / unhealthy.
    ejected: u64,
    unhealthy: u64,
    /// Ejections seen: increases of the balancer's count (which restarts when an endpoint is
    /// rediscovered).
    ejections: u64,
    /// Times it was seen ready after being ejected or unhealthy.
    recoveries: u64,
    last: Last,
    /// The last ejection count the balancer reported.
    count: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Last {
    #[default]
    Ready,
    Ejected,
    Unhealthy,
    Other,
}

impl Monitor {
    /// Starts sampling; the task holds a clone of `balance` until [`Monitor::stop`].
    pub(crate) fn spawn<P, S, C>(balance: Balance<P, S, C>, budget: Arc<Budget>) -> Monitor
    where
        P: Pick + Send + Sync + 'static,
        P::Table: Send + Sync,
        P::Cursor: Send,
        S: Send + Sync + 'static,
        C: Send + 'static,
    {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut observed = Observed::default();
            let mut tick = tokio::time::interval(PERIOD);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        observed.budget.push((Instant::now(), budget.stats()));
                        observed.sample(&balance);
                    }
                }
            }
            observed
        });
        Monitor { stop, task }
    }

    /// Stops, and drops the task's balancer clone.
    pub(crate) async fn stop(self) -> Observed {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(2), self.task).await {
            Ok(Ok(observed)) => observed,
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("the monitor did not stop within 2 s"),
        }
    }
}

impl Observed {
    fn sample<P: Pick, S, C>(&mut self, balance: &Balance<P, S, C>) {
        for stat in balance.endpoints() {
            let seen = self.ports.entry(stat.endpoint().addr().port()).or_default();
            let now = match stat.state() {
                EndpointState::Ready => Last::Ready,
                EndpointState::Ejected { .. } => Last::Ejected,
                EndpointState::Unhealthy { .. } => Last::Unhealthy,
                _ => Last::Other,
            };
            match now {
                Last::Ejected => seen.ejected += 1,
                Last::Unhealthy => seen.unhealthy += 1,
                _ => {}
            }
            // The count restarts at zero when an endpoint is rediscovered.
            let count = stat.ejections();
            seen.ejections += if count >= seen.count {
                count - seen.count
            } else {
                count
            };
            seen.count = count;
            if now == Last::Ready && matches!(seen.last, Last::Ejected | Last::Unhealthy) {
                seen.recoveries += 1;
            }
            seen.last = now;
        }
    }

    /// Ejections seen, over every endpoint.
    pub(crate) fn ejections(&self) -> u64 {
        self.ports.values().map(|s| s.ejections).sum()
    }

    /// Returns to service seen, over every endpoint.
    pub(crate) fn recoveries(&self) -> u64 {
        self.ports.values().map(|s| s.recoveries).sum()
    }

    /// One port's line for the report.
    pub(crate) fn describe(&self, port: u16) -> String {
        match self.ports.get(&port) {
            None => "never in the set".to_string(),
            Some(s) => format!(
                "{} ejections, ejected {:.1}s, unhealthy {:.1}s, {} returns",
                s.ejections,
                (s.ejected as f64) * PERIOD.as_secs_f64(),
                (s.unhealthy as f64) * PERIOD.as_secs_f64(),
                s.recoveries
            ),
        }
    }
}

/// How often the monitor samples.
const PERIOD: Duration = Duration::from_millis(50);
