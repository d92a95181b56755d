//! Group B: SPIFFE identity extraction and validation, through real handshakes.

use rcgen::{KeyUsagePurpose, SanType};
use tower_mesh::identity::{CertificateIdentityError, Identity, IdentityErrorKind};
use tower_mesh::tls::{BadPeerCertificate, IdentityMismatch, UnknownTrustDomain};

use crate::hostile::*;
use crate::pki::{Ca, Leaf, dns, uri};
use crate::support::*;
use crate::wire::{APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, records};

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";

/// The server presents `leaf`; the mesh client expects SERVER. Returns the client's error.
async fn client_rejects(td_a: &Ca, leaf: &Leaf, expected: &str) -> tower::BoxError {
    let server = Server::start(config(leaf, &[("td-a", td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", td_a)]);
    let err = connect(&client, server.addr, expected).await.unwrap_err();
    // The server saw an aborted handshake, never a request.
    let server_err = server.wait_error().await;
    assert!(
        rustls_error(server_err.as_ref()).is_some(),
        "{server_err:?}"
    );
    assert_eq!(server.calls(), 0);
    err
}

/// The client presents `leaf` to a strict server; returns the server's error.
async fn server_rejects(td_a: &Ca, leaf: &Leaf) -> tower::BoxError {
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", td_a)])).await;
    let client = config(leaf, &[("td-a", td_a)]);
    if let Ok(stream) = connect(&client, server.addr, SERVER).await {
        assert!(get(stream).await.is_err());
    }
    let err = server.wait_error().await;
    assert_eq!(server.calls(), 0);
    err
}

fn rule(err: &tower::BoxError) -> CertificateIdentityError {
    find::<BadPeerCertificate>(err.as_ref())
        .unwrap_or_else(|| panic!("expected a leaf-rule rejection, got {err:?}"))
        .error()
        .clone()
}

#[tokio::test]
async fn b1_b2_more_than_one_uri_san_both_sides() {
    let td_a = Ca::root("td-a");
    for sans in [
        vec![
            uri("spiffe://td-a/ns/x/sa/server"),
            uri("spiffe://td-a/ns/x/sa/admin"),
        ],
        vec![uri("spiffe://td-a/ns/x/sa/server"), uri("https://evil/")],
    ] {
        let leaf = td_a.leaf_with(|p| p.subject_alt_names = sans.clone());
        let err = client_rejects(&td_a, &leaf, SERVER).await;
        assert_eq!(rule(&err), CertificateIdentityError::MultipleUriSans(2));
        let err = server_rejects(&td_a, &leaf).await;
        assert_eq!(rule(&err), CertificateIdentityError::MultipleUriSans(2));
    }
}

#[tokio::test]
async fn b3_no_uri_san() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| p.subject_alt_names = vec![dns("server.td-a")]);
    let err = client_rejects(&td_a, &leaf, SERVER).await;
    assert_eq!(rule(&err), CertificateIdentityError::NoUriSan);
    // Server side, no DNS bundle configured: refused (strict).
    let err = server_rejects(&td_a, &leaf).await;
    assert_eq!(cert_error(&err), rustls::CertificateError::UnknownIssuer);
}

#[tokio::test]
async fn b3_no_uri_san_under_permissive_is_refused_not_anonymous() {
    // `allow_unauthenticated` documents that "a client that does present a certificate is
    // still verified fully and refused if invalid": permissive admits clients with *no*
    // certificate as anonymous, never a client whose certificate fails. A DNS-only leaf on a
    // SPIFFE-only server has no bundle (no DNS bundle configured), so it is refused, not
    // demoted to anonymous.
    let td_a = Ca::root("td-a");
    let permissive = builder(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])
        .allow_unauthenticated()
        .build()
        .unwrap();
    let server = Server::start(permissive).await;
    let leaf = td_a.leaf_with(|p| p.subject_alt_names = vec![dns("client.td-a")]);
    let client = config(&leaf, &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert!(get(stream).await.is_err(), "refused on first I/O");
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::UnknownIssuer
    );
    assert_eq!(server.calls(), 0);
    // The same server does let a client without any certificate in, as anonymous.
    let anonymous = attack(&server, attacker(&[&rustls::version::TLS13], None))
        .await
        .unwrap();
    assert_eq!(anonymous, "anonymous");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn b4_b5_b6_bad_uri_forms_in_certificates() {
    let td_a = Ca::root("td-a");
    let cases = [
        ("https://td-a/ns/x", IdentityErrorKind::WrongScheme),
        ("spiffe://td-a", IdentityErrorKind::RootPath),
        ("spiffe://td-a/", IdentityErrorKind::RootPath),
        ("spiffe://td-a/a/../admin", IdentityErrorKind::DotSegment),
        ("spiffe://td-a//a", IdentityErrorKind::EmptySegment),
        ("spiffe://td-a/a%2Fb", IdentityErrorKind::BadPathChar),
        ("spiffe://u@td-a/a", IdentityErrorKind::BadTrustDomainChar),
        ("spiffe://TD-A/a", IdentityErrorKind::BadTrustDomainChar),
    ];
    for (bad, kind) in cases {
        let leaf = td_a.spiffe_leaf(bad);
        let err = client_rejects(&td_a, &leaf, SERVER).await;
        match rule(&err) {
            CertificateIdentityError::InvalidSpiffeId(e) => assert_eq!(e.kind(), kind, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
        let err = server_rejects(&td_a, &leaf).await;
        assert!(
            matches!(rule(&err), CertificateIdentityError::InvalidSpiffeId(_)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn b9_leaf_with_cert_sign_or_crl_sign() {
    let td_a = Ca::root("td-a");
    for ku in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let leaf = td_a.leaf_with(|p| {
            p.subject_alt_names = vec![uri(SERVER)];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, ku];
        });
        let err = client_rejects(&td_a, &leaf, SERVER).await;
        assert_eq!(rule(&err), CertificateIdentityError::ForbiddenKeyUsage);
        let client_leaf = td_a.leaf_with(|p| {
            p.subject_alt_names = vec![uri(CLIENT)];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, ku];
        });
        let err = server_rejects(&td_a, &client_leaf).await;
        assert_eq!(rule(&err), CertificateIdentityError::ForbiddenKeyUsage);
    }
}

#[tokio::test]
async fn b10_leaf_without_key_usage() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        p.key_usages = vec![];
    });
    let err = client_rejects(&td_a, &leaf, SERVER).await;
    assert_eq!(rule(&err), CertificateIdentityError::MissingKeyUsage);
    // Lenient, explicitly, under `danger`.
    let server = Server::start(config(&leaf, &[("td-a", &td_a)])).await;
    let client = builder(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)])
        .dangerous()
        .allow_leaf_without_key_usage()
        .done()
        .build()
        .unwrap();
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
    // Key usage without digitalSignature is refused even then.
    let leaf = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![uri(SERVER)];
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    });
    let err = client_rejects(&td_a, &leaf, SERVER).await;
    assert_eq!(
        rule(&err),
        CertificateIdentityError::MissingDigitalSignature
    );
}

