//! The command line: clap definitions, parsed once into typed settings. Every flag can also come from an
//! environment variable `IRSA_<FLAG>`, so the binary drops into existing deployments.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::server::tls_policy::{self, MinVersionFlag};
use crate::server::{conn, http};
use crate::settings::{self, ContainerCredentialsSettings, FsGroupFix, InjectMode, MutationSettings, SettingsError};

pub mod cert_mode;
pub mod go_flags;
pub mod klog;
pub mod reference;

#[derive(Debug, Parser)]
#[command(
    name = "irsa-webhook",
    version,
    about = "IAM Roles for Service Accounts: a Kubernetes mutating admission webhook"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook: POST /mutate over TLS, health and metrics on a plain port.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Mutate a pod manifest offline, exactly as the webhook would, and print the result.
    Mutate(Box<MutateArgs>),
    /// OIDC discovery documents (JWKS, openid-configuration) for a self-managed cluster's issuer.
    Oidc(OidcArgs),
    /// Print the IAM role trust policy that lets ServiceAccounts assume a role with their tokens.
    TrustPolicy(TrustPolicyArgs),
    /// Explain why a pod has or lacks its AWS credentials: one `ok` / `problem` / `hint` line per check, with the fix.
    /// Exit status 1 when a problem is found, 2 for bad usage or input.
    Doctor(Box<DoctorArgs>),
}

#[derive(Debug, Args)]
pub struct OidcArgs {
    #[command(subcommand)]
    pub command: OidcCommand,
}

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Print the JWKS (/openid/v1/jwks) for service-account keys, as the API server serves it.
    Jwks(OidcJwksArgs),
    /// Print the discovery document (/.well-known/openid-configuration).
    Discovery(OidcDiscoveryArgs),
    /// Write both documents into a directory ready to upload; print the upload command and API-server flags.
    Publish(OidcPublishArgs),
}

#[derive(Debug, Args)]
pub struct OidcJwksArgs {
    /// PEM file of service-account keys: public (PKIX or PKCS#1), private (PKCS#1, SEC1, PKCS#8) or a certificate;
    /// RSA or EC P-256/P-384/P-521. Repeatable, for rotation.
    #[arg(long = "key", value_name = "FILE", required = true, num_args = 1..)]
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OidcDiscoveryArgs {
    /// Issuer URL: https://, no trailing slash, query or fragment.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// Default: <issuer>/openid/v1/jwks.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Key files, to list their signing algorithms (default: RS256).
    #[arg(long = "key", value_name = "FILE", num_args = 1..)]
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["keys", "from_cluster"])))]
pub struct OidcPublishArgs {
    /// Issuer URL: https://, no trailing slash, query or fragment.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// Directory to write .well-known/openid-configuration and openid/v1/jwks into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key files (see `oidc jwks --help`).
    #[arg(long = "key", value_name = "FILE", num_args = 1..)]
    pub keys: Vec<PathBuf>,
    /// Take the keys from the API server's own /openid/v1/jwks instead.
    #[arg(long)]
    pub from_cluster: bool,
    /// Kubeconfig for --from-cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "PATH", requires = "from_cluster")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustPolicyOutput {
    /// The policy document.
    Json,
    /// An aws_iam_role resource with the policy in assume_role_policy.
    Terraform,
}

