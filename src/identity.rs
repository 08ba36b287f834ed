//! Who a pod should be: from a ServiceAccount's annotations (or a ConfigMap entry) to an [`Identity`]. Pure.

use std::collections::BTreeMap;
use std::fmt;

use crate::settings::MutationSettings;

/// Annotation keys (after `<prefix>/`) read from a ServiceAccount.
pub const SA_ROLE_ARN: &str = "role-arn";
pub const SA_AUDIENCE: &str = "audience";
pub const SA_STS_REGIONAL_ENDPOINTS: &str = "sts-regional-endpoints";
pub const SA_TOKEN_EXPIRATION: &str = "token-expiration";
/// Shared by pod and ServiceAccount: the GID for `fsGroup`, or `off` to opt out.
pub const FS_GROUP: &str = "fs-group";
pub const SA_KEYS: &[&str] = &[SA_ROLE_ARN, SA_AUDIENCE, SA_STS_REGIONAL_ENDPOINTS, SA_TOKEN_EXPIRATION, FS_GROUP];

/// Annotation keys (after `<prefix>/`) read from a Pod.
pub const POD_SKIP_CONTAINERS: &str = "skip-containers";
pub const POD_TOKEN_EXPIRATION: &str = "token-expiration";
pub const POD_KEYS: &[&str] = &[POD_SKIP_CONTAINERS, POD_TOKEN_EXPIRATION, FS_GROUP];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl ServiceAccountRef {
    /// Whether this can name a ServiceAccount at all: a namespace is a DNS label (RFC 1123, at most 63
    /// characters), a ServiceAccount name a DNS subdomain (at most 253). A pod naming anything else is refused by
    /// the API server, so nothing is looked up for it.
    pub fn validate(&self) -> Result<(), String> {
        if !is_dns_label(&self.namespace) {
            return Err(format!("namespace {:?} is not a valid namespace name", crate::mutate::shown(&self.namespace)));
        }
        if !is_dns_subdomain(&self.name) {
            return Err(format!("ServiceAccount name {:?} is not a valid name", crate::mutate::shown(&self.name)));
        }
        Ok(())
    }
}

fn is_dns_label(text: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| alnum(*b) || *b == b'-')
        && bytes.first().copied().is_some_and(alnum)
        && bytes.last().copied().is_some_and(alnum)
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The largest GID Kubernetes accepts for `fsGroup` (and `runAsGroup`): a non-negative int32.
pub const MAX_GID: i64 = i32::MAX as i64;

/// An explicit fsGroup request from an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsGroupRequest {
    Gid(i64),
    Off,
}

impl FsGroupRequest {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("off") {
            return Some(Self::Off);
        }
        value.parse::<i64>().ok().filter(|gid| (0..=MAX_GID).contains(gid)).map(Self::Gid)
    }
}

/// What a ServiceAccount (or a ConfigMap entry) says about the identity of its pods; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountConfig {
    pub role_arn: Option<String>,
    pub audience: Option<String>,
    pub regional_sts: Option<bool>,
    pub token_expiration: Option<i64>,
    pub fs_group: Option<FsGroupRequest>,
    /// Problems found while reading the annotations, for admission warnings and `doctor`.
    pub warnings: Vec<String>,
}

