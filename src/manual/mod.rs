//! The manual: how to choose, configure and run tower-mesh, page by page.
//!
//! This module holds no code, only documentation. Every page's facts come from the code they
//! describe, and every code sample on them is a doctest, compiled (and, unless it needs the
//! network, run) by `cargo test --doc --all-features`.
//!
//! # Pages
//!
//! Choosing and tuning:
//!
//! - [`choosing_a_balancer`]: which picker when, with the measured costs.
//! - [`defaults`]: every default value in the crate, and where it comes from.
//! - [`health_and_retries`]: outlier detection, health checks, retries, budgets and hedging.
//!
//! Running it:
#![cfg_attr(
    all(feature = "tls", feature = "authz"),
    doc = "- [`security_model`]: what mTLS, identity and policy promise, and what they do not."
)]
#![cfg_attr(
    not(all(feature = "tls", feature = "authz")),
    doc = "- `security_model` (features `tls` and `authz`): what mTLS, identity and policy promise."
)]
#![cfg_attr(
    feature = "dns",
    doc = "- [`dns_discovery`]: endpoints from A/AAAA or SRV records."
)]
#![cfg_attr(
    not(feature = "dns"),
    doc = "- `dns_discovery` (feature `dns`): endpoints from A/AAAA or SRV records."
)]
#![cfg_attr(
    feature = "etcd",
    doc = "- [`etcd_discovery`]: endpoints from an etcd prefix, and registering your own service."
)]
#![cfg_attr(
    not(feature = "etcd"),
    doc = "- `etcd_discovery` (feature `etcd`): endpoints from an etcd prefix, and registration."
)]
#![cfg_attr(
    feature = "file",
    doc = "- [`file_discovery`]: endpoints from a JSON or TOML file, reloaded on change."
)]
#![cfg_attr(
    not(feature = "file"),
    doc = "- `file_discovery` (feature `file`): endpoints from a JSON or TOML file."
)]
#![cfg_attr(
    feature = "http",
    doc = "- [`hyper_client`]: a balanced, pooled hyper client, over mTLS with `tls`."
)]
#![cfg_attr(
    not(feature = "http"),
    doc = "- `hyper_client` (feature `http`): a balanced, pooled hyper client."
)]
#![cfg_attr(
    all(feature = "tls", feature = "authz"),
    doc = "- [`tonic`]: a generated tonic client over `Balance`, and a tonic server behind the inbound policy."
)]
#![cfg_attr(
    not(all(feature = "tls", feature = "authz")),
    doc = "- `tonic` (features `tls` and `authz`): tonic clients over `Balance`, tonic servers behind policy."
)]
#![cfg_attr(
    feature = "metrics",
    doc = "- [`metrics`]: the counters and gauges exported through the `metrics` crate."
)]
#![cfg_attr(
    not(feature = "metrics"),
    doc = "- `metrics` (feature `metrics`): the counters and gauges exported through `metrics`."
)]
//!
//! Testing your own code:
#![cfg_attr(
    feature = "test-util",
    doc = "- [`crate::test_util`]: a discovery source you drive by hand, endpoint clients with a set latency, an in-process test CA."
)]
#![cfg_attr(
    not(feature = "test-util"),
    doc = "- `test_util` (feature `test-util`): a discovery source you drive by hand, fixed-latency endpoint clients, an in-process test CA."
)]
//!
//! Pages that need a feature are compiled only with it; on docs.rs every page is present.

#[doc = include_str!("choosing_a_balancer.md")]
pub mod choosing_a_balancer {}

#[doc = include_str!("defaults.md")]
pub mod defaults {}

#[doc = include_str!("health_and_retries.md")]
pub mod health_and_retries {}

#[cfg(all(feature = "tls", feature = "authz"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "tls", feature = "authz"))))]
#[doc = include_str!("security_model.md")]
pub mod security_model {}

#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
#[doc = include_str!("dns_discovery.md")]
pub mod dns_discovery {}

#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
#[doc = include_str!("etcd_discovery.md")]
pub mod etcd_discovery {}

#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
#[doc = include_str!("file_discovery.md")]
pub mod file_discovery {}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc = include_str!("hyper_client.md")]
pub mod hyper_client {}

#[cfg(all(feature = "tls", feature = "authz"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "tls", feature = "authz"))))]
#[doc = include_str!("tonic.md")]
pub mod tonic {}

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc = include_str!("metrics.md")]
pub mod metrics {}
