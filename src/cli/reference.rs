//! The reference webhook's `main.go` flags that `serve` did not have under the same name: accepted with the
//! reference's names, defaults and value syntax (Go's, see [`super::go_flags`]). The rest of its flags (`--port`,
//! `--namespace`, `--tls-cert`, `--annotation-prefix`, ...) are `serve`'s own flags of the same name and default.
//! klog's flags are in [`super::klog`]. What each one does here is in its help text and in docs/migrating.md.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::cert_mode::{CertFlags, REFERENCE_CERT_DIR};
use super::go_flags::{parse_bool, parse_duration};
use super::ServeArgs;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Flags of amazon-eks-pod-identity-webhook")]
pub struct ReferenceArgs {
    /// true (the default when no other certificate is chosen): the self-managed certificate in Secret --tls-secret
    /// of --namespace, with the caBundle of --webhook-config (default pod-identity-webhook) kept current; false:
    /// certificate files (--tls-cert, --tls-key, default /etc/webhook/certs/tls.{crt,key}).
    #[arg(long, env = "IRSA_IN_CLUSTER", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub in_cluster: Option<bool>,
    /// With --in-cluster: the Secret holding the certificate [default: pod-identity-webhook].
    #[arg(long, env = "IRSA_TLS_SECRET", value_name = "NAME")]
    pub tls_secret: Option<String>,
    /// API server URL; replaces the server of the kubeconfig or of the in-cluster config.
    #[arg(long, env = "IRSA_KUBE_API", value_name = "URL", value_parser = parse_api_url)]
    pub kube_api: Option<String>,
    /// Comma-separated Go cipher-suite names; restricts TLS 1.2 (TLS 1.3 suites are always on, as in Go).
    #[arg(long, env = "IRSA_TLS_CIPHER_SUITES", value_name = "NAMES", default_value = "")]
    pub tls_cipher_suites: String,
    /// The reference's informer resync [default: 60s]. Accepted, no effect: see docs/migrating.md.
    #[arg(long, env = "IRSA_RESYNC_PERIOD", value_name = "DURATION", value_parser = parse_duration)]
    pub resync_period: Option<Duration>,
    /// The reference's /debug/alpha/* handlers. Accepted; not served, for the reasons in docs/migrating.md.
    #[arg(long, env = "IRSA_ENABLE_DEBUGGING_HANDLERS", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value_t = false)]
    pub enable_debugging_handlers: bool,
    /// Print the version and exit.
    #[arg(long = "version", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, default_value_t = false)]
    pub version: bool,
    /// EC2 instance metadata endpoint, for --compose-role-arn without --aws-account-id.
    #[arg(long, env = "AWS_EC2_METADATA_SERVICE_ENDPOINT", value_name = "URL", default_value = crate::imds::DEFAULT_ENDPOINT)]
    pub ec2_metadata_endpoint: String,
    /// Where tls.crt and tls.key are when --in-cluster=false names no files. Only tests move it.
    #[arg(long, env = "IRSA_DEFAULT_CERT_DIR", value_name = "DIR", default_value = REFERENCE_CERT_DIR, hide = true)]
    pub default_cert_dir: PathBuf,
}

/// `--kube-api`: an http(s) URL with a host.
fn parse_api_url(text: &str) -> Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(_)) => Ok(text.to_owned()),
        _ => Err(format!("{text:?}: expected https://host[:port]")),
    }
}

impl ReferenceArgs {
    /// The reference's flags given here that change nothing, each with why; for one startup warning.
    pub fn without_effect(&self) -> Vec<String> {
        let mut found = Vec::new();
        if self.resync_period.is_some() {
            found.push(
                "--resync-period (the ServiceAccount watch applies each change as it comes; see docs/migrating.md)"
                    .into(),
            );
        }
        if self.enable_debugging_handlers {
            found.push("--enable-debugging-handlers (/debug/alpha/* is not served; see docs/migrating.md)".into());
        }
        found
    }
}

