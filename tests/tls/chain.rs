//! Group A: chains, validity, basic constraints and EKU, on both sides.

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa};
use rustls::{AlertDescription, CertificateError};
use time::{Duration, OffsetDateTime};
use tower_mesh::tls::HandshakeFailed;

use crate::pki::{Ca, uri};
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// A server for td-a with a valid leaf, and a client config using `client_leaf`.
async fn server_a(td_a: &Ca) -> Server {
    Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", td_a)])).await
}

/// Client presents `leaf` to a STRICT server trusting td-a: the server refuses, the client sees
/// an alert on first I/O, the handler is never called. Returns the server's certificate error.
async fn client_refused(td_a: &Ca, leaf: &crate::pki::Leaf) -> CertificateError {
    let server = server_a(td_a).await;
    // Our connector would refuse to present an invalid certificate at all (G6); let it, to
    // show that the server refuses it.
    let client = builder(leaf, &[("td-a", td_a)])
        .dangerous()
        .connect_with_invalid_certificate()
        .done()
        .build()
        .unwrap();
    let result = match connect(&client, server.addr, SERVER).await {
        // TLS 1.3: the client's handshake completes before the server judges its certificate.
        Ok(stream) => get(stream).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "the request must fail");
    let err = server.wait_error().await;
    assert_eq!(server.calls(), 0, "handler must not be called");
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    cert_error(&err)
}

/// Server presents `leaf` to a mesh client trusting td-a: connect fails with the client's
/// certificate error; the handler is never called; no request byte was written.
async fn server_refused(td_a: &Ca, leaf: &crate::pki::Leaf) -> CertificateError {
    let server = Server::start(config(leaf, &[("td-a", td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", td_a)]);
    let err = connect(&client, server.addr, SERVER).await.unwrap_err();
    assert!(err.downcast_ref::<HandshakeFailed>().is_some(), "{err:?}");
    // The server saw the client's alert, not a request.
    let server_err = server.wait_error().await;
    assert!(
        rustls_error(server_err.as_ref()).is_some(),
        "{server_err:?}"
    );
    assert_eq!(server.calls(), 0);
    assert_eq!(
        server.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no retry"
    );
    cert_error(&err)
}

#[tokio::test]
async fn valid_mtls_round_trip() {
    let td_a = Ca::root("td-a");
    let server = server_a(&td_a).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(stream.peer_identity().unwrap().to_string(), SERVER);
    assert_eq!(
        get(stream).await.unwrap(),
        CLIENT,
        "server saw the client's SPIFFE ID"
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a1_wrong_ca_client() {
    let (td_a, td_b) = (Ca::root("td-a"), Ca::root("td-b"));
    let err = client_refused(&td_a, &td_b.spiffe_leaf(CLIENT)).await;
    assert_eq!(err, CertificateError::UnknownIssuer);
}

#[tokio::test]
async fn a2_wrong_ca_server() {
    let (td_a, td_b) = (Ca::root("td-a"), Ca::root("td-b"));
    let err = server_refused(&td_a, &td_b.spiffe_leaf(SERVER)).await;
    assert_eq!(err, CertificateError::UnknownIssuer);
}

fn expired(p: &mut rcgen::CertificateParams) {
    p.not_before = OffsetDateTime::now_utc() - Duration::hours(2);
    p.not_after = OffsetDateTime::now_utc() - Duration::seconds(1);
}

fn not_yet_valid(p: &mut rcgen::CertificateParams) {
    p.not_before = OffsetDateTime::now_utc() + Duration::hours(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::hours(2);
}

fn is_expired(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::Expired | CertificateError::ExpiredContext { .. }
    )
}

fn is_not_yet_valid(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
    )
}

#[tokio::test]
async fn a3_expired_leaf_both_sides() {
    let td_a = Ca::root("td-a");
    let client = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(CLIENT)];
        expired(p);
    });
    assert!(is_expired(&client_refused(&td_a, &client).await));
    let server = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        expired(p);
    });
    assert!(is_expired(&server_refused(&td_a, &server).await));
}

