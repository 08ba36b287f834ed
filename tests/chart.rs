//! The Helm chart (charts/irsa-webhook), rendered with `helm template` and checked object by object: lint, the
//! webhook registration, hardening, RBAC, the certificate wiring of each mode, values the chart must refuse, and
//! every `serve` argument it renders against the binary's own CLI definition (`Cli::command()`): a flag `serve`
//! does not have, a value it would reject, or a default that drifted from the binary's fails here. There is no
//! hand-kept list of flags or defaults.
//!
//! helm comes from $HELM, else from tests/tools.sh (which fetches it once into the tools cache). Without helm each
//! test prints why it was skipped (on stderr, past the test harness's capture) and passes, except under CI (`CI`
//! set), where helm is required and its absence fails. What needs an API server (`kubectl apply --dry-run=server`,
//! install/upgrade), certs/gen-certs.sh and the Dockerfile stay in tests/chart/test.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::{Debug, Display};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use clap::CommandFactory;
use irsa_webhook::cli::{go_flags, Cli};
use serde::Deserialize;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// base64 of "test CA\n": the caBundle the existingSecret renderings are given.
const CA_BUNDLE: &str = "dGVzdCBDQQo=";
const EXISTING_SECRET: &str = "my-tls";
/// Flags the chart sets for its own Deployment rather than leaving at the binary's default.
const CHART_CHOICES: [&str; 7] =
    ["port", "service-name", "cert-secret", "webhook-config", "tls-cert", "tls-key", "log-format"];
/// EKS's managed webhook, which a release in fs-group-only mode sits next to.
const MANAGED_CONFIG: &str = "pod-identity-webhook";
const MANAGED_WEBHOOK: &str = "iam-for-pods.amazonaws.com";
const EKS_KUBE: &str = "1.30.0-eks-036c24b";

static NULL: Value = Value::Null;

// --- helm ------------------------------------------------------------------------------------------------------

fn chart() -> PathBuf {
    Path::new(ROOT).join("charts/irsa-webhook")
}

/// The helm binary, or None after printing why the calling test is skipped.
fn helm(test: &str) -> Option<&'static Path> {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM").map(PathBuf::from) {
            return if path.is_file() { Ok(path) } else { Err(format!("HELM={} is not a file", path.display())) };
        }
        match Command::new(Path::new(ROOT).join("tests/tools.sh")).arg("helm").output() {
            Ok(out) if out.status.success() => Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())),
            Ok(out) => Err(format!("tests/tools.sh helm failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(error) => Err(format!("cannot run tests/tools.sh: {error}")),
        }
    });
    match found {
        Ok(path) => Some(path),
        Err(reason) if std::env::var_os("CI").is_some() => panic!("helm is required under CI: {reason}"),
        Err(reason) => {
            // Straight to stderr: libtest captures println!/eprintln! of passing tests, and a skip must be seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED chart::{test}: no helm ({reason}); set HELM to run it");
            None
        }
    }
}

fn run_helm(helm: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm).args(args).output().map_err(|e| format!("cannot run {}: {e}", helm.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

struct Rendering {
    text: String,
    objs: Vec<Value>,
}

/// `helm template RELEASE CHART -n NAMESPACE ARGS...`, parsed into its objects.
fn template(helm: &Path, release: &str, namespace: &str, args: &[&str]) -> Result<Rendering, String> {
    let chart = chart();
    let mut all = vec!["template", release, chart.to_str().unwrap_or_default(), "-n", namespace];
    all.extend_from_slice(args);
    let text = run_helm(helm, &all).map_err(|e| format!("helm template failed: {e}"))?;
    let mut objs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| format!("rendering is not YAML: {e}"))?;
        match value {
            Value::Null => {}
            list if list["kind"] == "List" => objs.extend(list["items"].as_array().cloned().unwrap_or_default()),
            obj => objs.push(obj),
        }
    }
    Ok(Rendering { text, objs })
}

// --- assertions --------------------------------------------------------------------------------------------------

/// One `ok - ...` / `not ok - ...` line per check (seen with --nocapture); the test fails at the end with every
/// failed line, so one run shows all that is wrong.
struct Checks {
    label: String,
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn new(label: impl Into<String>) -> Self {
        Checks { label: label.into(), passed: 0, failed: Vec::new() }
    }

    fn ok(&mut self, cond: bool, what: impl Display, detail: impl Debug) -> bool {
        if cond {
            self.passed += 1;
            println!("ok - {}: {what}", self.label);
        } else {
            let line = format!("not ok - {}: {what} ({detail:?})", self.label);
            println!("{line}");
            self.failed.push(line);
        }
        cond
    }

    fn finish(self) {
        println!("{}: {} checks passed, {} failed", self.label, self.passed, self.failed.len());
        assert!(
            self.failed.is_empty(),
            "{} of the chart's checks failed:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        );
    }
}

fn all<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn all_in_group<'a>(objs: &'a [Value], kind: &str, group: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind && api_group(o) == group).collect()
}

fn api_group(obj: &Value) -> &str {
    obj["apiVersion"].as_str().unwrap_or_default().split('/').next().unwrap_or_default()
}

fn one<'a>(c: &mut Checks, objs: &'a [Value], kind: &str) -> &'a Value {
    let found = all(objs, kind);
    c.ok(found.len() == 1, format!("exactly one {kind}"), format!("found {}", found.len()));
    found.first().copied().unwrap_or(&NULL)
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `a` is an object whose every entry is in `b` (label selectors against labels).
fn subset(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => a.iter().all(|(k, v)| b.get(k) == Some(v)),
        _ => false,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// (apiGroups, resources, sorted verbs, resourceNames) of each rule of a Role or ClusterRole.
type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn rules_of(role: &Value) -> Vec<Rule> {
    let rules = role["rules"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .map(|r| {
            let mut verbs = strings(&r["verbs"]);
            verbs.sort();
            (strings(&r["apiGroups"]), strings(&r["resources"]), verbs, strings(&r["resourceNames"]))
        })
        .collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> Rule {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    (own(groups), own(resources), own(verbs), own(names))
}

/// The container's flags after the subcommand: name -> Some(value), or None for a bare switch.
fn flags_of(ctr: &Value) -> BTreeMap<String, Option<String>> {
    strings(&ctr["args"])
        .iter()
        .skip(1)
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| match a.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (a.to_owned(), None),
        })
        .collect()
}

fn seconds(text: Option<&str>) -> Option<u64> {
    humantime::parse_duration(text?).ok().map(|d| d.as_secs())
}

// --- the CLI definition ------------------------------------------------------------------------------------------

fn subcommand(name: &str) -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand(name).cloned().unwrap_or_else(|| panic!("the CLI has no `{name}` subcommand"))
}

