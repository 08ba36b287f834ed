//! Every JSON pointer into a value, for the property tests and fuzz targets that graft junk anywhere in a pod or a
//! review. Shared by `tests/support` and `fuzz/src/lib.rs` (which includes this file with `#[path]`), so it is
//! written once.

use serde_json::Value;

/// Every JSON pointer below `value` (not the root itself), in document order, keys escaped as RFC 6901 says
/// (`~` → `~0`, `/` → `~1`).
pub fn pointers(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn walk(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                walk(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                walk(v, p, out);
            }
        }
        _ => {}
    }
}
