//! `doctor pods --all-namespaces` / `doctor pods -n NS`: every pod whose ServiceAccount gives a role but which lacks
//! what the webhook would add — the core's changes for that pod are not empty, so the rules live once — grouped by
//! the owner that recreates it, with the one command that fixes each group. Pure: the shell lists pods,
//! ServiceAccounts, ReplicaSets, Jobs, namespaces and webhook configurations page by page and feeds them here; no
//! call is made per pod.
//!
//! Bounded: [`Scanner::examine`] keeps nothing of a pod that needs no action, so memory grows with the pods that
//! need action (a few hundred bytes each), not with the cluster.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::facts::{controller_of, Additions, OwnerRef};
use super::selector::labels_of;
use super::webhook::{self, Exclusion};
use super::{Finding, CHECK_FS_GROUP, CHECK_INJECTION, CHECK_WEBHOOK};
use crate::container_credentials::ContainerCredentialsConfig;
use crate::identity::{self, ServiceAccountConfig, ServiceAccountRef};
use crate::mutate::{self, Pod};
use crate::settings::MutationSettings;
use crate::shell;

/// Pod names shown per group in the text output (all of them are in `-o json`).
const NAMES_SHOWN: usize = 5;
/// Owner chains are short (Pod → ReplicaSet → Deployment, Pod → Job → CronJob); a loop in hostile data stops here.
const MAX_OWNER_DEPTH: usize = 4;

/// Decides, pod by pod, whether the webhook would still change it.
pub struct Scanner<'a> {
    pub settings: &'a MutationSettings,
    /// The ServiceAccounts that give a role, read by the webhook's own annotation reader.
    pub service_accounts: &'a HashMap<ServiceAccountRef, ServiceAccountConfig>,
    pub container_credentials: &'a ContainerCredentialsConfig,
}

/// A pod that lacks what the webhook would add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNeed {
    pub namespace: String,
    pub name: String,
    pub owner: Option<OwnerRef>,
    pub lacks: Additions,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its ServiceAccount gives no role: the webhook leaves it alone.
    NoRole,
    /// Succeeded, Failed or being deleted: it will not run again.
    Finished,
    /// Has everything the webhook adds.
    Fine,
    NeedsAction(PodNeed),
    /// The webhook could not read it either.
    Unreadable {
        pod: String,
        error: String,
    },
}

impl Scanner<'_> {
    pub fn examine(&self, pod: &Value) -> Verdict {
        let decoded = match Pod::from_value(pod) {
            Ok(decoded) => decoded,
            Err(error) => return Verdict::Unreadable { pod: super::pod_label(pod), error: error.to_string() },
        };
        let sa = decoded.service_account(None);
        let label = || format!("{}/{}", sa.namespace, decoded.display_name());
        let finished = matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
            || pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
        if finished {
            return Verdict::Finished;
        }
        let Some(identity) =
            identity::resolve(&sa, self.service_accounts.get(&sa), self.container_credentials.contains(&sa))
        else {
            return Verdict::NoRole;
        };
        let mutation = match mutate::mutate(&decoded, Some(&identity), self.settings) {
            Ok(mutation) => mutation,
            Err(error) => return Verdict::Unreadable { pod: label(), error: error.to_string() },
        };
        if mutation.is_empty() {
            return Verdict::Fine;
        }
        Verdict::NeedsAction(PodNeed {
            namespace: sa.namespace.clone(),
            name: decoded.display_name().to_owned(),
            owner: controller_of(pod),
            lacks: Additions::of(&mutation.changes),
            labels: labels_of(pod),
        })
    }
}

/// Who owns the owners: ReplicaSet → Deployment, Job → CronJob, from the listed ReplicaSets and Jobs.
#[derive(Debug, Default)]
pub struct Owners {
    by_object: HashMap<(String, OwnerRef), OwnerRef>,
}

impl Owners {
    /// Records the controller of a listed object (a ReplicaSet or a Job) of this kind.
    pub fn record(&mut self, kind: &str, object: &Value) {
        let text = |pointer| object.pointer(pointer).and_then(Value::as_str);
        let (Some(namespace), Some(name), Some(owner)) =
            (text("/metadata/namespace"), text("/metadata/name"), controller_of(object))
        else {
            return;
        };
        let key = OwnerRef { kind: kind.to_owned(), name: name.to_owned() };
        self.by_object.insert((namespace.to_owned(), key), owner);
    }

