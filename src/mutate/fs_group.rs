//! The fsGroup fix: a non-root process cannot read a token file owned by root:root 0600. With `fsGroup` set, the
//! kubelet makes it group-readable by that GID, which every container in the pod gets as a supplemental group.

use serde_json::{json, Map, Value};

use super::patch::{PatchBuilder, Step};
use super::pod::{ContainerView, PodView};
use crate::identity::{FsGroupRequest, Identity, FS_GROUP};
use crate::settings::{FsGroupFix, MutationSettings};

pub(super) fn add_fs_group(
    view: &PodView<'_>,
    targets: &[&ContainerView<'_>],
    identity: &Identity,
    settings: &MutationSettings,
    patch: &mut PatchBuilder,
    warnings: &mut Vec<String>,
) {
    let pod_context = view.security_context();
    // Windows pods may not set fsGroup, and an existing fsGroup is the owner's decision.
    if view.is_windows() || pod_context.and_then(|c| c.get("fsGroup")).is_some_and(|g| !g.is_null()) {
        return;
    }
    let Some(gid) = choose_gid(view, targets, identity, settings, warnings) else {
        return;
    };
    match pod_context {
        None => patch.add(
            &[Step::Key("spec"), Step::Key("securityContext")],
            json!({"fsGroup": gid, "fsGroupChangePolicy": "OnRootMismatch"}),
        ),
        Some(context) => {
            patch.add(&[Step::Key("spec"), Step::Key("securityContext"), Step::Key("fsGroup")], json!(gid));
            // OnRootMismatch: big volumes are not chowned on every start.
            if context.get("fsGroupChangePolicy").is_none_or(Value::is_null) {
                patch.add(
                    &[Step::Key("spec"), Step::Key("securityContext"), Step::Key("fsGroupChangePolicy")],
                    json!("OnRootMismatch"),
                );
            }
        }
    }
}

fn choose_gid(
    view: &PodView<'_>,
    targets: &[&ContainerView<'_>],
    identity: &Identity,
    settings: &MutationSettings,
    warnings: &mut Vec<String>,
) -> Option<i64> {
    let key = format!("{}/{FS_GROUP}", settings.annotation_prefix);
    let from_pod = view.annotation(&key).and_then(|value| {
        let parsed = FsGroupRequest::parse(value);
        if parsed.is_none() {
            warnings.push(format!("pod annotation {key} {value:?} is not a GID or \"off\"; ignored"));
        }
        parsed
    });
    match from_pod.or(identity.fs_group) {
        Some(FsGroupRequest::Gid(gid)) => return Some(gid),
        Some(FsGroupRequest::Off) => return None,
        None => {}
    }
    let pod_context = view.security_context();
    let wanted = match settings.fs_group_fix {
        FsGroupFix::Never => false,
        FsGroupFix::Always => true,
        FsGroupFix::Auto => {
            runs_as_non_root(pod_context) || targets.iter().any(|c| runs_as_non_root(c.security_context))
        }
    };
    wanted.then(|| {
        pod_context.and_then(|c| c.get("runAsGroup")).and_then(Value::as_i64).unwrap_or(settings.default_fs_group)
    })
}

fn runs_as_non_root(context: Option<&Map<String, Value>>) -> bool {
    let Some(context) = context else {
        return false;
    };
    context.get("runAsUser").and_then(Value::as_i64).is_some_and(|uid| uid > 0)
        || context.get("runAsNonRoot").and_then(Value::as_bool) == Some(true)
}
