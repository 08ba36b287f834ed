//! Env vars and the token mount, per container.

use serde_json::{json, Value};

use super::patch::{PatchBuilder, Step};
use super::pod::ContainerView;
use super::TokenPlan;

pub(super) fn add_env_and_mount(
    container: &ContainerView<'_>,
    plan: &TokenPlan<'_>,
    patch: &mut PatchBuilder,
    warnings: &mut Vec<String>,
) {
    let base = [Step::Key("spec"), Step::Key(container.list), Step::Index(container.index)];

    // Never overwrite: a group (e.g. the region pair) is skipped when any of its names is already set.
    let existing: Vec<&str> =
        container.env.unwrap_or_default().iter().filter_map(|e| e.get("name").and_then(Value::as_str)).collect();
    let missing: Vec<Value> = plan
        .env_groups
        .iter()
        .filter(|group| !group.iter().any(|(name, _)| existing.contains(name)))
        .flatten()
        .map(|(_, var)| var.clone())
        .collect();
    append_to_array(patch, &base, "env", container.env.is_some(), missing);

    match (container.mount_named(plan.volume_name), container.mount_at(plan.mount_path)) {
        (Some(existing), _) => {
            let at = existing.get("mountPath").and_then(Value::as_str).unwrap_or_default();
            if at.trim_end_matches('/') != plan.mount_path.trim_end_matches('/') {
                warnings.push(format!(
                    "container {} already mounts volume {} at {at:?}, not at {}; the token file variable points to the latter",
                    container.name, plan.volume_name, plan.mount_path
                ));
            }
        }
        (None, Some(other)) => {
            let other_name = other.get("name").and_then(Value::as_str).unwrap_or_default();
            warnings.push(format!(
                "container {} already mounts volume {other_name:?} at {}; the token volume was not mounted there",
                container.name, plan.mount_path
            ));
        }
        (None, None) => {
            let mount = json!({"name": plan.volume_name, "readOnly": true, "mountPath": plan.mount_path});
            append_to_array(patch, &base, "volumeMounts", container.mounts.is_some(), vec![mount]);
        }
    }
}

/// Appends to `<base>/<field>/-` when the array exists, else creates it with all items in one operation.
pub(super) fn append_to_array(
    patch: &mut PatchBuilder,
    base: &[Step<'_>],
    field: &str,
    exists: bool,
    items: Vec<Value>,
) {
    if items.is_empty() {
        return;
    }
    let mut path = base.to_vec();
    path.push(Step::Key(field));
    if exists {
        path.push(Step::End);
        for item in items {
            patch.add(&path, item);
        }
    } else {
        patch.add(&path, Value::Array(items));
    }
}
