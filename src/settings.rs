//! The settings that shape a mutation. One type, shared by `serve` and `mutate`, so the two can never disagree.
//! Defaults are the reference webhook's.

use crate::cli::MutationArgs;

/// Kubernetes rejects `expirationSeconds` below ten minutes.
pub const MIN_TOKEN_EXPIRATION: i64 = 600;
/// ... and at or above 2^32 seconds.
pub const MAX_TOKEN_EXPIRATION: i64 = (1 << 32) - 1;

pub const DEFAULT_ANNOTATION_PREFIX: &str = "eks.amazonaws.com";
pub const DEFAULT_TOKEN_AUDIENCE: &str = "sts.amazonaws.com";
pub const DEFAULT_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 86400;
pub const DEFAULT_FS_GROUP: i64 = 65534;

/// Name of the projected volume in web-identity mode (fixed in the reference).
pub const WEB_IDENTITY_VOLUME_NAME: &str = "aws-iam-token";
/// File name of the token inside the web-identity mount.
pub const WEB_IDENTITY_TOKEN_FILE_NAME: &str = "token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationSettings {
    pub annotation_prefix: String,
    pub token_audience: String,
    pub token_mount_path: String,
    /// Seconds; already clamped to the range Kubernetes accepts.
    pub token_expiration: i64,
    pub aws_default_region: Option<String>,
    pub sts_regional_endpoint: bool,
    pub container_credentials: ContainerCredentialsSettings,
    /// `Some` when `--compose-role-arn` is on: bare role names become full ARNs.
    pub compose_role_arn: Option<RoleArnComposer>,
    pub fs_group_fix: FsGroupFix,
    pub default_fs_group: i64,
    pub inject_role_session_name: bool,
    pub inject: InjectMode,
}

impl Default for MutationSettings {
    fn default() -> Self {
        Self {
            annotation_prefix: DEFAULT_ANNOTATION_PREFIX.to_owned(),
            token_audience: DEFAULT_TOKEN_AUDIENCE.to_owned(),
            token_mount_path: DEFAULT_TOKEN_MOUNT_PATH.to_owned(),
            token_expiration: DEFAULT_TOKEN_EXPIRATION,
            aws_default_region: None,
            sts_regional_endpoint: false,
            container_credentials: ContainerCredentialsSettings::default(),
            compose_role_arn: None,
            fs_group_fix: FsGroupFix::Auto,
            default_fs_group: DEFAULT_FS_GROUP,
            inject_role_session_name: false,
            inject: InjectMode::Full,
        }
    }
}

/// Flag values that cannot make settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--compose-role-arn needs --aws-account-id (only serve reads it from EC2 instance metadata)")]
    ComposeWithoutAccount,
    #[error("--aws-account-id must be 12 digits, got {0:?}")]
    BadAccount(String),
    #[error("--default-fs-group must be a GID from 0 to 2147483647, got {0}")]
    BadFsGroup(i64),
    #[error("--token-mount-path and --container-credentials-token-mount-path must be absolute paths")]
    RelativeMountPath,
}

/// The flags, checked, into the settings: `serve`, `mutate` and `doctor` build them here and nowhere else.
impl TryFrom<&MutationArgs> for MutationSettings {
    type Error = SettingsError;

    fn try_from(args: &MutationArgs) -> Result<Self, SettingsError> {
        let region = Some(args.aws_default_region.trim().to_owned()).filter(|r| !r.is_empty());
        let compose_role_arn = if args.compose_role_arn {
            let account_id = args.aws_account_id.clone().ok_or(SettingsError::ComposeWithoutAccount)?;
            if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SettingsError::BadAccount(account_id));
            }
            let partition = args
                .aws_partition
                .clone()
                .unwrap_or_else(|| partition_for_region(region.as_deref().unwrap_or_default()).to_owned());
            Some(RoleArnComposer { partition, account_id })
        } else {
            None
        };
        if !(0..=crate::identity::MAX_GID).contains(&args.default_fs_group) {
            return Err(SettingsError::BadFsGroup(args.default_fs_group));
        }
        if !args.token_mount_path.starts_with('/') || !args.container_credentials_token_mount_path.starts_with('/') {
            return Err(SettingsError::RelativeMountPath);
        }
        Ok(Self {
            annotation_prefix: args.annotation_prefix.trim_end_matches('/').to_owned(),
            token_audience: args.token_audience.clone(),
            token_mount_path: args.token_mount_path.clone(),
            token_expiration: clamp_token_expiration(args.token_expiration),
            aws_default_region: region,
            sts_regional_endpoint: args.sts_regional_endpoint,
            container_credentials: ContainerCredentialsSettings {
                audience: args.container_credentials_audience.clone(),
                token_mount_path: args.container_credentials_token_mount_path.clone(),
                token_volume_name: args.container_credentials_token_volume_name.clone(),
                token_path: args.container_credentials_token_path.clone(),
                full_uri: args.container_credentials_full_uri.clone(),
            },
            compose_role_arn,
            fs_group_fix: args.fs_group_fix,
            default_fs_group: args.default_fs_group,
            inject_role_session_name: args.inject_role_session_name,
            inject: args.inject,
        })
    }
}

