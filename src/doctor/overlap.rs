//! `webhook-overlap`: two webhooks that inject credentials select the same pod — irsa-webhook next to EKS's managed
//! pod identity webhook (or a self-installed reference), or two registrations of one of them. Says whether the
//! combination is safe, and which of the facts that make it safe hold.
//!
//! Webhooks are told apart by their names (see [`super::webhook::injectors`]); what the other one does is the
//! reference's documented behaviour with its defaults: it adds the volume `aws-iam-token` (EKS Pod Identity:
//! `eks-pod-identity-token`) only when the pod has no volume of that name, the mount only to containers without a
//! mount of that name, and never overwrites an env var.

use super::token::volume_and_audience;
use super::webhook::{Injector, Selecting};
use super::{Diagnosis, Finding, CHECK_OVERLAP};
use crate::identity::{Credentials, Identity};
use crate::settings::{
    ContainerCredentialsSettings, InjectMode, DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_EXPIRATION,
    DEFAULT_TOKEN_MOUNT_PATH, WEB_IDENTITY_VOLUME_NAME,
};

pub(super) fn check(selecting: &[Selecting<'_>], d: &Diagnosis<'_>, identity: &Identity) -> Vec<Finding> {
    let settings = d.inputs.settings;
    let ours: Vec<&Selecting<'_>> = selecting.iter().filter(|s| s.injector == Injector::IrsaWebhook).collect();
    let theirs: Vec<&Selecting<'_>> = selecting.iter().filter(|s| s.injector == Injector::PodIdentityWebhook).collect();
    let labels = |list: &[&Selecting<'_>]| list.iter().map(|s| s.label()).collect::<Vec<_>>().join(" and ");
    let mut findings = Vec::new();

    if settings.inject == InjectMode::FsGroupOnly && !ours.is_empty() && theirs.is_empty() {
        let message = "irsa-webhook runs with --inject=fs-group-only, but no webhook that injects credentials (EKS's \
                       pod-identity-webhook, iam-for-pods.amazonaws.com) selects this pod: only the fsGroup fix is \
                       added";
        let fix = "on EKS check kubectl get mutatingwebhookconfiguration pod-identity-webhook; elsewhere run \
                   irsa-webhook with --inject=full";
        findings.push(if d.pod.stored && !d.credentials_lacking.injection.is_empty() {
            Finding::problem(CHECK_OVERLAP, message, fix)
        } else {
            Finding::hint(CHECK_OVERLAP, message, Some(fix.to_owned()))
        });
    }
    for (group, who) in [(&ours, "irsa-webhook"), (&theirs, "the pod identity webhook")] {
        if group.len() > 1 {
            findings.push(Finding::hint(
                CHECK_OVERLAP,
                format!(
                    "{} registrations of {who} select this pod ({}): every pod goes through each, which is safe (they \
                     recognise each other's additions) but doubles the calls and the ways pod creation can fail",
                    group.len(),
                    labels(group)
                ),
                Some(
                    "keep one: kubectl get mutatingwebhookconfigurations (helm list -A names the releases), then \
                     kubectl delete mutatingwebhookconfiguration <the stale one>"
                        .to_owned(),
                ),
            ));
        }
    }
    let (Some(first), false, false) = (selecting.first(), ours.is_empty(), theirs.is_empty()) else {
        return findings;
    };
    let both = format!("{} and {}", labels(&theirs), labels(&ours));
    let first = first.label();
    if settings.inject == InjectMode::FsGroupOnly {
        findings.push(Finding::ok(
            CHECK_OVERLAP,
            format!(
                "{both} both select this pod: safe, irsa-webhook runs with --inject=fs-group-only and adds only the \
                 fsGroup fix while the other injects the credentials, so the order ({first} is called first) does \
                 not matter"
            ),
        ));
        return findings;
    }

    let (volume, audience) = volume_and_audience(identity, settings);
    let (their_volume, their_audience) = match identity.credentials {
        Credentials::WebIdentity { .. } => (WEB_IDENTITY_VOLUME_NAME.to_owned(), DEFAULT_TOKEN_AUDIENCE.to_owned()),
        Credentials::ContainerCredentials => {
            let defaults = ContainerCredentialsSettings::default();
            (defaults.token_volume_name, defaults.audience)
        }
    };
    if volume != their_volume {
        findings.push(Finding::problem(
            CHECK_OVERLAP,
            format!(
                "{both} both select this pod and both inject credentials, and they do not recognise each other's \
                 volume: irsa-webhook's token volume is {volume}, the pod identity webhook's (default) is \
                 {their_volume}, so whichever runs second adds a second token volume"
            ),
            format!(
                "run irsa-webhook with --inject=fs-group-only next to the pod identity webhook (or with \
                 --container-credentials-token-volume-name {their_volume}), then recreate the pod"
            ),
        ));
        return findings;
    }
    findings.push(Finding::ok(
        CHECK_OVERLAP,
        format!(
            "{both} both select this pod and both inject credentials: safe, as each recognises the other's additions \
             (both name the token volume {volume} and add it only when no volume has that name, add the mount only \
             to containers without a mount of it, and never overwrite an env var a container sets); {first} is \
             called first (configurations are called in name order)"
        ),
    ));
    let mut differences = Vec::new();
    if audience != their_audience {
        differences.push(format!("audience {audience} (theirs: {their_audience})"));
    }
    if matches!(identity.credentials, Credentials::WebIdentity { .. }) {
        if settings.token_mount_path != DEFAULT_TOKEN_MOUNT_PATH {
            differences.push(format!("mount path {} (theirs: {DEFAULT_TOKEN_MOUNT_PATH})", settings.token_mount_path));
        }
        if settings.token_expiration != DEFAULT_TOKEN_EXPIRATION {
            differences
                .push(format!("token lifetime {} s (theirs: {DEFAULT_TOKEN_EXPIRATION} s)", settings.token_expiration));
        }
    }
    let fix = Some("run irsa-webhook with --inject=fs-group-only next to the pod identity webhook".to_owned());
    if differences.is_empty() {
        findings.push(Finding::hint(
            CHECK_OVERLAP,
            "one injector is simpler: with --inject=fs-group-only irsa-webhook adds only the fsGroup fix and leaves \
             the credentials to the pod identity webhook",
            fix,
        ));
    } else {
        findings.push(Finding::hint(
            CHECK_OVERLAP,
            format!(
                "irsa-webhook's settings differ from the pod identity webhook's defaults ({}): the pod gets those of \
                 whichever is called first ({first})",
                differences.join(", ")
            ),
            fix,
        ));
    }
    findings
}
