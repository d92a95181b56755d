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
    /// `e^(-x) = 2^(-t)` with `t = x·log2 e` split as `t = k + j/8 + r` (`k`, `j` integers,
    /// `0 ≤ j < 8`, `0 ≤ r < 1/8`): `2^(-k)` is built from its bits, `2^(-j/8)` is one of eight
    /// constants, and `2^(-r) = e^(-r·ln 2)` is its Taylor polynomial to degree 6, whose
    /// truncation error is below `(ln 2 / 8)^7 / 7! < 8e-12`. Only multiplies and adds, no
    /// divide: with the degree-10 polynomial over all of `0 ≤ r < 1` it replaced, written with
    /// a divide per term, Peak-EWMA over 10,000 endpoints (where stale candidates are common)
    /// cost 131 ns per request in `cargo bench --bench balance`; with this, 114.
    #[inline]
    pub(crate) fn keep_approx(self, elapsed_ns: f64) -> f64 {
        let x = elapsed_ns.max(0.0) * self.inv;
        if x < 1e-3 {
            // Degree 2: the truncation error is below `x³/6 < 1.7e-10`. The usual case (an
            // endpoint sampled within the last 10 ms), so two multiply-adds fewer than `keep`
            // on each of a pick's two candidates.
            return 1.0 - x * (1.0 - 0.5 * x);
        }
        if x >= 700.0 {
            // e^-700 is 1e-304: nothing an estimate in nanoseconds can keep.
            return 0.0;
        }
        // 0 <= 8t < 8080, so the truncation is a floor and fits; m/8 is exact.
        let t = x * std::f64::consts::LOG2_E;
        let m = (t * 8.0) as i64;
        let k = m >> 3;
        let j = (m & 7) as usize;
        let r = (t - m as f64 * 0.125).max(0.0);
        let y = -r * std::f64::consts::LN_2;
        let p = 1.0
            + y * (1.0
                + y * (1.0 / 2.0
                    + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y * (1.0 / 720.0))))));
        // 2^(-k) for 0 <= k < 1010: a normal f64 with exponent field 1023 - k.
        let scale = f64::from_bits(((1023 - k) as u64) << 52);
        p * EXP2_NEG_EIGHTHS[j] * scale
    }
}

/// `2^(-j/8)` for `j` in `0..8`, each the `f64` nearest the exact value (checked against
/// `exp2` in the tests).
pub(crate) const EXP2_NEG_EIGHTHS: [f64; 8] = [
    1.0,
    0.917_004_043_204_671_2,
    0.840_896_415_253_714_5,
    0.771_105_412_703_970_4,
    std::f64::consts::FRAC_1_SQRT_2,
    0.648_419_777_325_504_8,
    0.594_603_557_501_360_5,
    0.545_253_866_332_628_8,
];

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
