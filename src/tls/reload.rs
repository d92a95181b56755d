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
    // CRL files, each for the bundle of a trust domain (`None`: the DNS bundle).
    crls: Vec<(Option<TrustDomain>, PathBuf)>,
}

impl ReloadFiles {
    /// Our PEM certificate chain and PEM private key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ReloadFiles {
            cert: cert.into(),
            key: key.into(),
            spiffe: Vec::new(),
            dns: None,
            crls: Vec::new(),
        }
    }

    /// A bundle for the SPIFFE trust domain `trust_domain`: PEM, or a SPIFFE bundle (JWK Set,
    /// see [`TrustBundle::from_spiffe_bundle`]) when the file starts with `{`.
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

    /// A PEM file of CRLs for the bundle of `trust_domain` (which must be listed with
    /// [`with_spiffe_bundle`](Self::with_spiffe_bundle)); reloaded with the bundles. See
    /// [`TrustBundle`] for what CRLs change.
    pub fn with_spiffe_crls(mut self, trust_domain: TrustDomain, path: impl Into<PathBuf>) -> Self {
        self.crls.push((Some(trust_domain), path.into()));
        self
    }

    /// A PEM file of CRLs for the DNS bundle (which must be listed with
    /// [`with_dns_bundle`](Self::with_dns_bundle)).
    pub fn with_dns_crls(mut self, path: impl Into<PathBuf>) -> Self {
        self.crls.push((None, path.into()));
        self
    }
}

/// What the reloader has done so far.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// How many times new material (credentials or trust) was accepted and swapped in,
    /// counting the first load.
    pub generation: u64,
    /// The last refusal of our certificate and key, cleared when a later pair is accepted.
    pub credentials_error: Option<Arc<TlsConfigError>>,
    /// The last refusal of the trust bundles, cleared when later bundles are accepted.
    pub trust_error: Option<Arc<TlsConfigError>>,
    /// The most recent refusal of either kind, while either kind's error stands; `None` when
    /// the files in place are all in use.
    pub last_error: Option<Arc<TlsConfigError>>,
}

/// A running reloader; stops when dropped.
///
/// # Semantics
///
/// Every `interval` (with `tokio::time`), the files are read. When the bytes of the
/// certificate or key differ from the last attempt, they are parsed and checked as
/// [`TlsConfig::update_credentials`] does (the key matches, the leaf is valid now and names the
/// same workload); when a bundle file changed, all bundles are parsed and must be non-empty.
/// Only then is the material swapped (new handshakes use it; open connections keep theirs). A
/// refused load (missing file, half-written PEM, mismatched pair, expired leaf, empty bundle)
/// is logged at `warn`, reported in [`ReloadStatus`], and the previous material is kept; it is
/// retried when the files change again. Write new files with an atomic rename.
///
/// The two kinds are independent: a refused certificate does not stop a good bundle from
/// being swapped in, nor the other way round. When [`ReloadFiles`] lists no bundle, the trust
/// bundles the configuration was built with stay in use, untouched.
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
    let mut last_creds: Option<Bytes> = None;
    let mut last_trust: Option<Bytes> = None;
    loop {
        ticker.tick().await;
        let read_files = files.clone();
        let Ok((creds, trust)) = tokio::task::spawn_blocking(move || {
            (read_credentials(&read_files), read_trust(&read_files))
        })
        .await
        else {
            return; // the runtime is shutting down
        };
        match creds {
            Ok(creds) if last_creds.as_ref() != Some(&creds) => {
                let result = Credentials::parse(
                    &creds[0],
                    Origin::File(files.cert.clone()),
                    &creds[1],
                    Origin::File(files.key.clone()),
                )
                .and_then(|c| config.update_credentials(&c));
                report(&tx, Kind::Credentials, result);
                last_creds = Some(creds);
            }
            Ok(_) => {}
            Err(e) => {
                report(&tx, Kind::Credentials, Err(e));
                last_creds = None;
            }
        }
        match trust {
            Ok(None) => {}
            Ok(Some(trust)) if last_trust.as_ref() != Some(&trust) => {
                let result = trust_store(&files, &trust).and_then(|t| config.update_trust(&t));
                report(&tx, Kind::Trust, result);
                last_trust = Some(trust);
            }
            Ok(Some(_)) => {}
            Err(e) => {
                report(&tx, Kind::Trust, Err(e));
                last_trust = None;
            }
        }
    }
}