/// EKS Pod Identity ("container credentials") mode: what is mounted and where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCredentialsSettings {
    pub audience: String,
    pub token_mount_path: String,
    pub token_volume_name: String,
    pub token_path: String,
    pub full_uri: String,
}

impl Default for ContainerCredentialsSettings {
    fn default() -> Self {
        Self {
            audience: "pods.eks.amazonaws.com".to_owned(),
            token_mount_path: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount".to_owned(),
            token_volume_name: "eks-pod-identity-token".to_owned(),
            token_path: "eks-pod-identity-token".to_owned(),
            full_uri: "http://169.254.170.23/v1/credentials".to_owned(),
        }
    }
}

/// Turns a bare role name (`my-role`, `path/my-role`) into `arn:<partition>:iam::<account>:role/<name>`, exactly as
/// the reference does: the value is appended as it is, so `role/reader` becomes `...:role/role/reader` (a role
/// `reader` under the path `/role/`), which is what IAM means by that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArnComposer {
    pub partition: String,
    pub account_id: String,
}

impl RoleArnComposer {
    pub fn compose(&self, role: &str) -> String {
        format!("arn:{}:iam::{}:role/{}", self.partition, self.account_id, role)
    }
}

/// When to set `spec.securityContext.fsGroup` so a non-root process can read the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsGroupFix {
    /// Only for pods that say they run as non-root (runAsUser > 0 or runAsNonRoot).
    Auto,
    /// For every mutated pod: images whose USER is non-root say so nowhere in the pod spec.
    Always,
    /// Never touch fsGroup (the reference's behaviour).
    Never,
}

/// What the webhook adds to a pod whose ServiceAccount gives it a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectMode {
    /// The token volume, its mount, the env vars and the fsGroup fix.
    Full,
    /// Only the fsGroup fix: for clusters where another webhook (EKS's managed one) injects the credentials.
    FsGroupOnly,
}

/// The AWS partition a region belongs to; used to compose ARNs without instance metadata.
pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// Kubernetes bounds for a projected token's lifetime; the reference raises short values to 600 s.
pub fn clamp_token_expiration(seconds: i64) -> i64 {
    seconds.clamp(MIN_TOKEN_EXPIRATION, MAX_TOKEN_EXPIRATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_region_prefixes() {
        assert_eq!(partition_for_region("us-west-2"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_for_region("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_for_region("us-isob-east-1"), "aws-iso-b");
        assert_eq!(partition_for_region(""), "aws");
    }

    #[test]
    fn compose_appends_the_value_as_the_reference_does() {
        let c = RoleArnComposer { partition: "aws".into(), account_id: "111122223333".into() };
        assert_eq!(c.compose("reader"), "arn:aws:iam::111122223333:role/reader");
        assert_eq!(c.compose("team/reader"), "arn:aws:iam::111122223333:role/team/reader");
        assert_eq!(c.compose("role/reader"), "arn:aws:iam::111122223333:role/role/reader");
    }

    #[test]
    fn expiration_is_clamped_to_what_kubernetes_accepts() {
        assert_eq!(clamp_token_expiration(10), 600);
        assert_eq!(clamp_token_expiration(3600), 3600);
        assert_eq!(clamp_token_expiration(1 << 40), MAX_TOKEN_EXPIRATION);
    }
}
