//! Differential: the request path's JSON reader (`irsa_webhook::json`) against serde_json, on the same bytes.
//!
//! The contract (src/json/mod.rs): where serde_json accepts a document, ours decodes it to the same result, both for
//! `Value` (every value read) and for the request path's own `Pod` (most of it skipped); where the bytes are valid
//! JSON, both decide the same way (the same value, or both refuse it as the wrong type); and on any bytes at all,
//! ours returns (no panic, no hang). The documents are the example reviews' pods and generated JSON grafted into
//! them, written out with every kind of escape and spacing JSON allows, and then mangled byte by byte so the invalid
//! paths are taken too. The fuzz target `review` checks the same contract on arbitrary bytes (fuzz/).

use std::fmt::Write as _;

use proptest::prelude::*;
use serde_json::Value;

mod support;
use support::json_contract::check;
use support::pointers::pointers;

/// The pods the requests carry: the example reviews' (one bare, one a Deployment's, with managedFields).
fn base_pods() -> Vec<Value> {
    ["examples/admission-review.json", "examples/admission-review-deployment.json"]
        .iter()
        .map(|path| {
            let text = std::fs::read(support::repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            let review: Value = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            review["request"]["object"].clone()
        })
        .collect()
}

/// Strings with what JSON text makes hard: quotes, backslashes, control characters, non-ASCII, astral planes.
fn awkward_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ./_-]{0,12}",
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or(' ')),
                Just('\u{7f}'),
                Just('é'),
                Just('\u{2028}'),
                Just('\u{fffd}'),
                Just('😀'),
                any::<char>(),
                prop::char::range('a', 'z'),
            ],
            0..10
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// JSON values with awkward strings and numbers at the edges of each representation.
fn awkward_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(i64::MAX as u64 + 1), Just(0)].prop_map(Value::from),
        Just(Value::from(i64::MIN)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        awkward_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((awkward_string(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// How a document is written: which characters are escaped (and how), and the spacing between tokens. Every
/// choice yields JSON text serde_json reads to the same value.
#[derive(Clone, Debug)]
struct Style {
    /// Escape every n-th character of each string as `\uXXXX` (0: never); control characters and `"` `\` always.
    escape_every: usize,
    /// Use `\n`-style short escapes where they exist, else `\uXXXX`.
    short_escapes: bool,
    /// Whitespace written between tokens, cycled.
    spaces: Vec<&'static str>,
    /// Numbers written with a fraction or an exponent where the value allows it (`1.0`, `1e0`).
    exotic_numbers: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop_oneof![Just(0usize), 1usize..4],
        any::<bool>(),
        prop::collection::vec(prop_oneof![Just(""), Just(" "), Just("\n  "), Just("\t"), Just("\r\n")], 1..4),
        any::<bool>(),
    )
        .prop_map(|(escape_every, short_escapes, spaces, exotic_numbers)| Style {
            escape_every,
            short_escapes,
            spaces,
            exotic_numbers,
        })
}

struct Writer<'s> {
    style: &'s Style,
    out: String,
    gaps: usize,
}

impl Writer<'_> {
    fn gap(&mut self) {
        let space = self.style.spaces[self.gaps % self.style.spaces.len()];
        self.gaps += 1;
        self.out.push_str(space);
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for (i, c) in s.chars().enumerate() {
            let forced = c == '"' || c == '\\' || (c as u32) < 0x20;
            let chosen = self.style.escape_every > 0 && i % self.style.escape_every == 0;
            if !forced && !chosen {
                self.out.push(c);
                continue;
            }
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            match short {
                Some(escape) if self.style.short_escapes || c == '"' || c == '\\' => self.out.push_str(escape),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        // Upper and lower case hex digits are both JSON.
                        if self.gaps.is_multiple_of(2) {
                            let _ = write!(self.out, "\\u{unit:04x}");
                        } else {
                            let _ = write!(self.out, "\\u{unit:04X}");
                        }
                    }
                }
            }
        }
        self.out.push('"');
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let text = n.to_string();
                if self.style.exotic_numbers && n.is_f64() && !text.contains(['e', 'E']) {
                    // 12.5 → 1.25e1: the same f64 under a correct parser.
                    let _ = write!(self.out, "{:e}", n.as_f64().unwrap_or_default());
                } else {
                    self.out.push_str(&text);
                }
            }
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.gap();
                    self.value(item);
                }
                self.gap();
                self.out.push(']');
            }
            Value::Object(map) => {
                self.out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.gap();
                    self.string(key);
                    self.gap();
                    self.out.push(':');
                    self.gap();
                    self.value(item);
                }
                self.gap();
                self.out.push('}');
            }
        }
    }
}

