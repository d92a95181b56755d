//! The hyper client (feature `http`): a `MakeService<Endpoint>` building one pooled
//! hyper-util client per endpoint, HTTP/1.1 and HTTP/2, over plain TCP or (feature `tls`)
//! mutual TLS with workload identity.
//!
//! ```text
//!  Balance ──pick──▶ EndpointClient (one endpoint) ──▶ hyper-util pool ──▶ TCP [──▶ TLS: server proves Endpoint::identity()]
//!     ▲                   ▲ made per endpoint by
//!  discovery         HttpClient: MakeService<Endpoint>, pools shared by its clones,
//!                    keyed by (address, expected identity, protocol)
//! ```
//!
//! A full client is a few lines: discovery, a picker, and [`HttpClient`] as the balancer's
//! `MakeService`. Each [`EndpointClient`] dials its endpoint's address whatever the request
//! URI says, so requests name the service logically (`http://payments/charge`) or by path
//! alone (`/charge`); see [`EndpointClient`] for the `Host` header and scheme rules.
//!
//! What it promises:
//!
//! - **A connection verified for one identity is never reused for another.** Pools are keyed
//!   by endpoint address, the endpoint's expected identity and the protocol; clones of one
//!   `HttpClient` share them, so an endpoint discovered again reuses its warm connections.
//! - **The server proves its identity before a request byte is sent** (through
//!   [`TlsConnectLayer`](crate::tls::TlsConnectLayer)); a wrong identity fails the
//!   connection, and the request with a [`ConnectError`].
//! - **Connection failures are the endpoint's errors**: they fail the request that needed the
//!   connection, so [`TransportErrors`](crate::health::TransportErrors) (the balancer's
//!   default classifier) and outlier detection count them against that endpoint.
//! - **No plaintext fallback**: a TLS client only speaks TLS, and an `https` URI on a client
//!   without TLS is refused ([`HttpsWithoutTls`]).
//!
//! Connections are made lazily, by the first request that needs one, so an endpoint whose
//! server fails the handshake (the wrong identity, an expired certificate) stays in the
//! balancer's set and fails each request picked for it, sending nothing. Turn on
//! [outlier detection](crate::balance::Builder::outlier_detection) (the
//! [`Mesh`](crate::mesh::Mesh) builder does) so such an endpoint is ejected after a few
//! failures, and put a [retry](crate::retry) layer in front so those requests go elsewhere.
//!
//! HTTP/2 over TLS is chosen by ALPN ([`Protocol::Negotiate`], RFC 7301) from what the
//! [`TlsConfig`](crate::tls::TlsConfig) offers, so offer `h2` there
//! ([`alpn_protocols`](crate::tls::TlsConfigBuilder::alpn_protocols)); in plaintext HTTP/2 needs
//! prior knowledge ([`Protocol::Http2`], RFC 9113 §3.3). Connection pooling, HTTP/1.1 and
//! HTTP/2 are hyper-util's `client::legacy::Client`, one per pool key.
//!
//! Over TLS, every response carries the server's verified
//! [`PeerIdentity`](crate::identity::PeerIdentity) in its extensions, and every response
//! carries hyper-util's `HttpInfo` (local and remote socket addresses).
//!
//! # Examples
//!
//! Over mutual TLS, with Peak-EWMA balancing whose in-flight count lasts until each response
//! body has been read ([`TrackBody`](crate::load::TrackBody)):
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn run(tls: tower_mesh::tls::TlsConfig) -> Result<(), tower_mesh::BoxError> {
//! use http_body_util::{BodyExt, Empty};
//! use bytes::Bytes;
//! use tower::ServiceExt;
//! use tower_mesh::balance::{Balance, PeakEwma};
//! use tower_mesh::client::HttpClient;
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::health::{HttpStatus, OutlierDetection};
//! use tower_mesh::load::TrackBody;
//!
//! let id = "spiffe://prod.example/ns/payments/sa/api";
//! let endpoints = Static::new([
//!     Endpoint::new("10.0.0.1:8443".parse()?).with_identity(id),
//!     Endpoint::new("10.0.0.2:8443".parse()?).with_identity(id),
//! ]);
//! let client = Balance::builder(PeakEwma::new())
//!     .classify(TrackBody::new(HttpStatus))
//!     .outlier_detection(OutlierDetection::new())
//!     .build(endpoints, HttpClient::builder().tls(tls).build()?)?;
//!
//! let request = http::Request::get("http://payments/balance").body(Empty::<Bytes>::new())?;
//! let response = client.oneshot(request).await?;
//! let body = response.into_body().collect().await?.to_bytes(); // in flight until here
//! # drop(body); Ok(()) }
//! ```

mod builder;
mod connect;
mod error;
mod make;
mod service;

pub use self::builder::{HttpClientBuilder, Protocol};
pub use self::error::{
    AlpnMismatch, ClientConfigError, ConnectError, ConnectTimeout, HttpsWithoutTls,
};
pub use self::make::HttpClient;
pub use self::service::{EndpointClient, ResponseFuture};

#[cfg(test)]
mod tests;
