//! The settings that shape a mutation. One type, shared by `serve` and `mutate`, so the two can never disagree.
//! Defaults are the reference webhook's.

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
