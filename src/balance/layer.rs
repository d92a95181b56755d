use std::fmt;

use futures_core::Stream;
use tower::{Layer, Service};

use super::builder::Builder;
use super::pick::Pick;
use super::service::Balance;
use crate::discover::Update;
use crate::endpoint::Endpoint;
use crate::error::BoxError;
use crate::health::TransportErrors;

/// Builds a [`Balance`] around the `MakeService<Endpoint>` it is layered over.
///
/// Made by [`Builder::into_layer`], which checks the configuration; the layer holds only
/// configuration and a discovery source it clones each time it is applied (so the source must
/// be `Clone`, as [`Static`](crate::discover::Static) is).
///
/// # Panics
///
/// Applying the layer spawns the balancer's driver task, so, like `tower::buffer::Buffer`, it
/// panics outside a Tokio runtime. [`Builder::build`] returns an error instead.
///
/// # Examples
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mesh::balance::{Balance, RoundRobin};
/// use tower_mesh::discover::Static;
/// use tower_mesh::endpoint::Endpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// let layer = Balance::builder(RoundRobin::new())
///     .into_layer(Static::from_addrs(["127.0.0.1:1".parse()?]))?;
/// let make = tower::service_fn(|_: Endpoint| async {
///     Ok::<_, std::convert::Infallible>(tower::service_fn(|req: u32| async move {
///         Ok::<_, std::convert::Infallible>(req + 1)
///     }))
/// });
/// let svc = ServiceBuilder::new().layer(layer).service(make);
/// use tower::ServiceExt;
/// assert_eq!(svc.oneshot(41).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct BalanceLayer<P, D, C = TransportErrors> {
    builder: Builder<P, C>,
    discover: D,
}

impl<P, D, C> BalanceLayer<P, D, C> {
    pub(crate) fn from_builder(builder: Builder<P, C>, discover: D) -> Self {
        BalanceLayer { builder, discover }
    }
}

impl<P, D, E, M, S, C> Layer<M> for BalanceLayer<P, D, C>
where
    P: Pick,
    C: Clone,
    D: Stream<Item = Result<Update, E>> + Clone + Send + 'static,
    E: Into<BoxError> + Send + 'static,
    M: Service<Endpoint, Response = S> + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    type Service = Balance<P, S, C>;

    fn layer(&self, make: M) -> Balance<P, S, C> {
        match self.builder.clone().build(self.discover.clone(), make) {
            Ok(balance) => balance,
            // The configuration was validated when the layer was made, so only a missing
            // runtime can fail here; that is the documented panic.
            Err(e) => panic!("BalanceLayer applied outside a tokio runtime: {e}"),
        }
    }
}

impl<P, D: Clone, C: Clone> Clone for BalanceLayer<P, D, C> {
    fn clone(&self) -> Self {
        BalanceLayer {
            builder: self.builder.clone(),
            discover: self.discover.clone(),
        }
    }
}

impl<P: fmt::Debug, D: fmt::Debug, C> fmt::Debug for BalanceLayer<P, D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("builder", &self.builder)
            .field("discover", &self.discover)
            .finish()
    }
}
