//! `doctor`: why a pod has — or lacks — its AWS credentials, as a list of findings. Pure: the shell
//! (`commands/doctor.rs`) reads the pod, its ServiceAccount, the namespace and the webhook configurations from files
//! or the API; this module decides, without I/O.
//!
//! No rule is re-derived here. ServiceAccount annotations go through [`ServiceAccountConfig::from_annotations`]
//! (invalid ARNs, typos, foreign prefixes); what a pod lacks is exactly what the real [`mutate`] would still add to
//! it; whether a pod needs the fsGroup fix is asked of [`mutate`] too, with the fix forced on.

pub mod selector;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::identity::{
    self, Credentials, FsGroupRequest, Identity, ServiceAccountConfig, ServiceAccountRef, FS_GROUP, POD_KEYS,
    POD_SKIP_CONTAINERS, SA_AUDIENCE, SA_KEYS, SA_ROLE_ARN, SA_STS_REGIONAL_ENDPOINTS, SA_TOKEN_EXPIRATION,
};
use crate::manifest::{self, ServiceAccountManifest};
use crate::mutate::{mutate, MutateError};
use crate::settings::{FsGroupFix, MutationSettings, MIN_TOKEN_EXPIRATION, WEB_IDENTITY_VOLUME_NAME};
use selector::{labels_of, LabelSelector, Requirement};

/// The names of the checks, as printed in the second column.
pub const CHECK_SERVICE_ACCOUNT: &str = "service-account";
pub const CHECK_INJECTION: &str = "injection";
pub const CHECK_TIMING: &str = "timing";
pub const CHECK_WEBHOOK: &str = "webhook";
pub const CHECK_CERTIFICATE: &str = "certificate";
pub const CHECK_SKIP_CONTAINERS: &str = "skip-containers";
pub const CHECK_FS_GROUP: &str = "fs-group";
pub const CHECK_TOKEN_AUDIENCE: &str = "token-audience";
pub const CHECK_TOKEN_EXPIRATION: &str = "token-expiration";
pub const CHECK_AWS_SDK: &str = "aws-sdk";

/// The audience every IRSA trust policy accepts by default (`<issuer>:aud`).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// Below this a token lifetime earns a hint.
pub const RECOMMENDED_TOKEN_EXPIRATION: i64 = 3600;
/// A caBundle CA closer than this to its end earns a hint.
pub const CA_EXPIRY_WARNING_SECONDS: i64 = 30 * 86400;
/// Kubernetes' default `expirationSeconds` for a projected token.
const DEFAULT_PROJECTED_EXPIRATION: i64 = 3600;

/// Minimum AWS SDK versions that read `AWS_WEB_IDENTITY_TOKEN_FILE`, from the AWS EKS documentation
/// "Use IRSA with the AWS SDK" (docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts-minimum-sdk.html).
pub const MINIMUM_SDK_VERSIONS: &[(&str, &str)] = &[
    ("Java v2", "2.10.11"),
    ("Java v1", "1.12.782"),
    ("Go v1", "1.23.13"),
    ("Go v2", "all"),
    ("Python boto3", "1.9.220"),
    ("botocore", "1.12.200"),
    ("AWS CLI", "1.16.232"),
    ("Node.js v2", "2.525.0"),
    ("Node.js v3", "3.27.0"),
    ("Ruby aws-sdk-core", "3.58.0"),
    ("C++", "1.7.174"),
    (".NET", "3.3.659.1"),
    ("PHP", "3.110.7"),
];

/// Webhooks with these words in their name, their configuration's name or their service's name are taken for
/// irsa-webhook or the reference amazon-eks-pod-identity-webhook (whose webhook is `iam-for-pods.amazonaws.com`).
const WEBHOOK_NAME_HINTS: &[&str] = &["irsa", "pod-identity", "iam-for-pods"];

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("not a valid Pod: {0}")]
    InvalidPod(#[from] MutateError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    Hint,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Problem => "problem",
            Self::Hint => "hint",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    pub check: &'static str,
    pub message: String,
    /// One line: what to do. `None` for `ok` lines and hints without an action.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self { status: Status::Ok, check, message: message.into(), fix: None }
    }

    fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { status: Status::Problem, check, message: message.into(), fix: Some(fix.into()) }
    }

    fn hint(check: &'static str, message: impl Into<String>, fix: Option<String>) -> Self {
        Self { status: Status::Hint, check, message: message.into(), fix }
    }
}

/// What the doctor knows about the cluster. `Err` carries why a part could not be read (e.g. forbidden).
pub struct ClusterView<'a> {
    /// Every MutatingWebhookConfiguration (raw JSON objects).
    pub webhook_configurations: Result<&'a [Value], &'a str>,
    /// `--webhook-config`: consider only this configuration, whatever its webhooks are called.
    pub webhook_config_name: Option<&'a str>,
    /// Labels of the pod's namespace.
    pub namespace_labels: Result<&'a BTreeMap<String, String>, &'a str>,
    /// Unix time, for the caBundle's expiry (the only check that depends on the clock).
    pub now: i64,
}

/// Where the pod came from.
pub enum Source<'a> {
    /// `doctor -f pod.yaml`: only files; nothing is known about the webhook's registration.
    Offline,
    /// `doctor pod NS/NAME`: read from the API.
    Cluster(ClusterView<'a>),
}

