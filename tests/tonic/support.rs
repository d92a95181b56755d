//! The test's mesh: one trust domain with its PKI generated in-process, real tonic servers on
//! loopback behind `TlsAcceptor` and `AuthzLayer`, and the balancer a generated tonic client
//! runs over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::codegen::tokio_stream;
use tonic::{Request, Response, Status};
use tower_mesh::authz::policy::{Policy, SharedPolicy};
use tower_mesh::authz::{AuthzDecision, AuthzLayer};
use tower_mesh::identity::{PeerIdentity, TrustDomain};
use tower_mesh::tls::{Credentials, TlsAcceptor, TlsConfig, TrustBundle, TrustStore};

use crate::catalog::catalog_server::{Catalog, CatalogServer};
use crate::catalog::{DeleteItemReply, DeleteItemRequest, GetItemRequest, Item, ListItemsRequest};
use crate::incoming::{ConnectInfoAdapterLayer, incoming};
use crate::pki::Ca;

/// The identity every replica of the catalog proves.
pub(crate) const CATALOG: &str = "spiffe://td-a/ns/shop/sa/catalog";
/// The client's identity.
pub(crate) const WEB: &str = "spiffe://td-a/ns/shop/sa/web";
/// A workload the servers' policy does not allow.
pub(crate) const BATCH: &str = "spiffe://td-a/ns/shop/sa/batch";
/// Another workload of the trust domain: a valid certificate, but not the catalog's.
pub(crate) const IMPOSTOR: &str = "spiffe://td-a/ns/shop/sa/impostor";
/// The logical service name the client calls (the `:authority` of every request).
pub(crate) const AUTHORITY: &str = "catalog.shop";

/// What the catalog servers allow: `web` may read, list and delete items; nobody may update.
pub(crate) fn inbound_policy() -> SharedPolicy {
    policy(&format!(
        r#"
        [[rules]]
        name = "web-uses-catalog"
        action = "allow"
        from.principals = ["{WEB}"]
        to.hosts = ["{AUTHORITY}"]
        to.paths = [
            "/demo.catalog.Catalog/GetItem",
            "/demo.catalog.Catalog/ListItems",
            "/demo.catalog.Catalog/DeleteItem",
        ]
        "#
    ))
}

/// What the client may call: reads, lists and updates of the catalog; never a deletion.
pub(crate) fn egress_policy() -> SharedPolicy {
    policy(&format!(
        r#"
        [[rules]]
        name = "catalog-reads-and-updates"
        action = "allow"
        to.hosts = ["{AUTHORITY}"]
        to.methods = ["POST"]
        to.paths = [
            "/demo.catalog.Catalog/GetItem",
            "/demo.catalog.Catalog/ListItems",
            "/demo.catalog.Catalog/UpdateItem",
        ]
        "#
    ))
}

fn policy(toml: &str) -> SharedPolicy {
    SharedPolicy::new(Policy::from_toml_str(toml).unwrap())
}

/// Trust domain `td-a`, with its root generated in-process.
pub(crate) struct Mesh {
    ca: Ca,
}

impl Mesh {
    pub(crate) fn new() -> Mesh {
        Mesh {
            ca: Ca::root("td-a"),
        }
    }

    /// A strict configuration for workload `id` (client certificates required), offering
    /// `h2` by ALPN as gRPC over TLS does.
    pub(crate) fn tls(&self, id: &str) -> TlsConfig {
        let leaf = self.ca.spiffe_leaf(id);
        let bundle = TrustBundle::from_der([self.ca.cert.clone()]).unwrap();
        TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
            .credentials(Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap())
            .trust(TrustStore::new().with_spiffe(TrustDomain::parse("td-a").unwrap(), bundle))
            .alpn_protocols([b"h2".to_vec()])
            .handshake_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

/// One call the catalog application served.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) method: &'static str,
    /// The verified caller, as the application saw it.
    pub(crate) caller: Option<String>,
    /// The policy rule that allowed the call.
    pub(crate) rule: Option<String>,
}

/// A tonic server on loopback: `incoming` (TlsAcceptor) → a request counter →
/// `ConnectInfoAdapterLayer` → `AuthzLayer` → the generated `CatalogServer`.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// The identity its certificate proves.
    pub(crate) identity: &'static str,
    calls: Arc<Mutex<Vec<Call>>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(mesh: &Mesh, identity: &'static str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let replica = Replica {
            name: format!("{identity} at {addr}"),
            calls: calls.clone(),
        };
        let authz = AuthzLayer::new(inbound_policy()).local_port(addr.port());
        let count = requests.clone();
        let router = tonic::transport::Server::builder()
            .layer(tower::util::MapRequestLayer::new(
                move |req: http::Request<tonic::body::Body>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    req
                },
            ))
            .layer(ConnectInfoAdapterLayer)
            .layer(authz)
            .add_service(CatalogServer::new(replica));
        let incoming = incoming(listener, TlsAcceptor::new(mesh.tls(identity)));
        let task = tokio::spawn(async move {
            router.serve_with_incoming(incoming).await.unwrap();
        });
        Server {
            addr,
            identity,
            calls,
            requests,
            task,
        }
    }

    /// The calls the application served.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The HTTP/2 requests that reached the server, before any policy judged them.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The name the replica answers with in `Item::served_by`.
    pub(crate) fn name(&self) -> String {
        format!("{} at {}", self.identity, self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The catalog application: answers every call with its own name and the verified caller,
/// and records the call.
struct Replica {
    name: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Replica {
    fn record<T>(&self, method: &'static str, request: &Request<T>) -> String {
        let caller = request
            .extensions()
            .get::<PeerIdentity>()
            .map(ToString::to_string);
        let rule = request
            .extensions()
            .get::<AuthzDecision>()
            .and_then(AuthzDecision::rule)
            .map(ToString::to_string);
        self.calls.lock().unwrap().push(Call {
            method,
            caller: caller.clone(),
            rule,
        });
        caller.unwrap_or_default()
    }

    fn item(&self, id: u64, caller: &str) -> Item {
        Item {
            id,
            name: format!("item-{id}"),
            served_by: self.name.clone(),
            caller: caller.to_owned(),
        }
    }
}

#[tonic::async_trait]
impl Catalog for Replica {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        let caller = self.record("GetItem", &request);
        Ok(Response::new(self.item(request.get_ref().id, &caller)))
    }

    type ListItemsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Item, Status>> + Send>>;

    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<Self::ListItemsStream>, Status> {
        let caller = self.record("ListItems", &request);
        let (count, item) = (u64::from(request.get_ref().count), self.item(0, &caller));
        // One item at a time, as a slow producer would send them.
        let stream = futures_util::stream::unfold(0, move |id| {
            let item = Item {
                id,
                name: format!("item-{id}"),
                ..item.clone()
            };
            async move {
                if id == count {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((Ok(item), id + 1))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_item(&self, request: Request<Item>) -> Result<Response<Item>, Status> {
        let caller = self.record("UpdateItem", &request);
        let item = request.into_inner();
        Ok(Response::new(Item {
            served_by: self.name.clone(),
            caller,
            ..item
        }))
    }

    async fn delete_item(
        &self,
        request: Request<DeleteItemRequest>,
    ) -> Result<Response<DeleteItemReply>, Status> {
        self.record("DeleteItem", &request);
        Ok(Response::new(DeleteItemReply {}))
    }
}

/// Waits (at most 10 s) until `check` holds.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
