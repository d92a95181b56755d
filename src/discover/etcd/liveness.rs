//! Telling a quiet watch from a dead one: the idle check and the silence bound.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::error::EtcdError;

/// How a watch stream is checked while nothing arrives on it; validated by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// Quiet time after which the member is asked for a cheap answer on a new connection.
    pub(crate) idle: Duration,
    /// The longest quiet time tolerated at all, however the checks go.
    pub(crate) max_silence: Duration,
}

/// Waits for `line`, the next line of the watch stream of the member at `url`.
///
/// After every `idle` of quiet it runs `probe` (while still waiting for the line, which wins if
/// it comes first); a failed probe ends the wait with [`EtcdError::WatchProbeFailed`]. After
/// `max_silence` of quiet it ends with [`EtcdError::WatchSilent`], even if every probe
/// succeeded: the member is alive, but this connection to it is not delivering anything, not
/// even the progress notifications the watch asked for.
///
/// Quiet time is counted from the call, so a caller that was busy elsewhere (waiting for the
/// balancer to take updates) is not mistaken for a silent stream.
pub(crate) async fn alive<T, P, F>(
    line: impl Future<Output = Result<T, EtcdError>>,
    mut probe: P,
    liveness: Liveness,
    url: &str,
) -> Result<T, EtcdError>
where
    P: FnMut() -> F,
    F: Future<Output = Result<(), EtcdError>>,
{
    let start = Instant::now();
    let give_up = start + liveness.max_silence;
    let mut next_probe = start + liveness.idle;
    tokio::pin!(line);
    loop {
        tokio::select! {
            biased;
            got = &mut line => return got,
            () = tokio::time::sleep_until(next_probe.min(give_up)) => {}
        }
        if Instant::now() >= give_up {
            return Err(EtcdError::WatchSilent {
                url: url.to_owned(),
                silent_for: liveness.max_silence,
            });
        }
        tokio::select! {
            biased;
            got = &mut line => return got,
            () = tokio::time::sleep_until(give_up) => {
                return Err(EtcdError::WatchSilent {
                    url: url.to_owned(),
                    silent_for: liveness.max_silence,
                });
            }
            checked = probe() => {
                if let Err(e) = checked {
                    return Err(EtcdError::WatchProbeFailed {
                        url: url.to_owned(),
                        idle: liveness.idle,
                        source: Box::new(e),
                    });
                }
            }
        }
        next_probe = Instant::now() + liveness.idle;
    }
}
