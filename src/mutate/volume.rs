//! The projected service-account-token volume.

use super::pod::PodView;
use super::warnings::{shown, Warnings};
use super::{Change, TokenPlan};

pub(super) fn add_token_volume<'a>(
    view: &PodView<'a>,
    plan: &TokenPlan<'a>,
    changes: &mut Vec<Change<'a>>,
    warnings: &mut Warnings,
) {
    match view.volume_named(plan.volume.name) {
        Some(true) => {}
        Some(false) => warnings.push(format!(
            "pod {} already has a volume named {} that is not a projected service-account token; left as is",
            shown(view.name_for_messages()),
            plan.volume.name
        )),
        None => changes.push(Change::TokenVolume { volume: plan.volume.clone(), create_list: !view.has_volumes() }),
    }
}
