//! A balanced HTTP client over mutual TLS, in a few lines: static discovery, Peak-EWMA
//! balancing, and the hyper client verifying each server's SPIFFE identity.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example hyper_client --features http,tls
//! ```
//!
//! What it does, top to bottom:
//!
//! 1. makes a throwaway PKI for trust domain `example.org` (rcgen, in memory): one root, a
//!    certificate for the `payments` servers and one for this client;
//! 2. starts three HTTPS servers on loopback (`TlsAcceptor`, HTTP/1.1 and HTTP/2), each
//!    answering with its name and the identity of the client it verified;
//! 3. builds the client: `Balance` + `PeakEwma` over `HttpClient` with mTLS, ALPN choosing
//!    HTTP/2, and `TrackBody` so a request counts as in flight until its body is read;
//! 4. sends requests to `http://payments/...` and prints which backend answered.

#[cfg(not(all(feature = "http", feature = "tls")))]
fn main() {
    eprintln!("this example needs: cargo run --example hyper_client --features http,tls");
}

#[cfg(all(feature = "http", feature = "tls"))]
#[tokio::main]
async fn main() -> Result<(), tower_mesh::BoxError> {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use tower::{Service, ServiceExt};
    use tower_mesh::balance::{Balance, PeakEwma};
    use tower_mesh::client::HttpClient;
    use tower_mesh::discover::Static;
    use tower_mesh::endpoint::Endpoint;
    use tower_mesh::health::HttpStatus;
    use tower_mesh::identity::PeerIdentity;
    use tower_mesh::load::TrackBody;

    const SERVER_ID: &str = "spiffe://example.org/ns/shop/sa/payments";
    const CLIENT_ID: &str = "spiffe://example.org/ns/shop/sa/checkout";

    // 1. The PKI, and a TLS configuration for each side.
    let ca = pki::Ca::new();
    let server_tls = ca.tls_config(SERVER_ID)?;
    let client_tls = ca.tls_config(CLIENT_ID)?;

    // 2. Three backends of the `payments` service.
    let mut endpoints = Vec::new();
    for name in ["payments-1", "payments-2", "payments-3"] {
        let addr = backend::start(name, server_tls.clone()).await?;
        endpoints.push(Endpoint::new(addr).with_identity(SERVER_ID));
    }

    // 3. The client: discovery, a balancer, and the mTLS hyper client per endpoint.
    let mut client = Balance::builder(PeakEwma::new())
        .classify(TrackBody::new(HttpStatus))
        .build(
            Static::new(endpoints),
            HttpClient::builder().tls(client_tls).build()?,
        )?;

    // 4. Requests name the service; the balancer picks the backend.
    println!("servers must prove {SERVER_ID}; this client proves {CLIENT_ID}\n");
    for i in 0..9 {
        let request =
            http::Request::get(format!("http://payments/orders/{i}")).body(Empty::<Bytes>::new())?;
        let response = client.ready().await?.call(request).await?;
        // The identity the server proved in the handshake, before the request was sent.
        let server = response
            .extensions()
            .get::<PeerIdentity>()
            .map(|p| p.to_string());
        assert_eq!(server.as_deref(), Some(SERVER_ID));
        let version = response.version();
        let body = response.into_body().collect().await?.to_bytes(); // in flight until here
        println!(
            "GET /orders/{i} over {version:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    println!();
    for stats in client.endpoints() {
        println!(
            "{}: {} requests, {} errors",
            stats.endpoint().addr(),
            stats.requests(),
            stats.errors()
        );
    }
    Ok(())
}

/// The servers: our TLS acceptor in front of a hyper server that says who it is.
#[cfg(all(feature = "http", feature = "tls"))]
mod backend {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;
    use tower_mesh::tls::{TlsAcceptor, TlsConfig};

    pub(crate) async fn start(name: &'static str, tls: TlsConfig) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::new(tls);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.oneshot(tcp).await else {
                        return;
                    };
                    let client = stream
                        .peer_identity()
                        .map_or_else(|| "anonymous".to_owned(), |p| p.to_string());
                    let service = hyper::service::service_fn(move |_req| {
                        let body = format!("answered by {name}, caller verified as {client}");
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(addr)
    }
}

/// A throwaway certificate authority (rcgen), issuing SPIFFE certificates.
#[cfg(all(feature = "http", feature = "tls"))]
mod pki {
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tower_mesh::BoxError;
    use tower_mesh::identity::TrustDomain;
    use tower_mesh::tls::{Credentials, TlsConfig, TrustBundle, TrustStore};

    pub(crate) struct Ca {
        issuer: Issuer<'static, KeyPair>,
        cert: CertificateDer<'static>,
    }

    impl Ca {
        pub(crate) fn new() -> Ca {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("key generation");
            let cert = params.self_signed(&key).expect("self-signed root");
            Ca {
                cert: cert.der().clone(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A TLS configuration with a fresh certificate for `spiffe_id`, trusting this CA,
        /// offering HTTP/2 and HTTP/1.1 by ALPN.
        pub(crate) fn tls_config(&self, spiffe_id: &str) -> Result<TlsConfig, BoxError> {
            let mut params = CertificateParams::default();
            params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into()?)];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &self.issuer)?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            let trust = TrustStore::new().with_spiffe(
                TrustDomain::parse("example.org")?,
                TrustBundle::from_der([self.cert.clone()])?,
            );
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Ok(TlsConfig::builder(provider)
                .credentials(Credentials::from_der(vec![cert.der().clone()], key)?)
                .trust(trust)
                .alpn_protocols([b"h2".to_vec(), b"http/1.1".to_vec()])
                .build()?)
        }
    }
}
