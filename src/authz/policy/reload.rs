//! A policy shared by every request and swapped atomically, and its reload from a file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::decision::Decision;
use super::error::{PolicyFileError, WatchError};
use super::model::{LoadOptions, Policy};
use crate::authz::Attributes;

/// A policy that can be replaced while requests are being judged: a cheap `Clone` handle
/// (one `Arc`) on an atomically swapped [`Policy`].
///
/// A request judged during a swap is judged wholly by the old policy or wholly by the new
/// one. Every clone sees every swap; each request sees the policy current when it is judged,
/// so a long-lived connection gets the new policy on its next request.
///
/// # Defaults
///
/// `SharedPolicy::default()` holds [`Policy::empty`], which denies everything.
#[derive(Clone, Default)]
pub struct SharedPolicy {
    current: Arc<ArcSwap<Policy>>,
}

impl SharedPolicy {
    /// A shared policy starting with `policy`.
    pub fn new(policy: Policy) -> Self {
        SharedPolicy {
            current: Arc::new(ArcSwap::from_pointee(policy)),
        }
    }

    /// Loads `path` and reloads it every `interval`, with the default [`LoadOptions`].
    ///
    /// Every `interval` (on `tokio::time`) the file is read and its content compared with the
    /// last read; a changed file that is a valid policy is swapped in, and one that is not is
    /// refused: the last good policy stays, a warning is logged once per distinct failure, and
    /// [`ReloadStatus::last_error`] says why. Reloading stops when the returned handle is
    /// dropped; the `SharedPolicy` then keeps the last good policy.
    ///
    /// # Errors
    ///
    /// A first load that fails is an error: a server without its policy must not serve
    /// (fail closed). Also a zero `interval`, or a call outside a Tokio runtime.
    pub async fn watch_file(
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> Result<(SharedPolicy, PolicyReloadHandle), WatchError> {
        SharedPolicy::watch_file_with(path, interval, LoadOptions::default()).await
    }

    /// As [`watch_file`](SharedPolicy::watch_file), with `options` for every load.
    ///
    /// # Errors
    ///
    /// As [`watch_file`](SharedPolicy::watch_file).
    pub async fn watch_file_with(
        path: impl Into<PathBuf>,
        interval: Duration,
        options: LoadOptions,
    ) -> Result<(SharedPolicy, PolicyReloadHandle), WatchError> {
        if interval.is_zero() {
            return Err(WatchError::InvalidInterval(interval));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let path: Arc<Path> = Arc::from(path.into());
        let content = read(&path, &options).await.map_err(WatchError::Load)?;
        let policy = load(&path, &content, &options).map_err(WatchError::Load)?;
        tracing::info!(
            target: "tower_mesh::authz::policy",
            path = %path.display(),
            rules = policy.rules.len(),
            "policy loaded",
        );
        let shared = SharedPolicy::new(policy);
        let (status_tx, status) = watch::channel(ReloadStatus {
            generation: 1,
            ..ReloadStatus::default()
        });
        let watcher = Watcher {
            path: path.clone(),
            options,
            shared: shared.clone(),
            status: status_tx,
            good: content.clone(),
            last_read: Some(content),
            reported: None,
        };
        let task = runtime.spawn(watcher.run(interval));
        Ok((shared, PolicyReloadHandle { path, status, task }))
    }

    /// The current policy. A reference count; prefer [`evaluate`](SharedPolicy::evaluate)
    /// on the hot path.
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Judges `attrs` with the current policy, without touching its reference count.
    pub fn evaluate(&self, attrs: &Attributes<'_>) -> Decision {
        self.current.load().evaluate(attrs)
    }

    /// Replaces the policy (for policies from elsewhere than a file).
    pub fn store(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}

impl fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.current.load();
        f.debug_struct("SharedPolicy")
            .field("mode", &policy.mode)
            .field("rules", &policy.rules.len())
            .finish_non_exhaustive()
    }
}

/// The reloading of a [`SharedPolicy`] from a file: dropping it stops the reloading.
#[derive(Debug)]
pub struct PolicyReloadHandle {
    path: Arc<Path>,
    status: watch::Receiver<ReloadStatus>,
    task: JoinHandle<()>,
}

impl PolicyReloadHandle {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the reloader has done so far.
    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// A receiver notified at every change of the status (a swap, a refusal, a recovery).
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.status.clone()
    }
}

