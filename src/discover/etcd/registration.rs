use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;

use super::builder::key_prefix;
use super::client::{Cluster, b64};
use super::error::{ConfigError, EtcdError};
use super::proto::{Ignored, LeaseGrantResponse, LeaseKeepAliveLine};
use super::value::encode_value;
use crate::endpoint::Endpoint;

/// A service's own entry under a prefix, held under an etcd lease kept alive in the background.
///
/// [`register`](Registration::register) grants a lease of the given TTL, writes
/// `<prefix>/<addr>` with the value etcd's Go endpoints manager writes
/// (`{"Op":0,"Addr":...,"Metadata":{"weight":...}}`, see [`encode_value`]) attached to the
/// lease, and keeps the lease alive every third of its granted TTL from a spawned task. Should
/// the lease be lost anyway (etcd unreachable for longer than the TTL, or its data wiped), the
/// task grants a new lease and writes the key again as soon as etcd answers.
///
/// The entry goes away:
/// - at once, with [`withdraw`](Registration::withdraw) (revokes the lease, which deletes the
///   key) or by dropping the registration (the same revocation, sent from a spawned task, so a
///   runtime must still be running; otherwise the lease simply expires);
/// - after the TTL, with [`abandon`](Registration::abandon), which only stops the keep-alive,
///   or when the process dies.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mesh::discover::etcd::{Cluster, Registration};
/// use tower_mesh::endpoint::Endpoint;
///
/// # async fn f() -> Result<(), tower_mesh::discover::etcd::EtcdError> {
/// let cluster = Cluster::new(["http://127.0.0.1:2379"])?;
/// let me = Endpoint::new("10.0.0.7:8080".parse().unwrap()).with_zone("eu-west-1a");
/// let registration =
///     Registration::register(&cluster, "services/api", me, Duration::from_secs(10)).await?;
/// // ... serve ...
/// registration.withdraw().await?;
/// # Ok(())
/// # }
/// ```
pub struct Registration {
    cluster: Cluster,
    key: String,
    ttl: Duration,
    lease: Arc<Mutex<i64>>,
    task: Option<JoinHandle<()>>,
}

impl Registration {
    /// The longest TTL etcd grants (`MaxLeaseTTL`, 9,000,000,000 s).
    pub const MAX_TTL: Duration = Duration::from_secs(9_000_000_000);

    /// Publishes `endpoint` under `<prefix>/<addr>` with a lease of `ttl` (whole seconds,
    /// rounded up; from 1 s to [`MAX_TTL`](Self::MAX_TTL)), and starts keeping it alive.
    ///
    /// etcd may grant a longer TTL than asked (3.4 grants at least a few seconds, enough for an
    /// election); [`ttl`](Self::ttl) says what was granted. Must be called inside a Tokio
    /// runtime.
    pub async fn register(
        cluster: &Cluster,
        prefix: &str,
        endpoint: Endpoint,
        ttl: Duration,
    ) -> Result<Registration, EtcdError> {
        if ttl < Duration::from_secs(1) || ttl > Self::MAX_TTL {
            return Err(ConfigError::InvalidTtl(ttl).into());
        }
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut key = key_prefix(prefix)?;
        key.extend_from_slice(endpoint.addr().to_string().as_bytes());
        let entry = Entry {
            cluster: cluster.clone(),
            key: b64(&key),
            value: b64(&encode_value(&endpoint)),
            ttl_secs: secs,
        };
        let lease = Arc::new(Mutex::new(0));
        let granted = entry.publish(&lease).await?;
        let task = tokio::spawn(entry.keep_alive(granted, lease.clone()));
        Ok(Registration {
            cluster: cluster.clone(),
            // Built from a `&str` prefix and an address: valid UTF-8.
            key: String::from_utf8_lossy(&key).into_owned(),
            ttl: granted,
            lease,
            task: Some(task),
        })
    }

    /// The key written, `<prefix>/<addr>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The TTL etcd granted the first lease.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The ID of the lease currently holding the key (it changes if the lease had to be
    /// granted again).
    pub fn lease_id(&self) -> i64 {
        *lock(&self.lease)
    }

