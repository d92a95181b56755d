use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{Cluster, Lines, b64, unb64};
use super::error::{ConfigError, EtcdError, shown};
use super::proto::{EventKind, RangeResponse, WatchLine};
use super::tracker::Tracker;
use crate::discover::Update;

/// Discovery from a key prefix on an etcd v3 cluster: a stream of [`Update`]s.
///
/// Built with [`Etcd::builder`]. See the [module docs](super) for the key and value format and
/// for what happens on disconnects and compaction.
///
/// The work runs in a task spawned on the Tokio runtime the first time the stream is polled;
/// dropping the stream stops it and closes its connections.
pub struct Etcd {
    state: State,
}

enum State {
    Idle(Box<Watcher>),
    Running {
        rx: mpsc::Receiver<Result<Update, EtcdError>>,
        task: JoinHandle<()>,
    },
    Gone,
}

/// Configures an [`Etcd`] discovery source.
///
/// # Defaults
///
/// - reconnect backoff: 100 ms doubling to 10 s, with jitter (each delay uniform in its upper
///   half), so watchers cut off together by a restart do not return together. Reset to the
///   minimum once etcd answers again.
/// - seed for the jitter: from the operating system.
#[derive(Debug, Clone)]
pub struct Builder {
    cluster: Cluster,
    prefix: String,
    backoff: Backoff,
    seed: Option<u64>,
}

impl Etcd {
    /// A builder watching the keys under `<prefix>/` on `cluster` (a trailing `/` on `prefix` is
    /// optional), as etcd's endpoints manager lays them out for target `prefix`.
    pub fn builder(cluster: Cluster, prefix: impl Into<String>) -> Builder {
        Builder {
            cluster,
            prefix: prefix.into(),
            backoff: Backoff {
                min: Builder::DEFAULT_BACKOFF_MIN,
                max: Builder::DEFAULT_BACKOFF_MAX,
            },
            seed: None,
        }
    }
}

impl Builder {
    /// The default first reconnect delay.
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
    /// The default longest reconnect delay.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

    /// Sets the reconnect backoff: the first delay and the longest; `0 < min <= max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff { min, max };
        self
    }

    /// Seeds the backoff jitter, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration and builds the source. Nothing is sent before the first poll.
    pub fn build(self) -> Result<Etcd, ConfigError> {
        let Backoff { min, max } = self.backoff;
        if min.is_zero() || min > max {
            return Err(ConfigError::InvalidBackoff { min, max });
        }
        let prefix = key_prefix(&self.prefix)?;
        let range_end = prefix_end(&prefix);
        let rng = match self.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::seed_from_u64(rand::rng().random()),
        };
        Ok(Etcd {
            state: State::Idle(Box::new(Watcher {
                cluster: self.cluster,
                prefix,
                range_end,
                backoff: self.backoff,
                rng,
                failures: 0,
                tracker: Tracker::default(),
                next_revision: None,
                lines: None,
            })),
        })
    }
}

impl Stream for Etcd {
    type Item = Result<Update, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let State::Idle(_) = self.state {
            let State::Idle(watcher) = std::mem::replace(&mut self.state, State::Gone) else {
                unreachable!("matched just above")
            };
            let (tx, rx) = mpsc::channel(CHANNEL);
            let task = tokio::spawn(watcher.run(tx));
            self.state = State::Running { rx, task };
        }
        match &mut self.state {
            State::Running { rx, .. } => rx.poll_recv(cx),
            _ => Poll::Ready(None),
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let State::Running { task, .. } = &self.state {
            task.abort();
        }
    }
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Etcd");
        match &self.state {
            State::Idle(w) => d
                .field("cluster", &w.cluster)
                .field("prefix", &shown(&w.prefix))
                .field("state", &"idle"),
            State::Running { .. } => d.field("state", &"running"),
            State::Gone => d.field("state", &"gone"),
        };
        d.finish()
    }
}

/// The watch loop: range, watch, resume after the last revision seen, resync on compaction.
struct Watcher {
    cluster: Cluster,
    prefix: Vec<u8>,
    range_end: Vec<u8>,
    backoff: Backoff,
    rng: SmallRng,
    failures: u32,
    tracker: Tracker,
    /// The revision the next watch starts at: one past the last one applied. `None` until a
    /// full listing has been read, and again after a compaction.
    next_revision: Option<i64>,
    lines: Option<Lines>,
}