/// `serve`'s arguments by long name.
fn serve_args() -> BTreeMap<String, clap::Arg> {
    subcommand("serve").get_arguments().filter_map(|a| Some((a.get_long()?.to_owned(), a.clone()))).collect()
}

/// The mutation flags: those `serve` shares with `mutate` (both flatten the same mutation arguments).
fn mutation_flags() -> BTreeSet<String> {
    let serve = serve_args();
    subcommand("mutate")
        .get_arguments()
        .filter(|a| !matches!(a.get_action(), clap::ArgAction::Help | clap::ArgAction::Version))
        .filter_map(|a| a.get_long().filter(|l| serve.contains_key(*l)).map(str::to_owned))
        .collect()
}

fn default_of(arg: &clap::Arg) -> Option<String> {
    let values = arg.get_default_values();
    (!values.is_empty()).then(|| values.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(","))
}

/// A default that turns nothing on: a false switch or an empty value.
fn is_off(default: &str) -> bool {
    default.is_empty() || default == "false"
}

/// Equal as text, or as durations written differently (`2m` and `120s`).
fn same_value(a: &str, b: &str) -> bool {
    a == b || matches!((humantime::parse_duration(a), humantime::parse_duration(b)), (Ok(x), Ok(y)) if x == y)
}

/// Parses the container's arguments as the binary does (Go-style flags normalised, then clap).
fn check_parses(c: &mut Checks, args: &[String]) -> bool {
    let mut cli = Cli::command();
    let serve = subcommand("serve");
    let argv: Vec<OsString> =
        std::iter::once(OsString::from("irsa-webhook")).chain(args.iter().map(OsString::from)).collect();
    let result = cli.try_get_matches_from_mut(go_flags::command_line(argv, &serve));
    let serve_given = result.as_ref().is_ok_and(|m| m.subcommand_name() == Some("serve"));
    c.ok(
        serve_given,
        format!("all {} arguments parse as `irsa-webhook serve` (Cli::command())", args.len()),
        result.err().map(|e| e.to_string()),
    )
}

/// With the chart's default values: the mutation flags carry the binary's defaults, every other flag is the
/// binary's default too unless it is one the chart chooses for its Deployment, and off-by-default switches are off.
/// `except` names flags a case sets on purpose.
fn check_defaults(c: &mut Checks, flags: &BTreeMap<String, Option<String>>, except: &[&str]) {
    let serve = serve_args();
    let mut wrong = BTreeMap::new();
    for long in mutation_flags().iter().filter(|l| !except.contains(&l.as_str())) {
        let Some(default) = serve.get(long).and_then(default_of).filter(|d| !is_off(d)) else { continue };
        let rendered = flags.get(long).cloned().flatten();
        if !rendered.as_deref().is_some_and(|v| same_value(v, &default)) {
            wrong.insert(long.clone(), (rendered, default));
        }
    }
    c.ok(wrong.is_empty(), "mutation flags are rendered with the binary's defaults", &wrong);

    let mut wrong = BTreeMap::new();
    for (long, value) in flags {
        if CHART_CHOICES.contains(&long.as_str()) || except.contains(&long.as_str()) {
            continue;
        }
        let default = serve.get(long).and_then(default_of);
        let same = match (value, &default) {
            (Some(v), Some(d)) => same_value(v, d),
            _ => false,
        };
        if !same {
            wrong.insert(long.clone(), (value.clone(), default));
        }
    }
    c.ok(
        wrong.is_empty(),
        format!("every other flag is the binary's default (the chart's own: {CHART_CHOICES:?})"),
        &wrong,
    );

    let on: Vec<&String> = serve
        .iter()
        .filter(|(long, arg)| default_of(arg).is_some_and(|d| is_off(&d)) && flags.contains_key(*long))
        .map(|(long, _)| long)
        .collect();
    c.ok(on.is_empty(), "off-by-default switches and empty values are not rendered", on);
}

// --- one rendering -----------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    SelfManaged,
    CertManager,
    ExistingSecret,
}

impl Mode {
    fn args(self) -> Vec<String> {
        match self {
            Mode::SelfManaged => vec![],
            Mode::CertManager => vec!["--set".into(), "certificates.mode=certManager".into()],
            Mode::ExistingSecret => vec![
                "--set".into(),
                "certificates.mode=existingSecret".into(),
                "--set".into(),
                format!("certificates.existingSecret.name={EXISTING_SECRET}"),
                "--set".into(),
                format!("certificates.existingSecret.caBundle={CA_BUNDLE}"),
            ],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::SelfManaged => "selfManaged",
            Mode::CertManager => "certManager",
            Mode::ExistingSecret => "existingSecret",
        }
    }
}

struct Case {
    label: String,
    release: &'static str,
    namespace: &'static str,
    kube_120: bool,
    mode: Mode,
    /// The chart's default values apart from the mode: the flags must be the binary's defaults.
    defaults: bool,
    extra: Vec<&'static str>,
}

impl Case {
    fn new(label: impl Into<String>, namespace: &'static str, mode: Mode) -> Self {
        Case {
            label: label.into(),
            release: "irsa-webhook",
            namespace,
            kube_120: false,
            mode,
            defaults: false,
            extra: vec![],
        }
    }

    /// Renders the case and runs the checks common to every rendering; None (with the failure recorded) when it
    /// does not render.
    fn render(&self, helm: &Path, c: &mut Checks) -> Option<Rendering> {
        let mut args: Vec<String> = self.mode.args();
        if self.kube_120 {
            args.extend(["--kube-version".into(), "1.20.2".into()]);
        }
        args.extend(self.extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match template(helm, self.release, self.namespace, &args) {
            Ok(r) => Some(r),
            Err(e) => {
                c.ok(false, "helm template", e);
                None
            }
        }
    }
}

/// What the case-specific checks need from the common ones.
struct Facts<'a> {
    dep: &'a Value,
    ctr: &'a Value,
    pod: &'a Value,
    flags: BTreeMap<String, Option<String>>,
    roles: Vec<&'a Value>,
    role_rules: Vec<Rule>,
    mwc: &'a Value,
    wh: &'a Value,
}

