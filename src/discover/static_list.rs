use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::Update;
use crate::endpoint::Endpoint;

/// A fixed list of endpoints, delivered once as an [`Update::Reset`], after which the stream
/// ends and the balancer keeps the set for good.
///
/// `Static` is `Clone`, so one list can feed several balancers (and
/// [`BalanceLayer`](crate::balance::BalanceLayer)).
///
/// # Examples
///
/// ```
/// use tower_mesh::discover::Static;
///
/// let list = Static::from_addrs(["127.0.0.1:8080".parse().unwrap(), "127.0.0.1:8081".parse().unwrap()]);
/// assert_eq!(list.endpoints().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Static {
    endpoints: Option<Vec<Endpoint>>,
}

impl Static {
    /// A list of endpoints. When an address appears twice, the later entry wins.
    pub fn new(endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        Static {
            endpoints: Some(endpoints.into_iter().collect()),
        }
    }

    /// A list of addresses, each with weight 1 and no metadata.
    pub fn from_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Static::new(addrs.into_iter().map(Endpoint::new))
    }

    /// The endpoints this list will deliver (empty once delivered).
    pub fn endpoints(&self) -> &[Endpoint] {
        self.endpoints.as_deref().unwrap_or_default()
    }
}

impl Default for Static {
    /// An empty list: delivers one empty reset.
    fn default() -> Self {
        Static::new([])
    }
}

impl FromIterator<Endpoint> for Static {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        Static::new(iter)
    }
}

impl Stream for Static {
    type Item = Result<Update, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(
            self.get_mut()
                .endpoints
                .take()
                .map(|e| Ok(Update::Reset(e))),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.endpoints.is_some());
        (n, Some(n))
    }
}