pub struct Inputs<'a> {
    /// The pod as stored (`kubectl get -o json`) or a manifest that was never created.
    pub pod: &'a Value,
    /// The pod's ServiceAccount, if it exists (`None`: not found).
    pub service_account: Option<&'a ServiceAccountManifest>,
    /// The ServiceAccount is listed in `--watch-container-credentials-config` (EKS Pod Identity).
    pub container_credentials: bool,
    /// The same settings as the deployed webhook.
    pub settings: &'a MutationSettings,
    pub source: Source<'a>,
}

/// True when any finding is a problem: the exit status of `doctor`.
pub fn has_problems(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Problem)
}

/// `status  check  message → fix`, one line each, columns aligned so `grep ^problem` and `awk` work.
pub fn render_text(findings: &[Finding]) -> String {
    let mut text = String::new();
    for finding in findings {
        let _ = write!(text, "{:<8} {:<17} {}", finding.status.as_str(), finding.check, finding.message);
        if let Some(fix) = &finding.fix {
            let _ = write!(text, " → {fix}");
        }
        text.push('\n');
    }
    text
}

/// Runs every check on the pod. Errors only for a pod the webhook could not read either.
pub fn diagnose(inputs: &Inputs<'_>) -> Result<Vec<Finding>, DoctorError> {
    // Validates the pod's shape exactly as the webhook does, before anything looks inside it.
    mutate(inputs.pod, None, inputs.settings)?;
    let pod = PodFacts::new(inputs.pod);
    let mut findings = Vec::new();

    let config = check_service_account(inputs, &pod, &mut findings);
    let identity = identity::resolve(&pod.service_account, config.as_ref(), inputs.container_credentials);
    let (selection, webhook_findings) = match &inputs.source {
        Source::Offline => (Selection::Unknown, Vec::new()),
        Source::Cluster(view) => check_webhook(view, &pod),
    };
    let Some(identity) = identity else {
        // Without a role the webhook leaves the pod alone: the ServiceAccount finding says why.
        findings.extend(webhook_findings);
        return Ok(findings);
    };

    let mutation = mutate(inputs.pod, Some(&identity), inputs.settings)?;
    let patch = PatchSummary::new(&serde_json::to_value(&mutation.patch).unwrap_or_default(), inputs.pod);
    check_injection(inputs, &pod, &identity, &patch, &selection, &mut findings);
    findings.extend(webhook_findings);
    check_skip_containers(inputs, &pod, &mut findings);

    let mut effective = inputs.pod.clone();
    if json_patch::patch(&mut effective, &mutation.patch).is_err() {
        effective = inputs.pod.clone();
    }
    check_fs_group(inputs, &pod, &identity, &patch, &effective, &mut findings)?;
    check_token(inputs, &identity, &effective, &mut findings);
    findings.push(sdk_hint(&identity));
    for warning in &mutation.warnings {
        // The all-skipped case has its own finding; the rest (volume and mount collisions, clamped lifetimes) are
        // the webhook's own admission warnings.
        if !warning.contains(POD_SKIP_CONTAINERS) {
            findings.push(Finding::hint(CHECK_INJECTION, format!("the webhook warns: {warning}"), None));
        }
    }
    Ok(findings)
}

/// What the checks need to know about the pod itself.
struct PodFacts<'a> {
    namespace: String,
    name: String,
    service_account: ServiceAccountRef,
    /// Created through the API (has a creation timestamp or UID), as opposed to a manifest never applied.
    stored: bool,
    created: Option<&'a str>,
    /// `Kind/name` of the controller that recreates it.
    owner: Option<String>,
    labels: BTreeMap<String, String>,
}