/// `trust-policy --issuer ... --account ... --service-account ...` prints a policy; `trust-policy check ...` evaluates
/// one. The printing form's flags are required only without a subcommand, and cannot be mixed with one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TrustPolicyArgs {
    #[command(subcommand)]
    pub command: Option<TrustPolicyCommand>,
    /// Issuer URL, as in --service-account-issuer.
    #[arg(long, value_name = "URL", required = true)]
    pub issuer: Option<String>,
    /// AWS account ID (12 digits) holding the IAM OIDC provider.
    #[arg(long, value_name = "ID", required = true)]
    pub account: Option<String>,
    /// NAMESPACE/NAME; '*' matches any characters (StringLike). Repeatable.
    #[arg(long = "service-account", value_name = "NS/NAME", required = true)]
    pub service_accounts: Vec<String>,
    /// Token audience (the webhook's --token-audience).
    #[arg(long, default_value = settings::DEFAULT_TOKEN_AUDIENCE)]
    pub audience: String,
    /// AWS partition: aws, aws-cn, aws-us-gov, ...
    #[arg(long, default_value = crate::trust_policy::DEFAULT_PARTITION)]
    pub partition: String,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TrustPolicyOutput::Json, value_name = "FORMAT")]
    pub output: TrustPolicyOutput,
    /// IAM role name for -o terraform (default: derived from the service accounts).
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TrustPolicyCommand {
    /// Evaluate a role's trust policy as IAM does for sts:AssumeRoleWithWebIdentity with a ServiceAccount's token:
    /// one `ok` / `problem` / `hint` line per finding, with the fix. Exit status 1 when a problem is found, 2 for
    /// bad usage or input.
    Check(TrustPolicyCheckArgs),
}

