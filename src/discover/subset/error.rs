use thiserror::Error;

/// A [`Subsetting`](super::Subsetting) that cannot be built, naming the bad value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubsetError {
    /// The subset size was zero: a client must keep at least one endpoint.
    #[error("invalid subset size 0: must be at least 1")]
    ZeroSize,
    /// The client count was zero: the calling client is one of them.
    #[error("invalid client count 0: must be at least 1")]
    ZeroClients,
    /// The client index was not below the client count.
    #[error("invalid client index {index}: must be less than the client count {count}")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The client count given.
        count: usize,
    },
    /// The stable client id was empty, which would place every such client at one position.
    #[error("invalid client id \"\": must not be empty")]
    EmptyId,
}