#[tokio::test]
async fn b11_expected_id_mismatch_aborts_before_any_request_byte() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/ns/p/sa/other");
    let err = client_rejects(&td_a, &leaf, "spiffe://td-a/ns/p/sa/payments").await;
    let mismatch = find::<IdentityMismatch>(err.as_ref()).expect("IdentityMismatch");
    assert_eq!(
        mismatch.expected().as_str(),
        "spiffe://td-a/ns/p/sa/payments"
    );
    assert_eq!(
        mismatch.presented(),
        Some(&Identity::parse("spiffe://td-a/ns/p/sa/other").unwrap())
    );
}

#[tokio::test]
async fn b11_nothing_but_the_client_hello_and_one_alert_reaches_the_wire() {
    // A byte-counting proxy between the mesh client and the server. On a mismatch the client
    // sends its ClientHello, at most a middlebox-compatibility change_cipher_spec, and one
    // encrypted alert (19 bytes: 2 of alert, 1 of inner content type, a 16-byte AEAD tag):
    // no certificate, no Finished, no request byte.
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/ns/p/sa/other");
    let server = Server::start(config(&leaf, &[("td-a", &td_a)])).await;
    let proxy = Proxy::start(server.addr, |hello| hello).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let err = connect(&client, proxy.addr, "spiffe://td-a/ns/p/sa/payments")
        .await
        .unwrap_err();
    assert!(find::<IdentityMismatch>(err.as_ref()).is_some(), "{err:?}");
    let sent = records(&proxy.client_bytes(0).await);
    assert_eq!(
        (sent[0].0, sent[0].1[0]),
        (HANDSHAKE, 1),
        "a ClientHello first"
    );
    let after: Vec<_> = sent[1..]
        .iter()
        .filter(|(kind, payload)| !(*kind == CHANGE_CIPHER_SPEC && payload[..] == [1]))
        .map(|(kind, payload)| (*kind, payload.len()))
        .collect();
    assert_eq!(after, [(APPLICATION_DATA, 19)], "only the encrypted alert");
    let server_err = server.wait_error().await;
    assert_eq!(
        rustls_error(server_err.as_ref()),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateUnknown
        ))
    );
    assert_eq!(server.calls(), 0);
    // Control: with the right expectation the same proxy carries the client's certificate,
    // Finished and request, in more and larger records.
    let stream = connect(&client, proxy.addr, "spiffe://td-a/ns/p/sa/other")
        .await
        .unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
    let sent = records(&proxy.client_bytes(1).await);
    let encrypted: usize = sent
        .iter()
        .filter(|(kind, _)| *kind == APPLICATION_DATA)
        .map(|(_, payload)| payload.len())
        .sum();
    assert!(encrypted > 19 + 200, "{sent:?}");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn b12_sni_irrelevant_in_spiffe_mode() {
    // Connecting to 127.0.0.1, the URI SAN alone decides. DNS and IP SANs that do not name
    // the address connected to are no obstacle...
    let td_a = Ca::root("td-a");
    let elsewhere = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![
            uri(SERVER),
            dns("elsewhere.example"),
            SanType::IpAddress([192, 0, 2, 7].into()),
        ]
    });
    let server = Server::start(config(&elsewhere, &[("td-a", &td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    assert!(server.addr.ip().is_loopback());
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
    assert_eq!(server.calls(), 1);
    // ...and DNS and IP SANs that do name it (localhost, 127.0.0.1) are no help when the URI
    // SAN is another workload's.
    let impostor = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![
            uri("spiffe://td-a/ns/x/sa/other"),
            dns("localhost"),
            SanType::IpAddress(server.addr.ip()),
        ]
    });
    let err = client_rejects(&td_a, &impostor, SERVER).await;
    let mismatch = find::<IdentityMismatch>(err.as_ref()).expect("IdentityMismatch");
    assert_eq!(mismatch.expected().as_str(), SERVER);
    assert_eq!(
        mismatch.presented().map(|i| i.as_str()),
        Some("spiffe://td-a/ns/x/sa/other")
    );
}

#[tokio::test]
async fn trust_bundle_chosen_by_trust_domain_never_by_trying_every_root() {
    let (td_a, td_b) = (Ca::root("td-a"), Ca::root("td-b"));
    // td-a's root signs a leaf claiming td-b: the td-b bundle must verify it, and cannot.
    let forged = td_a.spiffe_leaf("spiffe://td-b/ns/x/sa/server");
    let server = Server::start(config(&forged, &[("td-a", &td_a), ("td-b", &td_b)])).await;
    let client = config(
        &td_a.spiffe_leaf(CLIENT),
        &[("td-a", &td_a), ("td-b", &td_b)],
    );
    let err = connect(&client, server.addr, "spiffe://td-b/ns/x/sa/server")
        .await
        .unwrap_err();
    assert_eq!(cert_error(&err), rustls::CertificateError::UnknownIssuer);
    assert!(rustls_error(server.wait_error().await.as_ref()).is_some());
    assert_eq!(server.calls(), 0);
    // Same on the server side: a td-b client signed by td-a's root.
    let server = Server::start(config(
        &td_a.spiffe_leaf(SERVER),
        &[("td-a", &td_a), ("td-b", &td_b)],
    ))
    .await;
    let client = config(&td_a.spiffe_leaf("spiffe://td-b/c"), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert!(get(stream).await.is_err());
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::UnknownIssuer
    );
    assert_eq!(server.calls(), 0);
    // An unknown trust domain is its own error.
    let server = Server::start(config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let client = config(&td_a.spiffe_leaf(CLIENT), &[("td-c", &td_a)]);
    let err = connect(&client, server.addr, SERVER).await.unwrap_err();
    assert!(
        find::<UnknownTrustDomain>(err.as_ref()).is_some(),
        "{err:?}"
    );
    assert!(rustls_error(server.wait_error().await.as_ref()).is_some());
    assert_eq!(server.calls(), 0);
    // ... and so on the server side: a client of td-c, which the server has no bundle for.
    let client = config(&td_a.spiffe_leaf("spiffe://td-c/c"), &[("td-a", &td_a)]);
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert!(get(stream).await.is_err());
    let err = server.wait_error().await;
    assert!(
        find::<UnknownTrustDomain>(err.as_ref()).is_some(),
        "{err:?}"
    );
    assert_eq!(server.calls(), 0);
}

#[test]
fn identity_from_der_matches_the_handshake_rules() {
    let td_a = Ca::root("td-a");
    let ok = td_a.spiffe_leaf(SERVER);
    assert_eq!(
        Identity::from_certificate_der(&ok.cert).unwrap().as_str(),
        SERVER
    );
    let dns_leaf = td_a.leaf_with(|p| p.subject_alt_names = vec![dns("A.ns.svc")]);
    assert_eq!(
        Identity::from_certificate_der(&dns_leaf.cert)
            .unwrap()
            .as_str(),
        "a.ns.svc"
    );
    let two = td_a.leaf_with(|p| p.subject_alt_names = vec![dns("a.ns.svc"), dns("b.ns.svc")]);
    assert_eq!(
        Identity::from_certificate_der(&two.cert).unwrap_err(),
        CertificateIdentityError::MultipleDnsNames(2)
    );
    assert!(matches!(
        Identity::from_certificate_der(b"\x30\x03\x02\x01\x00"),
        Err(CertificateIdentityError::Malformed(_))
    ));
    let mut trailing = ok.cert.to_vec();
    trailing.push(0);
    assert!(matches!(
        Identity::from_certificate_der(&trailing),
        Err(CertificateIdentityError::Malformed(_))
    ));
}