    /// The owner a person acts on: the top of the chain.
    fn top(&self, namespace: &str, owner: &OwnerRef) -> OwnerRef {
        let mut current = owner.clone();
        for _ in 0..MAX_OWNER_DEPTH {
            match self.by_object.get(&(namespace.to_owned(), current.clone())) {
                Some(next) => current = next.clone(),
                None => break,
            }
        }
        current
    }

    pub fn len(&self) -> usize {
        self.by_object.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }
}

/// What decides whether the webhook would see a recreated pod: its registrations and the namespaces' labels.
pub struct Registrations<'a> {
    pub webhook_configurations: &'a [Value],
    pub webhook_config_name: Option<&'a str>,
    pub namespace_labels: &'a HashMap<String, BTreeMap<String, String>>,
}

impl Registrations<'_> {
    /// Why none of `candidates` (the webhooks that inject credentials) would call for this pod; `None` when one
    /// would.
    fn exclusion(&self, candidates: &[webhook::Candidate<'_>], need: &PodNeed) -> Option<String> {
        let labels = self.namespace_labels.get(&need.namespace).ok_or("namespace not listed");
        let mut first = None;
        for candidate in candidates {
            match webhook::evaluate(candidate.webhook, &need.labels, labels) {
                Ok(()) | Err(Exclusion::NamespaceUnknown(_)) => return None,
                Err(exclusion) => {
                    first.get_or_insert_with(|| webhook::exclusion_reason(candidate.config_name, &exclusion));
                }
            }
        }
        Some(first.unwrap_or_else(|| "no MutatingWebhookConfiguration for irsa-webhook is registered".to_owned()))
    }
}

/// One owner's pods that need action, and the command that fixes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`, `CronJob`, another controller's kind, or
    /// `Pod` for a pod no controller owns.
    pub kind: String,
    pub name: String,
    pub pods: Vec<String>,
    /// What the first pod lacks (the pods of one owner share a template).
    pub lacks: String,
    /// `injection`, or `fs-group` when only the fsGroup fix is missing.
    pub check: &'static str,
    /// Why the webhook would not see the recreated pods either; restart only after fixing that.
    pub excluded: Option<String>,
    pub fix: String,
}

/// The scan's result, as `-o json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `all namespaces` or `namespace NS`.
    pub scope: String,
    pub pods: usize,
    pub pods_with_role: usize,
    pub pods_needing_action: usize,
    /// Pods that will not run again (Succeeded, Failed, being deleted): not counted as needing action.
    pub pods_finished: usize,
    pub groups: Vec<Group>,
    pub unreadable: Vec<Unreadable>,
    /// LIST requests made, and the wall time of the whole scan.
    pub requests: usize,
    pub seconds: f64,
    /// What the scan could not take into account (e.g. webhook registrations it may not list).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub pod: String,
    pub error: String,
}

/// Counts the pods as they are examined and keeps those that need action.
#[derive(Debug, Default)]
pub struct Tally {
    pub pods: usize,
    pub with_role: usize,
    pub finished: usize,
    pub needs: Vec<PodNeed>,
    pub unreadable: Vec<Unreadable>,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict) {
        self.pods += 1;
        match verdict {
            Verdict::NoRole => {}
            Verdict::Finished => self.finished += 1,
            Verdict::Fine => self.with_role += 1,
            Verdict::NeedsAction(need) => {
                self.with_role += 1;
                self.needs.push(need);
            }
            Verdict::Unreadable { pod, error } => self.unreadable.push(Unreadable { pod, error }),
        }
    }

    /// The pods that need action grouped by the owner a person acts on, sorted by namespace, kind and name.
    pub fn report(self, owners: &Owners, registrations: Option<&Registrations<'_>>, scope: String) -> Report {
        let pods_needing_action = self.needs.len();
        let candidates =
            registrations.map(|r| (r, webhook::injectors(r.webhook_configurations, r.webhook_config_name)));
        let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
        for need in self.needs {
            let owner = need.owner.as_ref().map(|owner| owners.top(&need.namespace, owner));
            let (kind, name) = match owner {
                Some(owner) => (owner.kind, owner.name),
                None => ("Pod".to_owned(), need.name.clone()),
            };
            let key = (need.namespace.clone(), kind.clone(), name.clone());
            let excluded = candidates.as_ref().and_then(|(r, candidates)| r.exclusion(candidates, &need));
            let group = groups.entry(key).or_insert_with(|| Group {
                namespace: need.namespace.clone(),
                kind,
                name,
                pods: Vec::new(),
                check: if need.lacks.injection.is_empty() { CHECK_FS_GROUP } else { CHECK_INJECTION },
                lacks: need.lacks.describe(),
                excluded: None,
                fix: String::new(),
            });
            // One excluded pod is enough to say the group's recreated pods may be skipped too.
            if group.excluded.is_none() {
                group.excluded = excluded;
            }
            group.pods.push(need.name);
        }
        let mut groups: Vec<Group> = groups.into_values().collect();
        for group in &mut groups {
            group.pods.sort();
            group.fix = fix(group);
        }
        Report {
            scope,
            pods: self.pods,
            pods_with_role: self.with_role,
            pods_needing_action,
            pods_finished: self.finished,
            groups,
            unreadable: self.unreadable,
            ..Report::default()
        }
    }
}