impl<'a> PodFacts<'a> {
    fn new(pod: &'a Value) -> Self {
        let text = |pointer| pod.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
        let service_account = manifest::pod_service_account(pod, None);
        let owner = pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).and_then(|owners| {
            let owner =
                owners.iter().find(|o| o.get("controller").and_then(Value::as_bool) == Some(true)).or(owners.first())?;
            Some(format!("{}/{}", owner.get("kind")?.as_str()?, owner.get("name")?.as_str()?))
        });
        let created = text("/metadata/creationTimestamp");
        Self {
            namespace: service_account.namespace.clone(),
            name: text("/metadata/name").or(text("/metadata/generateName")).unwrap_or("<unnamed>").to_owned(),
            service_account,
            stored: created.is_some() || text("/metadata/uid").is_some(),
            created,
            owner,
            labels: labels_of(pod),
        }
    }

    fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn recreate_fix(&self) -> String {
        let delete = format!("kubectl delete pod -n {} {}", self.namespace, self.name);
        match &self.owner {
            Some(owner) => format!("recreate the pod: {delete} (its controller {owner} recreates it)"),
            None => {
                format!("recreate the pod: {delete}, then create it again from its manifest (no controller owns it)")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// service-account

fn check_service_account(
    inputs: &Inputs<'_>,
    pod: &PodFacts<'_>,
    findings: &mut Vec<Finding>,
) -> Option<ServiceAccountConfig> {
    let sa = &pod.service_account;
    let prefix = inputs.settings.annotation_prefix.as_str();
    let annotate = format!("kubectl annotate serviceaccount -n {} {}", sa.namespace, sa.name);
    let Some(manifest) = inputs.service_account else {
        if inputs.container_credentials {
            findings.push(Finding::ok(
                CHECK_SERVICE_ACCOUNT,
                format!("ServiceAccount {sa} is in the container-credentials config (EKS Pod Identity)"),
            ));
        } else {
            let (message, fix) = match inputs.source {
                Source::Offline => (
                    format!("ServiceAccount {sa} not found in the --service-account files"),
                    format!(
                        "pass its manifest: kubectl get serviceaccount -n {} {} -o yaml > sa.yaml; doctor -f … --service-account sa.yaml",
                        sa.namespace, sa.name
                    ),
                ),
                Source::Cluster(_) => (
                    format!("ServiceAccount {sa} not found"),
                    format!(
                        "kubectl create serviceaccount -n {} {} && {annotate} {prefix}/{SA_ROLE_ARN}=arn:aws:iam::<account>:role/<role>",
                        sa.namespace, sa.name
                    ),
                ),
            };
            findings.push(Finding::problem(CHECK_SERVICE_ACCOUNT, message, fix));
        }
        return None;
    };

    let annotations = || manifest.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let config = ServiceAccountConfig::from_annotations(sa, annotations(), inputs.settings);
    // The same reader, one annotation at a time, so each warning comes with the key it is about and a fix for it.
    let mut role_arn_misspelt = false;
    for (key, value) in annotations() {
        let single = ServiceAccountConfig::from_annotations(sa, [(key, value)], inputs.settings);
        for warning in single.warnings {
            let (fix, misspells) = annotation_fix(key, value, prefix, &annotate);
            role_arn_misspelt |= misspells == Some(SA_ROLE_ARN);
            findings.push(Finding::problem(CHECK_SERVICE_ACCOUNT, warning, fix));
        }
    }
    match (&config.role_arn, inputs.container_credentials) {
        (_, true) => findings.push(Finding::ok(
            CHECK_SERVICE_ACCOUNT,
            format!("ServiceAccount {sa} is in the container-credentials config (EKS Pod Identity)"),
        )),
        (Some(arn), false) => {
            if identity::validate_role_arn(arn).is_ok() {
                findings.push(Finding::ok(
                    CHECK_SERVICE_ACCOUNT,
                    format!("ServiceAccount {sa} has {prefix}/{SA_ROLE_ARN} {arn}"),
                ));
            }
        }
        (None, false) if !role_arn_misspelt => findings.push(Finding::problem(
            CHECK_SERVICE_ACCOUNT,
            format!("ServiceAccount {sa} has no {prefix}/{SA_ROLE_ARN} annotation: its pods get no AWS role"),
            format!("{annotate} {prefix}/{SA_ROLE_ARN}=arn:aws:iam::<account>:role/<role>"),
        )),
        (None, false) => {}
    }
    Some(config)
}

/// The fix for a ServiceAccount annotation that `from_annotations` warned about, and the known key it misspells.
fn annotation_fix(key: &str, value: &str, prefix: &str, annotate: &str) -> (String, Option<&'static str>) {
    let own = key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('/'));
    let set = |name: &str, what: &str| format!("{annotate} --overwrite {prefix}/{name}={what}");
    match own {
        Some(SA_ROLE_ARN) => (set(SA_ROLE_ARN, "arn:aws:iam::<12-digit account>:role/<name>"), None),
        Some(SA_STS_REGIONAL_ENDPOINTS) => (set(SA_STS_REGIONAL_ENDPOINTS, "true"), None),
        Some(SA_TOKEN_EXPIRATION) => (set(SA_TOKEN_EXPIRATION, "<seconds, at least 600>"), None),
        Some(FS_GROUP) => (set(FS_GROUP, "<GID or off>"), None),
        Some(name) if POD_KEYS.contains(&name) => {
            (format!("move {key} to the pod template's annotations; on a ServiceAccount it is ignored"), None)
        }
        Some(name) => rename(key, value, identity::near_miss(name, SA_KEYS), prefix, annotate),
        None => {
            let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
            rename(key, value, identity::near_miss(name, SA_KEYS), prefix, annotate)
        }
    }
}

fn rename(
    key: &str,
    value: &str,
    known: Option<&'static str>,
    prefix: &str,
    annotate: &str,
) -> (String, Option<&'static str>) {
    match known {
        Some(known) => (
            format!("rename it to {prefix}/{known}: {annotate} {key}- {prefix}/{known}={}", shell_quote(value)),
            Some(known),
        ),
        None => (format!("remove or correct {key}"), None),
    }
}

fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// injection and timing

/// The operations of the real patch, described for people.
#[derive(Default)]
struct PatchSummary {
    /// The token volume, env vars, mounts, the pod-identity label: what "being mutated" means.
    injection: Vec<String>,
    /// `fsGroup` the fsGroup fix would set, if it would.
    fs_group: Option<i64>,
}

impl PatchSummary {
    fn new(patch: &Value, pod: &Value) -> Self {
        let mut summary = Self::default();
        let mut per_container: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
        for op in patch.as_array().map(Vec::as_slice).unwrap_or_default() {
            let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
            let value = op.get("value").cloned().unwrap_or_default();
            let tokens: Vec<String> =
                path.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
            let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let items = || match &value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let named = |item: &Value| item.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
            match tokens.as_slice() {
                ["spec", "volumes", ..] => {
                    summary.injection.extend(items().iter().map(|v| format!("volume {}", named(v))));
                }
                ["spec", list @ ("containers" | "initContainers"), index, field, ..] => {
                    let Ok(index) = index.parse::<usize>() else { continue };
                    let entry = per_container.entry(((*list).to_owned(), index)).or_default();
                    match *field {
                        "env" => entry.extend(items().iter().map(named)),
                        "volumeMounts" => entry.extend(items().iter().map(|m| {
                            let at = m.get("mountPath").and_then(Value::as_str).unwrap_or("?");
                            format!("mount of {} at {at}", named(m))
                        })),
                        other => entry.push(other.to_owned()),
                    }
                }
                ["spec", "securityContext", rest @ ..] => {
                    summary.fs_group = match rest {
                        [] => value.get("fsGroup").and_then(Value::as_i64),
                        ["fsGroup"] => value.as_i64(),
                        _ => summary.fs_group,
                    };
                }
                ["metadata", "labels", ..] => summary.injection.push("the pod-identity label".to_owned()),
                _ => summary.injection.push(path.to_owned()),
            }
        }
        for ((list, index), parts) in per_container {
            let name = pod.pointer(&format!("/spec/{list}/{index}/name")).and_then(Value::as_str).unwrap_or("?");
            summary.injection.push(format!("container {name}: {}", parts.join(", ")));
        }
        summary
    }
}

fn check_injection(
    inputs: &Inputs<'_>,
    pod: &PodFacts<'_>,
    identity: &Identity,
    patch: &PatchSummary,
    selection: &Selection,
    findings: &mut Vec<Finding>,
) {
    let what = match &identity.credentials {
        Credentials::WebIdentity { .. } => "AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the token volume",
        Credentials::ContainerCredentials => "AWS_CONTAINER_CREDENTIALS_FULL_URI and the Pod Identity token volume",
    };
    if patch.injection.is_empty() {
        findings.push(Finding::ok(CHECK_INJECTION, format!("pod {} has {what}", pod.display())));
        check_role_arn_env(inputs, pod, identity, findings);
        return;
    }
    let missing = patch.injection.join("; ");
    if !pod.stored {
        findings.push(Finding::ok(
            CHECK_INJECTION,
            format!("pod {} is a manifest, not yet created: the webhook will add {missing}", pod.display()),
        ));
        return;
    }
    findings.push(Finding::problem(
        CHECK_INJECTION,
        format!("pod {} was not mutated: it lacks {missing}", pod.display()),
        pod.recreate_fix(),
    ));
    // Why. An excluded pod or a missing webhook is reported by the webhook check; timing is only a suspect when
    // the webhook would have seen the pod (or we cannot tell).
    if matches!(selection, Selection::Excluded | Selection::NoWebhook) {
        return;
    }
    let sa = &pod.service_account;
    let sa_created = inputs.service_account.and_then(|m| m.creation_timestamp.as_deref());
    let message = match (pod.created, sa_created) {
        (Some(pod_created), Some(sa_created)) if is_later(sa_created, pod_created) => format!(
            "ServiceAccount {sa} was created at {sa_created}, after the pod ({pod_created}): the webhook found no role \
             when the pod was created"
        ),
        (pod_created, _) => format!(
            "ServiceAccount {sa} gives a role now, but the pod (created {}) lacks it: the ServiceAccount may have been \
             annotated after the pod was created (Kubernetes does not record when)",
            pod_created.unwrap_or("at an unknown time")
        ),
    };
    findings.push(Finding::hint(CHECK_TIMING, message, Some(pod.recreate_fix())));
    if let Selection::Selected { failure_policy_ignore: true, webhook, service } = selection {
        let look = match service {
            Some((namespace, name)) => format!("kubectl get endpoints -n {namespace} {name}; check the webhook's logs"),
            None => "check that the webhook's URL answers and read its logs".to_owned(),
        };
        findings.push(Finding::hint(
            CHECK_WEBHOOK,
            format!(
                "webhook {webhook} has failurePolicy Ignore: if it was down or timed out when the pod was created, \
                 the pod was admitted unmutated"
            ),
            Some(format!("{look}; then {}", pod.recreate_fix())),
        ));
    }
}

/// `mutate` never overwrites AWS_ROLE_ARN: a pod created before its ServiceAccount's role changed keeps the old one.
fn check_role_arn_env(inputs: &Inputs<'_>, pod: &PodFacts<'_>, identity: &Identity, findings: &mut Vec<Finding>) {
    let Credentials::WebIdentity { role_arn } = &identity.credentials else { return };
    let skipped = skipped_containers(inputs);
    for container in containers(inputs.pod) {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
        if skipped.contains(&name) {
            continue;
        }
        let env = container.get("env").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let value = env
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some("AWS_ROLE_ARN"))
            .and_then(|e| e.get("value").and_then(Value::as_str));
        if let Some(value) = value.filter(|v| v != role_arn) {
            findings.push(Finding::problem(
                CHECK_INJECTION,
                format!(
                    "container {name} has AWS_ROLE_ARN {value}, but ServiceAccount {} says {role_arn} (the webhook never \
                     overwrites it)",
                    pod.service_account
                ),
                format!("if the role changed after the pod was created, {}; if the manifest sets AWS_ROLE_ARN, remove it", pod.recreate_fix()),
            ));
        }
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers"]
        .into_iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array))
        .flatten()
}

