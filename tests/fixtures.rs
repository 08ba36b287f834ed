//! The fixture suite: one YAML file per case under `tests/fixtures/mutate/<area>/<case>.yaml`.
//!
//! Each case gives a pod, the ServiceAccounts the offline lookup sees, the container-credentials config and the
//! mutation flags exactly as on the command line, and what must come out: the whole mutated pod (or `unchanged`)
//! and the warnings. Every case is also checked for properties that hold for any input: the mutation is idempotent,
//! the result is still a Pod, and nothing is added twice. Converted reference cases (`reference:`) are compared
//! with the outcome of the reference webhook's own expected patch; when the originals (outside the repository) are
//! there, `converted_reference_cases_match_the_originals` checks each patch was copied verbatim, and otherwise says
//! it was skipped.
//!
//! All failing files are reported at once. `FIXTURES_SHOW_ACTUAL=1` also prints the actual mutated pod as YAML.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use irsa_webhook::cli::{Cli, Command};
use irsa_webhook::commands::mutate::mutate_with_service_accounts;
use irsa_webhook::container_credentials::ContainerCredentialsConfig;
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::manifest::ServiceAccountManifest;
use irsa_webhook::settings::MutationSettings;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    description: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    service_accounts: Vec<Value>,
    #[serde(default)]
    container_credentials: Vec<Value>,
    pod: Value,
    expect: Expect,
    reference: Option<Reference>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    pod: Option<Value>,
    #[serde(default)]
    unchanged: bool,
    /// Each must occur in some warning, and each warning must contain one of them. Absent: no warnings allowed.
    warnings: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Reference {
    source: String,
    differences: Vec<String>,
    expected_patch: String,
}

struct Inputs {
    settings: MutationSettings,
    service_accounts: HashMap<ServiceAccountRef, ServiceAccountManifest>,
    container_credentials: ContainerCredentialsConfig,
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mutate")
}

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            case_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_holds() {
    let root = fixtures_root();
    let mut files = Vec::new();
    case_files(&root, &mut files);
    let mut failures = Vec::new();
    if files.len() < 50 {
        failures.push(format!("only {} fixture files under {}", files.len(), root.display()));
    }
    let mut reference_sources = BTreeSet::new();
    for file in &files {
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        match run_case(file) {
            Ok(source) => {
                if let Some(source) = source {
                    if !reference_sources.insert(source.clone()) {
                        failures.push(format!("{name}: reference source {source} is converted twice"));
                    }
                }
            }
            Err(problems) => failures.push(format!("{name}:\n{}", indent(&problems))),
        }
    }
    // Every reference fixture is converted (16 in ../shared/reference/fixtures; see
    // converted_reference_cases_match_the_originals for the check against them).
    if reference_sources.len() != 16 {
        failures.push(format!("expected 16 converted reference fixtures, found {}", reference_sources.len()));
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixture files fail:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// The reference webhook's own fixtures, outside the repository: `$IRSA_SHARED/reference/fixtures`, by default
/// `../shared/reference/fixtures` beside the checkout (where CI and the workplace put shared/).
fn reference_originals() -> PathBuf {
    let shared = std::env::var_os("IRSA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    shared.join("reference/fixtures")
}

/// The converted reference cases against the originals, when they are there: every original is converted once,
/// and each `expectedPatch` is the original's, verbatim. Without the originals the converted fixtures in the
/// repository are the test (`every_fixture_holds`), and this one says plainly that it was skipped.
#[test]
fn converted_reference_cases_match_the_originals() {
    let originals = reference_originals();
    if !originals.is_dir() {
        // Straight to stderr: libtest captures println!/eprintln! of passing tests, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED fixtures::converted_reference_cases_match_the_originals: {} is absent (set IRSA_SHARED to the \
             shared/ folder); the converted cases under tests/fixtures/mutate/reference are still checked",
            originals.display()
        );
        return;
    }
    let mut want = Vec::new();
    original_files(&originals, &originals, &mut want);
    want.sort();
    let mut files = Vec::new();
    case_files(&fixtures_root().join("reference"), &mut files);
    let mut converted = Vec::new();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let case: Case =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: not a fixture: {e}", file.display()));
        let Some(reference) = case.reference else { continue };
        let source = originals.join(&reference.source);
        match std::fs::read_to_string(&source) {
            Ok(original) if original.contains(&reference.expected_patch) => {}
            Ok(_) => failures.push(format!("{}: expectedPatch is not the one in {}", file.display(), source.display())),
            Err(e) => failures.push(format!("{}: cannot read its source {}: {e}", file.display(), source.display())),
        }
        converted.push(reference.source);
    }
    converted.sort();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(converted, want, "every original in {} is converted exactly once", originals.display());
}