/// The one command that fixes a group, and what is safe about it.
fn fix(group: &Group) -> String {
    let ns = shell::word(&group.namespace);
    let pods = group.pods.iter().map(|p| shell::word(p)).collect::<Vec<_>>().join(" ");
    let delete = format!("kubectl delete pod -n {ns} {pods}");
    let restart = |resource: &str, how: &str| {
        format!("kubectl rollout restart {resource}/{} -n {ns} ({how})", shell::word(&group.name))
    };
    let action = match group.kind.as_str() {
        "Deployment" => restart("deployment", "rolling, as the Deployment's strategy and PodDisruptionBudgets allow"),
        "StatefulSet" => {
            restart("statefulset", "one pod at a time, in order; with updateStrategy OnDelete delete the pods instead")
        }
        "DaemonSet" => restart("daemonset", "node by node, as its updateStrategy allows"),
        "ReplicaSet" | "ReplicationController" => format!(
            "{delete} (the {} recreates them, all at once: delete them one by one if they serve traffic)",
            group.kind
        ),
        "Job" => format!("{delete} (the Job starts replacements: only if the job can safely run again)"),
        "CronJob" => format!(
            "later runs of cronjob/{} get credentials by themselves; for the running ones: {delete} (their Jobs start \
             replacements: only if the job can safely run again)",
            group.name
        ),
        "Pod" => format!("{delete}, then create it again from its manifest (no controller recreates it)"),
        "Node" => format!(
            "a static pod of node {}: the webhook cannot change what the kubelet runs; put the credentials in the \
             manifest on the node",
            group.name
        ),
        other => format!("{delete} (its controller {other}/{} recreates them)", group.name),
    };
    match &group.excluded {
        Some(reason) => format!(
            "the webhook would skip the recreated pods too ({reason}): fix that first (doctor pod {}/{} says how), then \
             {action}",
            group.namespace,
            group.pods.first().map_or("", String::as_str)
        ),
        None => action,
    }
}

