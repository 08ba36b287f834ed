//! The fsGroup fix: a non-root process cannot read a token file owned by root:root 0600. With `fsGroup` set, the
//! kubelet makes it group-readable by that GID, which every container in the pod gets as a supplemental group.

use super::pod::{ContainerView, PodView};
use super::warnings::{shown, Warnings};
use super::Change;
use crate::identity::{FsGroupRequest, Identity, FS_GROUP, MAX_GID};
use crate::settings::{FsGroupFix, MutationSettings};

pub(super) fn add_fs_group(
    view: &PodView<'_>,
    targets: &[&ContainerView<'_>],
    identity: &Identity<'_>,
    settings: &MutationSettings,
    changes: &mut Vec<Change<'_>>,
    warnings: &mut Warnings,
) {
    let pod_context = view.security_context();
    // Windows pods may not set fsGroup, and an existing fsGroup is the owner's decision.
    if view.is_windows() || pod_context.is_some_and(|c| c.fs_group.0) {
        return;
    }
    let Some(gid) = choose_gid(view, targets, identity, settings, warnings) else {
        return;
    };
    changes.push(Change::FsGroup {
        gid,
        // OnRootMismatch: big volumes are not chowned on every start.
        change_policy: pod_context.is_none_or(|c| !c.fs_group_change_policy.0),
        create_context: pod_context.is_none(),
    });
}

fn choose_gid(
    view: &PodView<'_>,
    targets: &[&ContainerView<'_>],
    identity: &Identity<'_>,
    settings: &MutationSettings,
    warnings: &mut Warnings,
) -> Option<i64> {
    let prefix = &settings.annotation_prefix;
    let from_pod = view.annotation_under(prefix, FS_GROUP).and_then(|value| {
        let parsed = FsGroupRequest::parse(value);
        if parsed.is_none() {
            warnings.push(format!(
                "pod annotation {prefix}/{FS_GROUP} {:?} is not a GID (0-{MAX_GID}) or \"off\"; ignored",
                shown(value)
            ));
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
            let pod = pod_context.map(|c| (c.run_as_user.0, c.run_as_non_root.0));
            runs_as_non_root(pod)
                || targets
                    .iter()
                    .any(|c| runs_as_non_root(c.security_context.map(|s| (s.run_as_user.0, s.run_as_non_root.0))))
        }
    };
    // runAsGroup outside Kubernetes' range would be refused with the pod anyway; the default GID is valid.
    let run_as_group = pod_context.and_then(|c| c.run_as_group.0).filter(|gid| (0..=MAX_GID).contains(gid));
    wanted.then(|| run_as_group.unwrap_or(settings.default_fs_group))
}

/// `(runAsUser, runAsNonRoot)` of a security context says the process is not root.
fn runs_as_non_root(context: Option<(Option<i64>, Option<bool>)>) -> bool {
    context.is_some_and(|(user, non_root)| user.is_some_and(|uid| uid > 0) || non_root == Some(true))
}
