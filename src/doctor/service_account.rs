//! `service-account`: does the pod's ServiceAccount exist and give a role, and is every annotation on it read?
//! The annotations go through the webhook's own reader ([`ServiceAccountConfig::from_annotations`]), one at a
//! time, so each warning comes with the key it is about and a one-line fix.

use super::facts::PodFacts;
use super::{Finding, Inputs, Source, CHECK_SERVICE_ACCOUNT};
use crate::identity::{
    self, ServiceAccountConfig, FS_GROUP, POD_KEYS, SA_KEYS, SA_ROLE_ARN, SA_STS_REGIONAL_ENDPOINTS,
    SA_TOKEN_EXPIRATION,
};
use crate::shell;

pub(super) fn check(
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
            format!("rename it to {prefix}/{known}: {annotate} {key}- {prefix}/{known}={}", shell::word(value)),
            Some(known),
        ),
        None => (format!("remove or correct {key}"), None),
    }
}
