//! What the tonic examples share: the generated `demo.catalog.Catalog` API, the catalog
//! server (tonic over `TlsAcceptor`, judged by `AuthzLayer`), the mesh client (a generated
//! tonic client over `EgressLayer` and `Balance`), the two policies and a throwaway PKI.
//!
//! ```text
//!  client: CatalogClient ─▶ EgressLayer ─▶ Balance (round robin) ─▶ HttpClient (mTLS, HTTP/2) ─┐
//!     ┌────────────────────────────────────────────────────────────────────────────────────────┘
//!     └─▶ server: TlsAcceptor ─▶ ConnectInfoAdapterLayer ─▶ AuthzLayer ─▶ CatalogServer
//! ```

// The messages and the code `tonic_build::manual` generated for them, shared with (and
// checked for freshness by) `tests/tonic.rs`.
#[allow(unreachable_pub)]
#[path = "../../tests/tonic/catalog.rs"]
pub mod catalog;
pub(crate) mod incoming;
pub(crate) mod pki;

use std::pin::Pin;

use http::Uri;
use tokio::net::TcpListener;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::{Request, Response, Status};
use tower::Layer;
use tower_mesh::BoxError;
use tower_mesh::authz::policy::{Policy, SharedPolicy};
use tower_mesh::authz::{AuthzLayer, Egress, EgressLayer};
use tower_mesh::balance::{Balance, RoundRobin};
use tower_mesh::client::{EndpointClient, HttpClient};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;
use tower_mesh::health::HttpStatus;
use tower_mesh::identity::PeerIdentity;
use tower_mesh::load::TrackBody;
use tower_mesh::tls::{TlsAcceptor, TlsConfig};

use self::catalog::catalog_client::CatalogClient;
use self::catalog::catalog_server::{Catalog, CatalogServer};
use self::catalog::{DeleteItemReply, DeleteItemRequest, GetItemRequest, Item, ListItemsRequest};
use self::incoming::{ConnectInfoAdapterLayer, incoming};

/// The identity every catalog replica proves.
pub(crate) const CATALOG: &str = "spiffe://example.org/ns/shop/sa/catalog";
/// The client's identity.
pub(crate) const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// What the catalog servers allow: `web` may read, list and delete items on `catalog.shop`.
/// Nobody may update one.
pub(crate) fn inbound_policy() -> Result<SharedPolicy, BoxError> {
    policy(&format!(
        r#"
        [[rules]]
        name = "web-uses-catalog"
        action = "allow"
        from.principals = ["{WEB}"]
        to.hosts = ["catalog.shop"]
        to.paths = [
            "/demo.catalog.Catalog/GetItem",
            "/demo.catalog.Catalog/ListItems",
            "/demo.catalog.Catalog/DeleteItem",
        ]
        "#
    ))
}

/// What `web` may call: reads, lists and updates of the catalog. Never a deletion.
pub(crate) fn egress_policy() -> Result<SharedPolicy, BoxError> {
    policy(
        r#"
        [[rules]]
        name = "catalog-reads-and-updates"
        action = "allow"
        to.hosts = ["catalog.shop"]
        to.methods = ["POST"]
        to.paths = [
            "/demo.catalog.Catalog/GetItem",
            "/demo.catalog.Catalog/ListItems",
            "/demo.catalog.Catalog/UpdateItem",
        ]
        "#,
    )
}

fn policy(toml: &str) -> Result<SharedPolicy, BoxError> {
    // In production: `SharedPolicy::watch_file` reloads it from a file.
    Ok(SharedPolicy::new(Policy::from_toml_str(toml)?))
}

/// Serves the catalog on `listener` with tonic, until the future is dropped or accepting
/// fails: each connection's mTLS handshake by `TlsAcceptor` (client certificates required),
/// then every call judged by `AuthzLayer` before the application sees it. A denied call is
/// answered `PERMISSION_DENIED`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsConfig,
    name: String,
) -> Result<(), BoxError> {
    let authz = AuthzLayer::new(inbound_policy()?).local_port(listener.local_addr()?.port());
    tonic::transport::Server::builder()
        // Outermost first: the verified identity into each request, then the policy.
        .layer(ConnectInfoAdapterLayer)
        .layer(authz)
        .add_service(CatalogServer::new(Replica { name }))
        .serve_with_incoming(incoming(listener, TlsAcceptor::new(tls)))
        .await?;
    Ok(())
}

/// The generated client over the mesh, as [`client`] builds it.
pub(crate) type MeshClient = CatalogClient<
    Egress<Balance<RoundRobin, EndpointClient<tonic::body::Body>, TrackBody<HttpStatus>>>,
>;

/// The generated tonic client over the mesh, as workload `tls` proves: every call checked by
/// the egress policy, then balanced (round robin) over `endpoints`, each reached over mTLS and
/// HTTP/2 by the crate's hyper client, which verifies that the server proves the endpoint's
/// identity.
pub(crate) fn client(tls: TlsConfig, endpoints: Vec<Endpoint>) -> Result<MeshClient, BoxError> {
    // Round robin keeps this demo's output even; `PeakEwma::new()` suits replicas whose speed
    // differs (it favours the fast ones, and tries a new one only when the others slow down).
    let balance = Balance::builder(RoundRobin::new())
        // A streamed response counts as in flight on its endpoint until it ends.
        .classify(TrackBody::new(HttpStatus))
        .build(
            Static::new(endpoints),
            HttpClient::builder().tls(tls).build()?,
        )?;
    let egress = EgressLayer::new(egress_policy()?).layer(balance);
    // Every call names the logical service (`:authority: catalog.shop`), which both policies
    // match; the balancer chooses the replica.
    Ok(CatalogClient::with_origin(
        egress,
        Uri::from_static("https://catalog.shop"),
    ))
}

/// The catalog application: answers with its name and the caller's verified identity.
struct Replica {
    name: String,
}

impl Replica {
    fn item(&self, id: u64, caller: &str) -> Item {
        Item {
            id,
            name: format!("item-{id}"),
            served_by: self.name.clone(),
            caller: caller.to_owned(),
        }
    }
}

/// The caller as the TLS handshake verified it (`AuthzLayer` judged the call by it too).
fn caller<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<PeerIdentity>()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[tonic::async_trait]
impl Catalog for Replica {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        Ok(Response::new(
            self.item(request.get_ref().id, &caller(&request)),
        ))
    }

    type ListItemsStream = Pin<Box<dyn Stream<Item = Result<Item, Status>> + Send>>;

    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<Self::ListItemsStream>, Status> {
        let count = request.get_ref().count;
        if count > MAX_LIST {
            return Err(Status::invalid_argument(format!(
                "count {count} is over {MAX_LIST}"
            )));
        }
        let caller = caller(&request);
        let items: Vec<_> = (0..u64::from(count))
            .map(|id| Ok(self.item(id, &caller)))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn update_item(&self, request: Request<Item>) -> Result<Response<Item>, Status> {
        // Never reached: the inbound policy allows no update.
        let caller = caller(&request);
        Ok(Response::new(Item {
            served_by: self.name.clone(),
            caller,
            ..request.into_inner()
        }))
    }

    async fn delete_item(
        &self,
        _request: Request<DeleteItemRequest>,
    ) -> Result<Response<DeleteItemReply>, Status> {
        Ok(Response::new(DeleteItemReply {}))
    }
}

/// The most items one `ListItems` call streams.
const MAX_LIST: u32 = 1000;
