//! `irsa-webhook trust-policy` through the real binary: golden outputs in tests/fixtures/trust-policy (one case per
//! file: a comment, the arguments, `---`, the exact stdout), refusals, and Terraform's own reading of the HCL.
//!
//! UPDATE_GOLDEN=1 cargo test --test trust_policy   rewrites the expected parts after an intended change.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod support;
use support::run_binary;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trust-policy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "golden"))
        .collect();
    files.sort();
    files
}

/// `(header lines, arguments, expected stdout)` of a fixture.
fn parse_fixture(text: &str) -> (String, Vec<String>, String) {
    let (head, expected) = text.split_once("\n---\n").expect("a line with --- after the arguments");
    let mut header = String::new();
    let mut args = Vec::new();
    for line in head.lines() {
        match line.strip_prefix("args:") {
            Some(rest) => args = rest.split_whitespace().map(str::to_owned).collect(),
            None => {
                header.push_str(line);
                header.push('\n');
            }
        }
    }
    assert!(!args.is_empty(), "no args: line");
    (header, args, expected.to_owned())
}

#[test]
fn golden_outputs() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let files = fixtures();
    assert!(files.len() >= 6, "expected the trust-policy fixtures, found {}", files.len());
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read fixture");
        let (header, args, expected) = parse_fixture(&text);
        let mut argv = vec!["trust-policy"];
        argv.extend(args.iter().map(String::as_str));
        let output = run_binary(&argv);
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        assert!(output.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
        if update {
            std::fs::write(&file, format!("{header}args: {}\n---\n{stdout}", args.join(" "))).expect("write fixture");
        } else if stdout != expected {
            failures.push(format!("{}:\n--- expected\n{expected}--- got\n{stdout}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The JSON output is the same document the Terraform output encodes: ask Terraform itself, when it is installed.
#[test]
fn terraform_evaluates_to_the_json_policy() {
    let terraform_present = Command::new("terraform").arg("version").output().is_ok_and(|o| o.status.success());
    if !terraform_present {
        eprintln!("terraform not installed: skipping the cross-check (the golden files still pin the HCL)");
        return;
    }
    let base = [
        "trust-policy",
        "--issuer",
        "https://oidc.example.com/id/X",
        "--account",
        "111122223333",
        "--service-account",
        "team-*/app",
        "--service-account",
        "default/app",
        "--audience",
        "aud-with-${template}",
    ];
    let json: Value = serde_json::from_slice(&run_binary(&base).stdout).expect("json output");
    let hcl = String::from_utf8(run_binary(&[&base[..], &["-o", "terraform"]].concat()).stdout).expect("utf-8");

    let expression = hcl
        .split_once("assume_role_policy = ")
        .and_then(|(_, rest)| rest.strip_suffix("\n}\n"))
        .expect("assume_role_policy = jsonencode(...) as the last attribute");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("main.tf"), format!("locals {{\n  p = {expression}\n}}\n")).expect("write");
    let mut console = Command::new("terraform")
        .args(["console", "-no-color"])
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("terraform console");
    use std::io::Write;
    console.stdin.take().expect("stdin").write_all(b"local.p\n").expect("write");
    let output = console.wait_with_output().expect("terraform console");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The console prints the string as an HCL literal, whose escapes are JSON's for this content.
    let literal: String = serde_json::from_slice(&output.stdout).expect("a quoted string");
    let evaluated: Value = serde_json::from_str(&literal).expect("jsonencode gives JSON");
    assert_eq!(evaluated, json);
}

#[test]
fn refusals_are_one_line_and_non_zero() {
    let base = ["trust-policy", "--service-account", "default/app"];
    let issuer = "https://oidc.example.com";
    let account = "111122223333";
    for (extra, reason) in [
        (&["--issuer", "http://oidc.example.com", "--account", account][..], "https://"),
        (&["--issuer", "https://oidc.example.com/", "--account", account][..], "must not end with '/'"),
        (&["--issuer", "https://oidc.example.com?a=b", "--account", account][..], "query"),
        (&["--issuer", "https://oidc.example.com#x", "--account", account][..], "fragment"),
        (&["--issuer", issuer, "--account", "12"][..], "12-digit"),
        (&["--issuer", issuer, "--account", account, "--service-account", "app"][..], "NAMESPACE/NAME"),
        (&["--issuer", issuer, "--account", account, "--partition", "AWS"][..], "partition"),
        (&["--issuer", issuer, "--account", account, "--role-name", "x"][..], "-o terraform"),
        (&["--issuer", issuer, "--account", account, "-o", "terraform", "--role-name", "a b"][..], "IAM role name"),
    ] {
        let output = run_binary(&[&base[..], extra].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra:?} succeeded");
        assert!(output.stdout.is_empty(), "{extra:?} printed to stdout");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: {stderr}");
        assert!(stderr.starts_with("irsa-webhook: ") && stderr.contains(reason), "{extra:?}: {stderr}");
    }
}

#[test]
fn a_port_in_the_issuer_is_a_warning() {
    let output = run_binary(&[
        "trust-policy",
        "--issuer",
        "https://oidc.example.com:8443",
        "--account",
        "111122223333",
        "--service-account",
        "default/app",
    ]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("warning: issuer"));
    let policy: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        policy["Statement"][0]["Principal"]["Federated"],
        "arn:aws:iam::111122223333:oidc-provider/oidc.example.com:8443"
    );
}
