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

mod cli;
mod common;
mod render;
use cli::*;
use common::*;
use render::*;

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
