//! Rendering the chart with helm, and the `ok - ` / `not ok - ` checks on its objects.

use super::*;

pub fn chart() -> PathBuf {
    Path::new(ROOT).join("charts/irsa-webhook")
}

/// The helm binary, or None after printing why the calling test is skipped.
pub fn helm(test: &str) -> Option<&'static Path> {
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

pub fn run_helm(helm: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm).args(args).output().map_err(|e| format!("cannot run {}: {e}", helm.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

pub struct Rendering {
    pub text: String,
    pub objs: Vec<Value>,
}

/// `helm template RELEASE CHART -n NAMESPACE ARGS...`, parsed into its objects.
pub fn template(helm: &Path, release: &str, namespace: &str, args: &[&str]) -> Result<Rendering, String> {
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

// --- assertions

/// One `ok - ...` / `not ok - ...` line per check (seen with --nocapture); the test fails at the end with every
/// failed line, so one run shows all that is wrong.
pub struct Checks {
    pub label: String,
    pub passed: usize,
    pub failed: Vec<String>,
}

impl Checks {
    pub fn new(label: impl Into<String>) -> Self {
        Checks { label: label.into(), passed: 0, failed: Vec::new() }
    }

    pub fn ok(&mut self, cond: bool, what: impl Display, detail: impl Debug) -> bool {
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

    pub fn finish(self) {
        println!("{}: {} checks passed, {} failed", self.label, self.passed, self.failed.len());
        assert!(
            self.failed.is_empty(),
            "{} of the chart's checks failed:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        );
    }
}

pub fn all<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

pub fn all_in_group<'a>(objs: &'a [Value], kind: &str, group: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind && api_group(o) == group).collect()
}

pub fn api_group(obj: &Value) -> &str {
    obj["apiVersion"].as_str().unwrap_or_default().split('/').next().unwrap_or_default()
}

pub fn one<'a>(c: &mut Checks, objs: &'a [Value], kind: &str) -> &'a Value {
    let found = all(objs, kind);
    c.ok(found.len() == 1, format!("exactly one {kind}"), format!("found {}", found.len()));
    found.first().copied().unwrap_or(&NULL)
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `a` is an object whose every entry is in `b` (label selectors against labels).
pub fn subset(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => a.iter().all(|(k, v)| b.get(k) == Some(v)),
        _ => false,
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// (apiGroups, resources, sorted verbs, resourceNames) of each rule of a Role or ClusterRole.
pub type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

pub fn rules_of(role: &Value) -> Vec<Rule> {
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

pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> Rule {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    (own(groups), own(resources), own(verbs), own(names))
}

/// The container's flags after the subcommand: name -> Some(value), or None for a bare switch.
pub fn flags_of(ctr: &Value) -> BTreeMap<String, Option<String>> {
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

pub fn seconds(text: Option<&str>) -> Option<u64> {
    humantime::parse_duration(text?).ok().map(|d| d.as_secs())
}
