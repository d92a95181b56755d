//! Rotation from files: our certificate and key and the trust bundles are re-read on an
//! interval and swapped atomically when they change and pass validation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::TlsConfig;
use super::error::{Origin, TlsConfigError};
use super::material::{Credentials, TrustBundle, TrustStore};
use crate::identity::TrustDomain;

/// The files a [`TlsConfig`] reloads from: our certificate chain and key, and the trust
/// bundles (one per SPIFFE trust domain, and optionally one for DNS identities).
#[derive(Clone, Debug)]
pub struct ReloadFiles {
    cert: PathBuf,
    key: PathBuf,
    spiffe: Vec<(TrustDomain, PathBuf)>,
    dns: Option<PathBuf>,
}

impl ReloadFiles {
    /// Our PEM certificate chain and PEM private key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ReloadFiles {
            cert: cert.into(),
            key: key.into(),
            spiffe: Vec::new(),
            dns: None,
        }
    }

    /// A PEM bundle for the SPIFFE trust domain `trust_domain`.
    pub fn with_spiffe_bundle(
        mut self,
        trust_domain: TrustDomain,
        path: impl Into<PathBuf>,
    ) -> Self {
        self.spiffe.push((trust_domain, path.into()));
        self
    }

    /// A PEM bundle for DNS identities.
    pub fn with_dns_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.dns = Some(path.into());
        self
    }
}

/// What the reloader has done so far.
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    /// How many times new material (credentials or trust) was accepted and swapped in,
    /// counting the first load.
    pub generation: u64,
    /// The last refusal, cleared by the next successful swap of the same kind of material. The
    /// material in use is the last accepted one.
    pub last_error: Option<Arc<TlsConfigError>>,
}

/// A running reloader; stops when dropped.
///
/// # Semantics
///
/// Every `interval` (with `tokio::time`), the files are read. When the bytes of the
/// certificate or key differ from the last attempt, they are parsed and the key is checked
/// against the certificate; when a bundle file changed, all bundles are parsed and must be
/// non-empty. Only then is the material swapped (new handshakes use it; open connections keep
/// theirs). A refused load (missing file, half-written PEM, mismatched pair, empty bundle) is
/// logged at `warn`, reported in [`ReloadStatus::last_error`], and the previous material is
/// kept; it is retried when the files change again. Write new files with an atomic rename.
#[derive(Debug)]
pub struct ReloadHandle {
    status: watch::Receiver<ReloadStatus>,
    task: JoinHandle<()>,
}

impl ReloadHandle {
    /// The current status.
    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// A receiver notified on every change of status.
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.status.clone()
    }
}

impl Drop for ReloadHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsConfig {
    /// Starts reloading this configuration's material from `files` every `interval`, on the
    /// current Tokio runtime. See [`ReloadHandle`] for the semantics.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (as `tokio::spawn`).
    pub fn reload_from_files(&self, files: ReloadFiles, interval: Duration) -> ReloadHandle {
        let (tx, rx) = watch::channel(ReloadStatus::default());
        let config = self.clone();
        let task = tokio::spawn(run(config, files, interval, tx));
        ReloadHandle { status: rx, task }
    }
}

async fn run(
    config: TlsConfig,
    files: ReloadFiles,
    interval: Duration,
    tx: watch::Sender<ReloadStatus>,
) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let files = Arc::new(files);
    let mut last_creds: Option<Vec<Vec<u8>>> = None;
    let mut last_trust: Option<Vec<Vec<u8>>> = None;
    loop {
        ticker.tick().await;
        let read_files = files.clone();
        let read = tokio::task::spawn_blocking(move || read_all(&read_files)).await;
        let (creds, trust) = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                report(&tx, Err(e));
                continue;
            }
            Err(_) => continue, // the runtime is shutting down
        };
        if last_creds.as_ref() != Some(&creds) {
            let result = Credentials::parse(
                &creds[0],
                Origin::File(files.cert.clone()),
                &creds[1],
                Origin::File(files.key.clone()),
            )
            .and_then(|c| config.update_credentials(&c));
            report(&tx, result);
            last_creds = Some(creds);
        }
        if last_trust.as_ref() != Some(&trust) {
            let result = trust_store(&files, &trust).and_then(|t| config.update_trust(&t));
            report(&tx, result);
            last_trust = Some(trust);
        }
    }
}

type Bytes = Vec<Vec<u8>>;

fn read_all(files: &ReloadFiles) -> Result<(Bytes, Bytes), TlsConfigError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| TlsConfigError::Read {
            path: path.clone(),
            source,
        })
    };
    let creds = vec![read(&files.cert)?, read(&files.key)?];
    let mut trust = Vec::with_capacity(files.spiffe.len() + 1);
    for (_, path) in &files.spiffe {
        trust.push(read(path)?);
    }
    if let Some(path) = &files.dns {
        trust.push(read(path)?);
    }
    Ok((creds, trust))
}

fn trust_store(files: &ReloadFiles, bytes: &[Vec<u8>]) -> Result<TrustStore, TlsConfigError> {
    let mut store = TrustStore::new();
    for ((td, path), pem) in files.spiffe.iter().zip(bytes) {
        store = store.with_spiffe(
            td.clone(),
            TrustBundle::parse_pem(pem, Origin::File(path.clone()))?,
        );
    }
    if let (Some(path), Some(pem)) = (&files.dns, bytes.get(files.spiffe.len())) {
        store = store.with_dns(TrustBundle::parse_pem(pem, Origin::File(path.clone()))?);
    }
    Ok(store)
}

fn report(tx: &watch::Sender<ReloadStatus>, result: Result<(), TlsConfigError>) {
    tx.send_modify(|status| match result {
        Ok(()) => {
            tracing::info!("tls material reloaded");
            status.generation += 1;
            status.last_error = None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "tls material reload refused; keeping the previous material");
            status.last_error = Some(Arc::new(e));
        }
    });
}