/// Facts that hold for every rendering.
fn check_common<'a>(c: &mut Checks, case: &Case, objs: &'a [Value]) -> Option<Facts<'a>> {
    let (release_ns, mode) = (case.namespace, case.mode);
    let dep = one(c, objs, "Deployment");
    let svcs: Vec<&Value> = all(objs, "Service").into_iter().filter(|s| !name(s).ends_with("-metrics")).collect();
    c.ok(svcs.len() == 1, "one webhook Service", format!("found {}", svcs.len()));
    let svc = svcs.first().copied().unwrap_or(&NULL);
    let sa = one(c, objs, "ServiceAccount");
    let mwc = one(c, objs, "MutatingWebhookConfiguration");
    let pdb = one(c, objs, "PodDisruptionBudget");
    if dep.is_null() || svc.is_null() || mwc.is_null() {
        return None;
    }

    let spec = &dep["spec"];
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let ann = &spec["template"]["metadata"]["annotations"];
    let containers = pod["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !c.ok(containers.len() == 1, "one container", containers.len()) {
        return None;
    }
    let ctr = &containers[0];
    let flags = flags_of(ctr);
    c.ok(ctr["args"][0] == "serve", "container runs `serve`", &ctr["args"][0]);

    // Deployment shape.
    c.ok(spec["replicas"] == 2, "2 replicas by default", &spec["replicas"]);
    c.ok(
        pod["priorityClassName"] == "system-cluster-critical",
        "priorityClassName system-cluster-critical",
        &pod["priorityClassName"],
    );
    let tsc = &pod["topologySpreadConstraints"];
    let spread = tsc.as_array().is_some_and(|t| {
        t.iter().any(|t| {
            t["topologyKey"] == "kubernetes.io/hostname"
                && t["whenUnsatisfiable"] == "ScheduleAnyway"
                && subset(&t["labelSelector"]["matchLabels"], pod_labels)
        })
    });
    c.ok(spread, "topology spread across nodes, ScheduleAnyway, selecting its own pods", tsc);
    c.ok(
        subset(&spec["selector"]["matchLabels"], pod_labels),
        "Deployment selector matches its pods",
        &spec["selector"],
    );
    c.ok(
        pod["serviceAccountName"] == sa["metadata"]["name"],
        "pod runs as the chart's ServiceAccount",
        &pod["serviceAccountName"],
    );

    // Hardening.
    let (psc, csc) = (&pod["securityContext"], &ctr["securityContext"]);
    c.ok(psc["runAsNonRoot"] == true && psc["runAsUser"] == 65532, "pod runAsNonRoot, runAsUser 65532", psc);
    c.ok(psc["seccompProfile"]["type"] == "RuntimeDefault", "pod seccomp RuntimeDefault", psc);
    c.ok(csc["runAsNonRoot"] == true && csc["runAsUser"] == 65532, "container runAsNonRoot, 65532", csc);
    c.ok(csc["readOnlyRootFilesystem"] == true, "readOnlyRootFilesystem", csc);
    c.ok(csc["allowPrivilegeEscalation"] == false, "allowPrivilegeEscalation false", csc);
    let caps = &csc["capabilities"];
    c.ok(caps["drop"] == json!(["ALL"]) && strings(&caps["add"]).is_empty(), "capabilities drop ALL, add none", caps);
    c.ok(csc["privileged"].is_null() || csc["privileged"] == false, "not privileged", &csc["privileged"]);
    c.ok(csc["seccompProfile"]["type"] == "RuntimeDefault", "container seccomp RuntimeDefault", csc);
    let res = &ctr["resources"];
    let sized = ["requests", "limits"].iter().all(|x| ["cpu", "memory"].iter().all(|k| !res[x][k].is_null()));
    c.ok(sized, "resources: cpu+memory requests and limits", res);
    let host = ["hostNetwork", "hostPID", "hostIPC"].iter().any(|k| pod[k] == true);
    c.ok(!host, "no host namespaces", ());

    // Ports, probes, metrics.
    let ports: BTreeMap<String, Value> = ctr["ports"]
        .as_array()
        .map(|p| {
            p.iter().map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p["containerPort"].clone())).collect()
        })
        .unwrap_or_default();
    let want_ports: BTreeMap<String, Value> =
        [("https".to_owned(), json!(8443)), ("metrics".to_owned(), json!(9999))].into();
    c.ok(ports == want_ports, "container ports https 8443, metrics 9999", &ports);
    c.ok(
        flags.get("port") == Some(&Some("8443".into())) && flags.get("metrics-port") == Some(&Some("9999".into())),
        "--port=8443 --metrics-port=9999",
        (flags.get("port"), flags.get("metrics-port")),
    );
    let on_metrics = |p: &Value| p == "metrics" || p == 9999;
    let (lp, rp) = (&ctr["livenessProbe"]["httpGet"], &ctr["readinessProbe"]["httpGet"]);
    c.ok(lp["path"] == "/healthz" && on_metrics(&lp["port"]), "liveness GET /healthz on metrics", lp);
    c.ok(rp["path"] == "/readyz" && on_metrics(&rp["port"]), "readiness GET /readyz on metrics", rp);
    c.ok(
        ann["prometheus.io/scrape"] == "true"
            && ann["prometheus.io/port"] == "9999"
            && ann["prometheus.io/path"] == "/metrics",
        "prometheus.io annotations point at 9999/metrics",
        ann,
    );

    // Shutdown: the delay lives in the binary (--shutdown-delay, every Kubernetes version); no preStop hook by
    // default; the grace period covers sleep + delay + shutdown timeout.
    let lifecycle = &ctr["lifecycle"];
    c.ok(
        lifecycle.as_object().is_none_or(|l| l.is_empty()),
        "no lifecycle hook by default (--shutdown-delay does it)",
        lifecycle,
    );
    c.ok(lifecycle["preStop"]["exec"].is_null(), "no exec preStop (distroless has no shell)", lifecycle);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let flag = |name: &str| flags.get(name).cloned().flatten();
    let shutdown = seconds(flag("shutdown-timeout").as_deref().or(Some("20s")));
    let delay = seconds(flag("shutdown-delay").as_deref().or(Some("0s")));
    let sleep = lifecycle["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    c.ok(
        delay.is_some_and(|d| d >= 5),
        "--shutdown-delay passed, long enough for endpoint propagation",
        flag("shutdown-delay"),
    );
    c.ok(
        matches!((shutdown, delay), (Some(s), Some(d)) if grace >= s + d + sleep),
        "terminationGracePeriodSeconds covers preStop sleep + --shutdown-delay + --shutdown-timeout",
        (grace, delay, shutdown, sleep),
    );

    // Flags: every one is what `serve` accepts; with default values, the binary's defaults.
    check_parses(c, &strings(&ctr["args"]));
    if case.defaults {
        check_defaults(c, &flags, &[]);
    }
    let env = ctr["env"].as_array().cloned().unwrap_or_default();
    let ns_env = env.iter().find(|e| e["name"] == "IRSA_NAMESPACE").unwrap_or(&NULL);
    c.ok(
        ns_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace",
        "IRSA_NAMESPACE from the downward API",
        ns_env,
    );
    c.ok(
        flag("service-name").as_deref() == Some(name(svc)),
        "--service-name is the Service's name",
        flag("service-name"),
    );

    // Service.
    let sps = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let sp = sps.first().unwrap_or(&NULL);
    c.ok(
        sps.len() == 1
            && sp["name"] == "https"
            && sp["port"] == 443
            && (sp["targetPort"] == 8443 || sp["targetPort"] == "https"),
        "Service https 443 -> 8443",
        sps,
    );
    c.ok(subset(&svc["spec"]["selector"], pod_labels), "Service selects the webhook pods", &svc["spec"]["selector"]);

    // PodDisruptionBudget.
    let want_pdb = if case.kube_120 { "policy/v1beta1" } else { "policy/v1" };
    c.ok(pdb["apiVersion"] == want_pdb, format!("PDB is {want_pdb}"), &pdb["apiVersion"]);
    c.ok(pdb["spec"]["minAvailable"] == 1, "PDB minAvailable 1", &pdb["spec"]);
    c.ok(subset(&pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selects the webhook pods", &pdb["spec"]);

    // MutatingWebhookConfiguration.
    let whs = mwc["webhooks"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !c.ok(whs.len() == 1, "one webhook in the configuration", whs.len()) {
        return None;
    }
    let wh = &whs[0];
    c.ok(wh["name"] == "irsa-webhook.amazonaws.com", "webhook name irsa-webhook.amazonaws.com", &wh["name"]);
    c.ok(wh["failurePolicy"] == "Ignore", "failurePolicy Ignore", &wh["failurePolicy"]);
    c.ok(wh["sideEffects"] == "None", "sideEffects None", &wh["sideEffects"]);
    c.ok(
        wh["admissionReviewVersions"] == json!(["v1", "v1beta1"]),
        "admissionReviewVersions v1, v1beta1",
        &wh["admissionReviewVersions"],
    );
    c.ok(wh["timeoutSeconds"] == 5, "timeoutSeconds 5", &wh["timeoutSeconds"]);
    c.ok(wh["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded", &wh["reinvocationPolicy"]);
    let rules = wh["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let r = rules.first().unwrap_or(&NULL);
    c.ok(
        rules.len() == 1
            && r["operations"] == json!(["CREATE"])
            && r["apiGroups"] == json!([""])
            && r["apiVersions"] == json!(["v1"])
            && r["resources"] == json!(["pods"])
            && (r["scope"].is_null() || r["scope"] == "Namespaced" || r["scope"] == "*"),
        "rule: CREATE v1 pods only",
        rules,
    );
    let excluded = wh["namespaceSelector"]["matchExpressions"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn"))
        .map(|e| strings(&e["values"]))
        .unwrap_or_default();
    c.ok(
        excluded.iter().any(|v| v == "kube-system") && excluded.iter().any(|v| v == release_ns),
        format!("namespaceSelector excludes kube-system and the release namespace {release_ns}"),
        &excluded,
    );
    let obj_sel = &wh["objectSelector"]["matchExpressions"];
    let skip = json!({"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"});
    c.ok(
        obj_sel.as_array().is_some_and(|e| e.contains(&skip)),
        "objectSelector skips pods labelled eks.amazonaws.com/skip-pod-identity-webhook",
        obj_sel,
    );
    let cs = &wh["clientConfig"]["service"];
    c.ok(
        *cs == json!({"name": name(svc), "namespace": release_ns, "path": "/mutate", "port": 443}),
        "clientConfig: the Service, /mutate, 443",
        cs,
    );
    c.ok(wh["clientConfig"]["url"].is_null(), "no url clientConfig", &wh["clientConfig"]);

    // RBAC: the webhook's ClusterRole reads ServiceAccounts, nothing else cluster-wide but its own config.
    let crs = all(objs, "ClusterRole");
    let cr = crs.first().copied().unwrap_or(&NULL);
    c.ok(crs.len() == 1, "one ClusterRole", crs.len());
    let crb = one(c, objs, "ClusterRoleBinding");
    let mut want = vec![rule(&[""], &["serviceaccounts"], &["get", "list", "watch"], &[])];
    if mode == Mode::SelfManaged {
        want.push(rule(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            &["get", "patch", "update"],
            &[name(mwc)],
        ));
    }
    c.ok(rules_of(cr) == want, "ClusterRole rules are minimal", rules_of(cr));
    let subject = json!([{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": release_ns}]);
    c.ok(
        crb["roleRef"]["name"] == cr["metadata"]["name"] && crb["subjects"] == subject,
        "ClusterRoleBinding binds it to the ServiceAccount",
        crb,
    );
    let roles = all(objs, "Role");
    let wild: Vec<&Value> = roles
        .iter()
        .chain(crs.iter())
        .flat_map(|role| role["rules"].as_array().map(Vec::as_slice).unwrap_or_default())
        .filter(|r| ["verbs", "resources", "apiGroups"].iter().any(|k| strings(&r[k]).iter().any(|s| s == "*")))
        .collect();
    c.ok(wild.is_empty(), "no wildcard in any RBAC rule", wild);
    for role in &roles {
        c.ok(role["metadata"]["namespace"] == release_ns, "Role lives in the release namespace", &role["metadata"]);
    }
    for rb in all(objs, "RoleBinding") {
        c.ok(
            rb["metadata"]["namespace"] == release_ns && rb["subjects"][0]["name"] == pod["serviceAccountName"],
            "RoleBinding in the release namespace, to the ServiceAccount",
            rb,
        );
    }

    // Certificate mode.
    let cm_objs: Vec<&Value> =
        objs.iter().filter(|o| o["apiVersion"].as_str().is_some_and(|v| v.starts_with("cert-manager.io/"))).collect();
    let inject = mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str();
    let by_name = |list: &'a Value| -> BTreeMap<&'a str, &'a Value> {
        list.as_array()
            .map(|l| l.iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect())
            .unwrap_or_default()
    };
    let mounts = by_name(&ctr["volumeMounts"]);
    let vols = by_name(&pod["volumes"]);
    let role_rules = roles.first().map(|r| rules_of(r)).unwrap_or_default();
    let secret_rules: Vec<Rule> = role_rules.iter().filter(|r| r.1.iter().any(|s| s == "secrets")).cloned().collect();
    let m = mode.name();
    if mode == Mode::SelfManaged {
        c.ok(cm_objs.is_empty(), "selfManaged: no cert-manager objects", cm_objs.len());
        c.ok(inject.is_none(), "selfManaged: no inject-ca-from annotation", inject);
        c.ok(
            wh["clientConfig"]["caBundle"].is_null(),
            "selfManaged: caBundle left to the webhook (absent)",
            &wh["clientConfig"],
        );
        c.ok(
            flag("webhook-config").as_deref() == Some(name(mwc)),
            "--webhook-config names the configuration",
            flag("webhook-config"),
        );
        let secret = flag("cert-secret").unwrap_or_default();
        c.ok(!secret.is_empty(), "--cert-secret set", &secret);
        c.ok(
            !flags.contains_key("tls-cert") && !flags.contains_key("tls-key"),
            "selfManaged: no --tls-cert/--tls-key",
            (),
        );
        let mut got = secret_rules.clone();
        got.sort();
        let mut want = vec![
            rule(&[""], &["secrets"], &["create"], &[]),
            rule(&[""], &["secrets"], &["get", "update"], &[&secret]),
        ];
        want.sort();
        c.ok(got == want, "Role: create secrets; get/update only the certificate Secret", &got);
        c.ok(!vols.values().any(|v| !v["secret"].is_null()), "selfManaged: no Secret volume", &pod["volumes"]);
    } else {
        c.ok(
            !flags.contains_key("cert-secret") && !flags.contains_key("webhook-config"),
            format!("{m}: no --cert-secret/--webhook-config"),
            (),
        );
        c.ok(secret_rules.is_empty(), format!("{m}: no RBAC on Secrets"), &secret_rules);
        c.ok(
            !cr.to_string().contains("mutatingwebhookconfigurations"),
            format!("{m}: no RBAC on webhook configurations"),
            cr,
        );
        let tls = vols.get("tls").map(|v| &v["secret"]).unwrap_or(&NULL);
        let mount = mounts.get("tls").copied().unwrap_or(&NULL);
        c.ok(tls.is_object() && mount["readOnly"] == true, format!("{m}: TLS Secret mounted read-only"), (tls, mount));
        let dir = mount["mountPath"].as_str().unwrap_or_default();
        c.ok(
            flag("tls-cert") == Some(format!("{dir}/tls.crt")) && flag("tls-key") == Some(format!("{dir}/tls.key")),
            format!("{m}: --tls-cert/--tls-key point into the mount"),
            (flag("tls-cert"), flag("tls-key")),
        );
        if mode == Mode::CertManager {
            let mut kinds: Vec<(&str, &str)> =
                cm_objs.iter().map(|o| (o["kind"].as_str().unwrap_or_default(), name(o))).collect();
            kinds.sort();
            c.ok(
                kinds.iter().map(|k| k.0).collect::<Vec<_>>() == ["Certificate", "Certificate", "Issuer", "Issuer"],
                "certManager: self-signed Issuer, CA Certificate, CA Issuer, serving Certificate",
                &kinds,
            );
            let issuers: BTreeMap<&str, &Value> =
                all_in_group(objs, "Issuer", "cert-manager.io").into_iter().map(|o| (name(o), &o["spec"])).collect();
            let certs: Vec<(&str, &Value)> = all_in_group(objs, "Certificate", "cert-manager.io")
                .into_iter()
                .map(|o| (name(o), &o["spec"]))
                .collect();
            let ca: Vec<&Value> = certs.iter().filter(|(_, s)| s["isCA"] == true).map(|(_, s)| *s).collect();
            let serving: Vec<(&str, &Value)> = certs.iter().filter(|(_, s)| s["isCA"] != true).copied().collect();
            let issuer_of = |spec: &Value| {
                issuers.get(spec["issuerRef"]["name"].as_str().unwrap_or_default()).copied().unwrap_or(&NULL)
            };
            c.ok(
                ca.len() == 1 && !issuer_of(ca[0])["selfSigned"].is_null(),
                "certManager: the CA certificate is self-signed",
                &ca,
            );
            if let (Some(ca), Some((serving_name, sv))) = (ca.first(), serving.first()) {
                c.ok(
                    issuer_of(sv)["ca"]["secretName"] == ca["secretName"],
                    "certManager: the serving certificate is issued by the CA Issuer",
                    &sv["issuerRef"],
                );
                let s = name(svc);
                let want_dns = json!([
                    s,
                    format!("{s}.{release_ns}"),
                    format!("{s}.{release_ns}.svc"),
                    format!("{s}.{release_ns}.svc.cluster.local")
                ]);
                c.ok(sv["dnsNames"] == want_dns, "certManager: serving certificate DNS names", &sv["dnsNames"]);
                c.ok(
                    strings(&sv["usages"]).iter().any(|u| u == "server auth"),
                    "certManager: usage server auth",
                    &sv["usages"],
                );
                c.ok(
                    sv["secretName"] == tls["secretName"],
                    "certManager: the Deployment mounts its Secret",
                    &sv["secretName"],
                );
                let want_inject = format!("{release_ns}/{serving_name}");
                c.ok(
                    inject == Some(want_inject.as_str()),
                    "certManager: inject-ca-from names the serving Certificate",
                    inject,
                );
            }
        } else {
            c.ok(cm_objs.is_empty(), "existingSecret: no cert-manager objects", cm_objs.len());
            c.ok(inject.is_none(), "existingSecret: no inject-ca-from annotation", inject);
            c.ok(tls["secretName"] == EXISTING_SECRET, "existingSecret: mounts the given Secret", tls);
            c.ok(
                wh["clientConfig"]["caBundle"] == CA_BUNDLE,
                "existingSecret: caBundle from values",
                &wh["clientConfig"]["caBundle"],
            );
        }
    }
    Some(Facts { dep, ctr, pod, flags, roles, role_rules, mwc, wh })
}

// --- the cases ---------------------------------------------------------------------------------------------------

/// A mode with the chart's default values: exactly the expected kinds, and the binary's defaults.
fn default_case(test: &str, mode: Mode, kube_120: bool) {
    let Some(helm) = helm(test) else { return };
    let kube = if kube_120 { "k1.20" } else { "kdefault" };
    let (release, namespace) =
        if mode == Mode::ExistingSecret { ("rel", "webhooks") } else { ("irsa-webhook", "irsa") };
    let case =
        Case { release, kube_120, defaults: true, ..Case::new(format!("{}/{kube}", mode.name()), namespace, mode) };
    let mut c = Checks::new(&case.label);
    if let Some(r) = case.render(helm, &mut c) {
        let facts = check_common(&mut c, &case, &r.objs);
        let kinds: BTreeSet<&str> = r.objs.iter().filter_map(|o| o["kind"].as_str()).collect();
        let mut want = BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "MutatingWebhookConfiguration",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]);
        match mode {
            Mode::SelfManaged => want.extend(["Role", "RoleBinding"]),
            Mode::CertManager => want.extend(["Certificate", "Issuer"]),
            Mode::ExistingSecret => {}
        }
        c.ok(kinds == want, "exactly the expected kinds (no ServiceMonitor, ConfigMap by default)", &kinds);
        if let Some(f) = facts {
            c.ok(
                !f.role_rules.iter().any(|r| r.1.iter().any(|s| s == "configmaps")),
                "no ConfigMap RBAC unless ConfigMap mode",
                &f.role_rules,
            );
        }
    }
    c.finish();
}

#[test]
fn self_managed_defaults() {
    default_case("self_managed_defaults", Mode::SelfManaged, false);
}

#[test]
fn self_managed_defaults_kube_1_20() {
    default_case("self_managed_defaults_kube_1_20", Mode::SelfManaged, true);
}

#[test]
fn cert_manager_defaults() {
    default_case("cert_manager_defaults", Mode::CertManager, false);
}

#[test]
fn cert_manager_defaults_kube_1_20() {
    default_case("cert_manager_defaults_kube_1_20", Mode::CertManager, true);
}

#[test]
fn existing_secret_defaults() {
    default_case("existing_secret_defaults", Mode::ExistingSecret, false);
}

#[test]
fn existing_secret_defaults_kube_1_20() {
    default_case("existing_secret_defaults_kube_1_20", Mode::ExistingSecret, true);
}

fn config_map_case(test: &str, mode: Mode) {
    let Some(helm) = helm(test) else { return };
    let case = Case {
        extra: vec!["--set", "config.watchConfigMap=true"],
        ..Case::new(format!("configMap/{}", mode.name()), "irsa", mode)
    };
    let mut c = Checks::new(&case.label);
    if let Some(r) = case.render(helm, &mut c) {
        if let Some(f) = check_common(&mut c, &case, &r.objs) {
            c.ok(
                f.flags.get("watch-config-map") == Some(&None),
                "--watch-config-map passed",
                f.flags.get("watch-config-map"),
            );
            let cm_rules: Vec<&Rule> = f.role_rules.iter().filter(|r| r.1.iter().any(|s| s == "configmaps")).collect();
            c.ok(
                cm_rules == [&rule(&[""], &["configmaps"], &["get", "list", "watch"], &[])],
                "Role: get/list/watch configmaps",
                &cm_rules,
            );
            c.ok(f.roles.len() == 1, "one Role, in the release namespace", f.roles.len());
        }
    }
    c.finish();
}

#[test]
fn config_map_self_managed() {
    config_map_case("config_map_self_managed", Mode::SelfManaged);
}

#[test]
fn config_map_cert_manager() {
    config_map_case("config_map_cert_manager", Mode::CertManager);
}

#[test]
fn container_credentials() {
    let Some(helm) = helm("container_credentials") else { return };
    let case = Case {
        extra: vec![
            "--set",
            "config.containerCredentials.enabled=true",
            "--set",
            "config.containerCredentials.identities[0].namespace=app",
            "--set",
            "config.containerCredentials.identities[0].serviceAccount=web",
        ],
        ..Case::new("containerCredentials", "irsa", Mode::SelfManaged)
    };
    let mut c = Checks::new(&case.label);
    if let Some(r) = case.render(helm, &mut c) {
        if let Some(f) = check_common(&mut c, &case, &r.objs) {
            let cms = all(&r.objs, "ConfigMap");
            c.ok(cms.len() == 1, "a ConfigMap for the container-credentials identities", cms.len());
            if let Some(cm) = cms.first() {
                let cfg: Value =
                    cm["data"]["config.json"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
                c.ok(
                    cfg == json!({"identities": [{"namespace": "app", "serviceAccount": "web"}]}),
                    "the ConfigMap holds the identities as JSON",
                    &cfg,
                );
                let find = |list: &Value| {
                    list.as_array()
                        .and_then(|l| l.iter().find(|v| v["name"] == "container-credentials"))
                        .cloned()
                        .unwrap_or_default()
                };
                let (vol, mnt) = (find(&f.pod["volumes"]), find(&f.ctr["volumeMounts"]));
                c.ok(vol["configMap"]["name"] == cm["metadata"]["name"], "the ConfigMap is mounted", &vol);
                let want = format!("{}/config.json", mnt["mountPath"].as_str().unwrap_or_default());
                let got = f.flags.get("watch-container-credentials-config").cloned().flatten();
                c.ok(got == Some(want), "--watch-container-credentials-config points at the mounted file", &got);
                let ann = &f.dep["spec"]["template"]["metadata"]["annotations"];
                c.ok(!ann["checksum/container-credentials"].is_null(), "pods roll when the identities change", ann);
            }
        }
    }
    c.finish();
}

#[test]
fn service_monitor() {
    let Some(helm) = helm("service_monitor") else { return };
    let case = Case {
        extra: vec!["--set", "metrics.serviceMonitor.enabled=true"],
        ..Case::new("serviceMonitor", "monitoring", Mode::SelfManaged)
    };
    let mut c = Checks::new(&case.label);
    if let Some(r) = case.render(helm, &mut c) {
        check_common(&mut c, &case, &r.objs);
        let sms = all(&r.objs, "ServiceMonitor");
        c.ok(sms.len() == 1, "ServiceMonitor rendered when enabled", sms.len());
        let metrics: Vec<&Value> =
            all(&r.objs, "Service").into_iter().filter(|s| name(s).ends_with("-metrics")).collect();
        c.ok(
            metrics.len() == 1 && metrics[0]["spec"]["ports"][0]["port"] == 9999,
            "a metrics Service on 9999",
            &metrics,
        );
        if let (Some(sm), Some(metrics)) = (sms.first(), metrics.first()) {
            c.ok(
                subset(&sm["spec"]["selector"]["matchLabels"], &metrics["metadata"]["labels"]),
                "the ServiceMonitor selects the metrics Service",
                &sm["spec"]["selector"],
            );
            let ep = &sm["spec"]["endpoints"][0];
            c.ok(ep["port"] == "metrics" && ep["path"] == "/metrics", "it scrapes port metrics, /metrics", ep);
        }
    }
    c.finish();
}

/// config.inject=fs-group-only (on EKS): the flag, and a registration that leaves the managed webhook's alone.
fn eks_case(test: &str, label: &str, extra: Vec<&'static str>) {
    let Some(helm) = helm(test) else { return };
    let case = Case { extra, ..Case::new(label, "irsa", Mode::SelfManaged) };
    let mut c = Checks::new(&case.label);
    if let Some(r) = case.render(helm, &mut c) {
        if let Some(f) = check_common(&mut c, &case, &r.objs) {
            let inject = f.flags.get("inject").cloned().flatten();
            c.ok(inject.as_deref() == Some("fs-group-only"), "--inject=fs-group-only passed", &inject);
            c.ok(
                name(f.mwc) != MANAGED_CONFIG,
                format!("the configuration is not named {MANAGED_CONFIG}"),
                name(f.mwc),
            );
            c.ok(f.wh["name"] != MANAGED_WEBHOOK, format!("the webhook is not named {MANAGED_WEBHOOK}"), &f.wh["name"]);
            // Either order is safe; IfNeeded also gives the fix a second look after webhooks that add containers.
            c.ok(f.wh["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy IfNeeded", &f.wh["reinvocationPolicy"]);
            // Otherwise the chart's defaults: a plain install with one value.
            check_defaults(&mut c, &f.flags, &["inject"]);
        }
    }
    c.finish();
}

#[test]
fn eks_fs_group_only() {
    eks_case("eks_fs_group_only", "EKS: config.inject=fs-group-only", vec!["--set", "config.inject=fs-group-only"]);
}

#[test]
fn eks_fs_group_only_on_an_eks_version() {
    eks_case(
        "eks_fs_group_only_on_an_eks_version",
        "EKS: config.inject=fs-group-only, kube 1.30.0-eks",
        vec!["--set", "config.inject=fs-group-only", "--kube-version", EKS_KUBE],
    );
}

/// Every option that adds a flag turned on at once, in both flag-passing certificate modes: every argument is one
/// `serve` accepts (the chart may not pass a flag the binary lacks).
#[test]
fn every_option_on_parses_as_serve() {
    let Some(helm) = helm("every_option_on_parses_as_serve") else { return };
    let mut c = Checks::new("every option on");
    let mut seen = BTreeSet::new();
    for mode in [Mode::SelfManaged, Mode::CertManager] {
        let mut args = mode.args();
        for set in [
            "config.stsRegionalEndpoint=true",
            "config.composeRoleArn=true",
            "config.awsPartition=aws",
            "config.injectRoleSessionName=true",
            "config.awsDefaultRegion=eu-west-1",
            "config.watchConfigMap=true",
            "config.containerCredentials.enabled=true",
            "config.inject=fs-group-only",
            "config.maxConnections=100",
        ] {
            args.extend(["--set".to_owned(), set.to_owned()]);
        }
        args.extend(["--set-string".to_owned(), "config.awsAccountId=111122223333".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match template(helm, "irsa-webhook", "irsa", &args) {
            Ok(r) => {
                let dep = all(&r.objs, "Deployment");
                let ctr = dep.first().map(|d| &d["spec"]["template"]["spec"]["containers"][0]).unwrap_or(&NULL);
                let argv = strings(&ctr["args"]);
                seen.extend(flags_of(ctr).into_keys());
                c.ok(
                    argv.first().map(String::as_str) == Some("serve"),
                    format!("{}: container runs `serve`", mode.name()),
                    argv.first(),
                );
                check_parses(&mut c, &argv);
            }
            Err(e) => {
                c.ok(false, format!("{}: helm template", mode.name()), e);
            }
        }
    }
    let unknown: Vec<&String> = seen.iter().filter(|f| !serve_args().contains_key(*f)).collect();
    c.ok(
        unknown.is_empty(),
        format!("all {} distinct flags the chart can pass are `serve` flags", seen.len()),
        unknown,
    );
    c.finish();
}

#[test]
fn lint_strict() {
    let Some(helm) = helm("lint_strict") else { return };
    let mut c = Checks::new("helm lint --strict");
    let chart = chart();
    let chart = chart.to_str().unwrap_or_default();
    let cm = ["--set", "certificates.mode=certManager"];
    let existing = Mode::ExistingSecret.args();
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let everything = [
        "--set",
        "certificates.mode=selfManaged",
        "--set",
        "config.watchConfigMap=true",
        "--set",
        "config.containerCredentials.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "config.stsRegionalEndpoint=true",
        "--set",
        "config.awsDefaultRegion=eu-west-1",
    ];
    let k120 = ["--kube-version", "1.20.2"];
    let cases: [(&str, Vec<&str>); 6] = [
        ("defaults", vec![]),
        ("defaults, kube 1.20.2", k120.to_vec()),
        ("certManager", cm.to_vec()),
        ("certManager, kube 1.20.2", [&cm[..], &k120[..]].concat()),
        ("existingSecret", existing),
        ("everything on", everything.to_vec()),
    ];
    for (label, args) in cases {
        let mut all = vec!["lint", "--strict", chart];
        all.extend(args);
        let result = run_helm(helm, &all);
        c.ok(result.is_ok(), label, result.err());
    }
    c.finish();
}

/// Single rendered values the structured checks do not cover.
#[test]
fn rendered_values() {
    let Some(helm) = helm("rendered_values") else { return };
    let mut c = Checks::new("values");
    let render = |c: &mut Checks, what: &str, release: &str, args: &[&str]| -> Rendering {
        template(helm, release, "irsa", args).unwrap_or_else(|e| {
            c.ok(false, format!("{what}: helm template"), e);
            Rendering { text: String::new(), objs: vec![] }
        })
    };
    let args_of = |r: &Rendering| -> Vec<String> {
        all(&r.objs, "Deployment")
            .first()
            .map(|d| strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]))
            .unwrap_or_default()
    };
    let image_of = |r: &Rendering| -> Value {
        all(&r.objs, "Deployment")
            .first()
            .map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].clone())
            .unwrap_or_default()
    };
    let has = |args: &[String], want: &str| args.iter().any(|a| a == want);

    let r = render(&mut c, "failurePolicy", "irsa-webhook", &["--set", "webhook.failurePolicy=Fail"]);
    let mwc = all(&r.objs, "MutatingWebhookConfiguration");
    let policy = mwc.first().map(|m| m["webhooks"][0]["failurePolicy"].clone()).unwrap_or_default();
    c.ok(policy == "Fail", "failurePolicy is configurable", &policy);

    let r = render(&mut c, "extraArgs", "irsa-webhook", &["--set", "extraArgs[0]=--log-level=debug"]);
    let args = args_of(&r);
    c.ok(args.last().map(String::as_str) == Some("--log-level=debug"), "extra flags are appended", args.last());
    check_parses(&mut c, &args);

    let r = render(&mut c, "switch", "irsa-webhook", &["--set", "config.stsRegionalEndpoint=true"]);
    c.ok(has(&args_of(&r), "--sts-regional-endpoint"), "switches render as bare flags", args_of(&r));

    let r = render(&mut c, "region", "irsa-webhook", &["--set", "config.awsDefaultRegion=eu-west-1"]);
    c.ok(has(&args_of(&r), "--aws-default-region=eu-west-1"), "region renders", args_of(&r));

    let r = render(&mut c, "inject", "irsa-webhook", &[]);
    c.ok(has(&args_of(&r), "--inject=full"), "inject defaults to full", args_of(&r));

    let r = render(&mut c, "EKS full", "irsa-webhook", &["--kube-version", EKS_KUBE]);
    c.ok(has(&args_of(&r), "--inject=full"), "a full-mode release on EKS still installs", args_of(&r));

    let r = render(&mut c, "drop-in", "irsa-webhook", &["--set", "webhook.configName=pod-identity-webhook"]);
    let names: Vec<&str> = all(&r.objs, "MutatingWebhookConfiguration").into_iter().map(name).collect();
    c.ok(names == [MANAGED_CONFIG], "a self-managed cluster may take over the reference's name (drop-in)", &names);

    let r = render(
        &mut c,
        "composeRoleArn",
        "irsa-webhook",
        &[
            "--set",
            "config.composeRoleArn=true",
            "--set-string",
            "config.awsAccountId=111122223333",
            "--set",
            "config.awsPartition=aws-cn",
        ],
    );
    let args = args_of(&r);
    c.ok(
        has(&args, "--compose-role-arn")
            && has(&args, "--aws-account-id=111122223333")
            && has(&args, "--aws-partition=aws-cn"),
        "composeRoleArn renders with its account and partition",
        &args,
    );
    check_parses(&mut c, &args);

    let chart_yaml: Value = std::fs::read_to_string(chart().join("Chart.yaml"))
        .ok()
        .and_then(|t| serde_yaml_ng::from_str(&t).ok())
        .unwrap_or_default();
    let app_version = chart_yaml["appVersion"].as_str().unwrap_or("(no appVersion in Chart.yaml)");
    let r = render(&mut c, "image", "irsa-webhook", &[]);
    c.ok(image_of(&r) == format!("irsa-webhook:{app_version}"), "image tag defaults to appVersion", image_of(&r));

    let r = render(
        &mut c,
        "digest",
        "irsa-webhook",
        &["--set", "image.repository=r/irsa", "--set", "image.digest=sha256:abc"],
    );
    c.ok(image_of(&r) == "r/irsa@sha256:abc", "image digest wins over tag", image_of(&r));

    let r = render(&mut c, "release name", "prod", &[]);
    let deps: Vec<&str> = all(&r.objs, "Deployment").into_iter().map(name).collect();
    c.ok(deps == ["prod-irsa-webhook"], "a release name without the chart name is prefixed", &deps);

    let r = render(
        &mut c,
        "issuer",
        "irsa-webhook",
        &[
            "--set",
            "certificates.mode=certManager",
            "--set",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
            "--set",
            "certificates.certManager.issuerRef.name=corp",
        ],
    );
    let refs: Vec<&Value> =
        all_in_group(&r.objs, "Certificate", "cert-manager.io").into_iter().map(|o| &o["spec"]["issuerRef"]).collect();
    c.ok(
        refs.iter().any(|i| i["kind"] == "ClusterIssuer" && i["name"] == "corp"),
        "custom cert-manager issuer is used",
        &refs,
    );
    c.ok(!r.text.is_empty() && !r.text.contains("selfSigned"), "custom issuer: no self-signed chain rendered", &refs);
    c.finish();
}

#[test]
fn refuses_bad_values() {
    let Some(helm) = helm("refuses_bad_values") else { return };
    let mut c = Checks::new("refuses");
    let cases: [(&str, &str, &[&str]); 14] = [
        ("an unknown certificate mode", "certificates/mode", &["--set", "certificates.mode=bogus"]),
        (
            "existingSecret without a Secret name",
            "existingSecret.name is required",
            &["--set", "certificates.mode=existingSecret", "--set", "certificates.existingSecret.caBundle=x"],
        ),
        (
            "existingSecret without a caBundle",
            "caBundle",
            &["--set", "certificates.mode=existingSecret", "--set", "certificates.existingSecret.name=s"],
        ),
        ("a failurePolicy other than Ignore/Fail", "failurePolicy", &["--set", "webhook.failurePolicy=Sometimes"]),
        ("an unknown fsGroupFix", "fsGroupFix", &["--set", "config.fsGroupFix=maybe"]),
        ("an unknown inject mode", "inject", &["--set", "config.inject=env-only"]),
        (
            "fs-group-only under the managed webhook's configuration name",
            "must not be named pod-identity-webhook",
            &["--set", "config.inject=fs-group-only", "--set", "webhook.configName=pod-identity-webhook"],
        ),
        (
            "fs-group-only with fullnameOverride=pod-identity-webhook",
            "must not be named pod-identity-webhook",
            &["--set", "config.inject=fs-group-only", "--set", "fullnameOverride=pod-identity-webhook"],
        ),
        (
            "fs-group-only under the managed webhook's webhook name",
            "must not be iam-for-pods.amazonaws.com",
            &["--set", "config.inject=fs-group-only", "--set", "webhook.name=iam-for-pods.amazonaws.com"],
        ),
        (
            "the managed webhook's configuration name on EKS, full mode too",
            "must not be named pod-identity-webhook",
            &["--set", "webhook.configName=pod-identity-webhook", "--kube-version", EKS_KUBE],
        ),
        ("a token expiration under 600 s", "tokenExpiration", &["--set", "config.tokenExpiration=60"]),
        ("TLS 1.1", "tlsMinVersion", &["--set", "config.tlsMinVersion=1.1"]),
        (
            "composeRoleArn without an account ID",
            "composeRoleArn needs config.awsAccountId",
            &["--set", "config.composeRoleArn=true"],
        ),
        ("an account ID that is not 12 digits", "awsAccountId", &["--set", "config.awsAccountId=1234"]),
    ];
    for (label, message, args) in cases {
        match template(helm, "irsa-webhook", "irsa", args) {
            Ok(_) => c.ok(false, format!("refuses {label}"), "it rendered"),
            Err(e) => c.ok(e.contains(message), format!("refuses {label}, saying '{message}'"), e),
        };
    }
    c.finish();
}

/// The CLI facts the checks above rely on, so that a change in how they are derived cannot make them vacuous.
#[test]
fn the_cli_definition_has_what_the_checks_use() {
    let mutation = mutation_flags();
    for long in ["annotation-prefix", "token-audience", "token-expiration", "fs-group-fix", "inject"] {
        assert!(mutation.contains(long), "--{long} is not among the flags serve shares with mutate: {mutation:?}");
    }
    let serve = serve_args();
    assert!(serve.contains_key("shutdown-timeout") && !mutation.contains("shutdown-timeout"));
    assert_eq!(serve.get("sts-regional-endpoint").and_then(default_of).as_deref(), Some("false"));
    assert!(same_value("2m", "120s") && !same_value("2m", "121s") && !same_value("a", "b"));
    assert_eq!(seconds(Some("20s")), Some(20));
}
