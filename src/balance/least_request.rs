use super::choices::{self, MAX_CHOICES};
use super::pick::{EndpointView, Loads, Pick, PickRequest};
use super::seed::{PickRng, Seed};
use crate::error::ConfigError;

/// Least-request: the fewest requests in flight among `d` random candidates (power of d
/// choices).
///
/// Comparing two random endpoints and taking the less loaded one gives exponentially better
/// load spread than one random choice (Mitzenmacher, "The power of two choices in randomized
/// load balancing", 2001), while needing no global view and no coordination between clients.
/// gRPC's `least_request` policy (gRFC A48) uses the same rule with a configurable choice count;
/// so does this picker: `d` defaults to 2 and may be set from 2 to 10. Candidates are distinct;
/// with fewer endpoints than `d`, every endpoint is a candidate; ties go to the first drawn.
///
/// In-flight counts come from the balancer's per-endpoint [`Load`](crate::load::Load): no clock
/// is read. Choose it when request costs vary and latency is not known or not trusted; choose
/// [`PeakEwma`](super::PeakEwma) when endpoints differ in speed.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::LeastRequest;
///
/// let picker = LeastRequest::with_seed(7).choices(3)?;
/// # drop(LeastRequest::new());
/// # Ok::<(), tower_mesh::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LeastRequest {
    choices: usize,
    seed: Seed,
}

impl LeastRequest {
    /// Least-request with two choices, seeded from the operating system.
    pub fn new() -> Self {
        LeastRequest {
            choices: 2,
            seed: Seed::default(),
        }
    }

    /// Least-request with two choices and a fixed seed.
    pub fn with_seed(seed: u64) -> Self {
        LeastRequest {
            choices: 2,
            seed: Seed::fixed(seed),
        }
    }

    /// Sets the number of candidates drawn per pick, from 2 to 10; other values are refused
    /// naming the value.
    pub fn choices(mut self, d: usize) -> Result<Self, ConfigError> {
        if !(2..=MAX_CHOICES).contains(&d) {
            return Err(ConfigError::InvalidChoices(d));
        }
        self.choices = d;
        Ok(self)
    }
}

impl Default for LeastRequest {
    fn default() -> Self {
        LeastRequest::new()
    }
}

impl Pick for LeastRequest {
    type Table = ();
    type Cursor = PickRng;

    fn build(&self, _: &[EndpointView<'_>]) {}

    fn cursor(&self, clone: u64) -> PickRng {
        PickRng::new(self.seed.get(), clone)
    }
}

impl<Req> PickRequest<Req> for LeastRequest {
    #[inline]
    fn pick(&self, _: &(), rng: &mut PickRng, loads: &Loads<'_>, _: &Req) -> Option<usize> {
        let n = loads.len();
        match n {
            0 => None,
            1 => Some(0),
            _ if self.choices == 2 => {
                let (a, b) = choices::two(rng, n);
                Some(if loads.get(b).in_flight() < loads.get(a).in_flight() {
                    b
                } else {
                    a
                })
            }
            _ => {
                let mut buf = [0; MAX_CHOICES];
                let candidates: &[usize] = if n <= self.choices {
                    // Every endpoint, starting at a random one so ties spread.
                    let start = rng.below(n);
                    let count = n.min(MAX_CHOICES);
                    for (k, slot) in buf.iter_mut().take(count).enumerate() {
                        *slot = (start + k) % n;
                    }
                    &buf[..count]
                } else {
                    choices::distinct(rng, n, self.choices, &mut buf)
                };
                candidates
                    .iter()
                    .copied()
                    .min_by_key(|&i| loads.get(i).in_flight())
            }
        }
    }
}