impl Watcher {
    async fn run(mut self: Box<Self>, tx: mpsc::Sender<Result<Update, EtcdError>>) {
        loop {
            let items = match self.step().await {
                Ok(items) => items,
                Err(e) => {
                    self.lines = None;
                    self.failures = self.failures.saturating_add(1);
                    let delay = self.backoff.delay(self.failures, &mut self.rng);
                    tracing::debug!(error = %e, ?delay, "etcd watch failed; retrying");
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            for item in items {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
    }

    /// One step forward: a full listing, opening the watch, or one watch response.
    async fn step(&mut self) -> Result<Vec<Result<Update, EtcdError>>, EtcdError> {
        let Some(next_revision) = self.next_revision else {
            return self.list().await;
        };
        let lines = match &mut self.lines {
            Some(lines) => lines,
            None => {
                let request = json!({ "create_request": {
                    "key": b64(&self.prefix),
                    "range_end": b64(&self.range_end),
                    "start_revision": next_revision.to_string(),
                }});
                self.lines.insert(self.cluster.watch(&request).await?)
            }
        };
        let url = lines.url().to_owned();
        let Some(line) = lines.next().await? else {
            return Err(EtcdError::WatchEnded { url });
        };
        let bad = |reason: String| EtcdError::Response {
            url: url.clone(),
            path: "/v3/watch",
            reason,
        };
        let line: WatchLine =
            serde_json::from_slice(&line).map_err(|e| bad(format!("{e} in {:?}", shown(&line))))?;
        if let Some(e) = line.error {
            return Err(EtcdError::Server {
                url,
                path: "/v3/watch",
                status: 200,
                code: e.code,
                message: e.message,
            });
        }
        let response = line
            .result
            .ok_or_else(|| bad("a line with neither result nor error".into()))?;
        if response.compact_revision > 0 {
            tracing::info!(
                compact_revision = response.compact_revision,
                next_revision,
                "etcd compacted past the watch's revision; listing the prefix again"
            );
            self.lines = None;
            self.next_revision = None;
            return Ok(Vec::new());
        }
        if response.canceled {
            self.lines = None;
            return Err(EtcdError::WatchCanceled {
                url,
                reason: response.cancel_reason,
            });
        }
        if response.created {
            self.failures = 0;
        }
        let mut updates = Vec::new();
        for event in response.events {
            let key = unb64(&event.kv.key).map_err(|e| bad(format!("key: {e}")))?;
            match event.kind {
                EventKind::Put => {
                    let value = unb64(&event.kv.value).map_err(|e| bad(format!("value: {e}")))?;
                    self.tracker.put(key, &value, &mut updates);
                }
                EventKind::Delete => self.tracker.delete(&key, &mut updates),
            }
            // Every event of one revision arrives in one response, so resuming after the
            // highest one seen neither repeats nor skips any.
            let after = event.kv.mod_revision.saturating_add(1);
            if after > next_revision {
                self.next_revision = Some(after);
            }
        }
        Ok(updates
            .into_iter()
            .map(|u| u.map_err(EtcdError::from))
            .collect())
    }

    /// Reads the whole prefix and answers with a `Reset`; the watch then starts just after the
    /// listing's revision.
    async fn list(&mut self) -> Result<Vec<Result<Update, EtcdError>>, EtcdError> {
        let request = json!({ "key": b64(&self.prefix), "range_end": b64(&self.range_end) });
        let (response, url): (RangeResponse, _) =
            self.cluster.call_from("/v3/kv/range", &request).await?;
        let mut kvs = Vec::with_capacity(response.kvs.len());
        for kv in response.kvs {
            let key = unb64(&kv.key);
            let value = unb64(&kv.value);
            match (key, value) {
                (Ok(k), Ok(v)) => kvs.push((k, v)),
                (k, v) => {
                    return Err(EtcdError::Response {
                        url: url.to_owned(),
                        path: "/v3/kv/range",
                        reason: format!(
                            "bad base64 in key {:?} or value {:?}: {k:?} {v:?}",
                            kv.key, kv.value
                        ),
                    });
                }
            }
        }
        self.failures = 0;
        self.next_revision = Some(response.header.revision.saturating_add(1));
        self.lines = None;
        Ok(self
            .tracker
            .reset(kvs)
            .into_iter()
            .map(|u| u.map_err(EtcdError::from))
            .collect())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// Exponential from `min`, capped at `max`, with "equal jitter": uniform in `[d/2, d]`.
    pub(crate) fn delay(&self, failures: u32, rng: &mut SmallRng) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let d = self.min.saturating_mul(1u32 << exp).min(self.max);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos / 2 + rng.random_range(0..=nanos / 2))
    }
}

/// `prefix` as the key prefix watched: `prefix` followed by exactly one `/`.
pub(crate) fn key_prefix(prefix: &str) -> Result<Vec<u8>, ConfigError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Err(ConfigError::EmptyPrefix);
    }
    let mut key = trimmed.as_bytes().to_vec();
    key.push(b'/');
    Ok(key)
}

/// The `range_end` selecting every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and what follows dropped.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: no upper bound, which etcd spells as a single zero byte.
    vec![0]
}

/// How many updates may wait for the balancer before the watch pauses reading.
const CHANNEL: usize = 64;