impl ServiceAccountConfig {
    /// Reads the annotations of `sa` under the configured prefix. Bad values are ignored with a warning,
    /// never fatal: a pod must not be refused because of a typo on its ServiceAccount.
    pub fn from_annotations<'a>(
        sa: &ServiceAccountRef,
        annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
        settings: &MutationSettings,
    ) -> Self {
        let mut config = Self::default();
        let prefix = settings.annotation_prefix.as_str();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('/')) else {
                if let Some(hint) = foreign_prefix_hint(key, prefix, SA_KEYS) {
                    config.warnings.push(format!("ServiceAccount {sa}: {hint}"));
                }
                continue;
            };
            match name {
                SA_ROLE_ARN => {
                    let source = format!("ServiceAccount {sa}: {prefix}/{SA_ROLE_ARN}");
                    if let Some((arn, warning)) = role_arn_from(value, &source, settings) {
                        config.warnings.extend(warning);
                        config.role_arn = Some(arn);
                    }
                }
                SA_AUDIENCE => config.audience = Some(value.trim().to_owned()),
                SA_STS_REGIONAL_ENDPOINTS => match parse_bool(value) {
                    Some(on) => config.regional_sts = Some(on),
                    None => config.warnings.push(format!(
                        "ServiceAccount {sa}: {prefix}/{SA_STS_REGIONAL_ENDPOINTS} {value:?} is not true or false; ignored"
                    )),
                },
                SA_TOKEN_EXPIRATION => match value.trim().parse::<i64>() {
                    Ok(seconds) => config.token_expiration = Some(seconds),
                    Err(_) => config.warnings.push(format!(
                        "ServiceAccount {sa}: {prefix}/{SA_TOKEN_EXPIRATION} {value:?} is not a number of seconds; ignored"
                    )),
                },
                FS_GROUP => match FsGroupRequest::parse(value) {
                    Some(request) => config.fs_group = Some(request),
                    None => config.warnings.push(format!(
                        "ServiceAccount {sa}: {prefix}/{FS_GROUP} {value:?} is not a GID (0-{MAX_GID}) or \"off\"; ignored"
                    )),
                },
                other => {
                    if let Some(known) = near_miss(other, SA_KEYS) {
                        config.warnings.push(format!(
                            "ServiceAccount {sa}: annotation {prefix}/{other} is not known; did you mean {prefix}/{known}?"
                        ));
                    } else if POD_KEYS.contains(&other) {
                        config.warnings.push(format!(
                            "ServiceAccount {sa}: {prefix}/{other} is read from pods, not from ServiceAccounts"
                        ));
                    }
                }
            }
        }
        config
    }
}

/// A role value as it will be injected: trimmed, composed from a bare name under `--compose-role-arn`, and
/// checked (an invalid ARN is still injected, as the reference does, with a warning that names `source`).
/// `None` for an empty value: no role, as in the reference. Shared by ServiceAccount annotations and ConfigMap
/// entries so both read roles the same way.
pub fn role_arn_from(value: &str, source: &str, settings: &MutationSettings) -> Option<(String, Option<String>)> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let arn = match &settings.compose_role_arn {
        Some(composer) if !value.starts_with("arn:") => composer.compose(value),
        _ => value.to_owned(),
    };
    let warning = validate_role_arn(&arn).err().map(|reason| {
        format!("{source} {arn:?} is not a valid IAM role ARN ({reason}); it is injected as is, but STS will refuse it")
    });
    Some((arn, warning))
}

/// How the pod gets its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// IRSA: `AWS_ROLE_ARN` + a projected token for `AssumeRoleWithWebIdentity`.
    WebIdentity { role_arn: &'a str },
    /// EKS Pod Identity: the agent at `--container-credentials-full-uri` exchanges the token.
    ContainerCredentials,
}

/// Everything the mutation needs to know about the pod's identity, borrowed from the ServiceAccount's config.
/// Unset options fall back to the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    pub service_account: &'a ServiceAccountRef,
    pub credentials: Credentials<'a>,
    pub audience: Option<&'a str>,
    pub regional_sts: Option<bool>,
    pub token_expiration: Option<i64>,
    pub fs_group: Option<FsGroupRequest>,
}

/// The credential method of a mutated pod, for its log line and `pod_identity_webhook_pod_count{method}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    StsWebIdentity,
    ContainerCredentials,
}

impl Method {
    /// Every method, in the order the metrics list them.
    pub const ALL: [Method; 2] = [Method::ContainerCredentials, Method::StsWebIdentity];

    /// As the reference's metrics name it.
    pub fn label(self) -> &'static str {
        match self {
            Method::StsWebIdentity => "sts_web_identity",
            Method::ContainerCredentials => "container_credentials",
        }
    }
}

impl Identity<'_> {
    pub fn method(&self) -> Method {
        match self.credentials {
            Credentials::WebIdentity { .. } => Method::StsWebIdentity,
            Credentials::ContainerCredentials => Method::ContainerCredentials,
        }
    }
}