#[derive(Debug, Args)]
pub struct TrustPolicyCheckArgs {
    /// The role's trust policy: `aws iam get-role --role-name R` output, the policy document alone, or the
    /// URL-encoded document IAM's API returns; "-" reads stdin. At most 64 KiB.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The cluster's issuer URL (--service-account-issuer): the token's iss.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The pod's ServiceAccount, NAMESPACE/NAME: the token's sub is system:serviceaccount:NAMESPACE:NAME.
    #[arg(long = "service-account", value_name = "NS/NAME")]
    pub service_account: String,
    /// The audience of the pod's token (the ServiceAccount's eks.amazonaws.com/audience, else the webhook's
    /// --token-audience).
    #[arg(long, default_value = settings::DEFAULT_TOKEN_AUDIENCE)]
    pub audience: String,
    /// The role the ServiceAccount names (eks.amazonaws.com/role-arn): compared with the role of get-role output,
    /// and gives the partition and account the provider must be in.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DoctorOutput::Text, value_name = "FORMAT")]
    pub output: DoctorOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 100ms, 5s, 1m)"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTPS port for /mutate.
    #[arg(long, env = "IRSA_PORT", default_value_t = 443)]
    pub port: u16,
    /// Address to listen on (both ports).
    #[arg(long, env = "IRSA_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Plain-HTTP port for /healthz, /readyz and /metrics.
    #[arg(long, env = "IRSA_METRICS_PORT", default_value_t = 9999)]
    pub metrics_port: u16,
    /// Kubeconfig for the ServiceAccount watch; default: in-cluster config, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "IRSA_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Serving certificate (PEM), reloaded when it changes; choosing files without naming one means
    /// /etc/webhook/certs/tls.crt (the reference's default).
    #[arg(long, env = "IRSA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM); default as for --tls-cert: /etc/webhook/certs/tls.key.
    #[arg(long, env = "IRSA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Oldest TLS version accepted.
    #[arg(long, env = "IRSA_TLS_MIN_VERSION", default_value = "1.2", value_parser = tls_policy::parse_min_version)]
    pub tls_min_version: MinVersionFlag,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "IRSA_TLS_RELOAD_INTERVAL", default_value = "1s", value_parser = duration)]
    pub tls_reload_interval: Duration,
    /// Without --tls-cert: generate a CA and serving certificate in memory for --service-name/--namespace.
    #[arg(long, env = "IRSA_SELF_SIGNED", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_flags::parse_bool)]
    pub self_signed: bool,
    /// Where --self-signed writes the CA bundle (for the webhook configuration's caBundle, or curl --cacert).
    #[arg(long, env = "IRSA_CA_BUNDLE_OUT", value_name = "FILE", default_value = "irsa-webhook-ca.crt")]
    pub ca_bundle_out: PathBuf,
    /// Self-managed certificates: keep the CA and serving certificate in this Secret of --namespace (created if
    /// missing, renewed before expiry, shared by all replicas).
    #[arg(long, env = "IRSA_CERT_SECRET", value_name = "NAME")]
    pub cert_secret: Option<String>,
    /// With a certificate kept in a Secret: keep the caBundle of this MutatingWebhookConfiguration equal to the
    /// Secret's CA. With --cert-secret only when given; with --in-cluster/--tls-secret, default pod-identity-webhook.
    #[arg(long, env = "IRSA_WEBHOOK_CONFIG", value_name = "NAME")]
    pub webhook_config: Option<String>,
    /// With --cert-secret: renew the serving certificate when less than this is left.
    #[arg(long, env = "IRSA_CERT_RENEW_BEFORE", default_value = "30days", value_parser = duration)]
    pub cert_renew_before: Duration,
    /// With --cert-secret: how often the Secret is re-read (another replica may have renewed it).
    #[arg(long, env = "IRSA_CERT_RESYNC", default_value = "1m", value_parser = duration)]
    pub cert_resync: Duration,
    /// Name of the webhook's Service (certificate SANs).
    #[arg(long, env = "IRSA_SERVICE_NAME", default_value = "pod-identity-webhook")]
    pub service_name: String,
    /// The webhook's own namespace (certificate SANs, the certificate Secret, the ConfigMap); the reference's default.
    #[arg(long, env = "IRSA_NAMESPACE", default_value = "eks")]
    pub namespace: String,
    /// Serve ServiceAccounts from this manifest file instead of watching the API (runs without a cluster).
    #[arg(long, env = "IRSA_SERVICE_ACCOUNTS", value_name = "FILE")]
    pub service_accounts: Option<PathBuf>,
    /// How long a pod whose ServiceAccount is not cached waits for the watch before a live API lookup.
    #[arg(long, env = "IRSA_SERVICE_ACCOUNT_LOOKUP_GRACE_PERIOD", default_value = crate::store::kube::DEFAULT_GRACE_PERIOD_TEXT, value_parser = go_flags::parse_duration)]
    pub service_account_lookup_grace_period: Duration,
    /// Also read identities from ConfigMap pod-identity-webhook (key "config") in --namespace.
    #[arg(long, env = "IRSA_WATCH_CONFIG_MAP", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_flags::parse_bool)]
    pub watch_config_map: bool,
    /// Log format.
    #[arg(long, env = "IRSA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter (e.g. info, debug, irsa_webhook=debug); RUST_LOG wins when set.
    #[arg(long, env = "IRSA_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// On SIGTERM, after --shutdown-delay: how long open connections may take to finish their requests before
    /// they are cut and the process exits. A second SIGTERM or SIGINT exits at once.
    #[arg(long, env = "IRSA_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// On SIGTERM: keep serving this long with /readyz failing, closing each connection after its next request,
    /// before the listener closes. It must cover the removal of this pod from the Service as the API server sees
    /// it: the EndpointSlice update (the controller's queue, ~1 s), kube-proxy's sync on the API server's host
    /// (--iptables-min-sync-period 1 s, seconds on large clusters), and for `service:` webhooks the API server's
    /// own resolution (its ClusterIP dial, or its endpoints informer with --enable-aggregator-routing). 10 s covers
    /// that with room for a loaded control plane; 0 drops requests sent during propagation. A distroless image has
    /// no shell for a preStop hook, so the delay lives here.
    #[arg(long, env = "IRSA_SHUTDOWN_DELAY", default_value = "10s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// Largest accepted request body; the API server's own limit is 3 MiB.
    #[arg(long, env = "IRSA_MAX_BODY_BYTES", default_value_t = http::DEFAULT_MAX_BODY_BYTES, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Time limit for one request on /mutate: reading its body and reviewing it. Over it, the answer is 503.
    #[arg(long, env = "IRSA_REQUEST_TIMEOUT", default_value = http::DEFAULT_REQUEST_TIMEOUT_TEXT, value_parser = duration)]
    pub request_timeout: Duration,
    /// Requests on /mutate served at once; more are answered 503 at once (load shedding).
    #[arg(long, env = "IRSA_MAX_REQUESTS_IN_FLIGHT", default_value_t = http::DEFAULT_MAX_REQUESTS_IN_FLIGHT, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_requests_in_flight: u64,
    /// Reviews with a body above this many bytes run on the blocking pool (so a slow one cannot hold up the async
    /// workers) and take their size from --max-large-body-bytes-in-flight first; smaller ones run inline.
    #[arg(long, env = "IRSA_INLINE_REVIEW_MAX_BYTES", default_value_t = http::DEFAULT_INLINE_REVIEW_MAX_BYTES)]
    pub inline_review_max_bytes: u64,
    /// Memory budget for the bodies of large reviews in flight (above --inline-review-max-bytes); at least one
    /// --max-body-bytes. A large request waits for room within --request-timeout.
    #[arg(long, env = "IRSA_MAX_LARGE_BODY_BYTES_IN_FLIGHT", default_value_t = http::DEFAULT_MAX_LARGE_BODY_BYTES_IN_FLIGHT)]
    pub max_large_body_bytes_in_flight: u64,
    /// Threads reviewing large bodies at once (default: the number of CPUs, at least 2).
    #[arg(long, env = "IRSA_REVIEW_THREADS", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub review_threads: Option<u64>,
    /// Open connections on the TLS port; at the cap the longest-idle one is closed to make room. Default: 1024,
    /// lowered to fit the open-files limit (raised to its hard limit at start) with 256 descriptors kept free.
    #[arg(long, env = "IRSA_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Open connections on the metrics port (probes and scrapers). Default: 64, lowered like --max-connections.
    #[arg(long, env = "IRSA_METRICS_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics_max_connections: Option<u64>,
    /// Time limit for a TLS handshake.
    #[arg(long, env = "IRSA_TLS_HANDSHAKE_TIMEOUT", default_value = conn::DEFAULT_TLS_HANDSHAKE_TIMEOUT_TEXT, value_parser = duration)]
    pub tls_handshake_timeout: Duration,
    /// Time limit for a connection's first request to arrive (after the handshake), and for any HTTP/1 request
    /// head to be read from its first byte. Both ports.
    #[arg(long, env = "IRSA_HEADER_READ_TIMEOUT", default_value = conn::DEFAULT_HEADER_READ_TIMEOUT_TEXT, value_parser = duration)]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 and HTTP/2, both ports). Longer
    /// than the API server's own idle timeout (90 s) so that the client, not us, closes idle connections and no
    /// request races a close.
    #[arg(long, env = "IRSA_IDLE_TIMEOUT", default_value = conn::DEFAULT_IDLE_TIMEOUT_TEXT, value_parser = duration)]
    pub idle_timeout: Duration,
    /// Connections older than this (±10 %) are closed gracefully (`Connection: close`, HTTP/2 GOAWAY), so the API
    /// server's long-lived connections spread over new replicas.
    #[arg(long, env = "IRSA_MAX_CONNECTION_AGE", default_value = conn::DEFAULT_MAX_CONNECTION_AGE_TEXT, value_parser = duration)]
    pub max_connection_age: Duration,
    /// HTTP/2: ping a connection this often; one whose ping is not answered within --http2-keepalive-timeout is
    /// closed.
    #[arg(long, env = "IRSA_HTTP2_KEEPALIVE_INTERVAL", default_value = conn::DEFAULT_HTTP2_KEEPALIVE_INTERVAL_TEXT, value_parser = duration)]
    pub http2_keepalive_interval: Duration,
    /// HTTP/2: how long a ping may go unanswered.
    #[arg(long, env = "IRSA_HTTP2_KEEPALIVE_TIMEOUT", default_value = conn::DEFAULT_HTTP2_KEEPALIVE_TIMEOUT_TEXT, value_parser = duration)]
    pub http2_keepalive_timeout: Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
    #[command(flatten)]
    pub reference: reference::ReferenceArgs,
    #[command(flatten)]
    pub klog: klog::KlogArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MutateOutput {
    /// The mutated pod as YAML.
    Yaml,
    /// The mutated pod as JSON.
    Json,
    /// The JSON Patch (RFC 6902).
    Patch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorOutput {
    /// `status  check  message → fix`, one line per check.
    Text,
    /// A list of {status, check, message, fix}; for `doctor pods`, the scan's groups and counts.
    Json,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["kind", "file"])))]
