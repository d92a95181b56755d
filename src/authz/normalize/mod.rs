//! The one path normalizer of the crate: what a policy judges and what the server behind us
//! receives are the same string, or the request is refused.
//!
//! [`Normalizer`] documents the algorithm and its sources: RFC 3986 §2.3 (unreserved
//! characters), §5.2.4 (`remove_dot_segments`) and §6.2.2 (syntax-based normalization); the
//! Istio advisories CVE-2021-31920 (multiple and escaped slashes) and CVE-2021-39156
//! (fragments), Istio's path normalization options (`BASE`, `MERGE_SLASHES`,
//! `DECODE_AND_MERGE_SLASHES`), and Envoy's `path_with_escaped_slashes_action`.
//! [`normalize_host`] canonicalizes hosts; [`NormalizedPath`] is the result, [`PathRejected`]
//! the refusal.

mod error;
mod host;
mod normalizer;
mod options;
mod path;

pub use self::error::{PathRejectReason, PathRejected};
pub use self::host::normalize_host;
pub use self::normalizer::Normalizer;
pub use self::options::{Backslashes, DuplicateSlashes, EscapedSlashes, PathCase, PathParameters};
pub use self::path::NormalizedPath;

#[cfg(test)]
mod tests;