/// The identity for pods of `sa`, if any. Container credentials win over a role ARN (as in the reference); they
/// apply even when the ServiceAccount is unknown, because the container-credentials config names it.
pub fn resolve<'a>(
    sa: &'a ServiceAccountRef,
    config: Option<&'a ServiceAccountConfig>,
    container_credentials: bool,
) -> Option<Identity<'a>> {
    let credentials = if container_credentials {
        Credentials::ContainerCredentials
    } else {
        Credentials::WebIdentity { role_arn: config?.role_arn.as_deref()? }
    };
    Some(Identity {
        service_account: sa,
        audience: match credentials {
            Credentials::WebIdentity { .. } => config.and_then(|c| c.audience.as_deref()),
            Credentials::ContainerCredentials => None,
        },
        credentials,
        regional_sts: config.and_then(|c| c.regional_sts),
        token_expiration: config.and_then(|c| c.token_expiration),
        fs_group: config.and_then(|c| c.fs_group),
    })
}

/// Checks `arn:<partition>:iam::<12 digits>:role/<path/name>` with IAM's character rules.
pub fn validate_role_arn(arn: &str) -> Result<(), &'static str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected arn:<partition>:iam::<account>:role/<name>");
    };
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("bad partition");
    }
    if service != "iam" {
        return Err("service is not iam");
    }
    if !region.is_empty() {
        return Err("IAM ARNs have no region");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("account id must be 12 digits");
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err("resource must start with role/");
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let iam_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(iam_char) {
        return Err("role name must be 1-64 characters of A-Z a-z 0-9 +=,.@_-");
    }
    if path_and_name.len() > 512 || !path_and_name.chars().all(|c| c == '/' || iam_char(c)) {
        return Err("role path has characters IAM does not allow");
    }
    Ok(())
}

/// A known key that `key` was probably meant to be: same after folding case and `_`, or within two edits.
/// Bounded whatever the key: one whose length differs from a known key's by more than two can be neither.
pub fn near_miss<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.trim();
    let close_in_length = |k: &str| key.len().abs_diff(k.len()) <= 2;
    if !known.iter().any(|k| close_in_length(k)) {
        return None;
    }
    let folded = fold(key);
    known
        .iter()
        .filter(|k| close_in_length(k))
        .find(|k| fold(k) == folded || (folded.len() >= 5 && edit_distance(&folded, k) <= 2))
        .copied()
}

/// `eks.amazon.com/role-arn` and friends: a known key under a prefix that is almost the configured one.
pub fn foreign_prefix_hint(key: &str, prefix: &str, known: &[&str]) -> Option<String> {
    let (other_prefix, name) = key.rsplit_once('/')?;
    if other_prefix == prefix {
        return None;
    }
    let name = name.trim();
    let known_name = known.iter().find(|k| k.len() == name.len() && fold(k) == fold(name))?;
    let looks_aws = other_prefix.contains("amazon") || other_prefix.contains("aws") || other_prefix.starts_with("eks");
    // Only prefixes of about the same length can be within three edits; others are not measured.
    let close = || {
        other_prefix.len().abs_diff(prefix.len()) <= 3 && edit_distance(&other_prefix.to_ascii_lowercase(), prefix) <= 3
    };
    (looks_aws || close()).then(|| format!("annotation {key} is ignored; the webhook reads {prefix}/{known_name}"))
}

fn fold(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', "-")
}

