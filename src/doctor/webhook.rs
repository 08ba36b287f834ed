//! `webhook`: is a webhook that injects credentials registered, and do its rules and selectors let this pod
//! through? The selectors are evaluated as the API server does ([`super::selector`]). Every webhook that selects the
//! pod is returned, for the `certificate` and `webhook-overlap` checks.

use std::collections::BTreeMap;

use serde_json::Value;

use super::certificate::check_ca_bundle;
use super::facts::PodFacts;
use super::selector::{LabelSelector, Requirement, SelectorError};
use super::{ClusterView, Finding, CHECK_WEBHOOK};

/// Webhooks with these words in their name, their configuration's name or their service's name are taken for
/// irsa-webhook or the reference amazon-eks-pod-identity-webhook (whose webhook is `iam-for-pods.amazonaws.com`).
const WEBHOOK_NAME_HINTS: &[&str] = &["irsa", "pod-identity", "iam-for-pods"];
/// ... and of those, these are irsa-webhook (the chart's names); the others are the reference or EKS's managed one.
const OWN_NAME_HINTS: &[&str] = &["irsa"];

/// Whether the webhook registration lets this pod through.
pub(crate) enum Selection {
    /// Offline, or the configurations or namespace could not be read.
    Unknown,
    NoWebhook,
    Excluded,
    Selected {
        webhook: String,
        failure_policy_ignore: bool,
        service: Option<(String, String)>,
    },
}

/// Which injector a registration is, by its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injector {
    /// This project (names with `irsa`, or the configuration given with `--webhook-config`).
    IrsaWebhook,
    /// amazon-eks-pod-identity-webhook: EKS's managed webhook or a self-installed reference.
    PodIdentityWebhook,
}

/// A webhook that selects the pod.
#[derive(Debug, Clone)]
pub(crate) struct Selecting<'a> {
    pub(crate) config_name: &'a str,
    pub(crate) webhook_name: &'a str,
    pub(crate) injector: Injector,
}

impl Selecting<'_> {
    pub(crate) fn label(&self) -> String {
        label(self.config_name, self.webhook_name)
    }
}

fn label(config_name: &str, webhook_name: &str) -> String {
    format!("MutatingWebhookConfiguration {config_name} (webhook {webhook_name})")
}

/// The webhook check's result.
pub(crate) struct Webhooks<'a> {
    pub(crate) selection: Selection,
    pub(crate) findings: Vec<Finding>,
    /// Every webhook that selects the pod, in the order the API server calls them.
    pub(crate) selecting: Vec<Selecting<'a>>,
}

impl Webhooks<'_> {
    pub(crate) fn offline() -> Self {
        Self { selection: Selection::Unknown, findings: Vec::new(), selecting: Vec::new() }
    }
}

/// Why a webhook does not call for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exclusion {
    NoCreateRule,
    Selector {
        which: &'static str,
        error: SelectorError,
    },
    ObjectSelector(Requirement),
    NamespaceSelector {
        unmet: Requirement,
        labels: BTreeMap<String, String>,
    },
    /// The namespaceSelector needs the namespace's labels, which could not be read.
    NamespaceUnknown(String),
}

/// Does `webhook` call for a pod with these labels in a namespace with those? The API server's rules: CREATE of v1
/// pods, then the objectSelector, then the namespaceSelector (an empty one matches every namespace).
pub(crate) fn evaluate(
    webhook: &Value,
    pod_labels: &BTreeMap<String, String>,
    namespace_labels: Result<&BTreeMap<String, String>, &str>,
) -> Result<(), Exclusion> {
    if !intercepts_pod_create(webhook) {
        return Err(Exclusion::NoCreateRule);
    }
    let selector = |which: &'static str| {
        LabelSelector::parse(webhook.get(which)).map_err(|error| Exclusion::Selector { which, error })
    };
    let namespace_selector = selector("namespaceSelector")?;
    let object_selector = selector("objectSelector")?;
    if let Some(unmet) = object_selector.first_unmet(pod_labels) {
        return Err(Exclusion::ObjectSelector(unmet.clone()));
    }
    if namespace_selector.requirements.is_empty() {
        return Ok(());
    }
    let labels = namespace_labels.map_err(|reason| Exclusion::NamespaceUnknown(reason.to_owned()))?;
    match namespace_selector.first_unmet(labels) {
        Some(unmet) => Err(Exclusion::NamespaceSelector { unmet: unmet.clone(), labels: labels.clone() }),
        None => Ok(()),
    }
}

