//! `irsa-webhook doctor -f`: the real binary on the cases under `tests/fixtures/doctor/<case>/` (see the README
//! there), plus the exit statuses for bad input. Every failing case is reported at once.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod support;
use support::{irsa_webhook, output_with_stdin};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor")
}

fn doctor(args: &[&str]) -> Output {
    irsa_webhook()
        .arg("doctor")
        .args(args)
        // The mutation flags also come from IRSA_* variables; a developer's shell must not change the outcome.
        .env_clear()
        .output()
        .expect("run irsa-webhook")
}

/// A finding as printed: `status  check  message[ → fix]`.
struct Line {
    status: String,
    check: String,
    rest: String,
}

fn parse_text(stdout: &str) -> Vec<Line> {
    stdout
        .lines()
        .map(|line| {
            let (status, rest) = line.split_once(' ').unwrap_or((line, ""));
            let rest = rest.trim_start();
            let (check, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            Line { status: status.to_owned(), check: check.to_owned(), rest: rest.trim_start().to_owned() }
        })
        .collect()
}

fn case_args(dir: &Path) -> Vec<String> {
    let mut args = vec![
        "-f".to_owned(),
        dir.join("pod.yaml").display().to_string(),
        "--service-account".to_owned(),
        dir.join("serviceaccounts.yaml").display().to_string(),
    ];
    if let Ok(extra) = std::fs::read_to_string(dir.join("args")) {
        let case = dir.display().to_string();
        args.extend(extra.lines().filter(|l| !l.trim().is_empty()).map(|l| l.replace("{case}", &case)));
    }
    args
}

/// Checks one case; returns what is wrong with it.
fn check_case(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let args = case_args(dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = doctor(&args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines = parse_text(&stdout);
    let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");

    for (number, raw) in expected.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("expected.txt:{}: {line}", number + 1);
        if let Some(code) = line.strip_prefix("exit ") {
            if output.status.code() != code.parse().ok() {
                errors.push(format!("{at}: exit status was {:?}", output.status.code()));
            }
        } else if let Some(absent) = line.strip_prefix("! ") {
            let mut words = absent.split_whitespace();
            let (status, check) = (words.next().unwrap_or_default(), words.next());
            if lines.iter().any(|l| l.status == status && check.is_none_or(|c| c == l.check)) {
                errors.push(format!("{at}: present"));
            }
        } else {
            let mut words = line.splitn(3, ' ');
            let (status, check, text) =
                (words.next().unwrap_or_default(), words.next().unwrap_or_default(), words.next().unwrap_or(""));
            if !lines.iter().any(|l| l.status == status && l.check == check && l.rest.contains(text)) {
                errors.push(format!("{at}: missing"));
            }
        }
    }

    // -o json says the same thing.
    let mut json_args = args.clone();
    json_args.extend(["-o", "json"]);
    let json_output = doctor(&json_args);
    match serde_json::from_slice::<Vec<Value>>(&json_output.stdout) {
        Ok(findings) => {
            if findings.len() != lines.len() {
                errors.push(format!("-o json has {} findings, text {}", findings.len(), lines.len()));
            }
            for (finding, line) in findings.iter().zip(&lines) {
                let text = |key| finding.get(key).and_then(Value::as_str).unwrap_or_default();
                let expected = match finding.get("fix").and_then(Value::as_str) {
                    Some(fix) => format!("{} → {fix}", text("message")),
                    None => text("message").to_owned(),
                };
                if text("status") != line.status || text("check") != line.check || expected != line.rest {
                    errors.push(format!("-o json differs from the text for {} {}", line.status, line.check));
                }
            }
            if json_output.status.code() != output.status.code() {
                errors.push("-o json exits differently".to_owned());
            }
        }
        Err(error) => errors.push(format!("-o json is not a list: {error}")),
    }

    if !errors.is_empty() {
        errors.push(format!("stdout:\n{stdout}stderr:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    errors
}

#[test]
fn fixture_cases() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/doctor")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "expected the doctor fixture cases, found {}", dirs.len());
    let mut report = String::new();
    for dir in &dirs {
        let errors = check_case(dir);
        if !errors.is_empty() {
            report.push_str(&format!("\n== {}\n{}\n", dir.display(), errors.join("\n")));
        }
    }
    assert!(report.is_empty(), "failing doctor fixtures:{report}");
}

#[test]
fn output_columns_are_aligned_and_greppable() {
    let dir = fixtures().join("not-mutated");
    let args = case_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = String::from_utf8(doctor(&args).stdout).unwrap();
    for line in stdout.lines() {
        let status = &line[..8];
        assert!(["ok      ", "problem ", "hint    "].contains(&status), "{line}");
        assert_eq!(&line[8..9], " ", "{line}");
        assert!(!line[9..26].starts_with(' ') && line.as_bytes()[26] == b' ', "{line}");
    }
}

#[test]
fn the_manifest_can_come_from_stdin() {
    let dir = fixtures().join("healthy");
    let pod = std::fs::read(dir.join("pod.yaml")).unwrap();
    let output = output_with_stdin(
        irsa_webhook()
            .args(["doctor", "-f", "-", "--service-account"])
            .arg(dir.join("serviceaccounts.yaml"))
            .env_clear(),
        &pod,
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok       injection"));
}

#[test]
fn bad_usage_and_unreadable_input_exit_2() {
    let healthy = fixtures().join("healthy");
    let pod = healthy.join("pod.yaml");
    let pod = pod.to_str().unwrap();
    let service_accounts = healthy.join("serviceaccounts.yaml");
    let policy = fixtures().join("role-policy-allows/policy.json");
    let policy = policy.to_str().unwrap();
    let cases: &[&[&str]] = &[
        // Nothing to check, both targets, an unknown kind, a ServiceAccount file without -f.
        &[],
        &["pod", "team/app", "-f", pod],
        &["deployment", "team/app"],
        &["pod", "team/app", "--service-account", pod],
        // A file that is not there, not a pod, not YAML; bad mutation flags.
        &["-f", "/nonexistent/pod.yaml"],
        &["-f", service_accounts.to_str().unwrap()],
        &["-f", pod, "--service-account", pod],
        &["-f", pod, "--compose-role-arn"],
        // IAM's side: offline needs --issuer; a valid one; stdin once; a token only from a cluster; a policy file.
        &["-f", pod, "--role-policy", policy],
        &["-f", pod, "--role-policy", policy, "--issuer", "http://oidc.example.com"],
        &["-f", "-", "--role-policy", "-", "--issuer", "https://oidc.example.com"],
        &["-f", pod, "--token-request"],
        &["-f", pod, "--role-policy", "/nonexistent/role.json", "--issuer", "https://oidc.example.com"],
        &["-f", pod, "--role-policy", pod, "--issuer", "https://oidc.example.com"],
        // The scan takes no pod-only flags.
        &["pods", "-A", "--role-policy", policy],
        &["pods", "-n", "team", "--issuer", "https://oidc.example.com"],
        &["pods", "team/app", "-A"],
    ];
    for args in cases {
        let output = doctor(args);
        assert_eq!(output.status.code(), Some(2), "doctor {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stdout.is_empty(), "doctor {args:?} printed findings");
    }
    // A pod the webhook itself could not read.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pod.yaml");
    std::fs::write(&bad, "kind: Pod\nmetadata: {name: x}\nspec: {containers: oops}\n").unwrap();
    let output = doctor(&["-f", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid Pod"), "{output:?}");
}

#[test]
fn an_unreachable_cluster_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let output = doctor(&["pod", "team/app", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/api/v1/namespaces/team/pods/app"));
    // The scan too: its first LIST is named.
    let output = doctor(&["pods", "--all-namespaces", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/api/v1/serviceaccounts?limit=500"), "{output:?}");
}
