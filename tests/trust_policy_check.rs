//! `irsa-webhook trust-policy check` through the real binary: table-driven cases in
//! tests/fixtures/trust-policy-check (one per file; see the README there), bad input, and a property: the policy
//! `irsa-webhook trust-policy` prints lets in exactly the ServiceAccount it was printed for.
//!
//! UPDATE_GOLDEN=1 cargo test --test trust_policy_check   rewrites the expected parts after an intended change.

use std::path::{Path, PathBuf};
use std::process::Output;

use irsa_webhook::doctor::Status;
use irsa_webhook::iam::{self, Decision, Facts};
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::oidc::Issuer;
use irsa_webhook::trust_policy::TrustPolicyRequest;
use proptest::prelude::*;
use serde_json::Value;

mod support;
use support::{irsa_webhook, output_with_stdin};

fn check(args: &[&str], stdin: &[u8]) -> Output {
    output_with_stdin(irsa_webhook().args(["trust-policy", "check"]).args(args).env_clear(), stdin)
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trust-policy-check")
}

/// A case file: `# comments`, `args: ...`, `exit: N`, then `--- policy` and `--- expected` sections.
struct Case {
    header: Vec<String>,
    args: Vec<String>,
    exit: i32,
    policy: String,
    expected: String,
}

fn parse_case(text: &str) -> Case {
    let (head, rest) = text.split_once("--- policy\n").expect("a '--- policy' line");
    let (policy, expected) = rest.split_once("--- expected\n").expect("a '--- expected' line");
    let mut case = Case {
        header: Vec::new(),
        args: Vec::new(),
        exit: -1,
        policy: policy.to_owned(),
        expected: expected.to_owned(),
    };
    for line in head.lines() {
        if let Some(args) = line.strip_prefix("args:") {
            case.args = args.split_whitespace().map(str::to_owned).collect();
        } else if let Some(code) = line.strip_prefix("exit:") {
            case.exit = code.trim().parse().expect("exit: N");
        } else {
            case.header.push(line.to_owned());
        }
    }
    assert!(!case.args.is_empty(), "no args: line");
    case
}

fn render_case(case: &Case, exit: i32, stdout: &str) -> String {
    let mut text = String::new();
    for line in &case.header {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "args: {}\nexit: {exit}\n--- policy\n{}--- expected\n{stdout}",
        case.args.join(" "),
        case.policy
    ));
    text
}

#[test]
fn cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "expected the trust-policy-check cases, found {}", files.len());
    let mut failures = Vec::new();
    for file in files {
        let case = parse_case(&std::fs::read_to_string(&file).expect("read case"));
        let mut args: Vec<&str> = vec!["--policy", "-"];
        args.extend(case.args.iter().map(String::as_str));
        let output = check(&args, case.policy.as_bytes());
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let exit = output.status.code().unwrap_or(-1);
        if update {
            std::fs::write(&file, render_case(&case, exit, &stdout)).expect("write case");
            continue;
        }
        if exit != case.exit || stdout != case.expected {
            failures.push(format!(
                "{}: exit {exit} (expected {})\n--- expected\n{}--- got\n{stdout}--- stderr\n{stderr}",
                file.display(),
                case.exit,
                case.expected
            ));
        }
        // Every line is `status check message[ → fix]`, and a problem always comes with its fix.
        for line in stdout.lines() {
            let status = line.split_whitespace().next().unwrap_or_default();
            assert!(["ok", "problem", "hint"].contains(&status), "{}: {line}", file.display());
            let fixed = status != "problem" || line.contains(" → ");
            assert!(fixed, "{}: a problem without a fix: {line}", file.display());
        }
        let problems = stdout.lines().filter(|l| l.starts_with("problem ")).count();
        assert_eq!(exit == 1, problems > 0, "{}: exit {exit} with {problems} problem line(s)", file.display());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn policy_file(name: &str) -> String {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("read case");
    parse_case(&text).policy
}

#[test]
fn files_json_output_and_a_get_role_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("role.json");
    std::fs::write(&path, policy_file("eksctl-allows.case")).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let output = check(&["--policy", path, "--issuer", ISSUER, "--service-account", "team/ap", "-o", "json"], b"");
    assert_eq!(output.status.code(), Some(1));
    let findings: Value = serde_json::from_slice(&output.stdout).expect("json");
    let problem = &findings.as_array().expect("a list")[0];
    assert_eq!(problem["status"], "problem");
    assert_eq!(problem["check"], "trust-policy");
    assert!(problem["fix"].as_str().expect("fix").contains("system:serviceaccount:team:ap"), "{problem}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ServiceAccount team/ap: 1 problem(s)"), "{stderr}");
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let permissions =
        br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let huge = vec![b' '; 64 * 1024 + 1];
    let sa = "team/app";
    let cases: [(&[&str], &[u8], &str); 9] = [
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", sa], b"", "empty"),
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", sa], b"{\"Statement\": [", "not JSON"),
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", sa], permissions, "permissions policy"),
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", sa], &huge, "larger than 65536 bytes"),
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", sa], b"%7B%2", "URL encoding"),
        (&["--policy", "/nonexistent/role.json", "--issuer", ISSUER, "--service-account", sa], b"", "cannot read"),
        (
            &["--policy", "-", "--issuer", ISSUER, "--service-account", sa, "--role-arn", "arn:aws:iam::1:role/x"],
            b"{}",
            "12 digits",
        ),
        (
            &["--policy", "-", "--issuer", "https://x.example.com/", "--service-account", sa],
            b"{}",
            "must not end with '/'",
        ),
        (&["--policy", "-", "--issuer", ISSUER, "--service-account", "team/*"], b"{}", "name one ServiceAccount"),
    ];
    for (args, stdin, reason) in cases {
        let output = check(args, stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("irsa-webhook trust-policy check: ") && stderr.contains(reason),
            "{args:?}: {stderr}"
        );
    }
}

