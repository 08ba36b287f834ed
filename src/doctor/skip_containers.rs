//! `skip-containers`: containers the pod's `<prefix>/skip-containers` annotation keeps from the credentials. The
//! list is read as the core reads it ([`mutate::skip_list`]).

use serde_json::Value;

use super::facts::containers;
use super::{Diagnosis, Finding, CHECK_SKIP_CONTAINERS};
use crate::identity::{self, POD_SKIP_CONTAINERS};
use crate::mutate;

/// The container names the pod's skip list holds.
pub(super) fn skipped<'a>(d: &Diagnosis<'a>) -> Vec<&'a str> {
    let key = format!("{}/{POD_SKIP_CONTAINERS}", d.inputs.settings.annotation_prefix);
    identity::annotations_of(d.inputs.pod)
        .get(key.as_str())
        .copied()
        .map(|list| mutate::skip_list(list).collect())
        .unwrap_or_default()
}

pub(super) fn check(d: &Diagnosis<'_>, findings: &mut Vec<Finding>) {
    let (inputs, pod) = (d.inputs, &d.pod);
    let skipped = skipped(d);
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