#[tokio::test]
async fn a4_not_yet_valid_leaf_both_sides() {
    let td_a = Ca::root("td-a");
    let client = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(CLIENT)];
        not_yet_valid(p);
    });
    assert!(is_not_yet_valid(&client_refused(&td_a, &client).await));
    let server = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        not_yet_valid(p);
    });
    assert!(is_not_yet_valid(&server_refused(&td_a, &server).await));
}

#[tokio::test]
async fn a5_expired_and_not_yet_valid_intermediate() {
    let td_a = Ca::root("td-a");
    let old = td_a.intermediate_with("old", expired);
    let e = server_refused(&td_a, &old.spiffe_leaf(SERVER)).await;
    assert!(is_expired(&e), "{e:?}");
    assert!(is_expired(
        &client_refused(&td_a, &old.spiffe_leaf(CLIENT)).await
    ));
    let early = td_a.intermediate_with("early", not_yet_valid);
    assert!(is_not_yet_valid(
        &server_refused(&td_a, &early.spiffe_leaf(SERVER)).await
    ));
    // A valid intermediate works (the chain is sent by the server).
    let mid = td_a.intermediate("mid");
    let server = Server::start(config(&mid.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&mid.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn a6_no_hidden_clock_leeway() {
    // not_before five seconds ahead: webpki adds no leeway, and neither do we. (The PKI helpers
    // backdate not_before by an hour; this leaf deliberately does not.) The handshake happens
    // well within those five seconds; the error carries the times to prove it.
    let td_a = Ca::root("td-a");
    let not_before = OffsetDateTime::now_utc() + Duration::seconds(5);
    let server = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        p.not_before = not_before;
    });
    let client = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(CLIENT)];
        p.not_before = not_before;
    });
    for e in [
        server_refused(&td_a, &server).await,
        client_refused(&td_a, &client).await,
    ] {
        match e {
            CertificateError::NotValidYetContext { time, not_before } => {
                let ahead = not_before.as_secs() - time.as_secs();
                assert!((1..=5).contains(&ahead), "{ahead} s ahead");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a7_ca_used_as_leaf() {
    let td_a = Ca::root("td-a");
    // An intermediate CA (chained to the trusted root) that even carries the expected URI SAN.
    let ca = td_a.intermediate_with("ca-leaf", |p| p.subject_alt_names = vec![uri(SERVER)]);
    let e = server_refused(&td_a, &ca.as_leaf()).await;
    assert!(webpki(&e, "CaUsedAsEndEntity"), "{e:?}");
    // Server side, our leaf rules run first (the leaf is read to choose the bundle by trust
    // domain) and refuse a CA before webpki sees it.
    let ca = td_a.intermediate_with("ca-client", |p| p.subject_alt_names = vec![uri(CLIENT)]);
    let e = client_refused(&td_a, &ca.as_leaf()).await;
    let bad = find::<tower_mesh::tls::BadPeerCertificate>(&rustls::Error::InvalidCertificate(e))
        .expect("our leaf check");
    assert_eq!(
        *bad.error(),
        tower_mesh::identity::CertificateIdentityError::CaCertificate
    );
}

#[tokio::test]
async fn a8_trust_anchor_as_end_entity() {
    // The trusted root itself, carrying the expected URI SAN, presented as the leaf. webpki
    // checks the end entity's basic constraints before looking for an issuer
    // (rustls-webpki 0.103 `verify_cert.rs`, `check_issuer_independent_properties` →
    // `check_basic_constraints`: `(Role::EndEntity, true, _) => CaUsedAsEndEntity`).
    let td_a = Ca::root_with("td-a", |p| p.subject_alt_names = vec![uri(SERVER)]);
    let e = server_refused(&td_a, &td_a.as_leaf()).await;
    assert!(webpki(&e, "CaUsedAsEndEntity"), "{e:?}");
}

#[tokio::test]
async fn a9_leaf_used_as_issuer() {
    let td_a = Ca::root("td-a");
    let mut own = crate::pki::ca_params("leaf-issuer");
    own.is_ca = IsCa::ExplicitNoCa;
    let issuer_leaf = td_a.leaf_with(|p| *p = own.clone());
    let mut params = crate::pki::ca_params("x");
    params.is_ca = IsCa::ExplicitNoCa;
    params.subject_alt_names = vec![uri(SERVER)];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = issuer_leaf.issue(&params, &own);
    // Path building tries the root (issuer name differs: UnknownIssuer, rank 0), then the
    // presented issuer leaf, whose basic constraints fail as an issuer: EndEntityUsedAsCa
    // (rank 210) is the most specific error and is what webpki returns.
    let e = server_refused(&td_a, &leaf).await;
    assert!(webpki(&e, "EndEntityUsedAsCa"), "{e:?}");
}

#[tokio::test]
async fn a10_path_len_violation() {
    let td_a = Ca::root("td-a");
    let zero = td_a.intermediate_with("pathlen0", |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    });
    let sub = zero.intermediate("sub");
    let e = server_refused(&td_a, &sub.spiffe_leaf(SERVER)).await;
    assert!(webpki(&e, "PathLenConstraintViolated"), "{e:?}");
    let e = client_refused(&td_a, &sub.spiffe_leaf(CLIENT)).await;
    assert!(webpki(&e, "PathLenConstraintViolated"), "{e:?}");
    // pathLen=0 still allows it to issue leaves.
    let server = Server::start(config(&zero.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&zero.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

/// A chain of `depth` intermediates below `root`, the last one returned.
fn chain_of(root: &Ca, depth: usize) -> Ca {
    let mut ca = root.intermediate("i0");
    for i in 1..depth {
        ca = ca.intermediate(&format!("i{i}"));
    }
    ca
}

#[tokio::test]
async fn a11_chain_too_deep() {
    // webpki keeps at most MAX_SUB_CA_COUNT = 6 intermediates in a path (rustls-webpki 0.103
    // `verify_cert.rs`, `PartialPath::push`); the seventh is refused.
    let td_a = Ca::root("td-a");
    let deepest = chain_of(&td_a, 7);
    assert_eq!(deepest.chain.len(), 7);
    let started = std::time::Instant::now();
    let e = server_refused(&td_a, &deepest.spiffe_leaf(SERVER)).await;
    assert!(webpki(&e, "MaximumPathDepthExceeded"), "{e:?}");
    let e = client_refused(&td_a, &deepest.spiffe_leaf(CLIENT)).await;
    assert!(webpki(&e, "MaximumPathDepthExceeded"), "{e:?}");
    // Bounded work: both refusals (two handshakes, two servers) take a fraction of the
    // 10 s handshake timeout, however slow the machine.
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    // The boundary: six intermediates are accepted.
    let six = chain_of(&td_a, 6);
    let server = Server::start(config(&six.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&six.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn a12_wrong_eku_client() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(CLIENT)];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let e = client_refused(&td_a, &leaf).await;
    assert!(
        matches!(
            e,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a14_wrong_eku_server() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let e = server_refused(&td_a, &leaf).await;
    assert!(
        matches!(
            e,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a15_no_eku_strict_by_default_lenient_under_danger() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        p.extended_key_usages = vec![];
    });
    let e = server_refused(&td_a, &leaf).await;
    let bad = find::<tower_mesh::tls::BadPeerCertificate>(&rustls::Error::InvalidCertificate(e))
        .expect("our leaf check");
    assert_eq!(
        *bad.error(),
        tower_mesh::identity::CertificateIdentityError::MissingExtendedKeyUsage
    );
    // The explicit lenient switch accepts it (webpki's own rule: EKU checked only if present).
    let server = Server::start(config(&leaf, &[("td-a", &td_a)])).await;
    let client = builder(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)])
        .dangerous()
        .allow_leaf_without_extended_key_usage()
        .done()
        .build()
        .unwrap();
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn client_alert_on_first_io_names_the_ca() {
    // A1 from the client's side: TLS 1.3 lets the client finish; the first read gets the alert.
    let (td_a, td_b) = (Ca::root("td-a"), Ca::root("td-b"));
    let server = server_a(&td_a).await;
    let client = config(&td_b.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    let err = get(stream).await.unwrap_err();
    assert_eq!(alert(&err), AlertDescription::UnknownCA);
    assert_eq!(server.calls(), 0);
}