/// Levenshtein distance over characters in two rows, O(len(a) × len(b)): callers keep the inputs short.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Go's strconv.ParseBool, which the reference uses for boolean annotations.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The annotations map of a raw object (`metadata.annotations`), as string pairs.
pub fn annotations_of(object: &serde_json::Value) -> BTreeMap<&str, &str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.as_object())
        .map(|a| a.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RoleArnComposer;

    fn sa() -> ServiceAccountRef {
        ServiceAccountRef::new("default", "app")
    }

    fn config(pairs: &[(&str, &str)], settings: &MutationSettings) -> ServiceAccountConfig {
        ServiceAccountConfig::from_annotations(&sa(), pairs.iter().copied(), settings)
    }

    #[test]
    fn reads_all_known_annotations() {
        let c = config(
            &[
                ("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/reader"),
                ("eks.amazonaws.com/audience", "custom"),
                ("eks.amazonaws.com/sts-regional-endpoints", "true"),
                ("eks.amazonaws.com/token-expiration", "3600"),
                ("eks.amazonaws.com/fs-group", "1000"),
                ("unrelated", "x"),
            ],
            &MutationSettings::default(),
        );
        assert_eq!(c.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/reader"));
        assert_eq!(c.audience.as_deref(), Some("custom"));
        assert_eq!(c.regional_sts, Some(true));
        assert_eq!(c.token_expiration, Some(3600));
        assert_eq!(c.fs_group, Some(FsGroupRequest::Gid(1000)));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn invalid_arn_is_kept_with_a_warning_naming_the_service_account() {
        let c = config(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::1234:role/x")], &MutationSettings::default());
        assert_eq!(c.role_arn.as_deref(), Some("arn:aws:iam::1234:role/x"));
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("default/app") && c.warnings[0].contains("12 digits"));
    }

    #[test]
    fn typos_and_foreign_prefixes_are_called_out() {
        let c = config(
            &[
                ("eks.amazonaws.com/role_arn", "x"),
                ("eks.amazon.com/role-arn", "y"),
                ("eks.amazonaws.com/compute-type", "fargate"),
            ],
            &MutationSettings::default(),
        );
        assert!(c.role_arn.is_none());
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("did you mean eks.amazonaws.com/role-arn"));
        assert!(c.warnings[1].contains("eks.amazon.com/role-arn is ignored"));
    }

    #[test]
    fn composes_bare_role_names() {
        let settings = MutationSettings {
            compose_role_arn: Some(RoleArnComposer { partition: "aws-cn".into(), account_id: "111122223333".into() }),
            ..MutationSettings::default()
        };
        let c = config(&[("eks.amazonaws.com/role-arn", "reader")], &settings);
        assert_eq!(c.role_arn.as_deref(), Some("arn:aws-cn:iam::111122223333:role/reader"));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn empty_role_arn_is_no_role() {
        let c = config(&[("eks.amazonaws.com/role-arn", "  ")], &MutationSettings::default());
        assert_eq!(c.role_arn, None);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn custom_prefix_is_honoured() {
        let settings = MutationSettings { annotation_prefix: "example.com".into(), ..MutationSettings::default() };
        let c = config(&[("example.com/role-arn", "arn:aws:iam::111122223333:role/r")], &settings);
        assert!(c.role_arn.is_some());
    }

    #[test]
    fn arn_validation() {
        assert!(validate_role_arn("arn:aws:iam::111122223333:role/a/b/c-d_e+f=g,h.i@j").is_ok());
        assert!(validate_role_arn("arn:aws-us-gov:iam::111122223333:role/r").is_ok());
        assert!(validate_role_arn("arn:aws:iam::111122223333:user/r").is_err());
        assert!(validate_role_arn("arn:aws:iam:us-east-1:111122223333:role/r").is_err());
        assert!(validate_role_arn("arn:aws:s3::111122223333:role/r").is_err());
        assert!(validate_role_arn("arn:aws:iam::111122223333:role/").is_err());
        assert!(validate_role_arn("arn:aws:iam::111122223333:role/has space").is_err());
        assert!(validate_role_arn("already-defined").is_err());
        assert!(validate_role_arn(&format!("arn:aws:iam::111122223333:role/{}", "x".repeat(65))).is_err());
    }

    #[test]
    fn container_credentials_win_and_need_no_service_account() {
        let c = ServiceAccountConfig { role_arn: Some("arn".into()), ..Default::default() };
        let sa = sa();
        let sa = &sa;
        let id = resolve(sa, Some(&c), true).map(|i| i.credentials);
        assert_eq!(id, Some(Credentials::ContainerCredentials));
        assert_eq!(resolve(sa, None, true).map(|i| i.credentials), Some(Credentials::ContainerCredentials));
        assert_eq!(resolve(sa, None, false), None);
        assert_eq!(resolve(sa, Some(&ServiceAccountConfig::default()), false), None);
    }

    #[test]
    fn fs_group_request_parsing() {
        assert_eq!(FsGroupRequest::parse("off"), Some(FsGroupRequest::Off));
        assert_eq!(FsGroupRequest::parse(" 1000 "), Some(FsGroupRequest::Gid(1000)));
        assert_eq!(FsGroupRequest::parse("-1"), None);
        assert_eq!(FsGroupRequest::parse("abc"), None);
    }
}
