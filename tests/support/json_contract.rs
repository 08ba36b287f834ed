//! The request path's JSON reader (`irsa_webhook::json`) against serde_json on the same bytes: the contract of
//! src/json/mod.rs, written once. Shared by the differential tests (`tests/json_differential.rs`, through
//! `tests/support`) and the fuzz target (`fuzz/fuzz_targets/review.rs`, which includes this file with `#[path]`).

use irsa_webhook::mutate::Pod;
use serde::Deserialize;
use serde_json::Value;

/// A review as far as the request path reads its pod: the pod nested where the API server puts it.
#[derive(Debug, Deserialize)]
struct Review<'a> {
    #[serde(borrow)]
    request: Option<Request<'a>>,
}

#[derive(Debug, Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    object: Option<Pod<'a>>,
}

/// Equal, floats within a relative 1e-14: serde_json's default float parsing is best-effort (its `float_roundtrip`
/// feature is off, and it can be a few units in the last place off), ours is `str::parse`, correctly rounded.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64(), x.as_i64(), y.as_i64()) {
            (Some(p), Some(q), _, _) => p == q,
            (_, _, Some(p), Some(q)) => p == q,
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p == q || (p - q).abs() <= 1e-14 * p.abs().max(q.abs()),
                _ => false,
            },
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same_value(p, q))
        }
        _ => a == b,
    }
}

/// The contract on one document; `Err` says how it was broken.
pub fn check(text: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(text).chars().take(400).collect::<String>();
    // Every value read: the same value, or both refuse.
    let ours = irsa_webhook::json::from_slice::<Value>(text);
    let theirs = serde_json::from_slice::<Value>(text);
    let valid = theirs.is_ok();
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) if !same_value(a, b) => {
            return Err(format!("Value differs on {}: ours {a}, serde_json {b}", shown()))
        }
        (Ok(_), Err(e)) => return Err(format!("ours reads {} as a Value; serde_json refuses it: {e}", shown())),
        (Err(e), Ok(_)) => return Err(format!("ours refuses {}: {e}; serde_json reads it", shown())),
        _ => {}
    }
    // The request path's pod, most of it skipped, on its own and inside a review: where serde_json decodes it,
    // ours decodes the same; on valid JSON both decide the same way; elsewhere ours may accept a fault inside a
    // skipped value, but must return.
    same_decision(
        irsa_webhook::json::from_slice::<Pod>(text).map(|p| format!("{p:?}")),
        serde_json::from_slice::<Pod>(text).map(|p| format!("{p:?}")),
        valid,
        "pod",
    )
    .map_err(|e| format!("{e} on {}", shown()))?;
    same_decision(
        irsa_webhook::json::from_slice::<Review>(text).map(|r| format!("{r:?}")),
        serde_json::from_slice::<Review>(text).map(|r| format!("{r:?}")),
        valid,
        "review",
    )
    .map_err(|e| format!("{e} on {}", shown()))?;
    Ok(())
}

/// One typed decode under both readers, shown with `Debug`.
fn same_decision(
    ours: Result<String, irsa_webhook::json::Error>,
    theirs: Result<String, serde_json::Error>,
    valid: bool,
    what: &str,
) -> Result<(), String> {
    match (ours, theirs) {
        (Ok(a), Ok(b)) if a != b => Err(format!("the {what} differs:\nours       {a}\nserde_json {b}\n")),
        (Err(e), Ok(_)) => Err(format!("ours refuses the {what} ({e}); serde_json decodes it")),
        (Ok(_), Err(e)) if valid => Err(format!("ours decodes the {what}; serde_json refuses this valid JSON ({e})")),
        _ => Ok(()),
    }
}