/// A DNS label (namespace) or subdomain-ish name (ServiceAccount), as Kubernetes allows them.
fn label(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9]([a-z0-9-]{{0,{}}}[a-z0-9])?", max - 2)).expect("regex")
}

fn issuer() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(label(12), 1..4),
        prop_oneof![Just(".com"), Just(".amazonaws.com"), Just(".amazonaws.com.cn"), Just(".example")],
        proptest::option::of(1024u16..65535),
        proptest::collection::vec("[A-Za-z0-9._~-]{1,12}", 0..3),
    )
        .prop_map(|(labels, tld, port, path)| {
            let mut url = format!("https://{}{tld}", labels.join("."));
            if let Some(port) = port {
                url.push_str(&format!(":{port}"));
            }
            for segment in path {
                url.push('/');
                url.push_str(&segment);
            }
            url
        })
        .prop_filter("a valid issuer", |url| Issuer::parse(url).is_ok())
}

/// `value` with one character changed, inserted or removed at `at`.
fn neighbour(value: &str, at: usize, edit: u8, with: char) -> Option<String> {
    let mut chars: Vec<char> = value.chars().collect();
    let at = at % (chars.len() + 1);
    match edit % 3 {
        0 if at < chars.len() && chars[at] != with => chars[at] = with,
        1 => chars.insert(at, with),
        2 if at < chars.len() && chars.len() > 1 => {
            chars.remove(at);
        }
        _ => return None,
    }
    let changed: String = chars.into_iter().collect();
    (changed != value).then_some(changed)
}

fn verdict(policy: &iam::RolePolicy, issuer: &Issuer, sa: &ServiceAccountRef, role: &str) -> (Decision, bool) {
    let facts = Facts { issuer, service_account: sa, audience: "sts.amazonaws.com", role_arn: Some(role) };
    let findings = iam::check(policy, &facts);
    let request = iam::Request::new(issuer.clone(), sa.clone(), "sts.amazonaws.com", Some(role));
    let decision = iam::evaluate(&policy.document, &request).decision;
    (decision, findings.iter().any(|f| f.status == Status::Problem))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_printed_policy_admits_exactly_its_service_account(
        issuer in issuer(),
        namespace in label(63),
        name in label(63),
        partition in prop_oneof![Just("aws"), Just("aws-cn"), Just("aws-us-gov")],
        account in "[0-9]{12}",
        at in 0usize..64,
        edit in 0u8..3,
        with in proptest::sample::select(('a'..='z').chain('0'..='9').chain(['-']).collect::<Vec<char>>()),
        in_namespace in any::<bool>(),
    ) {
        let service_account = [format!("{namespace}/{name}")];
        let request = TrustPolicyRequest::new(&issuer, &account, partition, "sts.amazonaws.com", &service_account)
            .expect("a valid request");
        // Through the text people paste, not the value: what `trust-policy` prints is what `check` reads.
        let printed = serde_json::to_string_pretty(&request.policy()).expect("json");
        let policy = iam::parse(printed.as_bytes()).expect("the printed policy parses");
        let parsed_issuer = Issuer::parse(&issuer).expect("issuer");
        let role = format!("arn:{partition}:iam::{account}:role/app");

        let (decision, problem) = verdict(&policy, &parsed_issuer, &ServiceAccountRef::new(&namespace, &name), &role);
        prop_assert_eq!(decision, Decision::Allowed);
        prop_assert!(!problem);

        let (namespace_2, name_2) = if in_namespace {
            (neighbour(&namespace, at, edit, with), Some(name.clone()))
        } else {
            (Some(namespace.clone()), neighbour(&name, at, edit, with))
        };
        if let (Some(namespace_2), Some(name_2)) = (namespace_2, name_2) {
            let neighbour = ServiceAccountRef::new(&namespace_2, &name_2);
            let (decision, problem) = verdict(&policy, &parsed_issuer, &neighbour, &role);
            prop_assert_eq!(decision, Decision::NotAllowed, "{}/{} let in", namespace_2, name_2);
            prop_assert!(problem);
        }
    }
}