    /// Removes the entry now: stops the keep-alive and revokes the lease, which deletes the key.
    /// A lease that has already expired counts as withdrawn.
    pub async fn withdraw(mut self) -> Result<(), EtcdError> {
        if let Some(task) = self.task.take() {
            task.abort();
            // Wait until it has really stopped, so it cannot grant a new lease behind our back.
            let _ = task.await;
        }
        let id = self.lease_id();
        revoke(&self.cluster, id).await
    }

    /// Stops the keep-alive without withdrawing: the entry stays until its lease expires by
    /// itself, as if this process had died. For tests, and for handing the entry over to a
    /// replacement process that registers the same address.
    pub fn abandon(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(key = %self.key, "no runtime to revoke the lease; it will expire");
            return;
        };
        let cluster = self.cluster.clone();
        let lease = self.lease.clone();
        let key = self.key.clone();
        runtime.spawn(async move {
            let _ = task.await;
            let id = *lock(&lease);
            if let Err(e) = revoke(&cluster, id).await {
                tracing::warn!(%key, error = %e, "revoking the lease on drop failed; it will expire");
            }
        });
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("lease_id", &self.lease_id())
            .finish()
    }
}

/// What the background task needs to keep the entry in etcd.
struct Entry {
    cluster: Cluster,
    key: String,
    value: String,
    ttl_secs: u64,
}

impl Entry {
    /// Grants a lease and writes the key under it; returns the granted TTL. The lease ID is
    /// stored before the key is written, so a withdraw racing with this revokes the new lease.
    async fn publish(&self, lease: &Mutex<i64>) -> Result<Duration, EtcdError> {
        let (grant, url): (LeaseGrantResponse, _) = self
            .cluster
            .call_from(
                "/v3/lease/grant",
                &json!({ "TTL": self.ttl_secs.to_string() }),
            )
            .await?;
        if grant.id == 0 || grant.ttl <= 0 || !grant.error.is_empty() {
            return Err(EtcdError::Response {
                url: url.to_owned(),
                path: "/v3/lease/grant",
                reason: format!(
                    "no lease granted (id {}, ttl {}, error {:?})",
                    grant.id, grant.ttl, grant.error
                ),
            });
        }
        *lock(lease) = grant.id;
        let _: Ignored = self
            .cluster
            .call(
                "/v3/kv/put",
                &json!({ "key": self.key, "value": self.value, "lease": grant.id.to_string() }),
            )
            .await?;
        Ok(Duration::from_secs(grant.ttl.unsigned_abs()))
    }

    /// Renews the lease every third of its TTL; grants a new one and rewrites the key when the
    /// lease is gone. Retries quickly (within the TTL) while etcd cannot be reached.
    async fn keep_alive(self, granted: Duration, lease: Arc<Mutex<i64>>) {
        let mut period = third(granted);
        let mut delay = period;
        let mut lost = false;
        loop {
            tokio::time::sleep(delay).await;
            let result = if lost {
                self.publish(&lease).await.map(|ttl| {
                    tracing::info!(key = ?self.key, "lease was lost; registered again");
                    period = third(ttl);
                    lost = false;
                })
            } else {
                let id = *lock(&lease);
                self.cluster
                    .call::<LeaseKeepAliveLine>(
                        "/v3/lease/keepalive",
                        &json!({ "ID": id.to_string() }),
                    )
                    .await
                    .map(|answer| {
                        if answer.result.ttl <= 0 {
                            tracing::warn!(lease = id, "etcd no longer knows the lease");
                            lost = true;
                        }
                    })
            };
            delay = match result {
                Ok(()) if lost => Duration::ZERO,
                Ok(()) => period,
                Err(e) => {
                    tracing::warn!(error = %e, "etcd lease keep-alive failed; retrying");
                    RETRY.min(period)
                }
            };
        }
    }
}

async fn revoke(cluster: &Cluster, id: i64) -> Result<(), EtcdError> {
    match cluster
        .call::<Ignored>("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
        .await
    {
        Ok(_) => Ok(()),
        // gRPC NOT_FOUND: the lease has expired already, and the key with it.
        Err(EtcdError::Server { code: 5, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn third(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(100))
}

fn lock(lease: &Mutex<i64>) -> std::sync::MutexGuard<'_, i64> {
    // The guarded value is a plain integer: a panic elsewhere cannot leave it half-written.
    lease
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How soon a failed keep-alive is retried (at most a third of the TTL).
const RETRY: Duration = Duration::from_millis(500);