/// The fixture files below `dir` (not the licence files), as paths relative to `root`.
fn original_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            original_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Runs one case; `Ok(Some(source))` for a converted reference case.
fn run_case(file: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let case: Case = serde_yaml_ng::from_str(&text).map_err(|e| format!("not a fixture: {e}"))?;
    if case.description.trim().is_empty() {
        return Err("description is empty".into());
    }
    let inputs = inputs(&case)?;
    let mut problems = String::new();

    let mutation = mutate_with_service_accounts(
        &case.pod,
        &inputs.service_accounts,
        &inputs.container_credentials,
        &inputs.settings,
    )
    .map_err(|e| format!("mutate failed: {e}"))?;
    let mut actual = case.pod.clone();
    if let Err(e) = json_patch::patch(&mut actual, &mutation.patch) {
        return Err(format!(
            "our patch does not apply: {e}\npatch: {}",
            serde_json::to_string(&mutation.patch).unwrap()
        ));
    }

    // The expected outcome.
    match (&case.expect.pod, case.expect.unchanged) {
        (Some(_), true) => return Err("expect has both pod and unchanged: true".into()),
        (None, false) => return Err("expect needs pod or unchanged: true".into()),
        (Some(expected), false) => diff_into(&mut problems, "the mutated pod", expected, &actual),
        (None, true) => {
            if !mutation.patch.0.is_empty() {
                let _ = writeln!(
                    problems,
                    "expected no change, got patch {}",
                    serde_json::to_string(&mutation.patch).unwrap()
                );
            }
        }
    }
    check_warnings(&mut problems, case.expect.warnings.as_deref(), &mutation.warnings);

    // (a) Idempotence: the mutated pod needs nothing more.
    match mutate_with_service_accounts(
        &actual,
        &inputs.service_accounts,
        &inputs.container_credentials,
        &inputs.settings,
    ) {
        Ok(again) if again.patch.0.is_empty() => {}
        Ok(again) => {
            let _ = writeln!(
                problems,
                "not idempotent: mutating the result again gives {}",
                serde_json::to_string(&again.patch).unwrap()
            );
        }
        Err(e) => {
            let _ = writeln!(problems, "mutating the result again fails: {e}");
        }
    }
    // (b) Still a Pod as Kubernetes' own types see it.
    if let Err(e) = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(actual.clone()) {
        let _ = writeln!(problems, "the result does not deserialize as a Pod: {e}");
    }
    // (c) Nothing added twice.
    for duplicate in duplicates(&actual) {
        if !duplicates(&case.pod).contains(&duplicate) {
            let _ = writeln!(problems, "duplicate in the result: {duplicate}");
        }
    }

    let mut source = None;
    if let Some(reference) = &case.reference {
        check_reference(&mut problems, file, &case, reference, &actual);
        source = Some(reference.source.clone());
    }

    if std::env::var_os("FIXTURES_SHOW_ACTUAL").is_some() && !problems.is_empty() {
        let _ = writeln!(problems, "actual mutated pod:\n{}", serde_yaml_ng::to_string(&actual).unwrap());
        let _ = writeln!(problems, "actual warnings: {:?}", mutation.warnings);
    }
    if problems.is_empty() {
        Ok(source)
    } else {
        Err(problems)
    }
}

fn inputs(case: &Case) -> Result<Inputs, String> {
    let mut argv = vec!["irsa-webhook".to_owned(), "mutate".to_owned()];
    argv.extend(case.flags.iter().cloned());
    let command = Cli::try_parse_from(&argv).map_err(|e| format!("bad flags {:?}: {e}", case.flags))?.command;
    #[allow(irrefutable_let_patterns)]
    let Command::Mutate(args) = command
    else {
        return Err("`irsa-webhook mutate` did not parse as the mutate command".into());
    };
    let settings = args.mutation.to_settings().map_err(|e| format!("bad flags {:?}: {e}", case.flags))?;
    let mut service_accounts = HashMap::new();
    for sa in &case.service_accounts {
        let manifest = ServiceAccountManifest::from_object(sa).map_err(|e| format!("bad ServiceAccount: {e}"))?;
        service_accounts.insert(manifest.reference.clone(), manifest);
    }
    let config = json!({ "identities": case.container_credentials }).to_string();
    let container_credentials =
        ContainerCredentialsConfig::parse(&config).map_err(|e| format!("bad containerCredentials: {e}"))?;
    Ok(Inputs { settings, service_accounts, container_credentials })
}

fn check_warnings(problems: &mut String, expected: Option<&[String]>, actual: &[String]) {
    let expected = expected.unwrap_or_default();
    for wanted in expected {
        if !actual.iter().any(|w| w.contains(wanted.as_str())) {
            let _ = writeln!(problems, "no warning contains {wanted:?}; warnings: {actual:#?}");
        }
    }
    for warning in actual {
        if !expected.iter().any(|wanted| warning.contains(wanted.as_str())) {
            let _ = writeln!(problems, "unexpected warning: {warning:?}");
        }
    }
}

