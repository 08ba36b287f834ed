//! The projected service-account-token volume.

use serde_json::{json, Value};

use super::containers::append_to_array;
use super::patch::{PatchBuilder, Step};
use super::pod::PodView;
use super::TokenPlan;

pub(super) fn add_token_volume(
    view: &PodView<'_>,
    plan: &TokenPlan<'_>,
    patch: &mut PatchBuilder,
    warnings: &mut Vec<String>,
) {
    let volumes = view.volumes();
    let existing =
        volumes.unwrap_or_default().iter().find(|v| v.get("name").and_then(Value::as_str) == Some(plan.volume_name));
    if let Some(existing) = existing {
        if !is_projected_token(existing) {
            warnings.push(format!(
                "pod {} already has a volume named {} that is not a projected service-account token; left as is",
                view.name_for_messages(),
                plan.volume_name
            ));
        }
        return;
    }
    let volume = json!({
        "name": plan.volume_name,
        "projected": {"sources": [{"serviceAccountToken": {
            "audience": plan.audience,
            "expirationSeconds": plan.expiration_seconds,
            "path": plan.token_file_name,
        }}]},
    });
    append_to_array(patch, &[Step::Key("spec")], "volumes", volumes.is_some(), vec![volume]);
}

fn is_projected_token(volume: &Value) -> bool {
    volume
        .pointer("/projected/sources")
        .and_then(Value::as_array)
        .is_some_and(|sources| sources.iter().any(|s| s.get("serviceAccountToken").is_some()))
}