impl Report {
    /// True when any pod needs action: the exit status of `doctor pods`.
    pub fn needs_action(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The report as `doctor`'s lines: one `problem` per group, a `hint` per unreadable pod and per note.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for group in &self.groups {
            let count = group.pods.len();
            let shown: Vec<&str> = group.pods.iter().take(NAMES_SHOWN).map(String::as_str).collect();
            let more = if count > NAMES_SHOWN { format!(" and {} more", count - NAMES_SHOWN) } else { String::new() };
            let subject = if group.kind == "Pod" {
                format!("pod {}/{} (no controller)", group.namespace, group.name)
            } else {
                format!("{} {}/{}", group.kind, group.namespace, group.name)
            };
            findings.push(Finding::problem(
                group.check,
                format!(
                    "{subject}: {count} pod{} lack{} {} ({}{more})",
                    if count == 1 { "" } else { "s" },
                    if count == 1 { "s" } else { "" },
                    group.lacks,
                    shown.join(", ")
                ),
                group.fix.clone(),
            ));
        }
        for unreadable in &self.unreadable {
            findings.push(Finding::hint(
                CHECK_INJECTION,
                format!("pod {} was not examined: {}", unreadable.pod, unreadable.error),
                None,
            ));
        }
        for note in &self.notes {
            findings.push(Finding::hint(CHECK_WEBHOOK, note.clone(), None));
        }
        findings
    }

    /// One line for stderr: what was scanned, how long it took, what needs action.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} pods scanned in {:.1} s ({} LIST requests); {} with a role, {} of them in {} group(s) need action",
            self.scope,
            self.pods,
            self.seconds,
            self.requests,
            self.pods_with_role,
            self.pods_needing_action,
            self.groups.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    fn pod(namespace: &str, name: &str, sa: &str, owner: Option<(&str, &str)>) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("u-{name}"),
                         "creationTimestamp": "2024-05-02T10:00:00Z"},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "app"}]},
            "status": {"phase": "Running"}});
        if let Some((kind, owner)) = owner {
            pod["metadata"]["ownerReferences"] = json!([{"kind": kind, "name": owner, "controller": true}]);
        }
        pod
    }

    fn mutated(pod: Value) -> Value {
        let sa = ServiceAccountRef::new("team", "app");
        let config = ServiceAccountConfig::from_annotations(
            &sa,
            [("eks.amazonaws.com/role-arn", ROLE)],
            &MutationSettings::default(),
        );
        let identity = identity::resolve(&sa, Some(&config), false).unwrap();
        let mutation = mutate::mutate_value(&pod, Some(&identity), &MutationSettings::default()).unwrap();
        let mut pod = pod;
        json_patch::patch(&mut pod, &mutation.patch).unwrap();
        pod
    }

    fn scan(pods: &[Value], owners: &Owners, registrations: Option<&Registrations<'_>>) -> Report {
        let settings = MutationSettings::default();
        let mut service_accounts = HashMap::new();
        for namespace in ["team", "batch"] {
            let sa = ServiceAccountRef::new(namespace, "app");
            let config = ServiceAccountConfig::from_annotations(&sa, [("eks.amazonaws.com/role-arn", ROLE)], &settings);
            service_accounts.insert(sa, config);
        }
        let container_credentials = ContainerCredentialsConfig::default();
        let scanner = Scanner {
            settings: &settings,
            service_accounts: &service_accounts,
            container_credentials: &container_credentials,
        };
        let mut tally = Tally::default();
        for pod in pods {
            tally.add(scanner.examine(pod));
        }
        tally.report(owners, registrations, "all namespaces".to_owned())
    }

    fn owners() -> Owners {
        let mut owners = Owners::default();
        owners.record(
            "ReplicaSet",
            &json!({"metadata": {"namespace": "team", "name": "web-5d9",
                    "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}}),
        );
        owners.record(
            "Job",
            &json!({"metadata": {"namespace": "batch", "name": "nightly-1",
                    "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": true}]}}),
        );
        owners
    }

    #[test]
    fn pods_lacking_the_injection_are_grouped_by_the_owner_to_restart() {
        let pods = [
            pod("team", "web-5d9-b", "app", Some(("ReplicaSet", "web-5d9"))),
            pod("team", "web-5d9-a", "app", Some(("ReplicaSet", "web-5d9"))),
            mutated(pod("team", "web-5d9-c", "app", Some(("ReplicaSet", "web-5d9")))),
            pod("team", "db-0", "app", Some(("StatefulSet", "db"))),
            pod("team", "agent-x", "app", Some(("DaemonSet", "agent"))),
            pod("team", "debug", "app", None),
            pod("team", "no-role", "other", None),
            pod("batch", "nightly-1-q", "app", Some(("Job", "nightly-1"))),
            pod("batch", "once-q", "app", Some(("Job", "once"))),
        ];
        let report = scan(&pods, &owners(), None);
        assert_eq!((report.pods, report.pods_with_role, report.pods_needing_action), (9, 8, 7));
        let groups: Vec<(String, String, String, Vec<String>)> = report
            .groups
            .iter()
            .map(|g| (g.namespace.clone(), g.kind.clone(), g.name.clone(), g.pods.clone()))
            .collect();
        let group = |ns: &str, kind: &str, name: &str, pods: &[&str]| {
            (ns.to_owned(), kind.to_owned(), name.to_owned(), pods.iter().map(|p| (*p).to_owned()).collect())
        };
        assert_eq!(
            groups,
            [
                group("batch", "CronJob", "nightly", &["nightly-1-q"]),
                group("batch", "Job", "once", &["once-q"]),
                group("team", "DaemonSet", "agent", &["agent-x"]),
                group("team", "Deployment", "web", &["web-5d9-a", "web-5d9-b"]),
                group("team", "Pod", "debug", &["debug"]),
                group("team", "StatefulSet", "db", &["db-0"]),
            ]
        );
        let fix = |kind: &str| report.groups.iter().find(|g| g.kind == kind).unwrap().fix.clone();
        assert!(fix("Deployment").starts_with("kubectl rollout restart deployment/web -n team ("));
        assert!(fix("StatefulSet").starts_with("kubectl rollout restart statefulset/db -n team ("));
        assert!(fix("DaemonSet").starts_with("kubectl rollout restart daemonset/agent -n team ("));
        assert!(fix("Pod").starts_with("kubectl delete pod -n team debug, then create it again"));
        assert!(fix("Job").contains("only if the job can safely run again"), "{}", fix("Job"));
        assert!(fix("CronJob").starts_with("later runs of cronjob/nightly get credentials"));
        let web = &report.groups[3];
        assert_eq!(web.check, CHECK_INJECTION);
        assert!(web.lacks.starts_with("volume aws-iam-token; container app: AWS_ROLE_ARN"), "{}", web.lacks);
        assert!(report.needs_action());

        let lines = super::super::render_text(&report.findings());
        assert!(lines.contains("problem  injection         Deployment team/web: 2 pods lack volume aws-iam-token"));
        assert!(lines.contains("pod team/debug (no controller): 1 pod lacks"), "{lines}");
    }

    #[test]
    fn finished_unreadable_and_fs_group_only_pods() {
        let mut done = pod("team", "done", "app", None);
        done["status"]["phase"] = json!("Succeeded");
        let mut deleting = pod("team", "deleting", "app", None);
        deleting["metadata"]["deletionTimestamp"] = json!("2024-05-02T11:00:00Z");
        let broken = json!({"kind": "Pod", "metadata": {"name": "broken", "namespace": "team"},
                            "spec": {"serviceAccountName": "app", "containers": "oops"}});
        // Mutated by a webhook without the fsGroup fix (the reference), running as non-root.
        let mut base = pod("team", "web-1", "app", Some(("ReplicaSet", "web-5d9")));
        base["spec"]["securityContext"] = json!({"runAsUser": 1000});
        let settings = MutationSettings { fs_group_fix: crate::settings::FsGroupFix::Never, ..Default::default() };
        let sa = ServiceAccountRef::new("team", "app");
        let config = ServiceAccountConfig::from_annotations(&sa, [("eks.amazonaws.com/role-arn", ROLE)], &settings);
        let identity = identity::resolve(&sa, Some(&config), false).unwrap();
        let patch = mutate::mutate_value(&base, Some(&identity), &settings).unwrap().patch;
        json_patch::patch(&mut base, &patch).unwrap();

        let report = scan(&[done, deleting, broken, base], &owners(), None);
        assert_eq!((report.pods, report.pods_finished, report.pods_needing_action), (4, 2, 1));
        assert_eq!(report.unreadable.len(), 1);
        assert!(report.unreadable[0].error.contains("spec.containers"), "{:?}", report.unreadable);
        let group = &report.groups[0];
        assert_eq!((group.check, group.lacks.as_str()), (CHECK_FS_GROUP, "fsGroup 65534 (the fsGroup fix)"));
    }

    #[test]
    fn pods_the_webhook_would_skip_again_say_so_before_the_restart() {
        let config = json!({"metadata": {"name": "irsa-webhook"}, "webhooks": [{
            "name": "irsa-webhook.amazonaws.com",
            "clientConfig": {"service": {"name": "irsa-webhook", "namespace": "irsa-system", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["batch"]}]}}]});
        let configurations = [config];
        let namespace_labels: HashMap<String, BTreeMap<String, String>> = ["team", "batch"]
            .iter()
            .map(|ns| {
                ((*ns).to_owned(), BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), (*ns).to_owned())]))
            })
            .collect();
        let registrations = Registrations {
            webhook_configurations: &configurations,
            webhook_config_name: None,
            namespace_labels: &namespace_labels,
        };
        let pods = [pod("team", "debug", "app", None), pod("batch", "once-q", "app", Some(("Job", "once")))];
        let report = scan(&pods, &owners(), Some(&registrations));
        let batch = report.groups.iter().find(|g| g.namespace == "batch").unwrap();
        assert_eq!(
            batch.excluded.as_deref(),
            Some("irsa-webhook's namespaceSelector needs kubernetes.io/metadata.name notin (batch)")
        );
        assert!(batch.fix.starts_with("the webhook would skip the recreated pods too"), "{}", batch.fix);
        let team = report.groups.iter().find(|g| g.namespace == "team").unwrap();
        assert_eq!(team.excluded, None);
    }

    #[test]
    fn owner_loops_in_hostile_data_stop() {
        let mut owners = Owners::default();
        for (name, owner) in [("a", "b"), ("b", "a")] {
            owners.record(
                "ReplicaSet",
                &json!({"metadata": {"namespace": "team", "name": name,
                        "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": true}]}}),
            );
        }
        let top = owners.top("team", &OwnerRef { kind: "ReplicaSet".into(), name: "a".into() });
        assert_eq!(top.kind, "ReplicaSet");
    }
}
