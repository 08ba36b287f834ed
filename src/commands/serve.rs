//! `irsa-webhook serve`: wire the settings, the identity sources and the server together.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::admission::Admission;
use crate::cli::cert_mode::CertMode;
use crate::cli::{LogFormat, ServeArgs};
use crate::commands::reference_flags::{self, StartupError};
use crate::container_credentials::ContainerCredentialsConfig;
use crate::kube_client::KubeClientError;
use crate::server::cert_secret::SecretCertConfig;
use crate::server::conn::ConnLimits;
use crate::server::{self, certs, http::Limits, limits, logging, CertificateSource, ServerConfig};
use crate::store::config_map::ConfigMapSource;
use crate::store::file::FileSource;
use crate::store::kube::KubeSource;
use crate::store::layered::LayeredSource;
use crate::store::watched_file::watch_container_credentials;
use crate::store::ServiceAccountSource;

/// Lifetime of a serving certificate made in --cert-secret mode; the CA lives ten times longer.
const LEAF_DAYS: i64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    PrivilegedPort(String),
    #[error(transparent)]
    File(#[from] crate::store::file::FileSourceError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error(transparent)]
    WatchedFile(#[from] crate::store::watched_file::WatchedFileError),
    #[error("--cert-renew-before ({0}) must be shorter than the serving certificate's lifetime ({1} days), or every resync would renew it")]
    RenewBeforeTooLong(String, i64),
    #[error("Kubernetes client")]
    Kube(#[from] KubeClientError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("--max-large-body-bytes-in-flight ({0}) must be at least --max-body-bytes ({1}), or the largest request could never be served")]
    BodyBudget(u64, u64),
}

/// A client from --kubeconfig, else the in-cluster config, else $KUBECONFIG / ~/.kube/config.
pub async fn kube_client(args: &ServeArgs) -> Result<kube::Client, ServeError> {
    let mut config = crate::kube_client::config(args.kubeconfig.as_deref()).await?;
    reference_flags::override_api_url(&mut config, args.reference.kube_api.as_deref())?;
    Ok(kube::Client::try_from(config).map_err(KubeClientError::Client)?)
}

/// The one client of `serve`, made the first time something needs the cluster.
async fn shared_client(client: &mut Option<kube::Client>, args: &ServeArgs) -> Result<kube::Client, ServeError> {
    if let Some(client) = client {
        return Ok(client.clone());
    }
    let created = kube_client(args).await?;
    *client = Some(created.clone());
    Ok(created)
}

/// Text or JSON lines on stderr through a bounded non-blocking writer (see `server::logging`).
pub fn init_logging(format: LogFormat, level: &str) {
    logging::init(format == LogFormat::Json, level);
}

pub fn run(args: &ServeArgs) -> Result<(), ServeError> {
    let review_threads = review_threads(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Large reviews hold a blocking thread each (at most --review-threads); the rest of the pool serves file
        // reads and DNS. A bound keeps a burst from creating hundreds of threads.
        .max_blocking_threads(review_threads + 16)
        .build()
        .map_err(ServeError::Runtime)?;
    let result = runtime.block_on(serve(args, review_threads));
    // Tasks still running (the ServiceAccount watch, a review on the blocking pool) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    logging::flush();
    result
}

fn review_threads(args: &ServeArgs) -> usize {
    args.review_threads.map_or_else(|| Limits::default().review_threads, |n| n as usize)
}

/// The first SIGTERM/SIGINT starts the graceful shutdown; a second one exits at once. The handlers are installed
/// by the caller just before the ports open: during the startup before it, a signal ends the process as it always
/// did, and from the first request /readyz can answer, a signal drains.
async fn shutdown_on_signal(signals: std::io::Result<server::Signals>) {
    let mut signals = match signals {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM/SIGINT");
            return std::future::pending().await;
        }
    };
    let (first, _) = signals.recv().await;
    tracing::info!(signal = first, "shutting down gracefully; send the signal again to exit at once");
    tokio::spawn(async move {
        let (second, status) = signals.recv().await;
        tracing::warn!(signal = second, "second signal: exiting now");
        logging::flush();
        std::process::exit(status);
    });
}

async fn serve(args: &ServeArgs, review_threads: usize) -> Result<(), ServeError> {
    let startup = reference_flags::startup(args)?;
    for warning in &startup.warnings {
        tracing::warn!("{warning}");
    }
    let settings =
        Arc::new(reference_flags::mutation_settings(&args.mutation, &args.reference.ec2_metadata_endpoint).await?);
    if startup.certificate.needs_cluster() && args.cert_renew_before.as_secs() >= LEAF_DAYS as u64 * 86400 {
        return Err(ServeError::RenewBeforeTooLong(
            format!("{:.1} days", args.cert_renew_before.as_secs_f64() / 86400.0),
            LEAF_DAYS,
        ));
    }
    // One client for the watch, the ConfigMap and the certificate Secret, created only when something needs it.
    let mut client = None;
    let primary: Arc<dyn ServiceAccountSource> = match &args.service_accounts {
        Some(path) => {
            let source = FileSource::load(path, &settings)?;
            tracing::info!(file = %path.display(), service_accounts = source.stats().cached, "serving ServiceAccounts from a file");
            Arc::new(source)
        }
        None => {
            tracing::info!(grace = ?args.service_account_lookup_grace_period, "watching ServiceAccounts in all namespaces");
            KubeSource::start(
                shared_client(&mut client, args).await?,
                Arc::clone(&settings),
                args.service_account_lookup_grace_period,
            )
        }
    };
    let source: Arc<dyn ServiceAccountSource> = if args.watch_config_map {
        tracing::info!(namespace = %args.namespace, "also reading identities from ConfigMap pod-identity-webhook");
        let config_map =
            ConfigMapSource::start(shared_client(&mut client, args).await?, &args.namespace, Arc::clone(&settings));
        Arc::new(LayeredSource::new(primary, config_map))
    } else {
        primary
    };
    let container_credentials = match &args.mutation.watch_container_credentials_config {
        Some(path) => {
            let file = watch_container_credentials(path)?;
            let current: Arc<dyn Fn() -> Arc<ContainerCredentialsConfig> + Send + Sync> =
                Arc::new(move || file.current());
            Some(current)
        }
        None => None,
    };
    let certificate = match startup.certificate {
        CertMode::Files { cert, key } => {
            tracing::info!(cert = %cert.display(), key = %key.display(), "serving the certificate from files");
            CertificateSource::Files { cert, key, reload_interval: args.tls_reload_interval }
        }
        CertMode::Secret { secret, webhook_config } => CertificateSource::Secret {
            client: shared_client(&mut client, args).await?,
            config: SecretCertConfig {
                namespace: args.namespace.clone(),
                secret_name: secret,
                webhook_config,
                sans: certs::service_sans(&args.service_name, &args.namespace),
                ca_days: 3650,
                leaf_days: LEAF_DAYS,
                renew_before: args.cert_renew_before,
                resync: args.cert_resync,
            },
        },
        CertMode::SelfSigned => CertificateSource::SelfSigned {
            sans: certs::service_sans(&args.service_name, &args.namespace),
            ca_bundle_out: args.ca_bundle_out.clone(),
        },
    };
    if args.max_large_body_bytes_in_flight < args.max_body_bytes {
        return Err(ServeError::BodyBudget(args.max_large_body_bytes_in_flight, args.max_body_bytes));
    }
    let open_files = limits::raise_open_files_limit().unwrap_or(1024);
    let caps = limits::connection_caps(open_files, args.max_connections, args.metrics_max_connections);
    if caps.clamped {
        tracing::warn!(
            open_files,
            max_connections = caps.https,
            metrics_max_connections = caps.metrics,
            "connection caps lowered to fit the open-files limit (with {} descriptors kept free)",
            limits::RESERVED_FDS
        );
    }
    let connections = ConnLimits {
        max_connections: caps.https as usize,
        tls_handshake_timeout: args.tls_handshake_timeout,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connection_age: args.max_connection_age,
        http2_keepalive_interval: args.http2_keepalive_interval,
        http2_keepalive_timeout: args.http2_keepalive_timeout,
        // A request in flight ends within --request-timeout; a graceful close gets as long.
        close_grace: args.request_timeout,
        ..ConnLimits::default()
    };
    let config = ServerConfig {
        certificate,
        tls: startup.tls,
        limits: Limits {
            max_body_bytes: args.max_body_bytes as usize,
            request_timeout: args.request_timeout,
            max_requests_in_flight: args.max_requests_in_flight as usize,
            inline_review_max_bytes: args.inline_review_max_bytes as usize,
            max_large_body_bytes_in_flight: args.max_large_body_bytes_in_flight as usize,
            review_threads,
        },
        metrics_connections: ConnLimits { max_connections: caps.metrics as usize, ..connections.clone() },
        connections,
        shutdown_timeout: args.shutdown_timeout,
        shutdown_delay: args.shutdown_delay,
    };
    let admission = Admission { settings, source, container_credentials };
    // Before the ports open: the server's tasks may answer /readyz before this task polls the shutdown future,
    // and a signal in between must already drain rather than kill.
    let signals = server::Signals::install();
    let listeners = server::Listeners::bind(
        SocketAddr::new(args.bind_address, args.port),
        SocketAddr::new(args.bind_address, args.metrics_port),
    )
    .await
    .map_err(reference_flags::explain_listen_error)?;
    server::run(config, listeners, admission, shutdown_on_signal(signals)).await?;
    Ok(())
}
