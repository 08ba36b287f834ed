//! `doctor`: why a pod has — or lacks — its AWS credentials, as a list of findings. Pure: the shell
//! (`commands/doctor.rs`) reads the pod, its ServiceAccount, the namespace, the webhook configurations, the issuer
//! the cluster publishes and (with `--token-request`) a token from files or the API; this module decides, without
//! I/O.
//!
//! No rule is re-derived here. ServiceAccount annotations go through [`ServiceAccountConfig::from_annotations`]
//! (invalid ARNs, typos, foreign prefixes); what a pod lacks is exactly the [`mutate::Change`]s the real rules would
//! still make to it; whether a pod needs the fsGroup fix is asked of [`mutate`] too, with the fix forced on; the
//! role's trust policy is evaluated by [`crate::iam`].
//!
//! One file a check, in the order the report prints them: [`service_account`], [`injection`] (and `timing`),
//! [`webhook`] (and `certificate` in [`certificate`], two injectors in [`overlap`]), [`skip_containers`],
//! [`duplicates`], [`fs_group`], [`token`] (audience and expiration), [`token_request`], [`role_policy`],
//! [`aws_sdk`]. [`scan`] runs the injection rule over every pod of the cluster (`doctor pods`).

mod aws_sdk;
mod certificate;
mod duplicates;
mod facts;
mod fs_group;
mod injection;
mod overlap;
mod role_policy;
pub mod scan;
pub mod selector;
mod service_account;
mod skip_containers;
mod token;
pub mod token_request;
mod webhook;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::iam::RolePolicy;
use crate::identity::{self, ServiceAccountRef, POD_SKIP_CONTAINERS};
use crate::manifest::ServiceAccountManifest;
use crate::mutate::{self, MutateError, Pod};
use crate::settings::{InjectMode, MutationSettings};

pub use aws_sdk::MINIMUM_SDK_VERSIONS;
pub use certificate::CA_EXPIRY_WARNING_SECONDS;
pub use token::RECOMMENDED_TOKEN_EXPIRATION;
pub use token_request::{TokenClaims, TokenRequestOutcome, TokenRequestPlan};

pub use facts::{Additions, OwnerRef};

use facts::PodFacts;

/// The names of the checks, as printed in the second column.
pub const CHECK_SERVICE_ACCOUNT: &str = "service-account";
pub const CHECK_INJECTION: &str = "injection";
pub const CHECK_TIMING: &str = "timing";
pub const CHECK_WEBHOOK: &str = "webhook";
pub const CHECK_OVERLAP: &str = "webhook-overlap";
pub const CHECK_CERTIFICATE: &str = "certificate";
pub const CHECK_SKIP_CONTAINERS: &str = "skip-containers";
pub const CHECK_DUPLICATES: &str = "duplicates";
pub const CHECK_FS_GROUP: &str = "fs-group";
pub const CHECK_TOKEN_AUDIENCE: &str = "token-audience";
pub const CHECK_TOKEN_EXPIRATION: &str = "token-expiration";
pub const CHECK_TOKEN_REQUEST: &str = "token-request";
pub const CHECK_ISSUER: &str = "issuer";
pub const CHECK_AWS_SDK: &str = "aws-sdk";
/// `trust-policy`, from [`crate::iam`].
pub const CHECK_TRUST_POLICY: &str = crate::iam::CHECK_TRUST_POLICY;

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
    pub(crate) fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self { status: Status::Ok, check, message: message.into(), fix: None }
    }

    pub(crate) fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { status: Status::Problem, check, message: message.into(), fix: Some(fix.into()) }
    }

    pub(crate) fn hint(check: &'static str, message: impl Into<String>, fix: Option<String>) -> Self {
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
    /// The `issuer` of the API server's `/.well-known/openid-configuration`; read only for `--role-policy` and
    /// `--token-request` (`Err("not read")` otherwise).
    pub published_issuer: Result<&'a str, &'a str>,
    /// Unix time, for the caBundle's expiry and the token's (the only checks that depend on the clock).
    pub now: i64,
}

/// Where the pod came from.
pub enum Source<'a> {
    /// `doctor -f pod.yaml`: only files; nothing is known about the webhook's registration.
    Offline,
    /// `doctor pod NS/NAME`: read from the API.
    Cluster(ClusterView<'a>),
}

/// IAM's side: `--role-policy`, `--issuer`, `--token-request`.
#[derive(Default)]
pub struct IamInputs<'a> {
    /// The role's trust policy, evaluated for the pod's token.
    pub role_policy: Option<&'a RolePolicy>,
    /// `--issuer`: the cluster's service-account issuer as the user states it.
    pub issuer: Option<&'a str>,
    /// `--token-request`: what the API server answered.
    pub token_request: Option<&'a TokenRequestOutcome>,
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
    pub iam: IamInputs<'a>,
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

/// `namespace/name` of a pod as a person reads it (its generateName when it has no name yet).
pub fn pod_label(pod: &Value) -> String {
    let decoded = Pod::from_value(pod).unwrap_or_default();
    format!("{}/{}", decoded.service_account(None).namespace, decoded.display_name())
}

/// Everything the checks share, worked out once per pod.
pub(crate) struct Diagnosis<'a> {
    pub(crate) inputs: &'a Inputs<'a>,
    pub(crate) pod: PodFacts<'a>,
    /// The pod with everything a full injection would still add: what runs once the pod is recreated (for a
    /// manifest: once it is created), whichever webhook injects.
    pub(crate) effective: Value,
    /// What the webhook, with the given settings, would still add.
    pub(crate) additions: Additions,
    /// What a full injection would still add: the same as `additions` in full mode; in `--inject=fs-group-only`
    /// mode what the other webhook was expected to add.
    pub(crate) credentials_lacking: Additions,
}