pub struct DoctorArgs {
    /// `pod NAMESPACE/NAME`: read the pod, its ServiceAccount, its namespace and the MutatingWebhookConfigurations
    /// through the kubeconfig. `pods` without a name: scan every pod of -n NAMESPACE (or of all namespaces with -A)
    /// for pods whose ServiceAccount gives a role but which lack what the webhook adds, grouped by owner.
    #[arg(value_name = "KIND", value_parser = ["pod", "pods", "po"])]
    pub kind: Option<String>,
    /// NAMESPACE/NAME, or NAME with --namespace (default: the kubeconfig's namespace).
    #[arg(value_name = "NAMESPACE/NAME")]
    pub name: Option<String>,
    /// Check a pod manifest offline instead (YAML or JSON, "-" for stdin), e.g. `kubectl get pod -o yaml`.
    #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with_all = ["kind", "kubeconfig", "namespace", "webhook_config", "all_namespaces", "token_request"])]
    pub file: Option<PathBuf>,
    /// With -f: ServiceAccount manifest(s), as for `mutate --service-account`; repeatable.
    #[arg(long = "service-account", value_name = "FILE", requires = "file")]
    pub service_accounts: Vec<PathBuf>,
    /// Namespace of a pod given as NAME, or the namespace `doctor pods` scans.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// With `pods`: scan every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["name", "namespace", "role_policy", "token_request", "issuer"])]
    pub all_namespaces: bool,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The webhook's MutatingWebhookConfiguration, when its name says neither irsa nor pod-identity.
    #[arg(long, value_name = "NAME")]
    pub webhook_config: Option<String>,
    /// The role's trust policy: evaluate it for the pod's token as IAM does for sts:AssumeRoleWithWebIdentity.
    /// What `aws iam get-role --role-name R` prints, the policy document, or the URL-encoded document; "-" is stdin.
    #[arg(long, value_name = "FILE")]
    pub role_policy: Option<PathBuf>,
    /// The cluster's service-account issuer (the token's iss). Needed with -f and --role-policy; with a pod, the
    /// issuer the API server publishes at /.well-known/openid-configuration is used and this is checked against it.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Ask the API server for a token as the kubelet would for this pod (a TokenRequest with its volume's audience
    /// and lifetime, bound to the pod) and check its claims; the token is never printed. Needs `create` on
    /// serviceaccounts/token. Without this flag doctor creates nothing.
    #[arg(long, requires = "name")]
    pub token_request: bool,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DoctorOutput::Text, value_name = "FORMAT")]
    pub output: DoctorOutput,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Pod manifest, YAML or JSON; "-" or absent reads stdin.
    #[arg(value_name = "POD")]
    pub pod: Option<PathBuf>,
    /// ServiceAccount manifest(s): YAML (multi-document) or JSON, or a v1 List; repeatable. The pod's SA is matched
    /// by namespace (pod's, else "default") and spec.serviceAccountName (else "default").
    #[arg(long = "service-account", value_name = "FILE")]
    pub service_accounts: Vec<PathBuf>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = MutateOutput::Yaml, value_name = "FORMAT")]
    pub output: MutateOutput,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MutationArgs {
    /// Prefix of the ServiceAccount and pod annotations.
    #[arg(long, env = "IRSA_ANNOTATION_PREFIX", default_value = settings::DEFAULT_ANNOTATION_PREFIX)]
    pub annotation_prefix: String,
    /// Default audience of the projected token (a ServiceAccount's <prefix>/audience wins).
    #[arg(long, env = "IRSA_TOKEN_AUDIENCE", default_value = settings::DEFAULT_TOKEN_AUDIENCE)]
    pub token_audience: String,
    /// Where the token volume is mounted in each container.
    #[arg(long, env = "IRSA_TOKEN_MOUNT_PATH", default_value = settings::DEFAULT_TOKEN_MOUNT_PATH)]
    pub token_mount_path: String,
    /// Default token lifetime in seconds; values under 600 become 600.
    #[arg(long, env = "IRSA_TOKEN_EXPIRATION", default_value_t = settings::DEFAULT_TOKEN_EXPIRATION)]
    pub token_expiration: i64,
    /// If set, AWS_DEFAULT_REGION and AWS_REGION are injected with this value.
    #[arg(long, env = "IRSA_AWS_DEFAULT_REGION", default_value = "")]
    pub aws_default_region: String,
    /// Inject AWS_STS_REGIONAL_ENDPOINTS=regional (a ServiceAccount's <prefix>/sts-regional-endpoints wins).
    #[arg(long, env = "IRSA_STS_REGIONAL_ENDPOINT", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_flags::parse_bool)]
    pub sts_regional_endpoint: bool,
    /// JSON file listing the ServiceAccounts that use EKS Pod Identity (container credentials).
    #[arg(long, env = "IRSA_WATCH_CONTAINER_CREDENTIALS_CONFIG", value_name = "FILE")]
    pub watch_container_credentials_config: Option<PathBuf>,
    /// Audience of the container-credentials token.
    #[arg(long, env = "IRSA_CONTAINER_CREDENTIALS_AUDIENCE", default_value_t = ContainerCredentialsSettings::default().audience)]
    pub container_credentials_audience: String,
    /// Mount path of the container-credentials token.
    #[arg(long, env = "IRSA_CONTAINER_CREDENTIALS_TOKEN_MOUNT_PATH", default_value_t = ContainerCredentialsSettings::default().token_mount_path)]
    pub container_credentials_token_mount_path: String,
    /// Volume name of the container-credentials token.
    #[arg(long, env = "IRSA_CONTAINER_CREDENTIALS_TOKEN_VOLUME_NAME", default_value_t = ContainerCredentialsSettings::default().token_volume_name)]
    pub container_credentials_token_volume_name: String,
    /// File name of the container-credentials token inside its mount.
    #[arg(long, env = "IRSA_CONTAINER_CREDENTIALS_TOKEN_PATH", default_value_t = ContainerCredentialsSettings::default().token_path)]
    pub container_credentials_token_path: String,
    /// AWS_CONTAINER_CREDENTIALS_FULL_URI: where the Pod Identity agent listens.
    #[arg(long, env = "IRSA_CONTAINER_CREDENTIALS_FULL_URI", default_value_t = ContainerCredentialsSettings::default().full_uri)]
    pub container_credentials_full_uri: String,
    /// Turn role names without "arn:" into arn:<partition>:iam::<--aws-account-id>:role/<name>.
    #[arg(long, env = "IRSA_COMPOSE_ROLE_ARN", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_flags::parse_bool)]
    pub compose_role_arn: bool,
    /// Account id for --compose-role-arn; serve reads it from EC2 instance metadata when not given, as the reference.
    #[arg(long, env = "IRSA_AWS_ACCOUNT_ID", value_name = "ID")]
    pub aws_account_id: Option<String>,
    /// Partition for --compose-role-arn; default: derived from the region (instance metadata's, else --aws-default-region).
    #[arg(long, env = "IRSA_AWS_PARTITION")]
    pub aws_partition: Option<String>,
    /// When to set the pod's fsGroup so a non-root process can read the token.
    #[arg(long, env = "IRSA_FS_GROUP_FIX", value_enum, default_value_t = FsGroupFix::Auto)]
    pub fs_group_fix: FsGroupFix,
    /// fsGroup used by the fix when the pod has no runAsGroup.
    #[arg(long, env = "IRSA_DEFAULT_FS_GROUP", default_value_t = settings::DEFAULT_FS_GROUP)]
    pub default_fs_group: i64,
    /// Inject AWS_ROLE_SESSION_NAME = the pod's name (downward API, so generated names work).
    #[arg(long, env = "IRSA_INJECT_ROLE_SESSION_NAME", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_flags::parse_bool)]
    pub inject_role_session_name: bool,
    /// What to add to a pod whose ServiceAccount has a role: everything, or only the fsGroup fix (when another
    /// webhook, such as EKS's managed one, injects the credentials).
    #[arg(long, env = "IRSA_INJECT", value_enum, default_value_t = InjectMode::Full)]
    pub inject: InjectMode,
}