/// Env names per container, mount paths per container, volume names: each must be unique.
fn duplicates(pod: &Value) -> BTreeSet<String> {
    fn repeated<'a>(what: String, items: impl Iterator<Item = &'a str>, out: &mut BTreeSet<String>) {
        let mut seen = BTreeSet::new();
        for item in items {
            if !seen.insert(item) {
                out.insert(format!("{what} {item:?}"));
            }
        }
    }
    let mut out = BTreeSet::new();
    let spec = &pod["spec"];
    let names = |list: &Value, key: &'static str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get(key)?.as_str().map(|s| s.trim_end_matches('/').to_owned()))
            .collect()
    };
    let volumes = names(&spec["volumes"], "name");
    repeated("volume".into(), volumes.iter().map(String::as_str), &mut out);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in spec[list].as_array().into_iter().flatten() {
            let cname = container["name"].as_str().unwrap_or("?");
            let env = names(&container["env"], "name");
            repeated(format!("{list}/{cname}: env"), env.iter().map(String::as_str), &mut out);
            let mounts = names(&container["volumeMounts"], "mountPath");
            repeated(format!("{list}/{cname}: mountPath"), mounts.iter().map(String::as_str), &mut out);
        }
    }
    out
}

/// Applies the reference's expected patch to the same input and compares outcomes, ignoring Go artefacts.
fn check_reference(problems: &mut String, file: &Path, case: &Case, reference: &Reference, ours: &Value) {
    if !file.starts_with(fixtures_root().join("reference")) {
        let _ = writeln!(problems, "reference cases belong under tests/fixtures/mutate/reference/");
    }
    let patch: json_patch::Patch = match serde_json::from_str(&reference.expected_patch) {
        Ok(patch) => patch,
        Err(e) => {
            let _ = writeln!(problems, "reference expectedPatch is not a JSON Patch: {e}");
            return;
        }
    };
    let mut theirs = case.pod.clone();
    if let Err(e) = json_patch::patch(&mut theirs, &patch) {
        let _ = writeln!(problems, "reference expectedPatch does not apply to the input pod: {e}");
        return;
    }
    let theirs = normalize_go(theirs);
    let ours = normalize_go(ours.clone());
    match (reference.differences.is_empty(), theirs == ours) {
        (true, true) | (false, false) => {}
        (true, false) => {
            let mut diff = String::new();
            diff_into(&mut diff, "our outcome vs the reference's (expected = reference)", &theirs, &ours);
            let _ = write!(problems, "differences: [] but the outcomes differ:\n{diff}");
        }
        (false, true) => {
            let _ = writeln!(
                problems,
                "differences {:?} are listed, but our outcome equals the reference's: remove the stale notes",
                reference.differences
            );
        }
    }
}

/// Removes what Go's re-serialization adds or loses without meaning: nulls, `resources: {}`, `mountPath: ""`;
/// volumes are compared as a set (the reference prepends, we append).
fn normalize_go(pod: Value) -> Value {
    let mut pod = drop_nulls(pod);
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        for list in ["containers", "initContainers"] {
            for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                let Some(container) = container.as_object_mut() else { continue };
                if container.get("resources").is_some_and(|r| r.as_object().is_some_and(|o| o.is_empty())) {
                    container.remove("resources");
                }
                for mount in container.get_mut("volumeMounts").and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(mount) = mount.as_object_mut() {
                        if mount.get("mountPath").and_then(Value::as_str) == Some("") {
                            mount.remove("mountPath");
                        }
                    }
                }
            }
        }
        if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
            volumes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
    }
    pod
}

fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, drop_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

/// A readable, path-by-path difference (at most 40 lines).
fn diff_into(out: &mut String, what: &str, expected: &Value, actual: &Value) {
    let mut lines = Vec::new();
    diff_values("", expected, actual, &mut lines);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{what} differs from the expectation:");
    let total = lines.len();
    for line in lines.into_iter().take(40) {
        let _ = writeln!(out, "  {line}");
    }
    if total > 40 {
        let _ = writeln!(out, "  ... and {} more", total - 40);
    }
}

fn diff_values(path: &str, expected: &Value, actual: &Value, lines: &mut Vec<String>) {
    let show = |v: &Value| serde_json::to_string(v).unwrap();
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let p = format!("{path}/{key}");
                match a.get(key) {
                    Some(av) => diff_values(&p, ev, av, lines),
                    None => lines.push(format!("{p}: missing; expected {}", show(ev))),
                }
            }
            for (key, av) in a {
                if !e.contains_key(key) {
                    lines.push(format!("{path}/{key}: unexpected {}", show(av)));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff_values(&format!("{path}/{i}"), ev, av, lines);
            }
            for (i, ev) in e.iter().enumerate().skip(a.len()) {
                lines.push(format!("{path}/{i}: missing; expected {}", show(ev)));
            }
            for (i, av) in a.iter().enumerate().skip(e.len()) {
                lines.push(format!("{path}/{i}: unexpected {}", show(av)));
            }
        }
        (e, a) if e == a => {}
        (e, a) => {
            lines.push(format!("{}: expected {}, got {}", if path.is_empty() { "/" } else { path }, show(e), show(a)))
        }
    }
}
