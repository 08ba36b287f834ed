//! `duplicates`: a pod that ended up with two of what one injector adds — two token volumes for the credentials'
//! audience, a container mounting the token twice, an AWS variable set twice in one container. Two injectors that
//! do not recognise each other's additions (or a manifest that carries its own copy) leave this behind.

use std::collections::BTreeMap;

use serde_json::Value;

use super::facts::containers;
use super::token::volume_and_audience;
use super::{Diagnosis, Finding, CHECK_DUPLICATES};
use crate::identity::Identity;
use crate::mutate::EnvName;
use crate::settings::{ContainerCredentialsSettings, WEB_IDENTITY_VOLUME_NAME};

/// `overlap`: two injectors select the pod, so a clean result earns an `ok` line.
pub(super) fn check(d: &Diagnosis<'_>, identity: &Identity, overlap: bool, findings: &mut Vec<Finding>) {
    let pod = d.inputs.pod;
    let settings = d.inputs.settings;
    let (own_volume, audience) = volume_and_audience(identity, settings);
    let defaults = ContainerCredentialsSettings::default();
    let known = [
        own_volume,
        WEB_IDENTITY_VOLUME_NAME,
        settings.container_credentials.token_volume_name.as_str(),
        defaults.token_volume_name.as_str(),
    ];
    let fix = format!(
        "let one webhook inject the credentials (next to EKS's webhook: irsa-webhook --inject=fs-group-only) or drop \
         the pod template's own copy, then {}",
        d.pod.recreate_fix()
    );
    let before = findings.len();

    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let token_volumes: Vec<&str> = volumes
        .iter()
        .filter(|volume| {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or_default();
            let token_audience = volume
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .and_then(|sources| sources.iter().find_map(|s| s.get("serviceAccountToken")))
                .map(|token| token.get("audience").and_then(Value::as_str).unwrap_or_default());
            token_audience.is_some_and(|a| a == audience || (!a.is_empty() && known.contains(&name)))
        })
        .filter_map(|volume| volume.get("name").and_then(Value::as_str))
        .collect();
    if token_volumes.len() > 1 {
        findings.push(Finding::problem(
            CHECK_DUPLICATES,
            format!(
                "pod {} has {} token volumes for the credentials ({}): two injectors (or the pod template and an injector) each added one",
                d.pod.display(),
                token_volumes.len(),
                token_volumes.join(", ")
            ),
            fix.clone(),
        ));
    }

    for container in containers(pod) {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
        let mounts = container.get("volumeMounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let token_mounts: Vec<String> = mounts
            .iter()
            .map(mount_of)
            .filter(|(volume, _)| token_volumes.contains(volume) || known.contains(volume))
            .map(|(volume, path)| format!("{volume} at {path}"))
            .collect();
        let mut paths: BTreeMap<String, usize> = BTreeMap::new();
        for (_, path) in mounts.iter().map(mount_of) {
            *paths.entry(path).or_default() += 1;
        }
        let twice: Vec<&String> = paths.iter().filter(|(_, n)| **n > 1).map(|(path, _)| path).collect();
        if token_mounts.len() > 1 {
            findings.push(Finding::problem(
                CHECK_DUPLICATES,
                format!("container {name} mounts the token {} times ({})", token_mounts.len(), token_mounts.join(", ")),
                fix.clone(),
            ));
        } else if !twice.is_empty() {
            findings.push(Finding::problem(
                CHECK_DUPLICATES,
                format!(
                    "container {name} mounts two volumes at {}: the API server refuses the pod",
                    twice.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                ),
                fix.clone(),
            ));
        }

        let env = container.get("env").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for var in env {
            let Some(var_name) = var.get("name").and_then(Value::as_str).filter(|n| EnvName::parse(n).is_some()) else {
                continue;
            };
            let value = match var.get("value").and_then(Value::as_str) {
                Some(value) => value.to_owned(),
                None if var.get("valueFrom").is_some() => "(valueFrom)".to_owned(),
                None => "(empty)".to_owned(),
            };
            seen.entry(var_name).or_default().push(value);
        }
        for (var_name, values) in seen.iter().filter(|(_, values)| values.len() > 1) {
            findings.push(Finding::problem(
                CHECK_DUPLICATES,
                format!(
                    "container {name} sets {var_name} {} times ({}): Kubernetes uses the last",
                    values.len(),
                    values.join(", ")
                ),
                fix.clone(),
            ));
        }
    }
    if overlap && findings.len() == before {
        findings.push(Finding::ok(
            CHECK_DUPLICATES,
            format!(
                "pod {} has one token volume, one token mount per container and each AWS variable once",
                d.pod.display()
            ),
        ));
    }
}

/// A mount's volume name and path (without a trailing `/`).
fn mount_of(mount: &Value) -> (&str, String) {
    let text = |key| mount.get(key).and_then(Value::as_str).unwrap_or_default();
    (text("name"), text("mountPath").trim_end_matches('/').to_owned())
}
