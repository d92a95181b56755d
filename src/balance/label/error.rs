//! Errors of label routing.

use std::fmt;
use std::sync::Arc;

/// A request selected a label value that no ready endpoint carries, and the
/// [`Fallback`](super::Fallback) did not route it elsewhere.
///
/// Returned (boxed) by the balancer's call; downcast to read the key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatchingEndpoints {
    key: Arc<str>,
    value: String,
    fallback: Option<String>,
}

impl NoMatchingEndpoints {
    pub(super) fn new(key: Arc<str>, value: String, fallback: Option<String>) -> Self {
        NoMatchingEndpoints {
            key,
            value,
            fallback,
        }
    }

    /// The label key routed by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value the request selected.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The fallback value that was tried too, when the fallback is
    /// [`Fallback::Value`](super::Fallback::Value).
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }
}

impl fmt::Display for NoMatchingEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no endpoints with label {}={:?}", self.key, self.value)?;
        if let Some(fallback) = &self.fallback {
            write!(f, " or fallback {}={fallback:?}", self.key)?;
        }
        Ok(())
    }
}

impl std::error::Error for NoMatchingEndpoints {}

/// A label route configuration that cannot work, naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelRouteError {
    /// The label key was empty or only whitespace: no label a user means can have that name.
    #[error("invalid label key {0:?}: must not be empty or only whitespace")]
    InvalidKey(String),
}