pub(crate) fn check<'a>(view: &ClusterView<'a>, pod: &PodFacts<'_>) -> Webhooks<'a> {
    let mut findings = Vec::new();
    let configurations = match view.webhook_configurations {
        Ok(configurations) => configurations,
        Err(reason) => {
            findings.push(Finding::hint(
                CHECK_WEBHOOK,
                format!(
                    "cannot list MutatingWebhookConfigurations ({reason}): the webhook's selectors were not checked"
                ),
                Some("run doctor with a kubeconfig allowed to list mutatingwebhookconfigurations".to_owned()),
            ));
            return Webhooks { selection: Selection::Unknown, findings, selecting: Vec::new() };
        }
    };
    let candidates = injectors(configurations, view.webhook_config_name);
    if candidates.is_empty() {
        let message = match view.webhook_config_name {
            Some(name) => format!("no MutatingWebhookConfiguration named {name} found: pods are not mutated"),
            None => "no MutatingWebhookConfiguration for irsa-webhook found (no webhook calls /mutate of an irsa or \
                     pod-identity service or has such a name): pods are not mutated"
                .to_owned(),
        };
        let fix = "install it: helm install irsa-webhook charts/irsa-webhook -n irsa-system --create-namespace \
                   (or pass --webhook-config NAME if it is named otherwise)";
        findings.push(Finding::problem(CHECK_WEBHOOK, message, fix));
        return Webhooks { selection: Selection::NoWebhook, findings, selecting: Vec::new() };
    }

    let mut exclusions = Vec::new();
    let mut unknown = Vec::new();
    let mut selection = None;
    let mut selecting = Vec::new();
    for candidate in candidates {
        let (config_name, webhook) = (candidate.config_name, candidate.webhook);
        let webhook_name = webhook.get("name").and_then(Value::as_str).unwrap_or("?");
        let label = label(config_name, webhook_name);
        match evaluate(webhook, &pod.labels, view.namespace_labels) {
            Ok(()) => {}
            Err(Exclusion::NamespaceUnknown(reason)) => {
                unknown.push(format!("{label}: cannot read namespace {} ({reason})", pod.namespace));
                continue;
            }
            Err(exclusion) => {
                exclusions.push(exclusion_finding(&label, &exclusion, pod));
                continue;
            }
        }
        findings.push(Finding::ok(CHECK_WEBHOOK, format!("{label} selects namespace {} and this pod", pod.namespace)));
        findings.push(check_ca_bundle(&label, webhook, view.now));
        if selection.is_none() {
            let failure_policy_ignore =
                webhook.get("failurePolicy").and_then(Value::as_str).is_none_or(|p| p == "Ignore");
            let service = webhook
                .pointer("/clientConfig/service")
                .and_then(|s| Some((s.get("namespace")?.as_str()?.to_owned(), s.get("name")?.as_str()?.to_owned())));
            selection = Some(Selection::Selected { webhook: webhook_name.to_owned(), failure_policy_ignore, service });
        }
        selecting.push(Selecting { config_name, webhook_name, injector: candidate.injector });
    }
    if let Some(selection) = selection {
        return Webhooks { selection, findings, selecting };
    }
    if !unknown.is_empty() {
        findings.extend(unknown.into_iter().map(|m| {
            Finding::hint(CHECK_WEBHOOK, m, Some("run doctor with a kubeconfig allowed to get namespaces".to_owned()))
        }));
        return Webhooks { selection: Selection::Unknown, findings, selecting };
    }
    findings.extend(exclusions);
    Webhooks { selection: Selection::Excluded, findings, selecting }
}

fn exclusion_finding(label: &str, exclusion: &Exclusion, pod: &PodFacts<'_>) -> Finding {
    match exclusion {
        Exclusion::NoCreateRule => Finding::problem(
            CHECK_WEBHOOK,
            format!("{label} has no rule for CREATE of v1 pods"),
            "add a rule {operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}",
        ),
        Exclusion::Selector { which, error } => {
            Finding::problem(CHECK_WEBHOOK, format!("{label}: {which}: {error}"), "fix the selector")
        }
        Exclusion::ObjectSelector(unmet) => {
            let fix = if unmet.wants_label() {
                format!("add the label ({unmet}) to the pod template, then {}", pod.recreate_fix())
            } else {
                format!("remove the label {} from the pod template, then {}", unmet.key(), pod.recreate_fix())
            };
            Finding::problem(
                CHECK_WEBHOOK,
                format!("pod {} is excluded by {label}: its objectSelector needs {unmet}", pod.display()),
                fix,
            )
        }
        Exclusion::NamespaceSelector { unmet, labels } => Finding::problem(
            CHECK_WEBHOOK,
            format!(
                "namespace {} is excluded by {label}: its namespaceSelector needs {unmet} (namespace labels: {})",
                pod.namespace,
                show_labels(labels)
            ),
            namespace_fix(&pod.namespace, unmet),
        ),
        // Collected separately by the caller: only a hint when no other webhook decides.
        Exclusion::NamespaceUnknown(reason) => Finding::hint(CHECK_WEBHOOK, reason.clone(), None),
    }
}