type Bytes = Vec<Vec<u8>>;

fn read(path: &PathBuf) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.clone(),
        source,
    })
}

fn read_credentials(files: &ReloadFiles) -> Result<Bytes, TlsConfigError> {
    Ok(vec![read(&files.cert)?, read(&files.key)?])
}

/// The bundle files' bytes, or `None` when no bundle is reloaded from files.
fn read_trust(files: &ReloadFiles) -> Result<Option<Bytes>, TlsConfigError> {
    if files.spiffe.is_empty() && files.dns.is_none() {
        return Ok(None);
    }
    let mut trust = Vec::with_capacity(files.spiffe.len() + 1);
    for (_, path) in &files.spiffe {
        trust.push(read(path)?);
    }
    if let Some(path) = &files.dns {
        trust.push(read(path)?);
    }
    for (_, path) in &files.crls {
        trust.push(read(path)?);
    }
    Ok(Some(trust))
}

/// Builds the store from the bytes `read_trust` read, in its order: SPIFFE bundles, the DNS
/// bundle, CRLs.
fn trust_store(files: &ReloadFiles, bytes: &[Vec<u8>]) -> Result<TrustStore, TlsConfigError> {
    let mut bytes = bytes.iter();
    let mut spiffe = Vec::with_capacity(files.spiffe.len());
    for ((td, path), pem) in files.spiffe.iter().zip(&mut bytes) {
        spiffe.push((
            td.clone(),
            TrustBundle::parse_any(pem, Origin::File(path.clone()))?,
        ));
    }
    let mut dns = match (&files.dns, files.dns.as_ref().and_then(|_| bytes.next())) {
        (Some(path), Some(pem)) => Some(TrustBundle::parse_any(pem, Origin::File(path.clone()))?),
        _ => None,
    };
    for ((td, path), pem) in files.crls.iter().zip(bytes) {
        let origin = Origin::File(path.clone());
        let bundle = match td {
            Some(td) => spiffe.iter_mut().find(|(t, _)| t == td).map(|(_, b)| b),
            None => dns.as_mut(),
        };
        let Some(bundle) = bundle else {
            return Err(TlsConfigError::CrlWithoutBundle { origin });
        };
        *bundle = bundle.clone().add_crls(pem, origin)?;
    }
    let mut store = TrustStore::new();
    for (td, bundle) in spiffe {
        store = store.with_spiffe(td, bundle);
    }
    if let Some(bundle) = dns {
        store = store.with_dns(bundle);
    }
    Ok(store)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Credentials,
    Trust,
}

fn report(tx: &watch::Sender<ReloadStatus>, kind: Kind, result: Result<(), TlsConfigError>) {
    tx.send_modify(|status| {
        let slot = match kind {
            Kind::Credentials => &mut status.credentials_error,
            Kind::Trust => &mut status.trust_error,
        };
        match result {
            Ok(()) => {
                tracing::info!(?kind, "tls material reloaded");
                status.generation += 1;
                *slot = None;
            }
            Err(e) => {
                // A file that stays missing fails every tick: log it once.
                if slot
                    .as_ref()
                    .is_none_or(|old| old.to_string() != e.to_string())
                {
                    tracing::warn!(
                        ?kind,
                        error = %e,
                        "tls material reload refused; keeping the previous material"
                    );
                }
                let e = Arc::new(e);
                *slot = Some(e.clone());
                status.last_error = Some(e);
            }
        }
        if status.credentials_error.is_none() && status.trust_error.is_none() {
            status.last_error = None;
        }
    });
}
