//! The shell around the rules: HTTPS for `/mutate`, plain HTTP for health and metrics, certificates, shutdown.

pub mod cert_secret;
pub mod certs;
pub mod conn;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod tls;
pub mod tls_policy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::store::ServiceAccountSource;
use conn::{ConnLimits, Phase, Port};
use metrics::{Metrics, PortName};
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
    #[error("certificate Secret")]
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
    /// Bounds of requests on /mutate.
    pub limits: http::Limits,
    /// Deadlines and cap of the TLS port's connections.
    pub connections: ConnLimits,
    /// Deadlines and cap of the metrics port's connections.
    pub metrics_connections: ConnLimits,
    /// After the delay: how long connections may take to finish before they are cut and the server returns.
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
    pub limits: http::Limits,
    /// `--max-requests-in-flight` slots.
    in_flight: Arc<Semaphore>,
    /// The large-body memory budget, one permit per byte.
    large_bodies: Arc<Semaphore>,
    /// `--review-threads` slots on the blocking pool.
    review_threads: Arc<Semaphore>,
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
        CertificateSource::Files { cert, key, reload_interval } => CertStore::watch_files(cert, key, *reload_interval)?,
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
    let limits = config.limits.clone();
    let state = Arc::new(AppState {
        source: Arc::clone(&admission.source),
        admission,
        metrics: Metrics::new(),
        certs: Arc::clone(&certs),
        draining: AtomicBool::new(false),
        in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight.max(1))),
        // Room for at least one largest body, or such a request could never be served.
        large_bodies: Arc::new(Semaphore::new(limits.max_large_body_bytes_in_flight.max(limits.max_body_bytes))),
        review_threads: Arc::new(Semaphore::new(limits.review_threads.max(1))),
        limits,
    });
    let acceptor = TlsAcceptor::from(tls::server_config(certs, &config.tls)?);
    let Listeners { mutate: listener, metrics: metrics_listener } = listeners;
    let local = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        addr = %local(&listener),
        metrics = %local(&metrics_listener),
        max_connections = config.connections.max_connections,
        metrics_max_connections = config.metrics_connections.max_connections,
        max_requests_in_flight = state.limits.max_requests_in_flight,
        "serving /mutate over TLS"
    );

    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let https = tokio::spawn(conn::serve(
        Port { name: PortName::Https, listener, tls: Some(acceptor), limits: config.connections.clone() },
        http::WebhookHandler(Arc::clone(&state)),
        Arc::clone(&state.metrics),
        phase_rx.clone(),
    ));
    let metrics = tokio::spawn(conn::serve(
        Port { name: PortName::Metrics, listener: metrics_listener, tls: None, limits: config.metrics_connections },
        http::MetricsHandler(Arc::clone(&state)),
        Arc::clone(&state.metrics),
        phase_rx,
    ));

    shutdown.await;
    state.draining.store(true, Ordering::Relaxed);
    let _ = phase.send(Phase::Draining);
    if !config.shutdown_delay.is_zero() {
        tracing::info!(
            delay = ?config.shutdown_delay,
            "draining: /readyz fails while endpoints update; still serving (signal again to exit now)"
        );
        tokio::time::sleep(config.shutdown_delay).await;
    }
    let open = |port| state.metrics.port(port).open.load(Ordering::Relaxed);
    tracing::info!(
        connections = open(PortName::Https),
        metrics_connections = open(PortName::Metrics),
        "shutting down: no new connections, finishing in-flight requests"
    );
    let _ = phase.send(Phase::Stopping);
    let mut both = std::pin::pin!(futures::future::join(https, metrics));
    if tokio::time::timeout(config.shutdown_timeout, both.as_mut()).await.is_err() {
        tracing::warn!(
            timeout = ?config.shutdown_timeout,
            connections = open(PortName::Https),
            metrics_connections = open(PortName::Metrics),
            "connections did not finish in time; closing them"
        );
        let _ = phase.send(Phase::Killed);
        // Cut connections end at their next poll; give them a moment so the counts below are final.
        let _ = tokio::time::timeout(Duration::from_secs(1), both).await;
    }
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

/// SIGTERM and SIGINT, registered once so that no signal falls back to the default action (exit
/// without draining) between the first and the second.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next SIGTERM or SIGINT: its name and the exit status a process killed by it would have.
    pub async fn recv(&mut self) -> (&'static str, i32) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => ("SIGTERM", 128 + 15),
                _ = self.int.recv() => ("SIGINT", 128 + 2),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ("SIGINT", 130)
        }
    }
}
