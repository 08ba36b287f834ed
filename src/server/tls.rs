//! TLS: rustls with an explicit crypto provider, TLS 1.2+ (or 1.3 only), and a certificate that can be swapped
//! while serving. New handshakes pick up the new certificate; connections in flight keep theirs. With
//! `--tls-cert`/`--tls-key` the pair is a [`WatchedFile`]: polled, swapped when both halves form a new usable
//! pair, each distinct problem logged once.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::tls_policy::TlsPolicy;
use crate::store::watched_file::{WatchedFile, WatchedFileError};
use crate::x509::{self, X509Error};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: not a PEM private key: {error}")]
    Key { path: String, error: String },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(String),
    #[error(transparent)]
    Parse(#[from] X509Error),
    #[error(transparent)]
    Files(#[from] WatchedFileError),
    #[error("TLS configuration: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMinVersion {
    #[value(name = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    Tls13,
}

/// The crypto provider, installed explicitly (never rely on crate-feature auto-detection).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM certificate chain and key, already checked to belong together.
#[derive(Clone)]
pub struct CertPair {
    pub key: Arc<CertifiedKey>,
    /// Unix seconds; for `/metrics` and logs.
    pub not_after: i64,
}

impl fmt::Debug for CertPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertPair").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

impl CertPair {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], cert_name: &str, key_name: &str) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = x509::pem_certificates(cert_pem);
        let first = chain.first().ok_or_else(|| TlsError::NoCertificate { path: cert_name.to_owned() })?;
        let not_after = x509::not_after(first)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Key { path: key_name.to_owned(), error: e.to_string() })?;
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Pair(e.to_string()))?;
        Ok(Self { key: Arc::new(certified), not_after })
    }

    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| std::fs::read(p).map_err(|error| TlsError::Read { path: p.display().to_string(), error });
        Self::from_pem(&read(cert)?, &read(key)?, &cert.display().to_string(), &key.display().to_string())
    }
}

/// Hands the current certificate to every handshake.
pub struct CertStore {
    current: RwLock<CertPair>,
    not_after: AtomicI64,
    /// With `--tls-cert`/`--tls-key`: the files the pair comes from. Held here because their poller stops when
    /// they are dropped: the files are watched exactly as long as the store serves.
    files: OnceLock<Arc<WatchedFile<CertPair>>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("not_after", &self.not_after()).finish_non_exhaustive()
    }
}

impl CertStore {
    /// A store whose owner swaps the pair with [`CertStore::replace`] (the certificate Secret, `--self-signed`).
    pub fn new(pair: CertPair) -> Arc<Self> {
        let not_after = AtomicI64::new(pair.not_after);
        Arc::new(Self { current: RwLock::new(pair), not_after, files: OnceLock::new() })
    }

    /// `--tls-cert`/`--tls-key`: the pair loaded now (an error here is fatal: nothing to serve yet), then re-read
    /// every `interval`. A new pair is served once certificate and key both changed into a usable pair (the kubelet
    /// swaps them together; a half-written update fails to parse and the last good pair stays).
    pub fn watch_files(cert: &Path, key: &Path, interval: Duration) -> Result<Arc<Self>, TlsError> {
        let files = Arc::new(load_pair(cert, key)?);
        let store = Self::new(CertPair::clone(&files.current()));
        store.follow(files, interval);
        Ok(store)
    }

    fn follow(self: &Arc<Self>, files: Arc<WatchedFile<CertPair>>, interval: Duration) {
        let store = Arc::downgrade(self);
        files.spawn_with(interval, move |pair: &Arc<CertPair>| {
            if let Some(store) = store.upgrade() {
                tracing::info!(not_after = pair.not_after, "TLS certificate reloaded");
                store.replace(CertPair::clone(pair));
            }
        });
        // A store follows one pair of files; a second call (not made by this crate) keeps the first.
        let _ = self.files.set(files);
    }

