//! A25: certificate revocation lists, on both sides, and their configuration errors.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls::CertificateError;
use time::{Duration, OffsetDateTime};
use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{Origin, TlsConfig, TlsConfigError, TrustBundle, TrustStore};

use crate::pki::{Ca, Leaf, uri};
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// A leaf for `id` with serial number `serial`.
fn leaf(ca: &Ca, id: &str, serial: u8) -> Leaf {
    ca.leaf_with(|p| {
        p.subject_alt_names = vec![uri(id)];
        p.serial_number = Some(SerialNumber::from(vec![serial]));
    })
}

/// A PEM CRL issued by `ca` revoking `serials`.
fn crl(ca: &Ca, serials: &[u8]) -> String {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::hours(1),
        crl_number: SerialNumber::from(vec![1]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(vec![*s]),
                revocation_time: now - Duration::minutes(5),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.issuer()).unwrap().pem().unwrap()
}

/// A configuration presenting `own`, trusting `ca` for td-a with `crl_pem` as its CRLs.
fn with_crl(own: &Leaf, ca: &Ca, crl_pem: &str) -> TlsConfig {
    let bundle = TrustBundle::from_der([ca.cert.clone()])
        .unwrap()
        .with_crl_pem(crl_pem.as_bytes())
        .unwrap();
    assert_eq!(bundle.crl_count(), 1);
    builder(own, &[])
        .trust(TrustStore::new().with_spiffe(TrustDomain::parse("td-a").unwrap(), bundle))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a25_revoked_client_refused_by_the_server() {
    let td_a = Ca::root("td-a");
    let server = Server::start(with_crl(
        &leaf(&td_a, SERVER, 1),
        &td_a,
        &crl(&td_a, &[0x42]),
    ))
    .await;

    let revoked = config(&leaf(&td_a, CLIENT, 0x42), &[("td-a", &td_a)]);
    let stream = connect(&revoked, server.addr, SERVER).await.unwrap();
    assert!(get(stream).await.is_err(), "refused on first I/O (TLS 1.3)");
    assert_eq!(
        cert_error(&server.wait_error().await),
        CertificateError::Revoked
    );
    assert_eq!(server.calls(), 0, "the revoked client reached no handler");

    // A client not on the list, from the same CA, is served.
    let good = config(&leaf(&td_a, CLIENT, 0x43), &[("td-a", &td_a)]);
    let stream = connect(&good, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a25_revoked_server_refused_by_the_client() {
    let td_a = Ca::root("td-a");
    let revoked = Server::start(config(&leaf(&td_a, SERVER, 0x42), &[("td-a", &td_a)])).await;
    let client = with_crl(&leaf(&td_a, CLIENT, 1), &td_a, &crl(&td_a, &[0x42]));

    let err = connect(&client, revoked.addr, SERVER).await.unwrap_err();
    assert_eq!(cert_error(&err), CertificateError::Revoked);
    assert_eq!(revoked.calls(), 0, "no request reached the revoked server");

    let good = Server::start(config(&leaf(&td_a, SERVER, 0x43), &[("td-a", &td_a)])).await;
    let stream = connect(&client, good.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn a25_a_chain_certificate_without_a_crl_of_its_issuer_is_refused() {
    // CRLs cover the root's issuance only; the server's leaf is issued by an intermediate
    // with no CRL in the bundle: its status is unknown, and unknown fails closed.
    let td_a = Ca::root("td-a");
    let intermediate = td_a.intermediate("td-a-issuing");
    let server = Server::start(config(
        &intermediate.spiffe_leaf(SERVER),
        &[("td-a", &td_a)],
    ))
    .await;
    let client = with_crl(&leaf(&td_a, CLIENT, 1), &td_a, &crl(&td_a, &[]));
    let err = connect(&client, server.addr, SERVER).await.unwrap_err();
    assert_eq!(cert_error(&err), CertificateError::UnknownRevocationStatus);
    assert_eq!(server.calls(), 0);

    // With the intermediate's CRL added, the chain is fully covered and accepted.
    let bundle = TrustBundle::from_der([td_a.cert.clone()])
        .unwrap()
        .with_crl_pem(crl(&td_a, &[]).as_bytes())
        .unwrap()
        .with_crl_pem(crl(&intermediate, &[]).as_bytes())
        .unwrap();
    assert_eq!(bundle.crl_count(), 2);
    let client = builder(&leaf(&td_a, CLIENT, 1), &[])
        .trust(TrustStore::new().with_spiffe(TrustDomain::parse("td-a").unwrap(), bundle))
        .build()
        .unwrap();
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[test]
fn bad_crl_input_is_a_typed_error_naming_its_origin() {
    let td_a = Ca::root("td-a");
    let bundle = || TrustBundle::from_der([td_a.cert.clone()]).unwrap();

    // No CRL section at all (a certificate where a CRL was expected).
    match bundle().with_crl_pem(td_a.pem().as_bytes()) {
        Err(TlsConfigError::NoCrl { origin }) => assert_eq!(origin, Origin::Memory),
        other => panic!("{other:?}"),
    }
    // A CRL section whose contents are not a CRL.
    let garbage = crate::pki::pem("X509 CRL", b"not a certificate revocation list");
    match bundle().with_crl_pem(garbage.as_bytes()) {
        Err(e @ TlsConfigError::InvalidCrl { .. }) => {
            assert!(e.to_string().contains("revocation list"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // A missing file is named.
    let missing = std::env::temp_dir().join("tower-mesh-no-such-crl.pem");
    match bundle().with_crl_pem_file(&missing) {
        Err(TlsConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}
