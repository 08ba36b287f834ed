//! The shell around the rules: HTTPS for `/mutate`, plain HTTP for health and metrics, certificates, shutdown.

pub mod cert_secret;
pub mod certs;
pub mod http;
pub mod metrics;
pub mod tls;
pub mod tls_policy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::store::ServiceAccountSource;
use metrics::Metrics;
use tls::{CertPair, CertStore};
use tls_policy::TlsPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error("cannot write the CA bundle to {path}: {error}")]
    CaBundle { path: String, error: std::io::Error },
    #[error("certificate Secret: {0}")]
    CertSecret(#[from] cert_secret::CertSecretError),
}

/// Where the serving certificate comes from.
pub enum CertificateSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
        reload_interval: Duration,
    },
    /// `--self-signed`: generated in memory for these names; the CA is written to `ca_bundle_out`.
    SelfSigned {
        sans: Vec<String>,
        ca_bundle_out: PathBuf,
    },
    /// `--cert-secret`: the CA and certificate live in a Secret shared by all replicas.
    Secret {
        client: kube::Client,
        config: cert_secret::SecretCertConfig,
    },
}

pub struct ServerConfig {
    pub certificate: CertificateSource,
    pub tls: TlsPolicy,
    pub limits: http::Limits,
    pub shutdown_timeout: Duration,
    /// After the signal, keep accepting this long with `/readyz` failing, so endpoints drain first.
    pub shutdown_delay: Duration,
}

/// State shared by every request.
pub struct AppState {
    pub admission: Admission,
    pub source: Arc<dyn ServiceAccountSource>,
    pub metrics: Arc<Metrics>,
    pub certs: Arc<CertStore>,
    /// Set when shutdown begins, so `/readyz` fails and endpoints drain.
    pub draining: AtomicBool,
}

/// The two listening sockets, bound by the caller (tests bind port 0 and read the port back).
pub struct Listeners {
    pub mutate: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    pub async fn bind(mutate: SocketAddr, metrics: SocketAddr) -> Result<Self, ServerError> {
        let bind =
            |addr| async move { TcpListener::bind(addr).await.map_err(|error| ServerError::Listen { addr, error }) };
        Ok(Self { mutate: bind(mutate).await?, metrics: bind(metrics).await? })
    }
}

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests `shutdown_timeout`.
pub async fn run(
    config: ServerConfig,
    listeners: Listeners,
    admission: Admission,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let certs = match &config.certificate {
        CertificateSource::Files { cert, key, reload_interval } => {
            let store = CertStore::new(CertPair::from_files(cert, key)?);
            tokio::spawn(tls::reload_files(Arc::clone(&store), cert.clone(), key.clone(), *reload_interval));
            store
        }
        CertificateSource::SelfSigned { sans, ca_bundle_out } => CertStore::new(self_signed(sans, ca_bundle_out)?),
        CertificateSource::Secret { client, config } => {
            let secrets = kube::Api::namespaced(client.clone(), &config.namespace);
            let held = cert_secret::load_or_create(&secrets, config).await?;
            let store = CertStore::new(CertPair::from_pem(
                held.cert_pem.as_bytes(),
                held.key_pem.as_bytes(),
                &config.secret_name,
                &config.secret_name,
            )?);
            tracing::info!(secret = %config.secret_name, namespace = %config.namespace, "serving the certificate from the Secret");
            tokio::spawn(cert_secret::keep_current(client.clone(), config.clone(), Arc::clone(&store), held));
            store
        }
    };
    let state = Arc::new(AppState {
        source: Arc::clone(&admission.source),
        admission,
        metrics: Metrics::new(),
        certs: Arc::clone(&certs),
        draining: AtomicBool::new(false),
    });
    let acceptor = TlsAcceptor::from(tls::server_config(certs, &config.tls)?);
    let Listeners { mutate: listener, metrics: metrics_listener } = listeners;
    let local = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(addr = %local(&listener), metrics = %local(&metrics_listener), "serving /mutate over TLS");

    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_task = tokio::spawn({
        let router = http::metrics_router(Arc::clone(&state));
        let mut stop = stop_rx.clone();
        async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(error) = axum::serve(metrics_listener, router).with_graceful_shutdown(stopped).await {
                tracing::error!(%error, "metrics server failed");
            }
        }
    });

    let router = http::mutate_router(Arc::clone(&state), &config.limits);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stop_accepting = {
        let state = Arc::clone(&state);
        let delay = config.shutdown_delay;
        async move {
            shutdown.await;
            state.draining.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(?delay, "draining: /readyz fails while endpoints update; still serving");
                tokio::time::sleep(delay).await;
            }
        }
    };
    tokio::pin!(stop_accepting);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                let watcher = graceful.watcher();
                let handshake_timeout = config.limits.handshake_timeout;
                let header_timeout = config.limits.header_read_timeout;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
                    builder.http2().timer(TokioTimer::new());
                    let connection = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut stop_accepting => break,
        }
    }

    tracing::info!(in_flight = graceful.count(), "shutting down: no new connections, finishing in-flight requests");
    drop(listener);
    if tokio::time::timeout(config.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?config.shutdown_timeout, "in-flight requests did not finish in time");
    }
    let _ = stop_tx.send(true);
    let _ = metrics_task.await;
    tracing::info!("stopped");
    Ok(())
}

fn self_signed(sans: &[String], ca_bundle_out: &std::path::Path) -> Result<CertPair, ServerError> {
    let generated = certs::generate(sans, 365, 365)?;
    std::fs::write(ca_bundle_out, &generated.ca_pem)
        .map_err(|error| ServerError::CaBundle { path: ca_bundle_out.display().to_string(), error })?;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&generated.ca_pem);
    tracing::info!(ca_file = %ca_bundle_out.display(), %ca_bundle, sans = ?sans, "self-signed certificate generated; the CA bundle is for the webhook configuration's caBundle, or curl --cacert");
    Ok(CertPair::from_pem(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes(), "generated", "generated")?)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
