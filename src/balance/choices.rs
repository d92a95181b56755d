//! Drawing distinct random candidates for power-of-d-choices pickers.
//!
//! Sources: Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (2001);
//! gRFC A48 for the choice count's cap of 10.

use super::seed::PickRng;

/// The most candidates a power-of-d-choices picker may draw (gRFC A48's cap).
pub(crate) const MAX_CHOICES: usize = 10;

/// Two distinct indices below `n` (`n >= 2`), uniformly among ordered pairs.
#[inline]
pub(crate) fn two(rng: &mut PickRng, n: usize) -> (usize, usize) {
    let a = rng.below(n);
    let mut b = rng.below(n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// `d` distinct indices below `n` (`2 <= d <= MAX_CHOICES`, `d <= n`) into `out`, by Floyd's
/// algorithm (Bentley and Floyd, "A sample of brilliance", CACM 1987): no allocation, `d`
/// draws.
pub(crate) fn distinct<'a>(
    rng: &mut PickRng,
    n: usize,
    d: usize,
    out: &'a mut [usize; MAX_CHOICES],
) -> &'a [usize] {
    let mut len = 0;
    for j in n - d..n {
        let t = rng.below(j + 1);
        let pick = if out[..len].contains(&t) { j } else { t };
        out[len] = pick;
        len += 1;
    }
    &out[..len]
}
