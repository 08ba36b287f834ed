//! The command line: clap definitions, parsed once into typed settings. Every flag can also come from an
//! environment variable `IRSA_<FLAG>`, so the binary drops into existing deployments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{self, ContainerCredentialsSettings, FsGroupFix, MutationSettings, RoleArnComposer};

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
    /// Mutate a pod manifest offline, exactly as the webhook would, and print the result.
    Mutate(MutateArgs),
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

/// Go's flag package accepts `--flag`, `--flag=true` and `--flag=false`; the reference's users write all three.
macro_rules! go_bool {
    () => {
        clap::ArgAction::Set
    };
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
    #[arg(long, env = "IRSA_STS_REGIONAL_ENDPOINT", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = go_bool!())]
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
    #[arg(long, env = "IRSA_COMPOSE_ROLE_ARN", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = go_bool!())]
    pub compose_role_arn: bool,
    /// Account id for --compose-role-arn (the reference reads it from instance metadata; we do not).
    #[arg(long, env = "IRSA_AWS_ACCOUNT_ID", value_name = "ID")]
    pub aws_account_id: Option<String>,
    /// Partition for --compose-role-arn; default: derived from --aws-default-region (aws, aws-cn, aws-us-gov, ...).
    #[arg(long, env = "IRSA_AWS_PARTITION")]
    pub aws_partition: Option<String>,
    /// When to set the pod's fsGroup so a non-root process can read the token.
    #[arg(long, env = "IRSA_FS_GROUP_FIX", value_enum, default_value_t = FsGroupFix::Auto)]
    pub fs_group_fix: FsGroupFix,
    /// fsGroup used by the fix when the pod has no runAsGroup.
    #[arg(long, env = "IRSA_DEFAULT_FS_GROUP", default_value_t = settings::DEFAULT_FS_GROUP)]
    pub default_fs_group: i64,
    /// Inject AWS_ROLE_SESSION_NAME = the pod's name (downward API, so generated names work).
    #[arg(long, env = "IRSA_INJECT_ROLE_SESSION_NAME", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = go_bool!())]
    pub inject_role_session_name: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--compose-role-arn needs --aws-account-id (this webhook does not read instance metadata)")]
    ComposeWithoutAccount,
    #[error("--aws-account-id must be 12 digits, got {0:?}")]
    BadAccount(String),
    #[error("--default-fs-group must be a GID >= 0, got {0}")]
    BadFsGroup(i64),
    #[error("--token-mount-path and --container-credentials-token-mount-path must be absolute paths")]
    RelativeMountPath,
}

impl MutationArgs {
    pub fn to_settings(&self) -> Result<MutationSettings, SettingsError> {
        let region = Some(self.aws_default_region.trim().to_owned()).filter(|r| !r.is_empty());
        let compose_role_arn = if self.compose_role_arn {
            let account_id = self.aws_account_id.clone().ok_or(SettingsError::ComposeWithoutAccount)?;
            if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SettingsError::BadAccount(account_id));
            }
            let partition = self
                .aws_partition
                .clone()
                .unwrap_or_else(|| settings::partition_for_region(region.as_deref().unwrap_or_default()).to_owned());
            Some(RoleArnComposer { partition, account_id })
        } else {
            None
        };
        if self.default_fs_group < 0 {
            return Err(SettingsError::BadFsGroup(self.default_fs_group));
        }
        if !self.token_mount_path.starts_with('/') || !self.container_credentials_token_mount_path.starts_with('/') {
            return Err(SettingsError::RelativeMountPath);
        }
        Ok(MutationSettings {
            annotation_prefix: self.annotation_prefix.trim_end_matches('/').to_owned(),
            token_audience: self.token_audience.clone(),
            token_mount_path: self.token_mount_path.clone(),
            token_expiration: settings::clamp_token_expiration(self.token_expiration),
            aws_default_region: region,
            sts_regional_endpoint: self.sts_regional_endpoint,
            container_credentials: ContainerCredentialsSettings {
                audience: self.container_credentials_audience.clone(),
                token_mount_path: self.container_credentials_token_mount_path.clone(),
                token_volume_name: self.container_credentials_token_volume_name.clone(),
                token_path: self.container_credentials_token_path.clone(),
                full_uri: self.container_credentials_full_uri.clone(),
            },
            compose_role_arn,
            fs_group_fix: self.fs_group_fix,
            default_fs_group: self.default_fs_group,
            inject_role_session_name: self.inject_role_session_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> MutateArgs {
        let mut argv = vec!["irsa-webhook", "mutate"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Mutate(m)) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_are_the_reference_defaults() {
        assert_eq!(parse(&[]).mutation.to_settings().unwrap(), MutationSettings::default());
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
}