impl Drop for PolicyReloadHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a policy file reloader has done so far.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// How many policies were swapped in, counting the first load.
    pub generation: u64,
    /// How many changed versions of the file were refused (each distinct failure once): the
    /// error counter to alert on.
    pub refused: u64,
    /// Why the current version of the file is refused, while it is; `None` once a valid
    /// version is in place.
    pub last_error: Option<Arc<PolicyFileError>>,
}

struct Watcher {
    path: Arc<Path>,
    options: LoadOptions,
    shared: SharedPolicy,
    status: watch::Sender<ReloadStatus>,
    /// The content of the policy in force.
    good: Arc<[u8]>,
    /// The content of the last successful read, whatever it held.
    last_read: Option<Arc<[u8]>>,
    /// The message of the failure last reported, until the file is good again.
    reported: Option<String>,
}

impl Watcher {
    async fn run(mut self, interval: Duration) {
        let start = tokio::time::Instant::now() + interval;
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match read(&self.path, &self.options).await {
                Err(e) => {
                    self.last_read = None;
                    self.refuse(e);
                }
                Ok(content) => self.observe(content),
            }
        }
    }

    fn observe(&mut self, content: Arc<[u8]>) {
        if self.last_read.as_deref() == Some(&*content) {
            return;
        }
        self.last_read = Some(content.clone());
        if content == self.good {
            // Back to the policy in force (after a refused edit, or a missing file).
            self.recover();
            return;
        }
        match load(&self.path, &content, &self.options) {
            Ok(policy) => {
                tracing::info!(
                    target: "tower_mesh::authz::policy",
                    path = %self.path.display(),
                    rules = policy.rules.len(),
                    "policy reloaded",
                );
                self.shared.store(policy);
                self.good = content;
                self.reported = None;
                self.status.send_modify(|s| {
                    s.generation += 1;
                    s.last_error = None;
                });
            }
            Err(e) => self.refuse(e),
        }
    }

    fn refuse(&mut self, error: PolicyFileError) {
        let message = error.to_string();
        if self.reported.as_deref() == Some(message.as_str()) {
            return;
        }
        tracing::warn!(
            target: "tower_mesh::authz::policy",
            error = %message,
            source = error.source_message().as_deref(),
            "policy reload refused; the last good policy stays in force",
        );
        self.reported = Some(message);
        let error = Arc::new(error);
        self.status.send_modify(|s| {
            s.refused += 1;
            s.last_error = Some(error);
        });
    }

    fn recover(&mut self) {
        if self.reported.take().is_some() {
            self.status.send_modify(|s| s.last_error = None);
        }
    }
}

impl PolicyFileError {
    fn source_message(&self) -> Option<String> {
        std::error::Error::source(self).map(ToString::to_string)
    }
}

/// Reads the file on the blocking pool.
async fn read(path: &Arc<Path>, options: &LoadOptions) -> Result<Arc<[u8]>, PolicyFileError> {
    let (file, max) = (path.clone(), options.max_file_len);
    let task = tokio::task::spawn_blocking(move || super::file::read(&file, max));
    match task.await {
        Ok(read) => read.map(Arc::from),
        // The read panicked or the runtime is shutting down: no content, as an I/O failure.
        Err(e) => Err(PolicyFileError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        }),
    }
}

fn load(path: &Path, content: &[u8], options: &LoadOptions) -> Result<Policy, PolicyFileError> {
    super::file::parse_bytes(content, options).map_err(|error| PolicyFileError::Invalid {
        path: path.to_path_buf(),
        error,
    })
}