fn write(value: &Value, style: &Style) -> Vec<u8> {
    let mut writer = Writer { style, out: String::new(), gaps: 0 };
    writer.value(value);
    writer.out.into_bytes()
}

fn graft(mut pod: Value, at: prop::sample::Index, junk: Value) -> Value {
    let all: Vec<String> = std::iter::once(String::new()).chain(pointers(&pod)).collect();
    let pointer = at.get(&all).clone();
    if pointer.is_empty() {
        return junk;
    }
    if let Some(slot) = pod.pointer_mut(&pointer) {
        *slot = junk;
    }
    pod
}

/// The pod alone, or where a review holds it.
fn in_review(pod: Value, wrap: bool) -> Value {
    if wrap {
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "object": pod}})
    } else {
        pod
    }
}

/// One byte edit: what breaks a scanner (brackets, quotes, escapes, bytes that are not UTF-8).
#[derive(Clone, Debug)]
enum Edit {
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Replace(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        prop::sample::select(b"\"\\{}[],:u0eE-+.tfn \x00\x1f\x7f".to_vec()),
        prop::sample::select(vec![0x80u8, 0xc3, 0xe2, 0xed, 0xf0, 0xff]),
        any::<u8>(),
    ];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Edit::Delete),
        (any::<prop::sample::Index>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<prop::sample::Index>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &mut Vec<u8>, edit: &Edit) {
    if text.is_empty() {
        return;
    }
    match edit {
        Edit::Delete(at) => {
            text.remove(at.index(text.len()));
        }
        Edit::Insert(at, b) => text.insert(at.index(text.len() + 1), *b),
        Edit::Replace(at, b) => {
            let i = at.index(text.len());
            text[i] = *b;
        }
        Edit::Truncate(at) => text.truncate(at.index(text.len())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Generated JSON on its own, in every style: everything is read, so both must agree exactly.
    #[test]
    fn generated_documents_read_the_same(value in awkward_json(), style in style()) {
        let text = write(&value, &style);
        // The text is JSON of this value: serde_json reads it, ours reads it back exactly (floats correctly rounded).
        prop_assert!(serde_json::from_slice::<Value>(&text).is_ok());
        prop_assert_eq!(irsa_webhook::json::from_slice::<Value>(&text).ok(), Some(value));
        check(&text).map_err(TestCaseError::fail)?;
    }

    /// The example pods with generated JSON grafted anywhere (the wrong type where a field is read, junk where it
    /// is skipped), in every style.
    #[test]
    fn pods_with_grafts_decode_the_same(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        junk in awkward_json(),
        style in style(),
        wrap in any::<bool>(),
    ) {
        let pod = in_review(graft(base_pods()[which].clone(), at, junk), wrap);
        check(&write(&pod, &style)).map_err(TestCaseError::fail)?;
    }

    /// The same, then mangled: a few byte edits that break brackets, strings, escapes, numbers and UTF-8.
    #[test]
    fn mangled_pods_are_decided_the_same_or_accepted_only_in_skipped_values(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        junk in awkward_json(),
        style in style(),
        edits in prop::collection::vec(edit(), 1..4),
        wrap in any::<bool>(),
    ) {
        let pod = in_review(graft(base_pods()[which].clone(), at, junk), wrap);
        let mut text = write(&pod, &style);
        for e in &edits {
            apply(&mut text, e);
        }
        check(&text).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn the_example_pods_decode_the_same_in_every_style() {
    for pod in base_pods() {
        for escape_every in [0, 1, 3] {
            for spaces in [vec![""], vec![" ", "\n\t"], vec!["\r\n"]] {
                let style = Style { escape_every, short_escapes: escape_every == 1, spaces, exotic_numbers: true };
                let text = write(&pod, &style);
                check(&text).unwrap_or_else(|e| panic!("{e}"));
                // And the pod really was read, not refused by both.
                irsa_webhook::json::from_slice::<irsa_webhook::mutate::Pod>(&text).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
