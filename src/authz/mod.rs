//! Authentication and authorization policy: who is calling, and may they.
//!
//! ```text
//!  inbound:  request ─▶ AuthzLayer ─▶ your server
//!                        │ strip identity headers from outside
//!                        │ normalize the path once (reject ambiguous input: 400)
//!                        │ authenticate: mTLS PeerIdentity, JWT bearer (invalid: 401)
//!                        │ evaluate the policy: deny rules, then allow rules, then deny
//!                        ▼ forward exactly the authorized path, identity as an extension
//!  outbound: request ─▶ egress policy ─▶ Balance  (a denied call is a typed error; nothing sent)
//! ```
//!
//! The principles are the project's SECURITY.md: mTLS authenticates, policy authorizes; deny
//! by default and fail closed; normalize once, authorize the normalized form and forward that
//! form or reject; match on segment and label boundaries; never trust an identity the peer
//! asserts in a header.
//!
//! - [`Attributes`]: what a policy judges about one request.
//! - [`RequestPrincipal`]: a caller authenticated by a JWT.
//! - [`policy`]: authorization rules (allow and deny), their TOML files and hot reload.
//! - [`jwt`]: bearer JWT authentication, and bearer tokens on outbound requests.
//! - [`AuthzLayer`]: the inbound layer around a server (400/401/403, gRPC statuses, the
//!   authorized path forwarded, [`AuthzDecision`] and the verified identities as extensions);
//!   [`ConnectionInfoLayer`] copies a connection's `PeerIdentity` and address into its requests.
//! - [`EgressLayer`]: the outbound layer around a client; a call the egress policy refuses fails
//!   with [`EgressDenied`] (or [`InvalidRequest`]) and nothing is sent.

mod attributes;
pub mod jwt;
mod layer;
mod normalize;
pub mod policy;

pub use self::attributes::{Attributes, HttpAttributes, RequestPrincipal};
pub use self::layer::{
    Authz, AuthzDecision, AuthzFuture, AuthzLayer, ConnectionInfo, ConnectionInfoLayer, Egress,
    EgressDenied, EgressFuture, EgressLayer, InvalidRequest,
};
pub use self::normalize::{
    Backslashes, DuplicateSlashes, EscapedSlashes, NormalizedPath, Normalizer, PathCase,
    PathParameters, PathRejectReason, PathRejected, normalize_host,
};
