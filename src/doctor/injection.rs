//! `injection` and `timing`: does the stored pod have what the webhook adds, and if not, why not? "What the pod
//! lacks" is exactly the core's list of changes for this pod ([`super::Diagnosis::credentials_lacking`]).

use serde_json::Value;

use super::facts::{containers, is_later};
use super::webhook::Selection;
use super::{skip_containers, Diagnosis, Finding, CHECK_INJECTION, CHECK_TIMING, CHECK_WEBHOOK};
use crate::identity::{Credentials, Identity};
use crate::mutate::EnvName;
use crate::settings::InjectMode;

pub(super) fn check(d: &Diagnosis<'_>, identity: &Identity, selection: &Selection, findings: &mut Vec<Finding>) {
    let pod = &d.pod;
    let what = match &identity.credentials {
        Credentials::WebIdentity { .. } => "AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the token volume",
        Credentials::ContainerCredentials => "AWS_CONTAINER_CREDENTIALS_FULL_URI and the Pod Identity token volume",
    };
    let lacking = &d.credentials_lacking.injection;
    if lacking.is_empty() {
        findings.push(Finding::ok(CHECK_INJECTION, format!("pod {} has {what}", pod.display())));
        check_role_arn_env(d, identity, findings);
        return;
    }
    let missing = lacking.join("; ");
    let fs_group_only = d.inputs.settings.inject == InjectMode::FsGroupOnly;
    if !pod.stored {
        let who = if fs_group_only {
            "the webhook that injects credentials (irsa-webhook runs with --inject=fs-group-only and adds only the \
             fsGroup fix)"
        } else {
            "the webhook"
        };
        findings.push(Finding::ok(
            CHECK_INJECTION,
            format!("pod {} is a manifest, not yet created: {who} will add {missing}", pod.display()),
        ));
        return;
    }
    if fs_group_only {
        findings.push(Finding::problem(
            CHECK_INJECTION,
            format!(
                "pod {} lacks {missing}: irsa-webhook runs with --inject=fs-group-only, so another webhook (EKS's pod \
                 identity webhook) was to add them, and none did",
                pod.display()
            ),
            format!(
                "check that a webhook injecting credentials selects the pod (see the webhook lines), then {}",
                pod.recreate_fix()
            ),
        ));
    } else {
        findings.push(Finding::problem(
            CHECK_INJECTION,
            format!("pod {} was not mutated: it lacks {missing}", pod.display()),
            pod.recreate_fix(),
        ));
    }
    // Why. An excluded pod or a missing webhook is reported by the webhook check; timing is only a suspect when
    // the webhook would have seen the pod (or we cannot tell).
    if matches!(selection, Selection::Excluded | Selection::NoWebhook) {
        return;
    }
    let sa = &pod.service_account;
    let sa_created = d.inputs.service_account.and_then(|m| m.creation_timestamp.as_deref());
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
fn check_role_arn_env(d: &Diagnosis<'_>, identity: &Identity, findings: &mut Vec<Finding>) {
    let Credentials::WebIdentity { role_arn } = &identity.credentials else { return };
    let skipped = skip_containers::skipped(d);
    for container in containers(d.inputs.pod) {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
        if skipped.contains(&name) {
            continue;
        }
        let env = container.get("env").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let value = env
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(EnvName::RoleArn.as_str()))
            .and_then(|e| e.get("value").and_then(Value::as_str));
        if let Some(value) = value.filter(|v| v != role_arn) {
            findings.push(Finding::problem(
                CHECK_INJECTION,
                format!(
                    "container {name} has AWS_ROLE_ARN {value}, but ServiceAccount {} says {role_arn} (the webhook never \
                     overwrites it)",
                    d.pod.service_account
                ),
                format!(
                    "if the role changed after the pod was created, {}; if the manifest sets AWS_ROLE_ARN, remove it",
                    d.pod.recreate_fix()
                ),
            ));
        }
    }
}