    pub fn replace(&self, pair: CertPair) {
        self.not_after.store(pair.not_after, Ordering::Relaxed);
        // A poisoned lock still holds a valid pair: keep serving rather than panic.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
    }

    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Relaxed)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).key))
    }
}

pub fn server_config(store: Arc<CertStore>, policy: &TlsPolicy) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(policy.provider()))
        .with_protocol_versions(&policy.versions())
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate and key files as one watched value.
fn load_pair(cert: &Path, key: &Path) -> Result<WatchedFile<CertPair>, TlsError> {
    let names = (cert.display().to_string(), key.display().to_string());
    let file =
        WatchedFile::load_all(vec![cert.to_owned(), key.to_owned()], move |contents: &[Vec<u8>]| match contents {
            [cert_pem, key_pem] => CertPair::from_pem(cert_pem, key_pem, &names.0, &names.1),
            _ => Err(TlsError::Config("the certificate and the key are read together".to_owned())),
        })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::certs;

    fn write(dir: &Path, generated: &certs::GeneratedCerts) {
        std::fs::write(dir.join("tls.crt"), &generated.cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), &generated.key_pem).unwrap();
    }

    async fn wait_for(store: &CertStore, not_after: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.not_after() != not_after {
            assert!(std::time::Instant::now() < deadline, "the store never served the new pair");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn follows_the_files_and_logs_a_broken_pair_once() {
        let dir = tempfile::tempdir().unwrap();
        let sans = certs::service_sans("svc", "ns");
        let first = certs::generate(&sans, 30, 10).unwrap();
        write(dir.path(), &first);
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let store = CertStore::watch_files(&cert, &key, Duration::from_millis(10)).unwrap();
        let first_not_after = store.not_after();

        // A certificate from another pair: certificate and key no longer belong together, for many polls.
        let other = certs::generate(&sans, 30, 20).unwrap();
        std::fs::write(&cert, &other.cert_pem).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.not_after(), first_not_after, "a broken pair is not served");
        let files = Arc::clone(store.files.get().unwrap());
        assert_eq!(files.problem_lines_logged(), (1, 0), "one line for the problem, not one a poll");

        std::fs::write(&key, &other.key_pem).unwrap();
        wait_for(&store, x509::first_not_after(other.cert_pem.as_bytes()).unwrap()).await;
        assert_eq!(files.problem_lines_logged(), (1, 1), "and one for the recovery");
    }

    #[tokio::test]
    async fn the_files_are_watched_as_long_as_the_store_serves() {
        let dir = tempfile::tempdir().unwrap();
        let sans = certs::service_sans("svc", "ns");
        write(dir.path(), &certs::generate(&sans, 30, 10).unwrap());
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let store = CertStore::watch_files(&cert, &key, Duration::from_millis(10)).unwrap();
        let next = certs::generate(&sans, 30, 20).unwrap();
        write(dir.path(), &next);
        wait_for(&store, x509::first_not_after(next.cert_pem.as_bytes()).unwrap()).await;
        let files = Arc::downgrade(store.files.get().unwrap());
        drop(store);
        // The poller holds the files only while it polls them: within an interval they are gone, and it stops.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while files.upgrade().is_some() {
            assert!(std::time::Instant::now() < deadline, "the files outlived the store");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn a_missing_or_mismatched_pair_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let error = CertStore::watch_files(&cert, &key, Duration::from_secs(1)).err().unwrap();
        assert!(error.to_string().contains("tls.crt"), "{error}");
        let sans = certs::service_sans("svc", "ns");
        let (a, b) = (certs::generate(&sans, 30, 10).unwrap(), certs::generate(&sans, 30, 10).unwrap());
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &b.key_pem).unwrap();
        let error = CertStore::watch_files(&cert, &key, Duration::from_secs(1)).err().unwrap();
        assert!(error.to_string().contains("do not form a usable pair"), "{error}");
    }
}
