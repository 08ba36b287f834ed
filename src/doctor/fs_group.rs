//! `fs-group`: can the pod's user read the token file (root-owned, mode 0600 unless `fsGroup` is set)? Whether the
//! pod needs an fsGroup is asked of the rules themselves ([`mutate::mutate`] with the fix forced on), never
//! re-derived here.

use serde_json::Value;

use super::facts::containers;
use super::{Diagnosis, DoctorError, Finding, CHECK_FS_GROUP};
use crate::identity::{self, FsGroupRequest, Identity, FS_GROUP};
use crate::mutate::{self, Change, Pod};
use crate::settings::{FsGroupFix, MutationSettings};

pub(super) fn check(d: &Diagnosis<'_>, identity: &Identity, findings: &mut Vec<Finding>) -> Result<(), DoctorError> {
    let (inputs, pod, effective) = (d.inputs, &d.pod, &d.effective);
    let prefix = inputs.settings.annotation_prefix.as_str();
    if let Some(gid) = d.additions.fs_group {
        let finding = if !pod.stored {
            Finding::ok(CHECK_FS_GROUP, format!("the fsGroup fix will set fsGroup {gid}, so the token is readable"))
        } else if !d.credentials_lacking.injection.is_empty() {
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
    let probe_identity = Identity { fs_group: None, ..*identity };
    let probe = |fix: FsGroupFix| -> Result<Option<i64>, DoctorError> {
        let settings = MutationSettings { fs_group_fix: fix, ..inputs.settings.clone() };
        let decoded = Pod::from_value(&probe_pod)?;
        let mutation = mutate::mutate(&decoded, Some(&probe_identity), &settings)?;
        Ok(mutation.changes.iter().find_map(|change| match change {
            Change::FsGroup { gid, .. } => Some(*gid),
            _ => None,
        }))
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
