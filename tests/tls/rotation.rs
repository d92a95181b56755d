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
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn g3_g4_bundle_rotation_with_overlap_and_refused_empty_bundle() {
    let (old_root, new_root) = (Ca::root("td-a-old"), Ca::root("td-a-new"));
    let dir = TempDir::new("g3");
    let both = format!("{}{}", old_root.pem(), new_root.pem());
    let (config, handle) = server_from_files(&dir, &new_root.spiffe_leaf(SERVER), &both);
    let server = Server::start(config).await;
    let trust = [("td-a", &new_root)];
    let old_client = self::config(&old_root.spiffe_leaf(CLIENT), &trust);
    let new_client = self::config(&new_root.spiffe_leaf(CLIENT), &trust);

    // Overlap: both accepted.
    let mut long = sender(connect(&old_client, server.addr, SERVER).await.unwrap()).await;
    assert_eq!(send(&mut long).await.unwrap(), CLIENT);
    let s = connect(&new_client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(s).await.unwrap(), CLIENT);

    // G4: an empty bundle is refused and the overlap bundle kept.
    write_atomic(&dir.path("bundle.pem"), "");
    wait_status(&handle, "empty bundle refusal", |s| {
        matches!(
            s.last_error.as_deref(),
            Some(TlsConfigError::EmptyBundle { .. })
        )
    })
    .await;
    let s = connect(&old_client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(s).await.unwrap(), CLIENT, "previous bundle kept");

    // Remove the old root: old-issued clients are refused on new handshakes only.
    write_atomic(&dir.path("bundle.pem"), &new_root.pem());
    wait_for("old root removed", async || {
        let s = connect(&old_client, server.addr, SERVER).await.unwrap();
        get(s).await.is_err()
    })
    .await;
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::UnknownIssuer
    );
    let calls = server.calls();
    let s = connect(&old_client, server.addr, SERVER).await.unwrap();
    assert!(get(s).await.is_err());
    assert_eq!(
        cert_error(&server.wait_error().await),
        rustls::CertificateError::UnknownIssuer
    );
    assert_eq!(server.calls(), calls, "refused clients reached no handler");
    assert_eq!(
        send(&mut long).await.unwrap(),
        CLIENT,
        "open connection untouched"
    );
    let s = connect(&new_client, server.addr, SERVER).await.unwrap();
    assert_eq!(get(s).await.unwrap(), CLIENT);
}
