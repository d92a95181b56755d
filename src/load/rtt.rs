use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;

/// The time constant of a Peak-EWMA estimate: how long it takes to forget a peak. Never zero,
/// negative, NaN or infinite.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Decay {
    nanos: f64,
    /// `1 / nanos`: a multiply where a divide would cost 13 to 20 cycles of latency, on every
    /// estimate a pick reads.
    inv: f64,
}

/// A round-trip time used as an estimate (for example the estimate of an endpoint with no
/// samples yet). Never zero, negative, NaN or infinite.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Rtt {
    nanos: f64,
}

macro_rules! positive_duration {
    ($ty:ident, $what:literal, $err:ident) => {
        impl $ty {
            /// From a duration; zero is refused naming the value.
            pub fn new(d: Duration) -> Result<Self, ConfigError> {
                if d.is_zero() {
                    return Err(ConfigError::$err(format!("{d:?}")));
                }
                Ok($ty::from_nanos(d.as_secs_f64() * 1e9))
            }

            /// From seconds; zero, negative, NaN and infinite values are refused naming the value.
            pub fn from_secs_f64(secs: f64) -> Result<Self, ConfigError> {
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(ConfigError::$err(format!("{secs}s")));
                }
                Ok($ty::from_nanos(secs * 1e9))
            }

            /// As a duration.
            pub fn as_duration(self) -> Duration {
                Duration::from_secs_f64(self.nanos / 1e9)
            }

            /// In nanoseconds.
            pub fn as_nanos_f64(self) -> f64 {
                self.nanos
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", $what, self.as_duration())
            }
        }
    };
}

positive_duration!(Decay, "Decay", InvalidDecay);
positive_duration!(Rtt, "Rtt", InvalidRtt);

impl Decay {
    const fn from_nanos(nanos: f64) -> Self {
        Decay {
            nanos,
            inv: 1.0 / nanos,
        }
    }

    /// linkerd's default: 10 s.
    pub const DEFAULT: Decay = Decay::from_nanos(10e9);

    /// `e^(-elapsed/decay)`: the weight an estimate keeps after `elapsed_ns`.
    ///
    /// Between two requests to a busy endpoint `elapsed/decay` is tiny (1 ms against 10 s is
    /// 1e-4), and there the Taylor polynomial `1 - x + x²/2 - x³/6 + x⁴/24` is `e^(-x)` to
    /// within rounding: its truncation error is below `x⁵/120`, under 1e-17 for `x < 1e-3`,
    /// which is less than half an ulp of a result near 1. It costs a few multiply-adds where
    /// the library `exp` costs about 15 ns, a quarter of a Peak-EWMA request's overhead when
    /// it runs three times per request.
    #[inline]
    pub(crate) fn keep(self, elapsed_ns: f64) -> f64 {
        let x = elapsed_ns.max(0.0) * self.inv;
        if x < 1e-3 {
            1.0 - x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x * (1.0 / 24.0))))
        } else {
            (-x).exp()
        }
    }
}

impl Decay {
    /// `e^(-elapsed/decay)` to a relative error below 1e-9, without the library `exp`: for
    /// *comparing* estimates (a picker's cost), never for updating one.
    ///
    /// An endpoint a picker has been avoiding goes unsampled for seconds, so reading its
    /// estimate takes the library `exp` path of [`keep`](Self::keep), about 15 ns, on a fifth
    /// of all picks over ten endpoints (measured: a fifth of a Peak-EWMA request's cost). Here
    /// `e^(-x) = 2^(-k) · e^(-r·ln 2)` with `-x·log2 e = -k - r`, `k` an integer and
    /// `0 ≤ r < 1`; `2^(-k)` is built from its bits and `e^(-r·ln 2)` is its Taylor polynomial
    /// to degree 10, whose truncation error is below `(ln 2)^11 / 11! < 5e-10`.
    #[inline]
    pub(crate) fn keep_approx(self, elapsed_ns: f64) -> f64 {
        let x = elapsed_ns.max(0.0) * self.inv;
        if x < 1e-3 {
            return self.keep(elapsed_ns);
        }
        if x >= 700.0 {
            // e^-700 is 1e-304: nothing an estimate in nanoseconds can keep.
            return 0.0;
        }
        let t = x * std::f64::consts::LOG2_E;
        // 0 <= t < 1010, so the truncation is exact and fits.
        let k = t as i64;
        let y = -(t - k as f64) * std::f64::consts::LN_2;
        let mut p = 1.0;
        for n in (1..=10).rev() {
            p = 1.0 + p * y / f64::from(n);
        }
        // 2^(-k) for 0 <= k < 1010: a normal f64 with exponent field 1023 - k.
        let scale = f64::from_bits(((1023 - k) as u64) << 52);
        p * scale
    }
}

impl Rtt {
    const fn from_nanos(nanos: f64) -> Self {
        Rtt { nanos }
    }

    /// The default estimate for an endpoint with no samples: 30 ms, linkerd's.
    pub const DEFAULT: Rtt = Rtt::from_nanos(30e6);
}

impl Default for Decay {
    fn default() -> Self {
        Decay::DEFAULT
    }
}

impl Default for Rtt {
    fn default() -> Self {
        Rtt::DEFAULT
    }
}

/// The Peak-EWMA update for one sample, in nanoseconds.
///
/// `prior` is the estimate (`None` before any sample), `elapsed` the time since it was last
/// updated. A `lower_bound` sample (a request dropped before completing) only ever raises it.
pub(crate) fn update(
    prior: Option<f64>,
    sample: f64,
    elapsed: f64,
    decay: Decay,
    lower_bound: bool,
) -> Option<f64> {
    match prior {
        None if lower_bound => None,
        None => Some(sample),
        Some(p) if sample > p => Some(sample),
        Some(_) if lower_bound => None,
        Some(p) => {
            let keep = decay.keep(elapsed);
            Some(p * keep + sample * (1.0 - keep))
        }
    }
}
