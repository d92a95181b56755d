//! An mTLS server guarded by an authorization policy, and two clients calling it.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example authz_server --features authz,tls
//! ```
//!
//! What it shows, top to bottom:
//!
//! 1. a throwaway PKI for trust domain `example.org` (rcgen, in memory): one root, and SPIFFE
//!    certificates for the server, for `web` and for `batch`;
//! 2. a policy: `web` may `GET` anything under `/api/`, nobody else may do anything;
//! 3. the server: each TCP connection goes through `TlsAcceptor` (mTLS, client certificate
//!    required), then `ConnectionInfoLayer` copies the verified identity into every request,
//!    and `AuthzLayer` judges each request before the application sees it;
//! 4. `web` and `batch` send a few requests over `TlsConnectLayer`; the output shows who got
//!    what, and which path the application received.

#[cfg(not(all(feature = "authz", feature = "tls")))]
fn main() {
    eprintln!("this example needs: cargo run --example authz_server --features authz,tls");
}

#[cfg(all(feature = "authz", feature = "tls"))]
#[tokio::main]
async fn main() -> Result<(), tower_mesh::BoxError> {
    use std::sync::Arc;

    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tower::{Layer, ServiceBuilder, ServiceExt};
    use tower_mesh::authz::policy::{Policy, SharedPolicy};
    use tower_mesh::authz::{AuthzDecision, AuthzLayer, ConnectionInfoLayer};
    use tower_mesh::endpoint::Endpoint;
    use tower_mesh::identity::{PeerIdentity, TrustDomain};
    use tower_mesh::tls::{
        Credentials, TlsAcceptor, TlsConfig, TlsConnectLayer, TrustBundle, TrustStore,
    };

    // 1. The PKI.
    let pki = pki::Pki::new()?;
    let config = |id: &str| -> Result<TlsConfig, tower_mesh::BoxError> {
        let (chain, key) = pki.leaf(id)?;
        let bundle = TrustBundle::from_der([pki.root()])?;
        Ok(
            TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
                .credentials(Credentials::from_der(chain, key)?)
                .trust(TrustStore::new().with_spiffe(TrustDomain::parse("example.org")?, bundle))
                .build()?,
        )
    };
    const SERVER: &str = "spiffe://example.org/ns/shop/sa/api";
    const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
    const BATCH: &str = "spiffe://example.org/ns/shop/sa/batch";

    // 2. The policy. In production: `SharedPolicy::watch_file` reloads it from a file.
    let policy = SharedPolicy::new(Policy::from_toml_str(&format!(
        r#"
        [[rules]]
        name = "web-reads-api"
        action = "allow"
        from.principals = ["{WEB}"]
        to.methods = ["GET"]
        to.paths = ["/api/**"]
        "#
    ))?);

    // 3. The server.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let authz = AuthzLayer::new(policy).local_port(addr.port());
    let acceptor = TlsAcceptor::new(config(SERVER)?);
    // The application: answers with who called, which path it got, and which rule allowed it.
    let app = tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        let who = req
            .extensions()
            .get::<PeerIdentity>()
            .map(|p| p.to_string());
        let rule = req
            .extensions()
            .get::<AuthzDecision>()
            .and_then(|d| d.rule())
            .cloned();
        let body = format!(
            "{} got {} (rule {:?})",
            who.unwrap_or_default(),
            req.uri(),
            rule
        );
        Ok::<_, std::convert::Infallible>(http::Response::new(body))
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(stream) = acceptor.clone().oneshot(tcp).await else {
                continue;
            };
            let service = ServiceBuilder::new()
                .layer(ConnectionInfoLayer::from_tls_stream(&stream))
                .layer(authz.clone())
                .service(app);
            let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });

    // 4. The clients.
    for (client, method, path) in [
        (WEB, "GET", "/api/items"),
        (WEB, "GET", "/api//items/../orders"),
        (WEB, "DELETE", "/api/items"),
        (WEB, "GET", "/api%2F..%2Fadmin"),
        (BATCH, "GET", "/api/items"),
    ] {
        let tcp = tower::service_fn(|ep: Endpoint| TcpStream::connect(ep.addr()));
        let stream = TlsConnectLayer::new(config(client)?)
            .layer(tcp)
            .oneshot(Endpoint::new(addr).with_identity(SERVER))
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "api.shop")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let name = client.rsplit('/').next().unwrap_or(client);
        println!(
            "{name:>5} {method:<6} {path:<24} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// A throwaway PKI, generated in memory.
#[cfg(all(feature = "authz", feature = "tls"))]
mod pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    pub(crate) struct Pki {
        params: CertificateParams,
        key: KeyPair,
        root: CertificateDer<'static>,
    }

    impl Pki {
        pub(crate) fn new() -> Result<Pki, rcgen::Error> {
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "example.org root");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate()?;
            let root = params.self_signed(&key)?.der().clone();
            Ok(Pki { params, key, root })
        }

        pub(crate) fn root(&self) -> CertificateDer<'static> {
            self.root.clone()
        }

        /// An X.509-SVID for `id`: its chain and its key.
        pub(crate) fn leaf(
            &self,
            id: &str,
        ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), rcgen::Error> {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::ExplicitNoCa;
            params.subject_alt_names = vec![SanType::URI(id.try_into()?)];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key))?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            Ok((vec![cert.der().clone()], key))
        }
    }
}
