use super::choices;
use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{PickRng, Seed};
use crate::load::{Decay, Load, Rtt};

/// Peak-EWMA: of two random endpoints, the one with the lower expected cost
/// `rtt_estimate × (in_flight + 1)`.
///
/// The latency-aware balancer of Finagle, linkerd and tower: each endpoint's round-trip time is
/// tracked as a Peak-EWMA (a slow response raises the estimate at once; fast ones bring it down
/// over the `decay` time constant; see [`load`](crate::load)), and multiplied by the requests
/// already waiting there, so the estimate predicts how long a new request would take. Power of
/// two choices (Mitzenmacher) over that cost spreads load without herding every client onto the
/// single fastest endpoint.
///
/// Beyond tower's version, the estimate also reads requests still in flight: when the endpoint
/// has been busy without finishing anything for longer than the estimate (its
/// [`stall`](Load::stall)), the stall is used, so an endpoint that stops answering is avoided
/// before its first slow response arrives. The clock is read once per request, and once at completion.
///
/// # Tail latency: pair it with hedging
///
/// Two goals pull against each other when one endpoint slows down and then recovers: every
/// request sent to a suspect to find out whether it recovered may be a request that waits on
/// it, but an estimate that no fresh sample refreshes keeps a recovered endpoint out for as
/// long as the decay takes to forget the slow peak (tens of seconds for 100 ms at the default
/// 10 s decay). This picker's answer is to make looking cheap rather than rare: in front of
/// the balancer, [`retry`](crate::retry) with a percentile
/// [`Hedge`](crate::retry::Hedge) sends any request still unanswered at the fleet's p90 to a
/// second endpoint, so the one that reached the suspect costs its caller one p90 at most, and
/// the decay can be short (1 s), so a recovered endpoint is tried again within a second or two
/// and earns its share back at once. Meanwhile the stall evidence above keeps a suspect that
/// is still slow out as soon as one request waits on it. `examples/tail_latency.rs` measures
/// both set-ups against tower's p2c (the README has the table): the hedged one loses no
/// request in the slow window and has the slow backend back above 5 % within 2 s of its
/// recovery.
///
/// ```
/// use std::time::Duration;
/// use tower_mesh::balance::PeakEwma;
/// use tower_mesh::load::Decay;
/// use tower_mesh::retry::{AssumeIdempotent, Hedge, RetryLayer};
///
/// let picker = PeakEwma::new().decay(Decay::new(Duration::from_secs(1))?);
/// let hedge = Hedge::percentile(90.0, Duration::from_millis(5), Duration::from_millis(50))?;
/// let retry = RetryLayer::new(AssumeIdempotent::new()).hedge(hedge);
/// // With `use tower::Layer`:
/// // let service = retry.layer(Balance::builder(picker).build(discover, make_client)?);
/// # drop((picker, retry));
/// # Ok::<(), tower_mesh::BoxError>(())
/// ```
///
/// # Defaults
///
/// - `default_rtt`: 30 ms (linkerd's), the estimate of an endpoint with no samples yet.
/// - `decay`: 10 s (linkerd's), how long a peak takes to be forgotten.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower_mesh::balance::PeakEwma;
/// use tower_mesh::load::{Decay, Rtt};
///
/// let picker = PeakEwma::with_seed(1)
///     .default_rtt(Rtt::new(Duration::from_millis(5))?)
///     .decay(Decay::from_secs_f64(2.0)?);
/// # drop(PeakEwma::new());
/// # Ok::<(), tower_mesh::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeakEwma {
    default_rtt: Rtt,
    decay: Decay,
    seed: Seed,
}

impl PeakEwma {
    /// Peak-EWMA with the defaults, seeded from the operating system.
    pub fn new() -> Self {
        PeakEwma {
            default_rtt: Rtt::DEFAULT,
            decay: Decay::DEFAULT,
            seed: Seed::default(),
        }
    }

    /// Peak-EWMA with the defaults and a fixed seed.
    pub fn with_seed(seed: u64) -> Self {
        PeakEwma {
            seed: Seed::fixed(seed),
            ..PeakEwma::new()
        }
    }

    /// Sets the estimate used for an endpoint with no samples yet.
    pub fn default_rtt(mut self, rtt: Rtt) -> Self {
        self.default_rtt = rtt;
        self
    }

    /// Sets the decay time constant.
    pub fn decay(mut self, decay: Decay) -> Self {
        self.decay = decay;
        self
    }

    /// The cost of sending one more request to an endpoint with this load, at `now`.
    #[inline]
    pub fn cost(&self, load: &Load, now: tokio::time::Instant) -> f64 {
        self.cost_at(load, load.since_epoch(now))
    }

    /// [`cost`](Self::cost) at `now` in `load`'s time (nanoseconds since its epoch).
    #[inline]
    fn cost_at(&self, load: &Load, now: u64) -> f64 {
        let rtt = load
            .rtt_estimate_approx(now, self.decay)
            .unwrap_or(self.default_rtt.as_nanos_f64());
        let in_flight = load.in_flight();
        let rtt = if in_flight > 0 {
            rtt.max(load.stall_at(now))
        } else {
            rtt
        };
        rtt * (in_flight as f64 + 1.0)
    }
}

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma::new()
    }
}

impl Pick for PeakEwma {
    type Table = ();
    type Cursor = PickRng;

    fn build(&self, _: &[EndpointView<'_>]) {}

    fn cursor(&self, clone: u64) -> PickRng {
        PickRng::new(self.seed.get(), clone)
    }

    fn rtt_decay(&self) -> Option<Decay> {
        Some(self.decay)
    }
}

impl<Req> PickRequest<Req> for PeakEwma {
    #[inline]
    fn pick(&self, _: &(), rng: &mut PickRng, loads: &Loads<'_>, _: &Req) -> Option<usize> {
        let n = loads.len();
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = choices::two(rng, n);
                let (la, lb) = (loads.get(a), loads.get(b));
                let (na, nb) = match (loads.nanos(la), loads.nanos(lb)) {
                    (Some(na), Some(nb)) => (na, nb),
                    // Loads made without a time (a picker used on its own): one clock read.
                    _ => {
                        let now = tokio::time::Instant::now();
                        (la.since_epoch(now), lb.since_epoch(now))
                    }
                };
                let (ca, cb) = (self.cost_at(la, na), self.cost_at(lb, nb));
                Some(if cb < ca { b } else { a })
            }
        }
    }
}
