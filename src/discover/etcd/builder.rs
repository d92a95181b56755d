use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::client::Cluster;
use super::error::ConfigError;
use super::liveness::Liveness;
use super::watcher::{Etcd, Watcher};

/// Configures an [`Etcd`] discovery source.
///
/// # Defaults
///
/// - reconnect backoff: 100 ms doubling to 10 s, with jitter (each delay uniform in its upper
///   half), so watchers cut off together by a restart do not return together. Reset to the
///   minimum once etcd answers again.
/// - watch liveness: a check after 30 s of quiet on the watch, and at most 25 min of silence;
///   see [`watch_liveness`](Builder::watch_liveness).
/// - seed for the jitter: from the operating system.
#[derive(Debug, Clone)]
pub struct Builder {
    cluster: Cluster,
    prefix: String,
    backoff: Backoff,
    liveness: Liveness,
    seed: Option<u64>,
}

impl Builder {
    /// The default first reconnect delay.
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
    /// The default longest reconnect delay.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
    /// The default quiet time on the watch after which the member is checked: long enough that
    /// the check (one small read per quiet watcher) costs etcd nothing noticeable, short enough
    /// that a dead member is left within well under a minute (this plus the request timeout).
    pub const DEFAULT_WATCH_IDLE: Duration = Duration::from_secs(30);
    /// The default longest silence on the watch: etcd sends a progress notification to a quiet
    /// watch that asked for them after one or two of its progress intervals (10 min by default,
    /// plus up to 10 % jitter: `--experimental-watch-progress-notify-interval`), so 25 min of
    /// nothing at all means the stream no longer delivers.
    pub const DEFAULT_WATCH_MAX_SILENCE: Duration = Duration::from_secs(25 * 60);

    pub(crate) fn new(cluster: Cluster, prefix: String) -> Self {
        Builder {
            cluster,
            prefix,
            backoff: Backoff {
                min: Self::DEFAULT_BACKOFF_MIN,
                max: Self::DEFAULT_BACKOFF_MAX,
            },
            liveness: Liveness {
                idle: Self::DEFAULT_WATCH_IDLE,
                max_silence: Self::DEFAULT_WATCH_MAX_SILENCE,
            },
            seed: None,
        }
    }

    /// Sets the reconnect backoff: the first delay and the longest; `0 < min <= max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff { min, max };
        self
    }

    /// Sets how a quiet watch is told from a dead one; `0 < idle <= max_silence`.
    ///
    /// After `idle` with nothing on the watch stream, the member the watch is on is sent a
    /// cheap linearizable read (a `count_only` range of the prefix, limit 1) on a new
    /// connection, within the cluster's request timeout; if that fails, the watch is dropped
    /// and reopened, on the next member if need be, resuming after the last revision seen. The
    /// check is repeated after every further `idle` of quiet. After `max_silence` with nothing
    /// at all on the stream, not even one of the progress notifications the watch asks etcd
    /// for, the watch is reopened even though the checks succeed: the member is fine, but this
    /// connection no longer delivers. Lower `max_silence` along with etcd's
    /// `--experimental-watch-progress-notify-interval` (to a bit over twice that interval).
    pub fn watch_liveness(mut self, idle: Duration, max_silence: Duration) -> Self {
        self.liveness = Liveness { idle, max_silence };
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
        let Liveness { idle, max_silence } = self.liveness;
        if idle.is_zero() || idle > max_silence {
            return Err(ConfigError::InvalidWatchLiveness { idle, max_silence });
        }
        let prefix = key_prefix(&self.prefix)?;
        let rng = match self.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::seed_from_u64(rand::rng().random()),
        };
        let watcher = Watcher::new(self.cluster, prefix, self.backoff, self.liveness, rng);
        Ok(Etcd::idle(watcher))
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
