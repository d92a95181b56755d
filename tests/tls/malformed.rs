//! Group A, hostile certificate contents (A23, A24, A26, A27): certificates our own
//! configuration would refuse to present, so a plain rustls peer presents them, to our client
//! and to our acceptor. Each must be refused without a panic and without reaching a handler.

use std::sync::Arc;

use rcgen::CustomExtension;
use rustls::CertificateError;
use tower_mesh::tls::HandshakeFailed;

use crate::hostile::*;
use crate::pki::{Ca, uri};
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// A plain rustls server presents `chain` (as is, with `leaf`'s key) to a mesh client trusting
/// td-a: connect fails, the server sees the client's alert, nothing reaches the handler, no
/// retry. Returns the client's error.
async fn rustls_server_refused(
    td_a: &Ca,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    leaf: &crate::pki::Leaf,
) -> tower::BoxError {
    let (err, server_err) = rustls_server_aborted(td_a, chain, leaf).await;
    assert!(
        matches!(
            rustls_error(server_err.as_ref()),
            Some(rustls::Error::AlertReceived(_))
        ),
        "the server saw the client's alert: {server_err:?}"
    );
    err
}

/// As [`rustls_server_refused`], without judging how the server saw the connection end.
/// Returns the client's and the server's errors.
async fn rustls_server_aborted(
    td_a: &Ca,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    leaf: &crate::pki::Leaf,
) -> (tower::BoxError, tower::BoxError) {
    let server = Server::start_rustls(rustls_server(&[&rustls::version::TLS13], chain, leaf)).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", td_a)]);
    let err = connect(&client, server.addr, SERVER).await.unwrap_err();
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    let server_err = server.wait_error().await;
    assert_eq!(server.calls(), 0);
    assert_eq!(server.accepted(), 1, "no retry");
    (err, server_err)
}

/// A client presenting `certified` (as is) to our STRICT acceptor trusting td-a: refused,
/// handler never called. Returns the acceptor's error.
async fn attacker_refused(
    td_a: &Ca,
    certified: Arc<rustls::sign::CertifiedKey>,
) -> tower::BoxError {
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", td_a)])).await;
    assert!(
        attack(&server, attacker_presenting(certified))
            .await
            .is_err()
    );
    let err = server.wait_error().await;
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    assert_eq!(server.calls(), 0, "handler must not be called");
    err
}