fn skipped_containers<'a>(inputs: &Inputs<'a>) -> Vec<&'a str> {
    let key = format!("{}/{POD_SKIP_CONTAINERS}", inputs.settings.annotation_prefix);
    identity::annotations_of(inputs.pod)
        .get(key.as_str())
        .map(|list| list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect())
        .unwrap_or_default()
}

/// Kubernetes timestamps are RFC 3339 in UTC with a `Z`; compare them as such, never guess with other shapes.
fn is_later(a: &str, b: &str) -> bool {
    let shaped = |t: &str| {
        let bytes = t.as_bytes();
        t.len() >= 20
            && t.ends_with('Z')
            && bytes.get(4) == Some(&b'-')
            && bytes.get(10) == Some(&b'T')
            && bytes[..4].iter().all(u8::is_ascii_digit)
    };
    shaped(a) && shaped(b) && a[..19] > b[..19]
}

// ---------------------------------------------------------------------------------------------------------------
// webhook

/// Whether the webhook registration lets this pod through.
enum Selection {
    /// Offline, or the configurations or namespace could not be read.
    Unknown,
    NoWebhook,
    Excluded,
    Selected {
        webhook: String,
        failure_policy_ignore: bool,
        service: Option<(String, String)>,
    },
}

fn check_webhook(view: &ClusterView<'_>, pod: &PodFacts<'_>) -> (Selection, Vec<Finding>) {
    let mut findings = Vec::new();
    let configurations = match view.webhook_configurations {
        Ok(configurations) => configurations,
        Err(reason) => {
            findings.push(Finding::hint(
                CHECK_WEBHOOK,
                format!(
                    "cannot list MutatingWebhookConfigurations ({reason}): the webhook's selectors were not checked"
                ),
                Some("run doctor with a kubeconfig allowed to list mutatingwebhookconfigurations".to_owned()),
            ));
            return (Selection::Unknown, findings);
        }
    };
    let candidates = irsa_webhooks(configurations, view.webhook_config_name);
    if candidates.is_empty() {
        let message = match view.webhook_config_name {
            Some(name) => format!("no MutatingWebhookConfiguration named {name} found: pods are not mutated"),
            None => "no MutatingWebhookConfiguration for irsa-webhook found (no webhook calls /mutate of an irsa or \
                     pod-identity service or has such a name): pods are not mutated"
                .to_owned(),
        };
        let fix = "install it: helm install irsa-webhook charts/irsa-webhook -n irsa-system --create-namespace \
                   (or pass --webhook-config NAME if it is named otherwise)";
        findings.push(Finding::problem(CHECK_WEBHOOK, message, fix));
        return (Selection::NoWebhook, findings);
    }

    let mut exclusions = Vec::new();
    let mut unknown = Vec::new();
    for (config_name, webhook) in candidates {
        let webhook_name = webhook.get("name").and_then(Value::as_str).unwrap_or("?");
        let label = format!("MutatingWebhookConfiguration {config_name} (webhook {webhook_name})");
        if !intercepts_pod_create(webhook) {
            exclusions.push(Finding::problem(
                CHECK_WEBHOOK,
                format!("{label} has no rule for CREATE of v1 pods"),
                "add a rule {operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}",
            ));
            continue;
        }
        let namespace_selector = match LabelSelector::parse(webhook.get("namespaceSelector")) {
            Ok(selector) => selector,
            Err(error) => {
                exclusions.push(Finding::problem(
                    CHECK_WEBHOOK,
                    format!("{label}: namespaceSelector: {error}"),
                    "fix the selector",
                ));
                continue;
            }
        };
        let object_selector = match LabelSelector::parse(webhook.get("objectSelector")) {
            Ok(selector) => selector,
            Err(error) => {
                exclusions.push(Finding::problem(
                    CHECK_WEBHOOK,
                    format!("{label}: objectSelector: {error}"),
                    "fix the selector",
                ));
                continue;
            }
        };
        if let Some(unmet) = object_selector.first_unmet(&pod.labels) {
            let fix = if unmet.wants_label() {
                format!("add the label ({unmet}) to the pod template, then {}", pod.recreate_fix())
            } else {
                format!("remove the label {} from the pod template, then {}", unmet.key(), pod.recreate_fix())
            };
            exclusions.push(Finding::problem(
                CHECK_WEBHOOK,
                format!("pod {} is excluded by {label}: its objectSelector needs {unmet}", pod.display()),
                fix,
            ));
            continue;
        }
        // An empty namespaceSelector matches every namespace, readable or not.
        if !namespace_selector.requirements.is_empty() {
            let labels = match view.namespace_labels {
                Ok(labels) => labels,
                Err(reason) => {
                    unknown.push(format!("{label}: cannot read namespace {} ({reason})", pod.namespace));
                    continue;
                }
            };
            if let Some(unmet) = namespace_selector.first_unmet(labels) {
                exclusions.push(Finding::problem(
                    CHECK_WEBHOOK,
                    format!(
                        "namespace {} is excluded by {label}: its namespaceSelector needs {unmet} (namespace labels: {})",
                        pod.namespace,
                        show_labels(labels)
                    ),
                    namespace_fix(&pod.namespace, unmet),
                ));
                continue;
            }
        }
        let failure_policy_ignore = webhook.get("failurePolicy").and_then(Value::as_str).is_none_or(|p| p == "Ignore");
        let service = webhook
            .pointer("/clientConfig/service")
            .and_then(|s| Some((s.get("namespace")?.as_str()?.to_owned(), s.get("name")?.as_str()?.to_owned())));
        findings.push(Finding::ok(CHECK_WEBHOOK, format!("{label} selects namespace {} and this pod", pod.namespace)));
        findings.push(check_ca_bundle(&label, webhook, view.now));
        return (Selection::Selected { webhook: webhook_name.to_owned(), failure_policy_ignore, service }, findings);
    }
    if !unknown.is_empty() {
        findings.extend(unknown.into_iter().map(|m| {
            Finding::hint(CHECK_WEBHOOK, m, Some("run doctor with a kubeconfig allowed to get namespaces".to_owned()))
        }));
        return (Selection::Unknown, findings);
    }
    findings.extend(exclusions);
    (Selection::Excluded, findings)
}