impl MutationArgs {
    /// The typed settings (see `impl TryFrom<&MutationArgs> for MutationSettings`).
    pub fn to_settings(&self) -> Result<MutationSettings, SettingsError> {
        MutationSettings::try_from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> MutateArgs {
        let mut argv = vec!["irsa-webhook", "mutate"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Mutate(m)) => *m,
            Ok(other) => panic!("not mutate: {other:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_are_the_reference_defaults() {
        assert_eq!(parse(&[]).mutation.to_settings().unwrap(), MutationSettings::default());
    }

    #[test]
    fn serve_defaults_are_the_servers_own() {
        let Ok(Command::Serve(args)) = Cli::try_parse_from(["irsa-webhook", "serve"]).map(|c| c.command) else {
            panic!("serve does not parse without flags");
        };
        let (limits, connections) = (crate::server::http::Limits::default(), conn::ConnLimits::default());
        assert_eq!(args.max_body_bytes as usize, limits.max_body_bytes);
        assert_eq!(args.request_timeout, limits.request_timeout);
        assert_eq!(args.max_requests_in_flight as usize, limits.max_requests_in_flight);
        assert_eq!(args.inline_review_max_bytes as usize, limits.inline_review_max_bytes);
        assert_eq!(args.max_large_body_bytes_in_flight as usize, limits.max_large_body_bytes_in_flight);
        assert_eq!(args.tls_handshake_timeout, connections.tls_handshake_timeout);
        assert_eq!(args.header_read_timeout, connections.header_read_timeout);
        assert_eq!(args.idle_timeout, connections.idle_timeout);
        assert_eq!(args.max_connection_age, connections.max_connection_age);
        assert_eq!(args.http2_keepalive_interval, connections.http2_keepalive_interval);
        assert_eq!(args.http2_keepalive_timeout, connections.http2_keepalive_timeout);
        assert_eq!(args.service_account_lookup_grace_period, crate::store::kube::DEFAULT_GRACE_PERIOD);
        assert_eq!(args.mutation.token_audience, crate::settings::DEFAULT_TOKEN_AUDIENCE);
    }

    #[test]
    fn go_style_booleans() {
        assert!(parse(&["--sts-regional-endpoint"]).mutation.sts_regional_endpoint);
        assert!(parse(&["--sts-regional-endpoint=true"]).mutation.sts_regional_endpoint);
        assert!(!parse(&["--sts-regional-endpoint=false"]).mutation.sts_regional_endpoint);
    }

    #[test]
    fn compose_needs_an_account_and_derives_the_partition() {
        assert!(parse(&["--compose-role-arn"]).mutation.to_settings().is_err());
        let s =
            parse(&["--compose-role-arn", "--aws-account-id", "111122223333", "--aws-default-region", "cn-north-1"])
                .mutation
                .to_settings()
                .unwrap();
        assert_eq!(s.compose_role_arn.unwrap().partition, "aws-cn");
    }

    #[test]
    fn inject_mode_defaults_to_full_and_names_its_values() {
        assert_eq!(parse(&[]).mutation.inject, InjectMode::Full);
        assert_eq!(parse(&["--inject=fs-group-only"]).mutation.inject, InjectMode::FsGroupOnly);
        assert_eq!(parse(&["--inject", "full"]).mutation.inject, InjectMode::Full);
        let error = Cli::try_parse_from(["irsa-webhook", "serve", "--inject=fsgroup"]).unwrap_err().to_string();
        assert!(error.contains("[possible values: full, fs-group-only]"), "{error}");
    }
}
