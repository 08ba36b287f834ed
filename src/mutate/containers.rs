//! Env vars and the token mount, per container.

use super::pod::ContainerView;
use super::warnings::{shown, Warnings};
use super::{Change, ContainerRef, EnvValue, EnvVar, TokenPlan};

pub(super) fn add_env_and_mount<'a>(
    container: &ContainerView<'a>,
    plan: &TokenPlan<'a>,
    changes: &mut Vec<Change<'a>>,
    warnings: &mut Warnings,
) {
    let at = ContainerRef { list: container.list, index: container.index, name: container.name };
    let existing = container.env.unwrap_or_default();

    // Never overwrite: a group (e.g. the region pair) is skipped when any of its names is already set.
    let vars: Vec<EnvVar<'a>> = plan
        .env_groups
        .iter()
        .filter(|group| !group.iter().any(|name| existing.contains(*name)))
        .flat_map(|group| group.iter())
        .map(|name| EnvVar { name: *name, value: plan.value(*name) })
        .collect();
    let adds_token_file = vars.iter().any(|v| matches!(v.value, EnvValue::TokenFile { .. }));
    if !vars.is_empty() {
        changes.push(Change::Env { container: at, vars, create_list: container.env.is_none() });
    }

    let volume = plan.volume.name;
    match (container.mount_named(volume), container.mount_at(plan.mount_path)) {
        (Some(existing), _) => {
            let path = existing.path.unwrap_or_default();
            if path.trim_end_matches('/') != plan.mount_path.trim_end_matches('/') {
                let consequence = if adds_token_file {
                    "the token file variable added here points to the latter"
                } else {
                    "the token file variable already set is left as it is"
                };
                warnings.push(format!(
                    "container {} already mounts volume {volume} at {:?}, not at {}; {consequence}",
                    shown(container.name),
                    shown(path),
                    plan.mount_path
                ));
            }
        }
        (None, Some(other)) => {
            warnings.push(format!(
                "container {} already mounts volume {:?} at {}; the token volume was not mounted there",
                shown(container.name),
                shown(other.name.unwrap_or_default()),
                plan.mount_path
            ));
        }
        (None, None) => changes.push(Change::Mount {
            container: at,
            volume,
            mount_path: plan.mount_path,
            create_list: container.mounts.is_none(),
        }),
    }
}
