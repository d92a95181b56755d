//! A tonic server behind mTLS and an authorization policy: tower-mesh's `TlsAcceptor` runs
//! each connection's handshake, and `AuthzLayer` judges every call by the caller's verified
//! SPIFFE ID before the generated `CatalogServer` sees it.
//!
//! ```text
//! cargo run --example tonic_server --features tls,authz
//! ```
//!
//! starts the server on a loopback port, serves one client (a generated tonic client in this
//! process: an allowed call and a denied one), prints what happened and exits. With
//! `--serve [ADDR]` it keeps serving on `ADDR` (default `127.0.0.1:50051`) until stopped
//! (Ctrl-C), and writes the client's credentials for `tonic_client` (it prints the command):
//!
//! ```text
//! cargo run --example tonic_server --features tls,authz -- --serve
//! ```
//!
//! The server itself is `tonic_common::serve` (`examples/tonic_common/mod.rs`, shared with
//! `tonic_client`, which starts three of them):
//!
//! ```text
//!  tonic::transport::Server::builder()
//!      .layer(ConnectInfoAdapterLayer)   // the connection's verified PeerIdentity into each call
//!      .layer(AuthzLayer::new(policy))   // deny by default: PERMISSION_DENIED
//!      .add_service(CatalogServer::new(replica))
//!      .serve_with_incoming(incoming(listener, TlsAcceptor::new(tls)))
//! ```
//!
//! `incoming` (`examples/tonic_common/incoming.rs`) runs the mTLS handshakes and hands tonic
//! the connections with their identities as tonic's connect info.

// Shared with the other tonic example, which uses other parts of it.
#[allow(dead_code)]
#[cfg(all(feature = "authz", feature = "tls"))]
mod tonic_common;

#[cfg(not(all(feature = "authz", feature = "tls")))]
fn main() {
    eprintln!("this example needs: cargo run --example tonic_server --features tls,authz");
}

#[cfg(all(feature = "authz", feature = "tls"))]
#[tokio::main]
async fn main() -> Result<(), tower_mesh::BoxError> {
    use tokio::net::TcpListener;
    use tower_mesh::endpoint::Endpoint;

    use tonic_common::catalog::{GetItemRequest, Item};
    use tonic_common::{CATALOG, WEB, pki};

    let mut args = std::env::args().skip(1);
    let serve_on = match args.next().as_deref() {
        None => None,
        Some("--serve") => Some(args.next().unwrap_or_else(|| "127.0.0.1:50051".to_owned())),
        Some(other) => {
            return Err(format!(
                "unknown argument {other:?}; usage: tonic_server [--serve [ADDR]]"
            )
            .into());
        }
    };
    // A throwaway PKI for trust domain example.org.
    let pki = pki::Pki::new()?;

    if let Some(addr) = serve_on {
        let listener = TcpListener::bind(&addr).await?;
        let addr = listener.local_addr()?;
        let dir = std::env::temp_dir().join("tower-mesh-tonic-demo");
        pki.write(&dir, "web", WEB)?;
        println!("serving {CATALOG} on {addr}; Ctrl-C stops");
        println!(
            "call it: cargo run --example tonic_client --features tls,authz -- {addr} {}",
            dir.display()
        );
        let name = format!("tonic_server ({addr})");
        return tokio::select! {
            served = tonic_common::serve(listener, pki.tls(CATALOG)?, name) => served,
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
    }

    // Serve one client, in this process.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(tonic_common::serve(
        listener,
        pki.tls(CATALOG)?,
        format!("tonic_server ({addr})"),
    ));
    println!("serving {CATALOG} on {addr}");

    let endpoint = Endpoint::new(addr).with_identity(CATALOG);
    let mut client = tonic_common::client(pki.tls(WEB)?, vec![endpoint])?;
    let item = client
        .get_item(GetItemRequest { id: 7 })
        .await?
        .into_inner();
    println!(
        "web GetItem(7) -> {} from {}; the server saw caller {}",
        item.name, item.served_by, item.caller
    );
    let update = Item {
        id: 7,
        name: "renamed".into(),
        ..Item::default()
    };
    match client.update_item(update).await {
        Ok(_) => return Err("the server's policy allows no update".into()),
        Err(status) => println!(
            "web UpdateItem -> {:?}: {} (the server's policy)",
            status.code(),
            status.message()
        ),
    }
    server.abort();
    Ok(())
}
