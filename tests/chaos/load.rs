//! An open-loop load generator: requests start at a steady rate whatever the answers do, each
//! on its own task with an overall deadline, and every outcome is accounted for.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Service, ServiceExt};
use tower_mesh::BoxError;

use crate::client::Body;

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Requests started per second.
    pub(crate) rate: u32,
    /// How long requests keep starting.
    pub(crate) duration: Duration,
    /// How long one request (all its attempts, and reading the body) may take.
    pub(crate) deadline: Duration,
}

/// What became of every request.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    /// Requests that did not succeed within their deadline: `(request number, started after,
    /// why)`.
    pub(crate) lost: Vec<(u64, Duration, String)>,
    /// Successful answers per server port.
    pub(crate) by_port: BTreeMap<u16, u64>,
    /// When each request started, in order.
    pub(crate) starts: Vec<Instant>,
    latencies: Vec<Duration>,
}

/// One request's result.
enum Outcome {
    Ok { port: u16, latency: Duration },
    Lost(String),
}

impl Load {
    /// The number of requests a run starts.
    pub(crate) fn requests(&self) -> u64 {
        (u128::from(self.rate) * self.duration.as_millis() / 1_000) as u64
    }

    /// Sends [`Load::requests`] GETs through `svc`, one every `1 / rate` (late ticks are caught
    /// up, so the rate holds even when the runtime is busy), then waits for the last to finish.
    /// Every request task is bounded by the deadline, so the wait is too.
    pub(crate) async fn run<S>(&self, svc: S) -> Tally
    where
        S: Service<Request<Body>, Response = Response<Incoming>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        let total = self.requests();
        let period = Duration::from_secs(1) / self.rate;
        let started = Instant::now();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut running = JoinSet::new();
        let mut tally = Tally::default();
        while tally.sent < total {
            tokio::select! {
                _ = ticks.tick() => {
                    let id = tally.sent;
                    tally.sent += 1;
                    let now = Instant::now();
                    tally.starts.push(now);
                    let at = now - started;
                    let task = one(svc.clone(), id, self.deadline);
                    running.spawn(async move { (id, at, task.await) });
                }
                Some(done) = running.join_next(), if !running.is_empty() => tally.record(done),
            }
        }
        // Each task ends by its deadline; allow for a busy runtime, then say what is stuck.
        let drain = self.deadline + Duration::from_secs(5);
        let deadline = Instant::now() + drain;
        while !running.is_empty() {
            match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(Some(done)) => tally.record(done),
                Ok(None) => break,
                Err(_) => panic!(
                    "{} requests still running {drain:?} after the last one started, \
                     despite their {:?} deadline",
                    running.len(),
                    self.deadline
                ),
            }
        }
        tally.latencies.sort_unstable();
        tally
    }
}

/// One GET with a deadline covering every attempt and the body.
async fn one<S>(svc: S, id: u64, deadline: Duration) -> Outcome
where
    S: Service<Request<Body>, Response = Response<Incoming>>,
    S::Error: Into<BoxError>,
{
    let start = Instant::now();
    let req = Request::get(format!("/work?id={id}"))
        .body(Body::new())
        .expect("a valid request");
    let attempt = async {
        let response = svc.oneshot(req).await.map_err(Into::into)?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    match tokio::time::timeout(deadline, attempt).await {
        Err(_) => Outcome::Lost(format!("no answer within the {deadline:?} deadline")),
        Ok(Err(e)) => Outcome::Lost(format!("failed: {}", chain(&*e))),
        Ok(Ok((StatusCode::OK, body))) => match std::str::from_utf8(&body).map(str::parse) {
            Ok(Ok(port)) => Outcome::Ok {
                port,
                latency: start.elapsed(),
            },
            _ => Outcome::Lost(format!("200 with an unexpected body {body:?}")),
        },
        Ok(Ok((status, _))) => Outcome::Lost(format!("answered {status}")),
    }
}

impl Tally {
    fn record(&mut self, done: Result<(u64, Duration, Outcome), tokio::task::JoinError>) {
        match done {
            Ok((_, _, Outcome::Ok { port, latency })) => {
                self.ok += 1;
                *self.by_port.entry(port).or_default() += 1;
                self.latencies.push(latency);
            }
            Ok((id, at, Outcome::Lost(why))) => self.lost.push((id, at, why)),
            Err(e) => self
                .lost
                .push((u64::MAX, Duration::ZERO, format!("task failed: {e}"))),
        }
    }

    /// Every request started was accounted for.
    pub(crate) fn completed(&self) -> u64 {
        self.ok + self.lost.len() as u64
    }

    /// The latency at quantile `q` of the successful requests.
    pub(crate) fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, ok {}, lost {}, ok by port {:?}",
            self.sent,
            self.ok,
            self.lost.len(),
            self.by_port
        )
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