#[tokio::test]
async fn a23_unknown_critical_extension() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![5, 0]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
    });
    // Our own configuration refuses to present such a certificate.
    let err = tower_mesh::tls::TlsConfig::builder(provider())
        .credentials(
            tower_mesh::tls::Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap(),
        )
        .trust(store(&[("td-a", &td_a)]))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            tower_mesh::tls::TlsConfigError::InvalidCertificate { .. }
        ),
        "{err:?}"
    );
    // A plain rustls server presents it; the mesh client refuses it.
    let e = cert_error(&rustls_server_refused(&td_a, leaf.chain.clone(), &leaf).await);
    assert!(webpki(&e, "UnsupportedCriticalExtension"), "{e:?}");
    // A client presenting it to our acceptor is refused too.
    let err = attacker_refused(&td_a, certified(leaf.chain.clone(), &leaf)).await;
    assert!(
        webpki(&cert_error(&err), "UnsupportedCriticalExtension"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a24_sha1_signed_leaf() {
    // A leaf whose signature algorithm is ecdsa-with-SHA1 (1.2.840.10045.4.1). The provider
    // has no SHA-1 verification algorithm, so webpki refuses the algorithm itself, before and
    // regardless of the signature bytes (rustls-webpki 0.103 `signed_data.rs`,
    // `verify_signed_data`). Both sides refuse it.
    //
    // The RSA-1024 half of A24 is left out: rcgen 0.14 is built here with *ring* only, which
    // cannot generate RSA keys, and aws-lc-rs's `KeySize` starts at 2048 bits; with no RSA key
    // generator among the dependencies and no checked-in keys allowed, there is no way to
    // make a 1024-bit key in-process.
    const ECDSA_WITH_SHA1: &[u8] = &[
        0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01,
    ];
    let td_a = Ca::root("td-a");
    for (id, side) in [(SERVER, "server"), (CLIENT, "client")] {
        let leaf = td_a.spiffe_leaf(id);
        let sha1 = rustls::pki_types::CertificateDer::from(crate::wire::with_signature_algorithm(
            &leaf.cert,
            ECDSA_WITH_SHA1,
        ));
        // The patched certificate still parses as an X.509-SVID: only the algorithm is wrong.
        assert_eq!(
            tower_mesh::identity::Identity::from_certificate_der(&sha1)
                .unwrap()
                .as_str(),
            id
        );
        let e = if side == "server" {
            cert_error(&rustls_server_refused(&td_a, vec![sha1], &leaf).await)
        } else {
            cert_error(&attacker_refused(&td_a, certified(vec![sha1], &leaf)).await)
        };
        match e {
            CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id,
                ..
            } => assert_eq!(signature_algorithm_id, ECDSA_WITH_SHA1[2..], "{side}"),
            other => panic!("{side}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a26_garbage_der_as_peer_certificate() {
    // Not DER at all, DER that is not a certificate, and a certificate cut short.
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf(SERVER);
    let garbage: [Vec<u8>; 3] = [
        b"this is not a certificate".to_vec(),
        vec![0x30, 0x03, 0x02, 0x01, 0x00],
        leaf.cert[..leaf.cert.len() / 2].to_vec(),
    ];
    for bytes in garbage {
        let der = rustls::pki_types::CertificateDer::from(bytes.clone());
        // Client side: rustls parses the end entity for webpki first (`ParsedCertificate`).
        let e = cert_error(&rustls_server_refused(&td_a, vec![der.clone()], &leaf).await);
        assert_eq!(e, CertificateError::BadEncoding, "{bytes:x?}");
        // Server side: our leaf parser (x509-parser) runs first; its error is a rejection.
        let err = attacker_refused(&td_a, certified(vec![der], &leaf)).await;
        let bad = find::<tower_mesh::tls::BadPeerCertificate>(err.as_ref())
            .unwrap_or_else(|| panic!("{bytes:x?}: {err:?}"));
        assert!(
            matches!(
                bad.error(),
                tower_mesh::identity::CertificateIdentityError::Malformed(_)
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a26_certificate_message_over_64_kib() {
    // A leaf carrying a 70 KB non-critical extension: the Certificate message exceeds rustls's
    // 0xffff-byte handshake message limit and is refused while being reassembled, before any
    // certificate parsing (rustls `msgs/deframer/handshake.rs`, MAX_HANDSHAKE_SIZE).
    let td_a = Ca::root("td-a");
    let big = |id: &str| {
        td_a.leaf_with(|p| {
            p.subject_alt_names = vec![uri(id)];
            let content = crate::wire::der(0x04, &vec![0x41; 70_000]);
            p.custom_extensions = vec![CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 2],
                content,
            )];
        })
    };
    let leaf = big(SERVER);
    assert!(leaf.cert.len() > 70_000);
    // The client gives up while the server is still writing: the server may see a reset
    // rather than the alert.
    let (err, _) = rustls_server_aborted(&td_a, leaf.chain.clone(), &leaf).await;
    assert_eq!(
        rustls_error(err.as_ref()),
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::HandshakePayloadTooLarge
        )),
        "{err:?}"
    );
    let leaf = big(CLIENT);
    let err = attacker_refused(&td_a, certified(leaf.chain.clone(), &leaf)).await;
    assert_eq!(
        rustls_error(err.as_ref()),
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::HandshakePayloadTooLarge
        )),
        "{err:?}"
    );
}

#[tokio::test]
async fn a27_duplicate_subject_alt_name_extension() {
    // rcgen writes the subjectAltName from `subject_alt_names`; a custom extension with the
    // same OID (2.5.29.17) adds a second one naming another workload.
    let td_a = Ca::root("td-a");
    let twice = |id: &str| {
        td_a.leaf_with(|p| {
            p.subject_alt_names = vec![uri(id)];
            // GeneralNames ::= SEQUENCE { [6] IA5String "spiffe://td-a/ns/x/sa/admin" }
            let admin = crate::wire::der(0x86, b"spiffe://td-a/ns/x/sa/admin");
            let san = crate::wire::der(0x30, &admin);
            p.custom_extensions = vec![CustomExtension::from_oid_content(&[2, 5, 29, 17], san)];
        })
    };
    let leaf = twice(SERVER);
    // Our own configuration refuses to present it (webpki parses it when checking the key).
    assert!(matches!(
        tower_mesh::tls::TlsConfig::builder(provider())
            .credentials(
                tower_mesh::tls::Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap()
            )
            .trust(store(&[("td-a", &td_a)]))
            .build(),
        Err(tower_mesh::tls::TlsConfigError::InvalidCertificate { .. })
    ));
    // Client side: webpki refuses a repeated extension while parsing (rustls-webpki 0.103
    // `x509.rs`, `set_extension_once` → ExtensionValueInvalid).
    let e = cert_error(&rustls_server_refused(&td_a, leaf.chain.clone(), &leaf).await);
    assert!(webpki(&e, "ExtensionValueInvalid"), "{e:?}");
    // Server side: our leaf parser refuses it first (x509-parser DuplicateExtensions).
    let leaf = twice(CLIENT);
    let err = attacker_refused(&td_a, certified(leaf.chain.clone(), &leaf)).await;
    let bad = find::<tower_mesh::tls::BadPeerCertificate>(err.as_ref()).expect("our leaf check");
    match bad.error() {
        tower_mesh::identity::CertificateIdentityError::Malformed(why) => {
            assert!(why.to_lowercase().contains("duplicate extension"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}