/// Runs every check on the pod. Errors only for a pod the webhook could not read either.
pub fn diagnose(inputs: &Inputs<'_>) -> Result<Vec<Finding>, DoctorError> {
    let decoded = Pod::from_value(inputs.pod)?;
    // Validates the pod's shape exactly as the webhook does, before anything looks inside it.
    mutate::validate(&decoded)?;
    let pod = PodFacts::new(inputs.pod, &decoded);
    let mut findings = Vec::new();

    let config = service_account::check(inputs, &pod, &mut findings);
    let service_account = pod.service_account.clone();
    let identity = identity::resolve(&service_account, config.as_ref(), inputs.container_credentials);
    let webhooks = match &inputs.source {
        Source::Offline => webhook::Webhooks::offline(),
        Source::Cluster(view) => webhook::check(view, &pod),
    };
    let Some(identity) = identity else {
        // Without a role the webhook leaves the pod alone: the ServiceAccount finding says why.
        findings.extend(webhooks.findings);
        if inputs.iam.token_request.is_some() || inputs.iam.role_policy.is_some() {
            findings.push(Finding::hint(
                CHECK_TRUST_POLICY,
                format!(
                    "ServiceAccount {} gives no role, so there is no token to check against IAM",
                    pod.service_account
                ),
                None,
            ));
        }
        return Ok(findings);
    };

    let mutation = mutate::mutate(&decoded, Some(&identity), inputs.settings)?;
    let additions = Additions::of(&mutation.changes);
    let full_settings;
    let full = if inputs.settings.inject == InjectMode::Full {
        None
    } else {
        full_settings = MutationSettings { inject: InjectMode::Full, ..inputs.settings.clone() };
        Some(mutate::mutate(&decoded, Some(&identity), &full_settings)?)
    };
    let full_mutation = full.as_ref().unwrap_or(&mutation);
    let mut effective = inputs.pod.clone();
    if json_patch::patch(&mut effective, &full_mutation.to_patch()).is_err() {
        effective = inputs.pod.clone();
    }
    let diagnosis =
        Diagnosis { inputs, credentials_lacking: Additions::of(&full_mutation.changes), additions, pod, effective };

    injection::check(&diagnosis, &identity, &webhooks.selection, &mut findings);
    findings.extend(webhooks.findings);
    findings.extend(overlap::check(&webhooks.selecting, &diagnosis, &identity));
    skip_containers::check(&diagnosis, &mut findings);
    duplicates::check(&diagnosis, &identity, webhooks.selecting.len() > 1, &mut findings);
    fs_group::check(&diagnosis, &identity, &mut findings)?;
    let token = token::TokenSource::of(&diagnosis, &identity);
    match &token {
        Some(token) => token::check(&diagnosis, token, &mut findings),
        None => findings.push(token::not_a_token(&diagnosis, &identity)),
    }
    let claims = token_request::check(&diagnosis, &mut findings);
    if let Some(token) = &token {
        role_policy::check(&diagnosis, &identity, token, claims, &mut findings);
    }
    findings.push(aws_sdk::hint(&identity));
    for warning in mutation.warnings.iter().chain(full.iter().flat_map(|f| &f.warnings)) {
        // The all-skipped case has its own finding; the rest (volume and mount collisions, clamped lifetimes) are
        // the webhook's own admission warnings.
        let line = Finding::hint(CHECK_INJECTION, format!("the webhook warns: {warning}"), None);
        if !warning.contains(POD_SKIP_CONTAINERS) && !findings.contains(&line) {
            findings.push(line);
        }
    }
    Ok(findings)
}

/// What `--token-request` asks the API server for: a token exactly like the one the kubelet mounts for this pod.
/// `None` when the pod gets no token (no role, an unreadable pod).
pub fn token_request_plan(inputs: &Inputs<'_>) -> Option<TokenRequestPlan> {
    let decoded = Pod::from_value(inputs.pod).ok()?;
    mutate::validate(&decoded).ok()?;
    let pod = PodFacts::new(inputs.pod, &decoded);
    let service_account = inputs.service_account?;
    let annotations = || service_account.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let config = identity::ServiceAccountConfig::from_annotations(&pod.service_account, annotations(), inputs.settings);
    let identity = identity::resolve(&pod.service_account, Some(&config), inputs.container_credentials)?;
    let settings = MutationSettings { inject: InjectMode::Full, ..inputs.settings.clone() };
    let mutation = mutate::mutate(&decoded, Some(&identity), &settings).ok()?;
    let mut effective = inputs.pod.clone();
    json_patch::patch(&mut effective, &mutation.to_patch()).ok()?;
    let token = token::TokenSource::read(&effective, inputs.pod, &identity, inputs.settings)?;
    Some(TokenRequestPlan {
        service_account: pod.service_account.clone(),
        audience: token.audience?,
        expiration_seconds: token.expiration,
        pod_name: pod.name.clone(),
        pod_uid: pod.uid?.to_owned(),
        from_pod: !token.future,
    })
}

/// The ServiceAccount whose token a pod carries: `system:serviceaccount:NS:NAME`.
pub fn subject_of(sa: &ServiceAccountRef) -> String {
    format!("system:serviceaccount:{}:{}", sa.namespace, sa.name)
}

#[cfg(test)]
mod tests;