/// The webhooks (with their configuration's name) that are irsa-webhook or the reference pod-identity-webhook.
fn irsa_webhooks<'a>(configurations: &'a [Value], only: Option<&str>) -> Vec<(&'a str, &'a Value)> {
    let names_it = |name: &str| {
        let name = name.to_ascii_lowercase();
        WEBHOOK_NAME_HINTS.iter().any(|hint| name.contains(hint))
    };
    let mut found = Vec::new();
    for configuration in configurations {
        let config_name = configuration.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
        if only.is_some_and(|only| only != config_name) {
            continue;
        }
        let webhooks = configuration.get("webhooks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for webhook in webhooks {
            let text = |pointer| webhook.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            let calls_mutate = text("/clientConfig/service/path").starts_with("/mutate")
                && names_it(text("/clientConfig/service/name"))
                || text("/clientConfig/url").contains("/mutate") && names_it(text("/clientConfig/url"));
            if only.is_some() || names_it(config_name) || names_it(text("/name")) || calls_mutate {
                found.push((config_name, webhook));
            }
        }
    }
    found
}

/// The API server verifies the webhook's serving certificate with `clientConfig.caBundle` (or, for a URL without
/// one, the system roots). An empty bundle or an expired CA makes every call fail, and with failurePolicy Ignore
/// every pod is admitted unmutated. The serving certificate itself is not visible from the API.
fn check_ca_bundle(label: &str, webhook: &Value, now: i64) -> Finding {
    use base64::Engine as _;
    let bundle = webhook.pointer("/clientConfig/caBundle").and_then(Value::as_str).unwrap_or_default();
    let renew = "self-managed certificates: the webhook renews them and patches the caBundle (check its logs and \
                 --webhook-config); cert-manager: kubectl get certificate -A; own certificates: certs/gen-certs.sh, \
                 then update caBundle";
    if bundle.trim().is_empty() {
        if webhook.pointer("/clientConfig/url").is_some() {
            return Finding::hint(
                CHECK_CERTIFICATE,
                format!("{label} has no caBundle: the API server trusts its system roots for the webhook's URL"),
                None,
            );
        }
        return Finding::problem(
            CHECK_CERTIFICATE,
            format!("{label} has no caBundle: the API server cannot verify the webhook (x509: certificate signed by unknown authority)"),
            format!("fill caBundle — {renew}"),
        );
    }
    let pem = match base64::engine::general_purpose::STANDARD.decode(bundle.trim()) {
        Ok(pem) => pem,
        Err(error) => {
            return Finding::problem(
                CHECK_CERTIFICATE,
                format!("{label}: caBundle is not base64 ({error})"),
                format!("set caBundle to base64 of the CA's PEM — {renew}"),
            )
        }
    };
    let not_after = crate::x509::not_afters(&pem);
    // During a CA rotation the bundle holds old and new: the newest one is what keeps calls working.
    let Some(latest) = not_after.iter().copied().max() else {
        return Finding::problem(
            CHECK_CERTIFICATE,
            format!("{label}: caBundle holds no PEM certificate"),
            format!("set caBundle to base64 of the CA's PEM — {renew}"),
        );
    };
    let date = unix_date(latest);
    if latest <= now {
        Finding::problem(
            CHECK_CERTIFICATE,
            format!("the caBundle CA of {label} expired on {date}: every call fails (x509: certificate has expired)"),
            renew,
        )
    } else if latest - now < CA_EXPIRY_WARNING_SECONDS {
        Finding::hint(
            CHECK_CERTIFICATE,
            format!("the caBundle CA of {label} expires on {date}, in {} days", (latest - now) / 86400),
            Some(renew.to_owned()),
        )
    } else {
        Finding::ok(CHECK_CERTIFICATE, format!("the caBundle CA of {label} is valid until {date}"))
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time: days to the proleptic Gregorian calendar (H. Hinnant's civil_from_days).
fn unix_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn intercepts_pod_create(webhook: &Value) -> bool {
    let rules = webhook.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let has = |rule: &Value, field: &str, wanted: &[&str]| {
        rule.get(field)
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().filter_map(Value::as_str).any(|v| wanted.contains(&v)))
    };
    rules.iter().any(|rule| {
        has(rule, "operations", &["CREATE", "*"])
            && has(rule, "apiGroups", &["", "*"])
            && has(rule, "apiVersions", &["v1", "*"])
            && has(rule, "resources", &["pods", "*", "*/*"])
            && rule.get("scope").and_then(Value::as_str).is_none_or(|s| s == "*" || s == "Namespaced")
    })
}

fn namespace_fix(namespace: &str, unmet: &Requirement) -> String {
    match unmet {
        Requirement::Equals { key, value } => format!("kubectl label namespace {namespace} {key}={value}"),
        Requirement::In { key, values } => {
            format!("kubectl label namespace {namespace} {key}={}", values.first().map_or("<value>", String::as_str))
        }
        Requirement::Exists { key } => format!("kubectl label namespace {namespace} {key}=<value>"),
        Requirement::NotIn { key, .. } if key == "kubernetes.io/metadata.name" => format!(
            "the webhook never mutates pods in {namespace}: run the pod in another namespace, or drop {namespace} from \
             the webhook's excluded namespaces (chart value webhook.excludeNamespaces)"
        ),
        Requirement::NotIn { key, .. } | Requirement::DoesNotExist { key } => {
            format!("kubectl label namespace {namespace} {key}-")
        }
    }
}

fn show_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "none".to_owned();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------------------------
// skip-containers

fn check_skip_containers(inputs: &Inputs<'_>, pod: &PodFacts<'_>, findings: &mut Vec<Finding>) {
    let skipped = skipped_containers(inputs);
    if skipped.is_empty() {
        return;
    }
    let key = format!("{}/{POD_SKIP_CONTAINERS}", inputs.settings.annotation_prefix);
    let names: Vec<&str> = containers(inputs.pod).filter_map(|c| c.get("name").and_then(Value::as_str)).collect();
    let (present, absent): (Vec<&str>, Vec<&str>) = skipped.iter().partition(|name| names.contains(name));
    if !names.is_empty() && names.iter().all(|name| skipped.contains(name)) {
        findings.push(Finding::problem(
            CHECK_SKIP_CONTAINERS,
            format!("every container of pod {} is listed in {key}: no credentials are injected", pod.display()),
            format!("remove the containers that call AWS from {key} in the pod template"),
        ));
    } else if !present.is_empty() {
        findings.push(Finding::hint(
            CHECK_SKIP_CONTAINERS,
            format!("container {} is listed in {key}: it gets no AWS credentials", present.join(", ")),
            Some(format!("if it calls AWS, remove it from {key} in the pod template and recreate the pod")),
        ));
    }
    if !absent.is_empty() {
        findings.push(Finding::hint(
            CHECK_SKIP_CONTAINERS,
            format!("{key} names {}, which is not a container of this pod", absent.join(", ")),
            Some(format!("check the spelling; containers: {}", names.join(", "))),
        ));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// fs-group

fn check_fs_group(
    inputs: &Inputs<'_>,
    pod: &PodFacts<'_>,
    identity: &Identity,
    patch: &PatchSummary,
    effective: &Value,
    findings: &mut Vec<Finding>,
) -> Result<(), DoctorError> {
    let prefix = inputs.settings.annotation_prefix.as_str();
    if let Some(gid) = patch.fs_group {
        let finding = if !pod.stored {
            Finding::ok(CHECK_FS_GROUP, format!("the fsGroup fix will set fsGroup {gid}, so the token is readable"))
        } else if !patch.injection.is_empty() {
            Finding::hint(
                CHECK_FS_GROUP,
                format!("pod has no fsGroup; once recreated, the fsGroup fix sets fsGroup {gid} so a non-root user can read the token"),
                None,
            )
        } else {
            Finding::problem(
                CHECK_FS_GROUP,
                format!(
                    "pod {} runs as non-root without fsGroup: its user cannot read the token file (root, mode 0600); \
                     the fsGroup fix would set fsGroup {gid}",
                    pod.display()
                ),
                format!(
                    "{} so the webhook sets it, or set spec.securityContext.fsGroup: {gid} in the pod template",
                    pod.recreate_fix()
                ),
            )
        };
        findings.push(finding);
        return Ok(());
    }
    if let Some(gid) = effective.pointer("/spec/securityContext/fsGroup").filter(|g| !g.is_null()) {
        findings.push(Finding::ok(CHECK_FS_GROUP, format!("fsGroup {gid}: the token file is readable by that group")));
        return Ok(());
    }
    // Ask the rules themselves whether this pod needs an fsGroup: the same pod with the fix forced to auto (no
    // annotations in the way) gets one exactly when it runs as non-root; forced to always, unless it is Windows.
    let key = format!("{prefix}/{FS_GROUP}");
    let mut probe_pod = effective.clone();
    if let Some(annotations) = probe_pod.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        annotations.remove(&key);
    }
    let probe_identity = Identity { fs_group: None, ..identity.clone() };
    let probe = |fix: FsGroupFix| -> Result<Option<i64>, DoctorError> {
        let settings = MutationSettings { fs_group_fix: fix, ..inputs.settings.clone() };
        let mutation = mutate(&probe_pod, Some(&probe_identity), &settings)?;
        let value = serde_json::to_value(&mutation.patch).unwrap_or_default();
        Ok(PatchSummary::new(&value, &probe_pod).fs_group)
    };
    if let Some(gid) = probe(FsGroupFix::Auto)? {
        let pod_annotation =
            identity::annotations_of(inputs.pod).get(key.as_str()).and_then(|v| FsGroupRequest::parse(v));
        let why = if pod_annotation == Some(FsGroupRequest::Off) {
            format!("the pod's {key}: off")
        } else if identity.fs_group == Some(FsGroupRequest::Off) {
            format!("{key}: off on ServiceAccount {}", pod.service_account)
        } else {
            "--fs-group-fix=never".to_owned()
        };
        findings.push(Finding::problem(
            CHECK_FS_GROUP,
            format!(
                "pod {} runs as non-root without fsGroup and the fsGroup fix is off ({why}): its user cannot read the token file",
                pod.display()
            ),
            format!("set spec.securityContext.fsGroup: {gid} in the pod template (or turn the fix back on), then recreate the pod"),
        ));
        return Ok(());
    }
    if probe(FsGroupFix::Always)?.is_none() {
        // Windows: fsGroup does not apply.
        return Ok(());
    }
    let explicit_root = std::iter::once(effective.pointer("/spec/securityContext/runAsUser"))
        .chain(containers(effective).map(|c| c.pointer("/securityContext/runAsUser")))
        .flatten()
        .any(|uid| uid.as_i64() == Some(0));
    if explicit_root {
        findings.push(Finding::ok(CHECK_FS_GROUP, "the pod runs as root (runAsUser 0): it can read the token file"));
    } else {
        findings.push(Finding::hint(
            CHECK_FS_GROUP,
            "the pod spec does not say which user runs (no runAsUser): if the image's USER is not root, it cannot read \
             the token file",
            Some(
                "set runAsUser in the pod (the fsGroup fix then sets fsGroup), set spec.securityContext.fsGroup, or run \
                 the webhook with --fs-group-fix=always"
                    .to_owned(),
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// token

fn check_token(inputs: &Inputs<'_>, identity: &Identity, effective: &Value, findings: &mut Vec<Finding>) {
    let settings = inputs.settings;
    let prefix = settings.annotation_prefix.as_str();
    let (volume_name, expected) = match identity.credentials {
        Credentials::WebIdentity { .. } => {
            (WEB_IDENTITY_VOLUME_NAME, identity.audience.clone().unwrap_or_else(|| settings.token_audience.clone()))
        }
        Credentials::ContainerCredentials => {
            (settings.container_credentials.token_volume_name.as_str(), settings.container_credentials.audience.clone())
        }
    };
    let volume = effective
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name)));
    let source = volume
        .and_then(|v| v.pointer("/projected/sources"))
        .and_then(Value::as_array)
        .and_then(|sources| sources.iter().find_map(|s| s.get("serviceAccountToken")));
    // For a pod without the volume (a manifest, or a pod to recreate) this is the token the webhook would mount.
    let future = !has_volume(inputs.pod, volume_name);
    let token = if future { "the token the webhook adds has" } else { "token" };
    let Some(source) = source else {
        findings.push(Finding::problem(
            CHECK_TOKEN_AUDIENCE,
            format!("volume {volume_name} is not a projected service-account token, so no token is mounted"),
            format!("rename the pod's own volume {volume_name}; the webhook never replaces it"),
        ));
        return;
    };

    let audience = source.get("audience").and_then(Value::as_str).filter(|a| !a.is_empty());
    let accepted = [expected.as_str(), STS_AUDIENCE];
    match audience {
        Some(audience) if accepted.contains(&audience) => findings.push(Finding::ok(
            CHECK_TOKEN_AUDIENCE,
            format!("{token} audience {audience}, as the trust policy expects (<issuer>:aud)"),
        )),
        other => findings.push(Finding::problem(
            CHECK_TOKEN_AUDIENCE,
            format!(
                "token audience is {}, but the trust policy expects {expected} (<issuer>:aud): STS answers InvalidIdentityToken",
                other.map_or_else(|| "the API server's own (none set)".to_owned(), |a| a.to_owned())
            ),
            format!(
                "make {prefix}/{SA_AUDIENCE} on the ServiceAccount (or --token-audience) match the trust policy's aud, then recreate the pod"
            ),
        )),
    }

    let expiration = source.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_PROJECTED_EXPIRATION);
    let raise = format!(
        "set {prefix}/{SA_TOKEN_EXPIRATION} to {RECOMMENDED_TOKEN_EXPIRATION} or more on the ServiceAccount or pod, then recreate the pod"
    );
    if expiration < MIN_TOKEN_EXPIRATION {
        findings.push(Finding::problem(
            CHECK_TOKEN_EXPIRATION,
            format!(
                "{token} expirationSeconds {expiration}, below {MIN_TOKEN_EXPIRATION}: the API server rejects the pod"
            ),
            raise,
        ));
    } else if expiration < RECOMMENDED_TOKEN_EXPIRATION {
        findings.push(Finding::hint(
            CHECK_TOKEN_EXPIRATION,
            format!(
                "{token} expirationSeconds {expiration}, under an hour: the kubelet refreshes it at 80% of its life, but \
                 a process that reads the file once fails when it expires"
            ),
            Some(raise),
        ));
    } else {
        findings.push(Finding::ok(CHECK_TOKEN_EXPIRATION, format!("{token} expirationSeconds {expiration}")));
    }
}

fn has_volume(pod: &Value, name: &str) -> bool {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|volumes| volumes.iter().any(|v| v.get("name").and_then(Value::as_str) == Some(name)))
}

// ---------------------------------------------------------------------------------------------------------------
// aws-sdk

fn sdk_hint(identity: &Identity) -> Finding {
    match identity.credentials {
        Credentials::WebIdentity { .. } => {
            let versions: Vec<String> = MINIMUM_SDK_VERSIONS.iter().map(|(sdk, v)| format!("{sdk} {v}")).collect();
            Finding::hint(
                CHECK_AWS_SDK,
                format!(
                    "images cannot be inspected from the API; web-identity credentials need at least {} (AWS EKS docs, \
                     \"Use IRSA with the AWS SDK\")",
                    versions.join(", ")
                ),
                Some("upgrade the SDK in the image if it is older (Java also needs the sts module, .NET AWSSDK.SecurityToken)".to_owned()),
            )
        }
        Credentials::ContainerCredentials => Finding::hint(
            CHECK_AWS_SDK,
            "images cannot be inspected from the API; EKS Pod Identity needs SDKs that read \
             AWS_CONTAINER_CREDENTIALS_FULL_URI with an authorization token file (AWS EKS docs, \"Use pod identity with the AWS SDK\")",
            Some("upgrade the SDK in the image if it is older".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests;
