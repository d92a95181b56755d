//! Group G: rotation from files, under load, and refused reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{
    Credentials, Origin, ReloadFiles, ReloadHandle, TlsConfig, TlsConfigError, TrustBundle,
};

use crate::pki::{Ca, Leaf};
use crate::support::*;

const SERVER: &str = "spiffe://td-a/ns/x/sa/server";
const CLIENT: &str = "spiffe://td-a/ns/x/sa/client";
const POLL: Duration = Duration::from_millis(50);

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(
            format!(
                "tower-mesh-tls-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            )
            .replace([' ', ':', '{', '}', ','], "_"),
        );
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `contents` to `path` atomically (write a temporary file, then rename).
fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_leaf(dir: &TempDir, leaf: &Leaf) {
    write_atomic(&dir.path("cert.pem"), &leaf.cert_pem());
    write_atomic(&dir.path("key.pem"), &leaf.key_pem());
}

/// A server configured from files in `dir`, reloading every 50 ms.
fn server_from_files(dir: &TempDir, leaf: &Leaf, bundle_pem: &str) -> (TlsConfig, ReloadHandle) {
    write_leaf(dir, leaf);
    write_atomic(&dir.path("bundle.pem"), bundle_pem);
    let td = TrustDomain::parse("td-a").unwrap();
    let config = TlsConfig::builder(provider())
        .credentials(
            Credentials::from_pem_files(dir.path("cert.pem"), dir.path("key.pem")).unwrap(),
        )
        .trust(tower_mesh::tls::TrustStore::new().with_spiffe(
            td.clone(),
            TrustBundle::from_pem_file(dir.path("bundle.pem")).unwrap(),
        ))
        .build()
        .unwrap();
    let files = ReloadFiles::new(dir.path("cert.pem"), dir.path("key.pem"))
        .with_spiffe_bundle(td, dir.path("bundle.pem"));
    let handle = config.reload_from_files(files, POLL);
    (config, handle)
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if cond().await {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out after 20 s waiting for {what}");
}

async fn wait_status(
    handle: &ReloadHandle,
    what: &str,
    cond: impl Fn(&tower_mesh::tls::ReloadStatus) -> bool,
) {
    let mut rx = handle.subscribe();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| cond(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap();
}

/// The leaf certificate a new connection to `server` is shown.
async fn presented(
    client: &TlsConfig,
    server: &Server,
) -> rustls::pki_types::CertificateDer<'static> {
    let stream = connect(client, server.addr, SERVER).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_leaf_hot_swap_under_load_without_failed_requests() {
    let td_a = Ca::root("td-a");
    let dir = TempDir::new("g1");
    let old = td_a.spiffe_leaf(SERVER);
    let (config, handle) = server_from_files(&dir, &old, &td_a.pem());
    let server = Server::start(config).await;
    let client = self::config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);

    // A long-lived connection opened with the old certificate.
    let mut long = sender(connect(&client, server.addr, SERVER).await.unwrap()).await;
    assert_eq!(send(&mut long).await.unwrap(), CLIENT);

    // Load: four tasks opening a new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, stop, ok, failed, addr) = (
            client.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            server.addr,
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let result = match connect(&client, addr, SERVER).await {
                    Ok(stream) => get(stream).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(body) if body == CLIENT => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    wait_for("load to start", async || ok.load(Ordering::SeqCst) >= 20).await;

    let new = td_a.spiffe_leaf(SERVER);
    write_leaf(&dir, &new);
    wait_for("the new certificate", async || {
        presented(&client, &server).await == new.cert
    })
    .await;
    let after = ok.load(Ordering::SeqCst);
    wait_for("load after the swap", async || {
        ok.load(Ordering::SeqCst) >= after + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "zero failed requests");
    // The old connection is untouched.
    assert_eq!(send(&mut long).await.unwrap(), CLIENT);
    assert!(handle.status().last_error.is_none());
    assert!(handle.status().generation >= 3, "{:?}", handle.status());
}

#[tokio::test]
async fn g2_mismatched_pair_and_half_written_file_are_refused() {
    let td_a = Ca::root("td-a");
    let dir = TempDir::new("g2");
    let old = td_a.spiffe_leaf(SERVER);
    let (config, handle) = server_from_files(&dir, &old, &td_a.pem());
    let server = Server::start(config).await;
    let client = self::config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    wait_status(&handle, "first load", |s| s.generation >= 2).await;

    // New certificate, old key.
    let new = td_a.spiffe_leaf(SERVER);
    write_atomic(&dir.path("cert.pem"), &new.cert_pem());
    wait_status(&handle, "refusal", |s| s.last_error.is_some()).await;
    match handle.status().last_error.as_deref() {
        Some(TlsConfigError::KeyMismatch { cert, key, .. }) => {
            assert_eq!(*cert, Origin::File(dir.path("cert.pem")));
            assert_eq!(*key, Origin::File(dir.path("key.pem")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(presented(&client, &server).await, old.cert, "old pair kept");

    // A half-written certificate file.
    let full = new.cert_pem();
    write_atomic(&dir.path("cert.pem"), &full[..full.len() / 2]);
    wait_status(&handle, "PEM refusal", |s| {
        matches!(s.last_error.as_deref(), Some(TlsConfigError::Pem { .. }))
    })
    .await;
    assert_eq!(presented(&client, &server).await, old.cert, "old pair kept");

    // The complete pair is then accepted.
    write_atomic(&dir.path("key.pem"), &new.key_pem());
    write_atomic(&dir.path("cert.pem"), &full);
    wait_for("the new pair", async || {
        presented(&client, &server).await == new.cert
    })
    .await;
    wait_status(&handle, "the error cleared", |s| {
        s.last_error.is_none() && s.credentials_error.is_none()
    })
    .await;

    // An expired certificate (with its own matching key) is refused too.
    let expired = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![crate::pki::uri(SERVER)];
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
        p.not_after = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    });
    write_leaf(&dir, &expired);
    wait_status(&handle, "expiry refusal", |s| {
        matches!(
            s.credentials_error.as_deref(),
            Some(TlsConfigError::NotValidNow { .. })
        )
    })
    .await;
    assert_eq!(
        presented(&client, &server).await,
        new.cert,
        "valid pair kept"
    );
}

#[tokio::test]
async fn refusals_are_tracked_per_kind_of_material() {
    let td_a = Ca::root("td-a");
    let dir = TempDir::new("kinds");
    let leaf = td_a.spiffe_leaf(SERVER);
    let (config, handle) = server_from_files(&dir, &leaf, &td_a.pem());
    let server = Server::start(config).await;
    wait_status(&handle, "first load", |s| s.generation >= 2).await;

    // A bad certificate, then a good bundle change: the bundle is swapped in, and the
    // certificate's refusal still stands.
    let other = td_a.spiffe_leaf(SERVER);
    write_atomic(&dir.path("cert.pem"), &other.cert_pem());
    wait_status(&handle, "credentials refusal", |s| {
        s.credentials_error.is_some()
    })
    .await;
    let td_b = Ca::root("td-b");
    write_atomic(
        &dir.path("bundle.pem"),
        &format!("{}{}", td_a.pem(), td_b.pem()),
    );
    let generation = handle.status().generation;
    wait_status(&handle, "bundle accepted", |s| s.generation > generation).await;
    let status = handle.status();
    assert!(status.trust_error.is_none(), "{status:?}");
    assert!(
        matches!(
            status.credentials_error.as_deref(),
            Some(TlsConfigError::KeyMismatch { .. })
        ),
        "{status:?}"
    );
    assert!(status.last_error.is_some(), "a refusal still stands");

    // A client from td-b (now trusted) gets through; the server still presents the old leaf.
    let client_b = self::config(&td_b.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let stream = connect(&client_b, server.addr, SERVER).await.unwrap();
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap()[0],
        leaf.cert
    );
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn reloading_credentials_alone_keeps_the_built_trust_and_rotates_a_client() {
    let td_a = Ca::root("td-a");
    let server = Server::start(self::config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;

    // A client whose certificate and key come from files; no bundle file is listed.
    let dir = TempDir::new("client");
    let old = td_a.spiffe_leaf(CLIENT);
    write_leaf(&dir, &old);
    let client = builder(&old, &[("td-a", &td_a)])
        .credentials(
            Credentials::from_pem_files(dir.path("cert.pem"), dir.path("key.pem")).unwrap(),
        )
        .build()
        .unwrap();
    let handle = client.reload_from_files(
        ReloadFiles::new(dir.path("cert.pem"), dir.path("key.pem")),
        POLL,
    );
    wait_status(&handle, "first load", |s| s.generation >= 1).await;
    for _ in 0..3 {
        tokio::time::sleep(POLL).await;
    }
    let status = handle.status();
    assert!(
        status.last_error.is_none(),
        "no bundle file, no error: {status:?}"
    );
    assert_eq!(status.generation, 1, "only the credentials were loaded");
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(
        get(stream).await.unwrap(),
        CLIENT,
        "built trust still in use"
    );

    // The client's own certificate rotates: new handshakes present it.
    let new = td_a.spiffe_leaf(CLIENT);
    write_leaf(&dir, &new);
    wait_for("the client's new certificate", async || {
        client.current_certificate() == new.cert
    })
    .await;
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}

#[tokio::test]
async fn g5_a_connection_does_not_outlive_the_peer_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let td_a = Ca::root("td-a");
    // The server's leaf expires in about two seconds; no maximum age is configured.
    let short = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![crate::pki::uri(SERVER)];
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    });
    let server = Server::start(self::config(&short, &[("td-a", &td_a)])).await;
    let client = self::config(&td_a.spiffe_leaf(CLIENT), &[("td-a", &td_a)]);
    let mut stream = connect(&client, server.addr, SERVER).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The response arrives; then the idle connection fails when the server's leaf expires.
    let mut buf = [0u8; 1024];
    let err = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => panic!("closed by the server, not by the certificate's expiry"),
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the connection ended at the certificate's expiry");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let age = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<tower_mesh::tls::ConnectionAgeExceeded>())
        .unwrap_or_else(|| panic!("not an age error: {err:?}"));
    assert!(age.certificate_expired(), "{age:?}");
    assert!(age.max_age() <= Duration::from_secs(3), "{age:?}");
    assert!(stream.write_all(b"x").await.is_err(), "writes fail too");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn crls_reload_with_the_bundle_and_revoke_on_new_handshakes_only() {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    let td_a = Ca::root("td-a");
    let crl = |serials: &[u8]| {
        let now = time::OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::hours(1),
            crl_number: SerialNumber::from(vec![serials.len() as u8 + 1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(vec![*s]),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&td_a.issuer())
        .unwrap()
        .pem()
        .unwrap()
    };
    let dir = TempDir::new("crl");
    write_leaf(&dir, &td_a.spiffe_leaf(SERVER));
    write_atomic(&dir.path("bundle.pem"), &td_a.pem());
    write_atomic(&dir.path("crl.pem"), &crl(&[]));
    let td = TrustDomain::parse("td-a").unwrap();
    let config = builder(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])
        .build()
        .unwrap();
    let files = ReloadFiles::new(dir.path("cert.pem"), dir.path("key.pem"))
        .with_spiffe_bundle(td.clone(), dir.path("bundle.pem"))
        .with_spiffe_crls(td, dir.path("crl.pem"));
    let handle = config.reload_from_files(files, POLL);
    wait_status(&handle, "first load", |s| s.generation >= 2).await;
    assert!(
        handle.status().last_error.is_none(),
        "{:?}",
        handle.status()
    );
    let server = Server::start(config).await;

    let doomed = Ca::leaf_with(&td_a, |p| {
        p.subject_alt_names = vec![crate::pki::uri(CLIENT)];
        p.serial_number = Some(SerialNumber::from(vec![0x42]));
    });
    let client = self::config(&doomed, &[("td-a", &td_a)]);
    let mut long = sender(connect(&client, server.addr, SERVER).await.unwrap()).await;
    assert_eq!(send(&mut long).await.unwrap(), CLIENT);

    write_atomic(&dir.path("crl.pem"), &crl(&[0x42]));
    wait_for("the revocation to apply", async || {
        let s = connect(&client, server.addr, SERVER).await.unwrap();
        get(s).await.is_err()
    })
    .await;
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::Revoked
    );
    assert_eq!(
        send(&mut long).await.unwrap(),
        CLIENT,
        "an open connection is untouched"
    );

    // A garbage CRL file is refused and the revocation stays in force.
    write_atomic(
        &dir.path("crl.pem"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    wait_status(&handle, "CRL refusal", |s| {
        matches!(
            s.trust_error.as_deref(),
            Some(TlsConfigError::InvalidCrl { .. })
        )
    })
    .await;
    let calls = server.calls();
    let s = connect(&client, server.addr, SERVER).await.unwrap();
    assert!(get(s).await.is_err(), "still revoked");
    assert_eq!(server.calls(), calls);
}

#[tokio::test]
async fn g6_an_expired_own_certificate_opens_no_connection() {
    let td_a = Ca::root("td-a");
    let server = Server::start(self::config(&td_a.spiffe_leaf(SERVER), &[("td-a", &td_a)])).await;
    let expired = td_a.leaf_with(|p| {
        p.subject_alt_names = vec![crate::pki::uri(CLIENT)];
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
        p.not_after = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    });
    let client = self::config(&expired, &[("td-a", &td_a)]);
    assert!(client.certificate_expiry() < std::time::SystemTime::now());
    let err = connect(&client, server.addr, SERVER).await.unwrap_err();
    let refused = err
        .downcast_ref::<tower_mesh::tls::OwnCertificateNotValid>()
        .unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(refused.not_after(), client.certificate_expiry());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        0,
        "no socket was opened"
    );
    assert_eq!(server.calls(), 0);

    // Renewal (a valid leaf for the same workload) makes it connect again.
    let renewed = td_a.spiffe_leaf(CLIENT);
    client
        .update_credentials(
            &Credentials::from_der(renewed.chain.clone(), renewed.key_der()).unwrap(),
        )
        .unwrap();
    let stream = connect(&client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(stream).await.unwrap(), CLIENT);
}
