//! What every mutation must satisfy, whatever the pod: the patch only adds, at the paths we own, applies cleanly,
//! adds nothing twice and leaves every other field as it was.
//!
//! Shared by the property tests (`tests/mutate_props.rs`, through `tests/support`) and the fuzz target
//! (`fuzz/fuzz_targets/mutate.rs`, which includes this file with `#[path]`), so the invariants are written once.

use serde::Deserialize as _;
use serde_json::Value;

/// The patch as `(op, path)` pairs.
pub fn ops(patch: &json_patch::Patch) -> Vec<(String, String)> {
    patch
        .0
        .iter()
        .map(|op| {
            let value = serde_json::to_value(op).unwrap_or_default();
            let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
            (field("op"), field("path"))
        })
        .collect()
}

/// The only places the mutation may write.
pub fn path_is_ours(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "/metadata",
        "/metadata/labels",
        "/metadata/labels/eks.amazonaws.com~1pod-identity",
        "/spec/volumes",
        "/spec/volumes/-",
        "/spec/securityContext",
        "/spec/securityContext/fsGroup",
        "/spec/securityContext/fsGroupChangePolicy",
    ];
    if EXACT.contains(&path) {
        return true;
    }
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "spec", "containers" | "initContainers", index, "env" | "volumeMounts", rest @ ..]
            if index.parse::<usize>().is_ok() && (rest.is_empty() || rest == ["-"])
    )
}

/// Checks `patch`, computed for `pod`, and returns the patched pod: only `add` operations, only at our paths; it
/// applies; no volume name, env name or mount path is duplicated that was not already; and taking every `add` back
/// gives the original pod again, so nothing outside the added paths changed.
pub fn check_patch(pod: &Value, patch: &json_patch::Patch) -> Result<Value, String> {
    let ops = ops(patch);
    for (op, path) in &ops {
        if op != "add" {
            return Err(format!("op {op} at {path}: the mutation only adds"));
        }
        if !path_is_ours(path) {
            return Err(format!("the patch writes outside our paths: {path}"));
        }
    }
    let mut result = pod.clone();
    json_patch::patch(&mut result, patch).map_err(|e| format!("the patch does not apply: {e}; ops: {ops:?}"))?;
    let (before, after) = (duplicates(pod), duplicates(&result));
    if after != before {
        return Err(format!("duplicates after the mutation: {after:?} (before: {before:?})"));
    }
    let undone = undo(result.clone(), &ops).map_err(|e| format!("cannot take the patch back: {e}"))?;
    if drop_nulls(undone.clone()) != drop_nulls(pod.clone()) {
        return Err(format!("a field outside the patch's paths changed:\nbefore: {pod}\nundone: {undone}"));
    }
    Ok(result)
}

/// `Ok` when `value` deserializes as a Kubernetes Pod (what the API server will do with the patched object).
pub fn typed_pod(value: &Value) -> Result<(), String> {
    k8s_openapi::api::core::v1::Pod::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// Volume names, and env names and mount paths per container, that occur more than once (`what: item`).
pub fn duplicates(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, items: Vec<String>| {
        let mut seen = std::collections::BTreeSet::new();
        for item in items {
            if !seen.insert(item.clone()) {
                out.push(format!("{what}: {item}"));
            }
        }
    };
    let strings = |list: &Value, key: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.get(key)?.as_str().map(|s| s.trim_end_matches('/').to_owned()))
            .collect()
    };
    check("volume".into(), strings(&pod["spec"]["volumes"], "name"));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for (i, c) in pod["spec"][list].as_array().into_iter().flatten().enumerate() {
            check(format!("{list}[{i}] env"), strings(&c["env"], "name"));
            check(format!("{list}[{i}] mountPath"), strings(&c["volumeMounts"], "mountPath"));
        }
    }
    out
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Takes back every `add`, newest first: what remains must be the original pod.
fn undo(mut pod: Value, ops: &[(String, String)]) -> Result<Value, String> {
    for (_, path) in ops.iter().rev() {
        let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("bad path {path}"))?;
        let parent = pod.pointer_mut(parent).ok_or_else(|| format!("parent of {path} is gone"))?;
        match parent {
            Value::Array(items) if last == "-" => {
                items.pop().ok_or_else(|| format!("{path}: nothing to pop"))?;
            }
            Value::Array(items) => {
                let index: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
                if index >= items.len() {
                    return Err(format!("{path}: index out of range"));
                }
                items.remove(index);
            }
            Value::Object(map) => {
                map.remove(&unescape(last)).ok_or_else(|| format!("{path}: nothing to remove"))?;
            }
            _ => return Err(format!("{path}: parent is neither array nor object")),
        }
    }
    Ok(pod)
}

/// `add` may replace a null (env: null → [...]); nulls are compared as absent.
pub fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, drop_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}
