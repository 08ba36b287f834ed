//! `serve`'s start-up decisions for the reference webhook's flags, made once before anything listens: the
//! certificate mode, the TLS policy, `--compose-role-arn`'s account from instance metadata, `--kube-api`, the
//! startup warnings for flags accepted without effect, and the one line that explains a refused privileged port.
//! Each contradiction or bad value ends start-up with one line.

use std::net::SocketAddr;

use crate::cli::cert_mode::{self, CertMode, CertModeError};
use crate::cli::{MutationArgs, ServeArgs};
use crate::commands::serve::ServeError;
use crate::imds::{self, ImdsError};
use crate::server::tls_policy::{TlsPolicy, TlsPolicyError};
use crate::server::ServerError;
use crate::settings::{self, MutationSettings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    CertMode(#[from] CertModeError),
    #[error(transparent)]
    Tls(#[from] TlsPolicyError),
    #[error("--compose-role-arn without --aws-account-id reads the account from EC2 instance metadata")]
    Imds(#[source] ImdsError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("--kube-api {url}")]
    KubeApi {
        url: String,
        #[source]
        error: http::uri::InvalidUri,
    },
}

/// What the flags decided.
#[derive(Debug)]
pub struct Startup {
    pub certificate: CertMode,
    pub tls: TlsPolicy,
    /// To log once, after logging is set up.
    pub warnings: Vec<String>,
}

/// Decides the certificate mode and TLS policy, and collects the warnings for flags given without effect.
pub fn startup(args: &ServeArgs) -> Result<Startup, StartupError> {
    let (certificate, mut warnings) = cert_mode::decide(&args.cert_flags())?;
    let tls = TlsPolicy::new(args.tls_min_version.effective(), &args.reference.tls_cipher_suites)?;
    warnings.extend(args.tls_min_version.warning());
    let mut without_effect = args.reference.without_effect();
    without_effect.extend(args.klog.unsupported());
    if !without_effect.is_empty() {
        warnings.push(format!(
            "accepted for compatibility with amazon-eks-pod-identity-webhook, without effect here: {}",
            without_effect.join("; ")
        ));
    }
    Ok(Startup { certificate, tls, warnings })
}

/// The mutation settings; with `--compose-role-arn` and no `--aws-account-id`, the account (and, unless
/// `--aws-partition` is given, the partition of the instance's region) from the instance identity document, as the
/// reference does.
pub async fn mutation_settings(args: &MutationArgs, imds_endpoint: &str) -> Result<MutationSettings, StartupError> {
    if !args.compose_role_arn || args.aws_account_id.is_some() {
        return Ok(MutationSettings::try_from(args)?);
    }
    let identity = imds::instance_identity(imds_endpoint).await.map_err(StartupError::Imds)?;
    let partition =
        args.aws_partition.clone().unwrap_or_else(|| settings::partition_for_region(&identity.region).to_owned());
    tracing::info!(account = %identity.account_id, region = %identity.region, %partition, "--compose-role-arn: account from EC2 instance metadata");
    let mut args = args.clone();
    args.aws_account_id = Some(identity.account_id);
    args.aws_partition = Some(partition);
    Ok(MutationSettings::try_from(&args)?)
}

/// `--kube-api`: the API server URL, in place of the kubeconfig's (or the in-cluster config's) server.
pub fn override_api_url(config: &mut kube::Config, kube_api: Option<&str>) -> Result<(), StartupError> {
    if let Some(url) = kube_api {
        config.cluster_url = url.parse().map_err(|error| StartupError::KubeApi { url: url.to_owned(), error })?;
    }
    Ok(())
}

/// A listen error as `serve` reports it: [`privileged_port_hint`]'s line where it applies.
pub fn explain_listen_error(error: ServerError) -> ServeError {
    match error {
        ServerError::Listen { addr, error } => match privileged_port_hint(addr, &error) {
            Some(line) => ServeError::PrivilegedPort(line),
            None => ServerError::Listen { addr, error }.into(),
        },
        other => other.into(),
    }
}

/// One line for a listen refused on a port below 1024: which port, why, and the two fixes. `None` for other errors.
pub fn privileged_port_hint(addr: SocketAddr, error: &std::io::Error) -> Option<String> {
    if error.kind() != std::io::ErrorKind::PermissionDenied || addr.port() >= 1024 {
        return None;
    }
    let port = addr.port();
    Some(format!(
        "cannot listen on {addr}: port {port} is below 1024, and binding it needs root or the NET_BIND_SERVICE \
         capability, which this process lacks (the image runs as a non-root user); either pass --port=8443 and set \
         the Service's targetPort to 8443, or add NET_BIND_SERVICE to the container's \
         securityContext.capabilities.add"
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve(args: &[&str]) -> ServeArgs {
        let argv = ["irsa-webhook", "serve"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Serve(args)) => *args,
            Ok(other) => panic!("not serve: {other:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn the_reference_deployment_decides_files_at_the_reference_paths() {
        let args = serve(crate::cli::reference::tests::REFERENCE_DEPLOYMENT_ARGS);
        let startup = startup(&args).unwrap();
        assert_eq!(
            startup.certificate,
            CertMode::Files { cert: "/etc/webhook/certs/tls.crt".into(), key: "/etc/webhook/certs/tls.key".into() }
        );
        assert!(startup.warnings.is_empty(), "{:?}", startup.warnings);
    }

    #[test]
    fn warnings_name_each_flag_without_effect_once() {
        let args =
            serve(&["--self-signed", "--tls-min-version=1.0", "--log_dir=/x", "--resync-period=30s", "--tls-secret=s"]);
        let warnings = startup(&args).unwrap().warnings;
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("--tls-secret=s is ignored")));
        assert!(warnings.iter().any(|w| w.contains("TLS 1.2 is the floor")));
        let compat = warnings.iter().find(|w| w.starts_with("accepted for compatibility")).unwrap();
        assert!(compat.contains("--resync-period") && compat.contains("--log_dir"), "{compat}");
    }

    #[test]
    fn bad_combinations_end_start_up_in_one_line() {
        let cases: [(&[&str], &str); 3] = [
            (&["--in-cluster=true", "--tls-cert=/c"], "conflicting certificate choices"),
            (
                &["--self-signed", "--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA"],
                "TLS_RSA_WITH_RC4_128_SHA is not available",
            ),
            (&["--cert-secret=a", "--tls-secret=b"], "name different Secrets"),
        ];
        for (args, wanted) in cases {
            let error = startup(&serve(args)).unwrap_err().to_string();
            assert!(error.contains(wanted), "{args:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[tokio::test]
    async fn compose_without_an_account_reads_instance_metadata() {
        // Nothing listens there: the error says where it looked and what to do instead.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let args = serve(&["--compose-role-arn"]).mutation;
        let error = crate::commands::with_causes(&mutation_settings(&args, &endpoint).await.unwrap_err());
        assert!(error.contains("EC2 instance metadata") && error.contains(&endpoint), "{error}");
        // With the account given, metadata is not asked.
        let args = serve(&["--compose-role-arn", "--aws-account-id=111122223333"]).mutation;
        let settings = mutation_settings(&args, &endpoint).await.unwrap();
        assert_eq!(settings.compose_role_arn.unwrap().account_id, "111122223333");
    }

    #[test]
    fn kube_api_replaces_the_server() {
        let mut config = kube::Config::new("https://10.0.0.1:443".parse().unwrap());
        override_api_url(&mut config, Some("https://api.example:6443")).unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://api.example:6443/");
        override_api_url(&mut config, None).unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://api.example:6443/");
    }

    #[test]
    fn a_refused_privileged_port_is_explained_in_one_line() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let line = privileged_port_hint("0.0.0.0:443".parse().unwrap(), &denied).unwrap();
        for wanted in ["0.0.0.0:443", "below 1024", "--port=8443", "targetPort", "NET_BIND_SERVICE"] {
            assert!(line.contains(wanted), "{wanted}: {line}");
        }
        assert!(!line.contains('\n'));
        assert!(privileged_port_hint("0.0.0.0:8443".parse().unwrap(), &denied).is_none());
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert!(privileged_port_hint("0.0.0.0:443".parse().unwrap(), &in_use).is_none());
    }
}
