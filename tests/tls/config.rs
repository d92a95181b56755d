//! Configuration errors are typed and name the file.

use std::sync::Arc;

use tower_mesh::tls::{
    Credentials, Origin, TlsAcceptor, TlsConfig, TlsConfigError, TlsConnectLayer, TlsStream,
    TrustBundle, TrustStore,
};

use crate::pki::Ca;
use crate::support::*;

#[test]
fn errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("tower-mesh-tls-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/a");
    let other = td_a.spiffe_leaf("spiffe://td-a/b");
    let (cert, key, bad, empty) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("bad.pem"),
        dir.join("empty.pem"),
    );
    std::fs::write(&cert, leaf.cert_pem()).unwrap();
    std::fs::write(&key, other.key_pem()).unwrap();
    let half = leaf.cert_pem();
    std::fs::write(&bad, &half[..half.len() / 2]).unwrap();
    std::fs::write(&empty, "").unwrap();

    let missing = dir.join("missing.pem");
    match Credentials::from_pem_files(&missing, &key) {
        Err(TlsConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    match Credentials::from_pem_files(&bad, &key) {
        Err(e @ TlsConfigError::Pem { .. }) => {
            assert!(e.to_string().contains("bad.pem"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match Credentials::from_pem_files(&empty, &key) {
        Err(TlsConfigError::NoCertificate { origin }) => {
            assert_eq!(origin, Origin::File(empty.clone()))
        }
        other => panic!("{other:?}"),
    }
    match Credentials::from_pem_files(&cert, &cert) {
        Err(TlsConfigError::NoPrivateKey { origin }) => {
            assert_eq!(origin, Origin::File(cert.clone()))
        }
        other => panic!("{other:?}"),
    }
    match TrustBundle::from_pem_file(&empty) {
        Err(e @ TlsConfigError::EmptyBundle { .. }) => assert!(e.to_string().contains("empty.pem")),
        other => panic!("{other:?}"),
    }
    // Key not matching the certificate: named at build.
    let mismatched = Credentials::from_pem_files(&cert, &key).unwrap();
    let store = TrustStore::new().with_spiffe(
        "td-a".parse().unwrap(),
        TrustBundle::from_pem(td_a.pem().as_bytes()).unwrap(),
    );
    match TlsConfig::builder(provider())
        .credentials(mismatched)
        .trust(store.clone())
        .build()
    {
        Err(e @ TlsConfigError::KeyMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("key.pem") && text.contains("cert.pem"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // No trust at all.
    let good = Credentials::from_der(leaf.chain.clone(), leaf.key_der()).unwrap();
    assert!(matches!(
        TlsConfig::builder(provider()).credentials(good).build(),
        Err(TlsConfigError::NoTrustBundle)
    ));
    assert!(matches!(
        TlsConfig::builder(provider()).trust(store).build(),
        Err(TlsConfigError::NoCredentials)
    ));
    // update_credentials refuses a mismatched pair and keeps the old one.
    let config = self::config(&leaf, &[("td-a", &td_a)]);
    let before = config.current_certificate();
    let bad_pair = Credentials::from_der(other.chain.clone(), leaf.key_der()).unwrap();
    assert!(matches!(
        config.update_credentials(&bad_pair),
        Err(TlsConfigError::KeyMismatch { .. })
    ));
    assert_eq!(config.current_certificate(), before);
    assert!(matches!(
        config.update_trust(&TrustStore::new()),
        Err(TlsConfigError::NoTrustBundle)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zero_durations_are_refused() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/a");
    let err = builder(&leaf, &[("td-a", &td_a)])
        .handshake_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsConfigError::ZeroDuration { .. }));
    let err = builder(&leaf, &[("td-a", &td_a)])
        .max_connection_age(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsConfigError::ZeroDuration { .. }));
}

#[test]
fn public_types_are_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<TlsConfig>();
    check::<TlsAcceptor>();
    check::<TlsConnectLayer>();
    check::<TlsStream<tokio::net::TcpStream>>();
    check::<TlsConfigError>();
    check::<Arc<Credentials>>();
}

#[test]
fn rotation_refuses_a_leaf_not_valid_now_or_for_another_workload() {
    use time::{Duration, OffsetDateTime};
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/a");
    let config = self::config(&leaf, &[("td-a", &td_a)]);
    let before = config.current_certificate();
    let creds = |l: &crate::pki::Leaf| Credentials::from_der(l.chain.clone(), l.key_der()).unwrap();

    // certificate_expiry is the leaf's notAfter (rcgen writes whole seconds).
    let expiry = config
        .certificate_expiry()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = OffsetDateTime::now_utc().unix_timestamp() as u64;
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "{expiry} vs now {now}"
    );

    let expired = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![crate::pki::uri("spiffe://td-a/a")];
        p.not_before = OffsetDateTime::now_utc() - Duration::hours(2);
        p.not_after = OffsetDateTime::now_utc() - Duration::seconds(1);
    });
    let future = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![crate::pki::uri("spiffe://td-a/a")];
        p.not_before = OffsetDateTime::now_utc() + Duration::seconds(5);
    });
    for refused in [&expired, &future] {
        match config.update_credentials(&creds(refused)) {
            Err(e @ TlsConfigError::NotValidNow { .. }) => {
                assert!(e.to_string().contains("not valid now"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.current_certificate(), before, "old pair kept");
    }

    let other = td_a.spiffe_leaf("spiffe://td-a/b");
    match config.update_credentials(&creds(&other)) {
        Err(e @ TlsConfigError::IdentityChanged { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("spiffe://td-a/b") && text.contains("spiffe://td-a/a"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(config.current_certificate(), before, "old pair kept");

    // A fresh leaf for the same workload is accepted.
    let renewed = td_a.spiffe_leaf("spiffe://td-a/a");
    config.update_credentials(&creds(&renewed)).unwrap();
    assert_eq!(config.current_certificate(), renewed.cert);
}

#[test]
fn an_unreadable_own_certificate_is_refused_at_build() {
    let td_a = Ca::root("td-a");
    let leaf = td_a.spiffe_leaf("spiffe://td-a/a");
    let mut der = leaf.cert.to_vec();
    der.push(0); // trailing garbage after the certificate
    let chain = vec![rustls::pki_types::CertificateDer::from(der)];
    let creds = Credentials::from_der(chain, leaf.key_der()).unwrap();
    let err = TlsConfig::builder(provider())
        .credentials(creds)
        .trust(store(&[("td-a", &td_a)]))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            TlsConfigError::UnreadableCertificate { .. }
                | TlsConfigError::InvalidCertificate { .. }
        ),
        "{err:?}"
    );
}
