//! `irsa-webhook mutate`, the real binary: the README example in every output format, stdin, exit codes, and
//! error and warning lines on stderr.

use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};

mod support;
use support::{irsa_webhook, output_with_stdin, repo_root};

/// Runs `irsa-webhook mutate ARGS` in the repository, with `stdin` (or nothing) on standard input and without any
/// `IRSA_*` variable of the caller's environment.
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = irsa_webhook();
    command.arg("mutate").args(args).current_dir(repo_root());
    output_with_stdin(&mut command, stdin.unwrap_or_default().as_bytes())
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn assert_ok(output: &Output) {
    assert!(output.status.success(), "exit {:?}, stderr:\n{}", output.status.code(), stderr(output));
}

/// Fails with exit status 1 and exactly one line on stderr, which contains every one of `parts`.
fn assert_one_line_error(output: &Output, parts: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "exit status; stderr:\n{err}");
    assert!(output.stdout.is_empty(), "nothing on stdout on error, got:\n{}", stdout(output));
    assert_eq!(err.lines().count(), 1, "one line on stderr, got:\n{err}");
    assert!(err.starts_with("irsa-webhook: "), "{err}");
    for part in parts {
        assert!(err.contains(part), "stderr lacks {part:?}:\n{err}");
    }
}

fn example_pod() -> Value {
    let text = std::fs::read_to_string(repo_root().join("examples/pod.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

const SA: &str = "examples/serviceaccounts.yaml";

/// The patch the README shows for the example.
fn readme_patch() -> Value {
    json!([
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}}]},
        {"op": "add", "path": "/spec/containers/0/env", "value": [
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/s3-reader"},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}]},
        {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [{"name": "aws-iam-token", "readOnly": true, "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]},
        {"op": "add", "path": "/spec/securityContext/fsGroup", "value": 65534},
        {"op": "add", "path": "/spec/securityContext/fsGroupChangePolicy", "value": "OnRootMismatch"}
    ])
}

fn expected_mutated_pod() -> Value {
    let mut pod = example_pod();
    let patch: json_patch::Patch = serde_json::from_value(readme_patch()).unwrap();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

#[test]
fn readme_example_as_patch() {
    let output = run(&["--service-account", SA, "-o", "patch", "examples/pod.yaml"], None);
    assert_ok(&output);
    assert_eq!(stderr(&output), "", "no warnings for the README example");
    let patch: Value = serde_json::from_str(&stdout(&output)).expect("-o patch prints JSON");
    assert_eq!(patch, readme_patch());
}

#[test]
fn readme_example_as_yaml_is_the_default() {
    let output = run(&["--service-account", SA, "examples/pod.yaml"], None);
    assert_ok(&output);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    assert!(!text.trim_start().starts_with('{'), "YAML, not JSON:\n{text}");
    let pod: Value = serde_yaml_ng::from_str(&text).expect("YAML output parses");
    assert_eq!(pod, expected_mutated_pod());
    // The input's field order is kept: apiVersion, kind, metadata, spec.
    let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ') && !l.starts_with('-')).collect();
    assert_eq!(keys, ["apiVersion: v1", "kind: Pod", "metadata:", "spec:"]);

    let explicit = run(&["--service-account", SA, "-o", "yaml", "examples/pod.yaml"], None);
    assert_ok(&explicit);
    assert_eq!(stdout(&explicit), text);
}

#[test]
fn readme_example_as_json() {
    let output = run(&["--service-account", SA, "--output", "json", "examples/pod.yaml"], None);
    assert_ok(&output);
    let pod: Value = serde_json::from_str(&stdout(&output)).expect("-o json prints JSON");
    assert_eq!(pod, expected_mutated_pod());
}

#[test]
fn stdin_with_dash_and_without_argument() {
    let text = std::fs::read_to_string(repo_root().join("examples/pod.yaml")).unwrap();
    let from_file = run(&["--service-account", SA, "-o", "json", "examples/pod.yaml"], None);
    let dash = run(&["--service-account", SA, "-o", "json", "-"], Some(&text));
    let absent = run(&["--service-account", SA, "-o", "json"], Some(&text));
    for output in [&from_file, &dash, &absent] {
        assert_ok(output);
    }
    assert_eq!(stdout(&dash), stdout(&from_file));
    assert_eq!(stdout(&absent), stdout(&from_file));

    // JSON on stdin works the same.
    let json_text = serde_json::to_string(&example_pod()).unwrap();
    let from_json = run(&["--service-account", SA, "-o", "json"], Some(&json_text));
    assert_ok(&from_json);
    let a: Value = serde_json::from_str(&stdout(&from_json)).unwrap();
    assert_eq!(a, expected_mutated_pod());
}

#[test]
fn not_yaml_or_json() {
    for garbage in ["{not json", ": : :\n- [", "\t\u{0}"] {
        let output = run(&["--service-account", SA], Some(garbage));
        assert_one_line_error(&output, &["<stdin>", "not valid YAML or JSON"]);
    }
}

#[test]
fn not_a_pod() {
    let output = run(&[], Some("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {}\n"));
    assert_one_line_error(&output, &["<stdin>", "Pod", "Service"]);

    let two = run(&[], Some("kind: Pod\nspec: {containers: [{name: a}]}\n---\nkind: Pod\nspec: {containers: []}\n"));
    assert_one_line_error(&two, &["<stdin>", "one document", "2"]);

    // A Pod by kind whose shape is wrong is refused with the path of the problem.
    let bad_env = run(&["--service-account", SA], Some("kind: Pod\nspec: {containers: [{name: a, env: {}}]}\n"));
    assert_one_line_error(&bad_env, &["<stdin>", "spec.containers[0].env must be an array"]);
}

#[test]
fn unparseable_service_account_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: [unclosed\n").unwrap();
    let output = run(&["--service-account", broken.to_str().unwrap(), "examples/pod.yaml"], None);
    assert_one_line_error(&output, &[broken.to_str().unwrap(), "not valid YAML or JSON"]);

    let wrong_kind = dir.path().join("pod-not-sa.yaml");
    std::fs::write(&wrong_kind, "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n").unwrap();
    let output = run(&["--service-account", wrong_kind.to_str().unwrap(), "examples/pod.yaml"], None);
    assert_one_line_error(&output, &[wrong_kind.to_str().unwrap(), "ServiceAccount", "Pod"]);
}

#[test]
fn missing_files() {
    let output = run(&["--service-account", SA, "does/not/exist.yaml"], None);
    assert_one_line_error(&output, &["cannot read does/not/exist.yaml"]);

    let output = run(&["--service-account", "no-such-sa.yaml", "examples/pod.yaml"], None);
    assert_one_line_error(&output, &["cannot read no-such-sa.yaml"]);

    let output = run(&["--watch-container-credentials-config", "no-such.json", "examples/pod.yaml"], None);
    assert_one_line_error(&output, &["cannot read no-such.json"]);
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = run(&["--fs-group-fix=sometimes", "examples/pod.yaml"], None);
    assert_eq!(output.status.code(), Some(2), "clap's usage exit status; stderr:\n{}", stderr(&output));
    let output = run(&["examples/pod.yaml", "--compose-role-arn"], None);
    assert_one_line_error(&output, &["--compose-role-arn needs --aws-account-id"]);
}

/// Go's flag package, whose command lines we accept, never gives a boolean flag a separate value: `--flag x` is the
/// flag and the argument x. A pod path after a boolean flag must stay the pod path.
#[test]
fn boolean_flag_before_the_pod_path() {
    let reference =
        run(&["--service-account", SA, "-o", "json", "--sts-regional-endpoint=true", "examples/pod.yaml"], None);
    assert_ok(&reference);
    let output = run(&["--service-account", SA, "-o", "json", "--sts-regional-endpoint", "examples/pod.yaml"], None);
    assert_ok(&output);
    assert_eq!(stdout(&output), stdout(&reference));
}

#[test]
fn warnings_go_to_stderr_and_the_pod_to_stdout() {
    // The pod's ServiceAccount is not in the file: unchanged pod, one warning, success.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-a}\nspec:\n  serviceAccountName: ghost\n  containers: [{name: app, image: busybox}]\n";
    let output = run(&["--service-account", SA, "-o", "json"], Some(pod));
    assert_ok(&output);
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("warning: ServiceAccount team-a/ghost not found"), "{err}");
    let out: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(out, serde_yaml_ng::from_str::<Value>(pod).unwrap());

    // An invalid ARN: mutated anyway, the warning names the ServiceAccount; patch output unaffected by warnings.
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.yaml");
    std::fs::write(
        &sa,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s3-reader\n  namespace: default\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::1234:role/x\n    eks.amazonaws.com/token-expiraton: \"3600\"\n",
    )
    .unwrap();
    let output = run(&["--service-account", sa.to_str().unwrap(), "-o", "patch", "examples/pod.yaml"], None);
    assert_ok(&output);
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines.iter().all(|l| l.starts_with("warning: ServiceAccount default/s3-reader: ")), "{err}");
    assert!(err.contains("is not a valid IAM role ARN"), "{err}");
    assert!(err.contains("did you mean eks.amazonaws.com/token-expiration?"), "{err}");
    let patch: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(patch[1]["value"][0], json!({"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1234:role/x"}));
}

#[test]
fn container_credentials_label_pointer_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("cc.json");
    std::fs::write(&config, r#"{"identities":[{"namespace":"default","serviceAccount":"s3-reader"}]}"#).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  serviceAccountName: s3-reader\n  containers: [{name: app, image: busybox}]\n";
    let output = run(&["--watch-container-credentials-config", config.to_str().unwrap(), "-o", "patch"], Some(pod));
    assert_ok(&output);
    let text = stdout(&output);
    // The text itself, not just the parsed value: "/" in the label key is "~1" in the pointer.
    assert!(text.contains(r#""path": "/metadata/labels/eks.amazonaws.com~1pod-identity""#), "{text}");
    let patch: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/metadata/labels/eks.amazonaws.com~1pod-identity", "value": "enabled"})
    );

    // Without labels the whole map is added.
    let bare = pod.replace("  labels: {app: web}\n", "");
    let output = run(&["--watch-container-credentials-config", config.to_str().unwrap(), "-o", "patch"], Some(&bare));
    assert_ok(&output);
    let patch: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/metadata/labels", "value": {"eks.amazonaws.com/pod-identity": "enabled"}})
    );
}

#[test]
fn unchanged_pod_gives_an_empty_patch() {
    let output = run(
        &["--service-account", SA, "-o", "patch"],
        Some("kind: Pod\nmetadata: {name: a}\nspec:\n  serviceAccountName: no-role\n  containers: [{name: a}]\n"),
    );
    assert_ok(&output);
    assert_eq!(stderr(&output), "");
    assert_eq!(serde_json::from_str::<Value>(&stdout(&output)).unwrap(), json!([]));
}