impl ServeArgs {
    /// The certificate flags as given, for [`super::cert_mode::decide`].
    pub fn cert_flags(&self) -> CertFlags<'_> {
        CertFlags {
            tls_cert: self.tls_cert.as_deref(),
            tls_key: self.tls_key.as_deref(),
            self_signed: self.self_signed,
            cert_secret: self.cert_secret.as_deref(),
            webhook_config: self.webhook_config.as_deref(),
            in_cluster: self.reference.in_cluster,
            tls_secret: self.reference.tls_secret.as_deref(),
            default_cert_dir: &self.reference.default_cert_dir,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::ffi::OsString;

    /// The arguments of deploy/deployment-base.yaml of amazon-eks-pod-identity-webhook.
    pub(crate) const REFERENCE_DEPLOYMENT_ARGS: &[&str] = &[
        "--in-cluster=false",
        "--namespace=default",
        "--service-name=pod-identity-webhook",
        "--annotation-prefix=eks.amazonaws.com",
        "--token-audience=sts.amazonaws.com",
        "--logtostderr",
    ];

    use clap::{ArgMatches, CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::cert_mode::{decide, CertMode};
    use crate::cli::{go_flags, Cli, Command};

    /// Parses as `main` does: through [`go_flags::command_line`].
    fn matches(argv: &[&str]) -> Result<ArgMatches, String> {
        let mut command = Cli::command();
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let argv = go_flags::command_line(argv, command.find_subcommand("serve").expect("serve"));
        let matches = command.try_get_matches_from_mut(argv).map_err(|e| e.to_string())?;
        Ok(matches.subcommand_matches("serve").expect("serve matches").clone())
    }

    fn serve(argv: &[&str]) -> ServeArgs {
        let mut command = Cli::command();
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let argv = go_flags::command_line(argv, command.find_subcommand("serve").expect("serve"));
        let matches = command.try_get_matches_from_mut(argv).unwrap_or_else(|e| panic!("{e}"));
        match Cli::from_arg_matches(&matches).map(|c| c.command) {
            Ok(Command::Serve(args)) => *args,
            other => panic!("not serve: {other:?}"),
        }
    }

    /// Every boolean flag of `serve` (clap ids), the reference's, klog's and ours.
    const BOOLEANS: [(&str, &str); 14] = [
        ("sts-regional-endpoint", "sts_regional_endpoint"),
        ("watch-config-map", "watch_config_map"),
        ("compose-role-arn", "compose_role_arn"),
        ("inject-role-session-name", "inject_role_session_name"),
        ("self-signed", "self_signed"),
        ("in-cluster", "in_cluster"),
        ("enable-debugging-handlers", "enable_debugging_handlers"),
        ("version", "version"),
        ("logtostderr", "logtostderr"),
        ("alsologtostderr", "alsologtostderr"),
        ("skip_headers", "skip_headers"),
        ("skip_log_headers", "skip_log_headers"),
        ("add_dir_header", "add_dir_header"),
        ("one_output", "one_output"),
    ];

    fn boolean(argv: &[&str], id: &str) -> Option<bool> {
        let matches = matches(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        matches.get_one::<bool>(id).copied()
    }

    #[test]
    fn every_boolean_flag_takes_every_go_spelling_with_one_or_two_dashes() {
        for (flag, id) in BOOLEANS {
            for dashes in ["--", "-"] {
                let bare = format!("{dashes}{flag}");
                assert_eq!(boolean(&["irsa-webhook", "serve", &bare], id), Some(true), "{bare}");
                for (spelling, value) in [
                    ("1", true),
                    ("t", true),
                    ("T", true),
                    ("TRUE", true),
                    ("true", true),
                    ("True", true),
                    ("0", false),
                    ("f", false),
                    ("F", false),
                    ("FALSE", false),
                    ("false", false),
                    ("False", false),
                ] {
                    let arg = format!("{dashes}{flag}={spelling}");
                    assert_eq!(boolean(&["webhook", &arg], id), Some(value), "{arg}");
                }
                let wrong = format!("{dashes}{flag}=yes");
                assert!(matches(&["webhook", &wrong]).unwrap_err().contains("Go's spellings"), "{wrong}");
            }
            // A boolean never takes the next argument: `--flag false` leaves a stray `false`, refused.
            assert!(matches(&["webhook", &format!("--{flag}"), "false"]).is_err(), "--{flag} false");
        }
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins_as_in_go() {
        let args = serve(&["webhook", "--v=1", "-v=5", "--in-cluster=false", "--in-cluster", "--port=1", "--port=2"]);
        assert_eq!((args.klog.v, args.reference.in_cluster, args.port), (Some(5), Some(true), 2));
    }

    #[test]
    fn the_reference_defaults() {
        let args = serve(&["webhook"]);
        assert_eq!((args.port, args.metrics_port), (443, 9999));
        assert_eq!((args.namespace.as_str(), args.service_name.as_str()), ("eks", "pod-identity-webhook"));
        assert_eq!(args.reference.in_cluster, None, "not given: true unless another certificate choice is made");
        assert_eq!(args.reference.tls_cipher_suites, "");
        assert_eq!(args.reference.default_cert_dir, PathBuf::from("/etc/webhook/certs"));
        assert!(!args.reference.enable_debugging_handlers && !args.reference.version);
        assert_eq!(args.tls_min_version, crate::server::tls_policy::MinVersionFlag::Tls12);
        let (mode, _) = decide(&args.cert_flags()).unwrap();
        assert_eq!(
            mode,
            CertMode::Secret {
                secret: "pod-identity-webhook".into(),
                webhook_config: Some("pod-identity-webhook".into())
            }
        );
    }

    #[test]
    fn the_reference_deploy_and_kops_command_lines() {
        let args = serve(&[&["/webhook"], REFERENCE_DEPLOYMENT_ARGS].concat());
        assert_eq!((args.namespace.as_str(), args.klog.logtostderr), ("default", Some(true)));
        assert!(matches!(decide(&args.cert_flags()).unwrap().0, CertMode::Files { .. }));
        // kops's add-on (eks-pod-identity-webhook.addons.k8s.io).
        let args = serve(&[
            "/webhook",
            "--in-cluster=false",
            "--namespace=kube-system",
            "--service-name=pod-identity-webhook",
            "--annotation-prefix=eks.amazonaws.com",
            "--token-audience=amazonaws.com",
            "--logtostderr",
            "--watch-config-map",
            "--sts-regional-endpoint",
            "--aws-default-region=eu-west-1",
            "--v=5",
        ]);
        assert!(args.watch_config_map && args.mutation.sts_regional_endpoint);
        assert_eq!(args.mutation.token_audience, "amazonaws.com");
        assert_eq!(args.klog.v, Some(5));
        // A Terraform module's in-cluster form, and its own other durations and flags.
        let args = serve(&[
            "/webhook",
            "--in-cluster=true",
            "--tls-secret=pod-identity-webhook",
            "--service-account-lookup-grace-period=0",
            "--resync-period=1m30s",
            "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "--tls-min-version=VersionTLS13",
            "--kube-api=https://10.0.0.1:6443",
        ]);
        assert_eq!(args.service_account_lookup_grace_period, Duration::ZERO);
        assert_eq!(args.reference.resync_period, Some(Duration::from_secs(90)));
        assert_eq!(args.reference.kube_api.as_deref(), Some("https://10.0.0.1:6443"));
        assert!(matches(&["webhook", "--kube-api=10.0.0.1"]).is_err());
    }

    #[test]
    fn our_own_command_lines_keep_working() {
        // The README's quick start.
        let args = serve(&[
            "irsa-webhook",
            "serve",
            "--self-signed",
            "--service-accounts",
            "examples/sa.yaml",
            "--port",
            "8443",
        ]);
        assert_eq!(decide(&args.cert_flags()).unwrap().0, CertMode::SelfSigned);
        // The chart's selfManaged and file modes.
        let args = serve(&[
            "irsa-webhook",
            "serve",
            "--port=8443",
            "--cert-secret=irsa-webhook-tls",
            "--webhook-config=irsa-webhook",
        ]);
        assert_eq!(
            decide(&args.cert_flags()).unwrap().0,
            CertMode::Secret { secret: "irsa-webhook-tls".into(), webhook_config: Some("irsa-webhook".into()) }
        );
        let args = serve(&[
            "irsa-webhook",
            "serve",
            "--tls-cert=/etc/irsa-webhook/tls/tls.crt",
            "--tls-key=/etc/irsa-webhook/tls/tls.key",
        ]);
        assert_eq!(
            decide(&args.cert_flags()).unwrap().0,
            CertMode::Files {
                cert: "/etc/irsa-webhook/tls/tls.crt".into(),
                key: "/etc/irsa-webhook/tls/tls.key".into()
            }
        );
        // Our durations keep humantime's forms; the reference's take Go's.
        let args =
            serve(&["irsa-webhook", "serve", "--service-account-lookup-grace-period=100ms", "--shutdown-timeout=20s"]);
        assert_eq!(args.service_account_lookup_grace_period, Duration::from_millis(100));
    }
}
