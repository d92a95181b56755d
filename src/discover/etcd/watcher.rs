use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use rand::rngs::SmallRng;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::builder::{Backoff, Builder, prefix_end};
use super::client::{Cluster, Lines, b64, unb64};
use super::error::{EtcdError, InvalidValue, InvalidValueReason, shown};
use super::liveness::{Liveness, alive};
use super::proto::{EventKind, RangeResponse, WatchLine};
use super::tracker::Tracker;
use super::value::decode_value;
use crate::discover::Update;
use crate::endpoint::Endpoint;

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

impl Etcd {
    /// A builder watching the keys under `<prefix>/` on `cluster` (a trailing `/` on `prefix` is
    /// optional), as etcd's endpoints manager lays them out for target `prefix`.
    pub fn builder(cluster: Cluster, prefix: impl Into<String>) -> Builder {
        Builder::new(cluster, prefix.into())
    }

    pub(crate) fn idle(watcher: Watcher) -> Etcd {
        Etcd {
            state: State::Idle(Box::new(watcher)),
        }
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
pub(crate) struct Watcher {
    cluster: Cluster,
    prefix: Vec<u8>,
    range_end: Vec<u8>,
    backoff: Backoff,
    liveness: Liveness,
    rng: SmallRng,
    failures: u32,
    tracker: Tracker,
    /// The revision the next watch starts at: one past the last one applied. `None` until a
    /// full listing has been read, and again after a compaction.
    pub(super) next_revision: Option<i64>,
    lines: Option<Lines>,
}

/// Yields from one step of the watch loop.
type Items = Vec<Result<Update, EtcdError>>;

impl Watcher {
    pub(crate) fn new(
        cluster: Cluster,
        prefix: Vec<u8>,
        backoff: Backoff,
        liveness: Liveness,
        rng: SmallRng,
    ) -> Self {
        Watcher {
            cluster,
            range_end: prefix_end(&prefix),
            prefix,
            backoff,
            liveness,
            rng,
            failures: 0,
            tracker: Tracker::default(),
            next_revision: None,
            lines: None,
        }
    }

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
    async fn step(&mut self) -> Result<Items, EtcdError> {
        let Some(next_revision) = self.next_revision else {
            return self.list().await;
        };
        let lines = match &mut self.lines {
            Some(lines) => lines,
            None => {
                let request = watch_request(&self.prefix, &self.range_end, next_revision);
                self.lines.insert(self.cluster.watch(&request).await?)
            }
        };
        let url = lines.url().to_owned();
        let (cluster, probe) = (&self.cluster, liveness_probe(&self.prefix, &self.range_end));
        let check = || cluster.probe(&url, "/v3/kv/range", &probe);
        let Some(line) = alive(lines.next(), check, self.liveness, &url).await? else {
            return Err(EtcdError::WatchEnded { url });
        };
        self.on_line(&line, &url)
    }

    /// Applies one line of the watch stream.
    pub(crate) fn on_line(&mut self, line: &[u8], url: &str) -> Result<Items, EtcdError> {
        let bad = |reason: String| EtcdError::Response {
            url: url.to_owned(),
            path: "/v3/watch",
            reason,
        };
        let line: WatchLine =
            serde_json::from_slice(line).map_err(|e| bad(format!("{e} in {:?}", shown(line))))?;
        if let Some(e) = line.error {
            return Err(EtcdError::Server {
                url: url.to_owned(),
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
                next_revision = ?self.next_revision,
                "etcd compacted past the watch's revision; listing the prefix again"
            );
            self.lines = None;
            self.next_revision = None;
            return Ok(Vec::new());
        }
        if response.canceled {
            self.lines = None;
            return Err(EtcdError::WatchCanceled {
                url: url.to_owned(),
                reason: response.cancel_reason,
            });
        }
        if response.created {
            self.failures = 0;
        }
        // Decode the whole response before changing anything: if one key cannot be read, no
        // event of the response is applied and the revision stays, so the watch reopened after
        // the error delivers the response again, whole; nothing applied is lost to a resume
        // past it, and nothing is applied twice.
        let mut changes = Vec::with_capacity(response.events.len());
        let mut last_revision = None;
        for event in response.events {
            let key = unb64(&event.kv.key).map_err(|e| {
                bad(format!(
                    "bad base64 in the key {:?} (value {:?}) of a watch event: {e}",
                    event.kv.key, event.kv.value
                ))
            })?;
            let change = match event.kind {
                EventKind::Put => Some(endpoint(&key, &event.kv.value)),
                EventKind::Delete => None,
            };
            changes.push((key, change));
            // Every event of one revision arrives in one response, so resuming after the
            // highest one seen neither repeats nor skips any.
            last_revision = last_revision.max(Some(event.kv.mod_revision));
        }
        let mut updates = Vec::new();
        for (key, change) in changes {
            match change {
                Some(value) => self.tracker.put(key, value, &mut updates),
                None => self.tracker.delete(&key, &mut updates),
            }
        }
        let after = last_revision.map(|r| r.saturating_add(1));
        if let Some(after) = after.filter(|a| self.next_revision.is_none_or(|next| *a > next)) {
            self.next_revision = Some(after);
        }
        Ok(updates
            .into_iter()
            .map(|u| u.map_err(EtcdError::from))
            .collect())
    }

    /// Reads the whole prefix and answers with a `Reset`; the watch then starts just after the
    /// listing's revision.
    async fn list(&mut self) -> Result<Items, EtcdError> {
        let request = json!({ "key": b64(&self.prefix), "range_end": b64(&self.range_end) });
        let (response, url): (RangeResponse, _) =
            self.cluster.call_from("/v3/kv/range", &request).await?;
        let mut kvs = Vec::with_capacity(response.kvs.len());
        for kv in response.kvs {
            let Ok(key) = unb64(&kv.key) else {
                return Err(EtcdError::Response {
                    url: url.to_owned(),
                    path: "/v3/kv/range",
                    reason: format!(
                        "bad base64 in the key {:?} (value {:?}) of a listed entry",
                        kv.key, kv.value
                    ),
                });
            };
            let value = endpoint(&key, &kv.value);
            kvs.push((key, value));
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

/// The endpoint a key's value (base64, as the gateway sends it) describes, or why it does not:
/// bad base64 is refused like any other bad value, naming the key and the text received.
fn endpoint(key: &[u8], value: &str) -> Result<Endpoint, InvalidValue> {
    let bytes = unb64(value).map_err(|e| {
        InvalidValue::new(
            key,
            value.as_bytes(),
            InvalidValueReason::Base64(e.to_string()),
        )
    })?;
    decode_value(key, &bytes)
}

/// The watch's `create_request`: the prefix from `start_revision` on, with progress
/// notifications, so a quiet prefix still hears from etcd now and then (see
/// [`Builder::watch_liveness`]).
pub(crate) fn watch_request(
    prefix: &[u8],
    range_end: &[u8],
    start_revision: i64,
) -> serde_json::Value {
    json!({ "create_request": {
        "key": b64(prefix),
        "range_end": b64(range_end),
        "start_revision": start_revision.to_string(),
        "progress_notify": true,
    }})
}

/// The liveness check's request: a linearizable read that only counts (at most one key), so
/// it proves the member can serve current data without moving any.
fn liveness_probe(prefix: &[u8], range_end: &[u8]) -> serde_json::Value {
    json!({
        "key": b64(prefix),
        "range_end": b64(range_end),
        "limit": "1",
        "count_only": true,
    })
}

/// How many updates may wait for the balancer before the watch pauses reading.
const CHANNEL: usize = 64;