/// One sentence for the scan: why the webhook skips pods like this one.
pub(crate) fn exclusion_reason(config_name: &str, exclusion: &Exclusion) -> String {
    match exclusion {
        Exclusion::NoCreateRule => format!("{config_name} has no rule for CREATE of v1 pods"),
        Exclusion::Selector { which, error } => format!("{config_name}: {which}: {error}"),
        Exclusion::ObjectSelector(unmet) => format!("{config_name}'s objectSelector needs {unmet}"),
        Exclusion::NamespaceSelector { unmet, .. } => format!("{config_name}'s namespaceSelector needs {unmet}"),
        Exclusion::NamespaceUnknown(reason) => format!("{config_name}: namespace unknown ({reason})"),
    }
}

/// A webhook of a configuration that injects credentials.
pub(crate) struct Candidate<'a> {
    pub(crate) config_name: &'a str,
    pub(crate) webhook: &'a Value,
    pub(crate) injector: Injector,
}

/// The webhooks that are irsa-webhook or the reference pod-identity-webhook, in the order the API server calls
/// them: configurations sorted by name, webhooks in their order.
pub(crate) fn injectors<'a>(configurations: &'a [Value], only: Option<&str>) -> Vec<Candidate<'a>> {
    let names = |name: &str, hints: &[&str]| {
        let name = name.to_ascii_lowercase();
        hints.iter().any(|hint| name.contains(hint))
    };
    let mut sorted: Vec<(&str, &Value)> = configurations
        .iter()
        .map(|c| (c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?"), c))
        .collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut found = Vec::new();
    for (config_name, configuration) in sorted {
        if only.is_some_and(|only| only != config_name) {
            continue;
        }
        let webhooks = configuration.get("webhooks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for webhook in webhooks {
            let text = |pointer| webhook.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            let service = text("/clientConfig/service/name");
            let url = text("/clientConfig/url");
            let calls_mutate = text("/clientConfig/service/path").starts_with("/mutate")
                && names(service, WEBHOOK_NAME_HINTS)
                || url.contains("/mutate") && names(url, WEBHOOK_NAME_HINTS);
            let named = names(config_name, WEBHOOK_NAME_HINTS) || names(text("/name"), WEBHOOK_NAME_HINTS);
            if only.is_none() && !named && !calls_mutate {
                continue;
            }
            let own = [config_name, text("/name"), service, url].iter().any(|name| names(name, OWN_NAME_HINTS));
            let injector = if own || (only.is_some() && !named && !calls_mutate) {
                Injector::IrsaWebhook
            } else {
                Injector::PodIdentityWebhook
            };
            found.push(Candidate { config_name, webhook, injector });
        }
    }
    found
}

fn intercepts_pod_create(webhook: &Value) -> bool {
    let rules = webhook.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let has = |rule: &Value, field: &str, wanted: &[&str]| {
        rule.get(field)
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().filter_map(Value::as_str).any(|v| wanted.contains(&v)))
    };
    rules.iter().any(|rule| {
        has(rule, "operations", &["CREATE", "*"])
            && has(rule, "apiGroups", &["", "*"])
            && has(rule, "apiVersions", &["v1", "*"])
            && has(rule, "resources", &["pods", "*", "*/*"])
            && rule.get("scope").and_then(Value::as_str).is_none_or(|s| s == "*" || s == "Namespaced")
    })
}

pub(crate) fn namespace_fix(namespace: &str, unmet: &Requirement) -> String {
    match unmet {
        Requirement::Equals { key, value } => format!("kubectl label namespace {namespace} {key}={value}"),
        Requirement::In { key, values } => {
            format!("kubectl label namespace {namespace} {key}={}", values.first().map_or("<value>", String::as_str))
        }
        Requirement::Exists { key } => format!("kubectl label namespace {namespace} {key}=<value>"),
        Requirement::NotIn { key, .. } if key == "kubernetes.io/metadata.name" => format!(
            "the webhook never mutates pods in {namespace}: run the pod in another namespace, or drop {namespace} from \
             the webhook's excluded namespaces (chart value webhook.excludeNamespaces)"
        ),
        Requirement::NotIn { key, .. } | Requirement::DoesNotExist { key } => {
            format!("kubectl label namespace {namespace} {key}-")
        }
    }
}

fn show_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "none".to_owned();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
