//! TLS: rustls with an explicit crypto provider, TLS 1.2+ (or 1.3 only), and a certificate that can be swapped
//! while serving. New handshakes pick up the new certificate; connections in flight keep theirs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::tls_policy::TlsPolicy;

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
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
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
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem).filter_map(Result::ok).collect();
        let first = chain.first().ok_or_else(|| TlsError::NoCertificate { path: cert_name.to_owned() })?;
        let not_after = not_after(first)?;
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

fn not_after(cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| TlsError::Parse(e.to_string()))?;
    Ok(parsed.validity().not_after.timestamp())
}

/// Hands the current certificate to every handshake.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<CertPair>,
    not_after: AtomicI64,
}

impl CertStore {
    pub fn new(pair: CertPair) -> Arc<Self> {
        let not_after = AtomicI64::new(pair.not_after);
        Arc::new(Self { current: RwLock::new(pair), not_after })
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

/// Polls the cert and key files and swaps the served pair when their content changes. Polling (not inotify)
/// because Kubernetes Secret volumes change by swapping a `..data` symlink, which file watches on the old
/// target miss; reading two small files per interval costs nothing. A broken new pair keeps the old one.
pub async fn reload_files(store: Arc<CertStore>, cert: PathBuf, key: PathBuf, interval: Duration) {
    let mut last = (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = (tokio::fs::read(&cert).await.ok(), tokio::fs::read(&key).await.ok());
        if now == last {
            continue;
        }
        let (Some(cert_pem), Some(key_pem)) = (&now.0, &now.1) else {
            tracing::warn!(cert = %cert.display(), key = %key.display(), "certificate or key unreadable; serving the previous pair");
            continue;
        };
        match CertPair::from_pem(cert_pem, key_pem, &cert.display().to_string(), &key.display().to_string()) {
            Ok(pair) => {
                tracing::info!(not_after = pair.not_after, "TLS certificate reloaded");
                store.replace(pair);
                last = now;
            }
            // Cert and key may be caught mid-update; the next tick sees the finished pair.
            Err(error) => tracing::warn!(%error, "new TLS certificate not usable; serving the previous pair"),
        }
    }
}
