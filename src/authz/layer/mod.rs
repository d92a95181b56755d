//! The authorization layers: [`AuthzLayer`] around the application's server, [`EgressLayer`]
//! around its clients (a [`Balance`](crate::balance::Balance), a hyper client).
//!
//! ```text
//!  TlsAcceptor ─▶ ConnectionInfoLayer ─▶ AuthzLayer ─▶ your service
//!   (PeerIdentity)  (PeerIdentity, SocketAddr     (400 / 401 / 403, or gRPC 3 / 16 / 7;
//!                    as request extensions)         forwards the authorized path only)
//!
//!  your code ─▶ EgressLayer ─▶ Balance ─▶ endpoint client
//!               (EgressDenied / InvalidRequest: nothing sent)
//! ```
//!
//! [`AuthzLayer`]'s docs hold the contract: what happens to each request, in order, the
//! responses to refusals, and the body type.

mod connection;
mod error;
mod inbound;
mod outbound;
mod request;
mod response;

pub use self::connection::{ConnectionInfo, ConnectionInfoLayer};
pub use self::error::{EgressDenied, InvalidRequest};
pub use self::inbound::{Authz, AuthzDecision, AuthzFuture, AuthzLayer};
pub use self::outbound::{Egress, EgressFuture, EgressLayer};

#[cfg(test)]
mod tests;
