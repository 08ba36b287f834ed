use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::*;

/// Ours and serde_json read `json` into the same `Value`, or both refuse it; returns ours.
fn same(json: &[u8]) -> Result<Value, Error> {
    let ours = from_slice::<Value>(json);
    let theirs = serde_json::from_slice::<Value>(json);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(json)),
        (Err(_), Err(_)) => {}
        _ => panic!("{}: ours {ours:?}, serde_json {theirs:?}", String::from_utf8_lossy(json)),
    }
    ours
}

fn string(json: &str) -> Result<String, Error> {
    match same(json.as_bytes())? {
        Value::String(s) => Ok(s),
        other => panic!("not a string: {other:?}"),
    }
}

/// Which visitor call a value arrives as.
#[derive(Debug, PartialEq)]
enum Seen {
    Borrowed(String),
    Owned(String),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Seen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Seen, E> {
                Ok(Seen::Borrowed(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Seen, E> {
                Ok(Seen::Owned(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Seen, E> {
                Ok(Seen::Owned(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Seen, E> {
                Ok(Seen::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Seen, E> {
                Ok(Seen::I64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Seen, E> {
                Ok(Seen::F64(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn seen(json: &str) -> Seen {
    let ours: Seen = from_slice(json.as_bytes()).unwrap();
    let theirs: Seen = serde_json::from_str(json).unwrap();
    match (&ours, &theirs) {
        // serde_json hands unescaped strings over as `visit_str` (from its scratch buffer), we as `visit_string`.
        (Seen::Owned(a), Seen::Owned(b)) => assert_eq!(a, b),
        (Seen::F64(a), Seen::F64(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{json}"),
        _ => assert_eq!(ours, theirs, "{json}"),
    }
    ours
}

#[test]
fn every_escape() {
    let cases = [
        (r#""\"""#, "\""),
        (r#""\\""#, "\\"),
        (r#""\/""#, "/"),
        (r#""\b""#, "\u{8}"),
        (r#""\f""#, "\u{c}"),
        (r#""\n""#, "\n"),
        (r#""\r""#, "\r"),
        (r#""\t""#, "\t"),
        (r#""\u0041\u00e9\u20AC\u0000""#, "Aé€\0"),
        (r#""a\"b\\c/d\u00e9 ""#, "a\"b\\c/dé "),
    ];
    for (json, text) in cases {
        assert_eq!(string(json).unwrap(), text, "{json}");
        assert_eq!(seen(json), Seen::Owned(text.into()));
    }
    for bad in [r#""\x""#, r#""\u12""#, r#""\u12G4""#, r#""\'""#, r#""\"#, r#""\u"#, r#""\U0041""#] {
        assert!(string(bad).is_err(), "{bad}");
    }
}

#[test]
fn surrogate_pairs_join_and_lone_surrogates_are_refused() {
    assert_eq!(string(r#""\ud83d\ude00""#).unwrap(), "😀");
    assert_eq!(string(r#""x\uD834\uDD1Ey""#).unwrap(), "x𝄞y");
    assert_eq!(string(r#""\udbff\udfff""#).unwrap(), "\u{10FFFF}");
    for bad in [
        r#""\ud800""#,
        r#""\ud800x""#,
        r#""\ud800\n""#,
        r#""\ud800\u0041""#,
        r#""\ud800\ud800""#,
        r#""\udc00""#,
        r#""\udfff\ud800""#,
        r#""\ud800\u"#,
    ] {
        assert!(matches!(string(bad), Err(Error::LoneSurrogate { .. } | Error::Eof { .. })), "{bad}");
    }
}

#[test]
fn strings_are_borrowed_unless_escaped_and_checked_when_read() {
    assert_eq!(
        seen(r#""plain ascii, longer than one word of eight bytes""#),
        Seen::Borrowed("plain ascii, longer than one word of eight bytes".into())
    );
    assert_eq!(seen(r#""""#), Seen::Borrowed(String::new()));
    assert_eq!(seen("\"héllo wörld, ü€😀 and more\""), Seen::Borrowed("héllo wörld, ü€😀 and more".into()));
    assert_eq!(seen("\"é\\n😀\""), Seen::Owned("é\n😀".into()));
    // Raw control characters are not JSON; DEL is.
    for control in 0u8..0x20 {
        for at in [0, 9] {
            let mut json = b"\"0123456789abcdef\"".to_vec();
            json[1 + at] = control;
            assert!(matches!(same(&json), Err(Error::ControlCharacter { at: a }) if a == 1 + at), "{control:#x}");
        }
    }
    assert_eq!(string("\"\u{7f}\"").unwrap(), "\u{7f}");
    // Invalid UTF-8, raw or after an escape.
    for bad in [&b"\"\xff\""[..], b"\"abc\xc3\"", b"\"\\n\xe2\x82\"", b"\"0123456789\xed\xa0\x80\""] {
        assert!(matches!(same(bad), Err(Error::InvalidUtf8 { .. })), "{bad:?}");
    }
}

/// Every byte class that ends the fast scan of a read string, at every offset through several sixteen-byte chunks
/// and the word-at-a-time tail after them, in strings of every length up to past three chunks: read as serde_json
/// reads them (or refused by both), borrowed unless escaped.
#[test]
fn a_read_string_stops_at_the_right_byte_wherever_it_is() {
    for len in 0..52 {
        let plain: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        assert_eq!(seen(&format!("\"{plain}\"")), Seen::Borrowed(plain.clone()));
        for at in 0..len {
            for special in ["\\n", "\u{1}", "\u{1f}", " ", "\u{7f}", "é", "\u{80}", "😀", "\\\""] {
                let text = format!("{}{special}{}", &plain[..at], &plain[at..]);
                let json = format!("\"{text}\"");
                let ours = same(json.as_bytes());
                let escaped = special.starts_with('\\');
                match from_slice::<Seen>(json.as_bytes()).ok() {
                    Some(Seen::Owned(_)) => assert!(escaped, "{json:?}"),
                    Some(Seen::Borrowed(s)) => assert!(!escaped && s == text, "{json:?}"),
                    Some(other) => panic!("{json:?}: {other:?}"),
                    None => assert!(ours.is_err() && special.len() == 1 && special < " ", "{json:?}"),
                }
            }
        }
    }
}

#[test]
fn numbers_at_the_edges_arrive_as_serde_json_hands_them_over() {
    let cases = [
        ("0", Seen::U64(0)),
        ("-0", Seen::F64(-0.0)),
        ("7", Seen::U64(7)),
        ("-7", Seen::I64(-7)),
        ("9223372036854775807", Seen::U64(i64::MAX as u64)),
        ("9223372036854775808", Seen::U64(1 << 63)),
        ("18446744073709551615", Seen::U64(u64::MAX)),
        ("18446744073709551616", Seen::F64(18446744073709551616.0)),
        ("-9223372036854775807", Seen::I64(-i64::MAX)),
        ("-9223372036854775808", Seen::I64(i64::MIN)),
        ("-9223372036854775809", Seen::F64(-9223372036854775809.0)),
        ("-18446744073709551616", Seen::F64(-18446744073709551616.0)),
        ("1.5", Seen::F64(1.5)),
        ("-0.25e2", Seen::F64(-25.0)),
        ("1E+2", Seen::F64(100.0)),
        ("1e-2", Seen::F64(0.01)),
        ("5e-400", Seen::F64(0.0)),
        ("0.0", Seen::F64(0.0)),
    ];
    for (json, expected) in cases {
        assert_eq!(seen(json), expected, "{json}");
        assert_eq!(seen(&format!(" {json} ")), expected, "{json}");
    }
    for bad in
        ["01", "-", "-01", "1.", ".5", "1e", "1e+", "+1", "1.e2", "--1", "0x1", "1e400", "-1e400", "Infinity", "NaN"]
    {
        assert!(same(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(same(b"1e400"), Err(Error::NumberOutOfRange { at: 0 })));
}

const SAMPLE: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-0","labels":{"app":"web"},"annotations":{"a/b":"{\"x\":[1,2]}"}},"spec":{"containers":[{"name":"app","image":"nginx","env":[{"name":"AWS_REGION","value":"eu-west-1"}],"ports":[{"containerPort":80}],"resources":{}}],"priority":-5,"ratio":0.5,"hostNetwork":false,"x":null,"tags":["é","\u00e9",true]}}"#;

/// `SAMPLE` with the given whitespace between all its tokens.
fn spaced(json: &str, ws: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push_str(ws);
                out.push(c);
            }
            '{' | '}' | '[' | ']' | ':' | ',' => {
                out.push_str(ws);
                out.push(c);
                out.push_str(ws);
            }
            _ => out.push(c),
        }
    }
    out
}

#[derive(Deserialize, Debug, PartialEq)]
struct Skips {
    kind: String,
}

#[test]
fn whitespace_is_allowed_between_all_tokens_and_nowhere_else() {
    let compact = same(SAMPLE.as_bytes()).unwrap();
    for ws in [" ", "\n", "\t", "\r", " \r\n\t  "] {
        let json = spaced(SAMPLE, ws);
        assert_eq!(same(json.as_bytes()).unwrap(), compact, "{json}");
        // The same, skipped.
        let skips: Skips = from_slice(json.as_bytes()).unwrap();
        assert_eq!(skips.kind, "Pod");
        from_slice::<IgnoredAny>(json.as_bytes()).unwrap();
    }
    // Form feed and vertical tab are not JSON whitespace.
    for bad in ["\x0c{}", "{\x0b}", "[1,\x0c2]", "{\"a\"\x0c:1}", "{}\x0b"] {
        assert!(same(bad.as_bytes()).is_err(), "{bad:?}");
    }
    assert!(from_slice::<IgnoredAny>(b"\x0c{}").is_err());
}

#[test]
fn trailing_characters_are_refused() {
    for bad in ["{} x", "{}}", "[]]", "1 2", "\"a\"\"b\"", "null,", "{}\0"] {
        assert!(matches!(same(bad.as_bytes()), Err(Error::TrailingCharacters { .. })), "{bad}");
        assert!(matches!(from_slice::<IgnoredAny>(bad.as_bytes()), Err(Error::TrailingCharacters { .. })), "{bad}");
    }
    for good in ["{} ", " [ ] \n", "0\t", "\r\n\"\"\r\n"] {
        same(good.as_bytes()).unwrap();
    }
    assert_eq!(from_slice::<Value>(b"{} x").unwrap_err().to_string(), "trailing characters at byte 3");
}

#[test]
fn truncated_input_is_refused_at_every_byte() {
    let bytes = SAMPLE.as_bytes();
    for end in 0..bytes.len() {
        let prefix = &bytes[..end];
        assert!(same(prefix).is_err(), "{end}");
        assert!(from_slice::<IgnoredAny>(prefix).is_err(), "{end}");
        assert!(from_slice::<Skips>(prefix).is_err(), "{end}");
        assert!(from_slice::<crate::mutate::Pod>(prefix).is_err(), "{end}");
    }
    from_slice::<crate::mutate::Pod>(bytes).unwrap();
}

fn nested(depth: usize, inner: &str) -> String {
    let open: String = (0..depth).map(|i| if i % 2 == 0 { "[" } else { "{\"k\":" }).collect();
    let close: String = (0..depth).rev().map(|i| if i % 2 == 0 { "]" } else { "}" }).collect();
    format!("{open}{inner}{close}")
}

#[test]
fn nesting_of_read_values_stops_where_serde_json_stops() {
    let limit = MAX_DEPTH - 1;
    for depth in [1, 2, limit - 1, limit] {
        same(nested(depth, "1").as_bytes()).unwrap();
    }
    for depth in [limit + 1, limit + 2, 10_000] {
        assert!(matches!(same(nested(depth, "1").as_bytes()), Err(Error::TooDeep { .. })), "{depth}");
    }
    // Every level read counts: the object and three arrays here, then `Value`s.
    for (inner, ok) in [(limit - 4, true), (limit - 3, false)] {
        let json = format!("{{\"read\":[[[{}]]]}}", nested(inner, "0"));
        assert_eq!(from_slice::<Partly>(json.as_bytes()).is_ok(), ok, "{inner}");
        assert_eq!(serde_json::from_str::<Partly>(&json).is_ok(), ok, "{inner}");
    }
    // The 128th bracket: 64 `[` and 63 `{"k":` before it.
    let at = 64 + 63 * 5;
    let message = from_slice::<Value>(nested(200, "").as_bytes()).unwrap_err().to_string();
    assert_eq!(message, format!("more than 127 nested arrays and objects at byte {at}"));
}

#[test]
fn skipped_values_nest_as_deep_as_serde_json_skips_them() {
    for depth in [1, MAX_DEPTH - 1, MAX_DEPTH, 129, 130, 10_000] {
        let json = nested(depth, "1");
        from_slice::<IgnoredAny>(json.as_bytes()).unwrap();
        serde_json::from_slice::<IgnoredAny>(json.as_bytes()).unwrap();
        let wrapped = format!("{{\"deep\":{json}}}");
        from_slice::<Outer>(wrapped.as_bytes()).unwrap();
        serde_json::from_str::<Outer>(&wrapped).unwrap();
        // Unbalanced at any depth is found.
        for broken in [&json[..json.len() - 1], &json[1..]] {
            assert!(from_slice::<IgnoredAny>(broken.as_bytes()).is_err(), "{depth}");
        }
    }
    // Mismatched kinds are refused in the first 128 levels of a skipped value; deeper brackets are only counted.
    let closed_wrongly_at = |depth: usize| format!("{}}}{}", "[".repeat(depth + 1), "]".repeat(depth));
    assert!(from_slice::<IgnoredAny>(closed_wrongly_at(0).as_bytes()).is_err());
    assert!(from_slice::<IgnoredAny>(closed_wrongly_at(127).as_bytes()).is_err());
    from_slice::<IgnoredAny>(closed_wrongly_at(128).as_bytes()).unwrap();
    from_slice::<IgnoredAny>(closed_wrongly_at(1000).as_bytes()).unwrap();
}

#[derive(Deserialize)]
struct Outer {
    #[allow(dead_code)]
    deep: IgnoredAny,
}

#[derive(Deserialize)]
struct Partly {
    #[allow(dead_code)]
    read: Vec<Vec<Vec<Value>>>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Picky<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    flag: Option<bool>,
}

#[test]
fn skipped_values_are_scanned_for_their_end_only() {
    // Inside a skipped value only brackets and strings matter (documented leniency).
    let lenient: [&[u8]; 6] = [
        br#"{"junk":[1 2 tru 00 -.e],"name":"a"}"#,
        br#"{"junk":{"k" "v" 1:2,,},"name":"a"}"#,
        b"{\"junk\":\"\x01\\q\xff\",\"name\":\"a\"}",
        br#"{"junk":["]","}","\"]"],"name":"a"}"#,
        br#"{"junk":-1.2.3e,"name":"a"}"#,
        br#"{"junk":[1,],"name":"a"}"#,
    ];
    for json in lenient {
        let picky: Picky = from_slice(json).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(json)));
        assert_eq!(picky.name, "a");
    }
    // What finds the end is checked.
    for bad in [
        r#"{"junk":[},"name":"a"}"#,
        r#"{"junk":{],"name":"a"}"#,
        r#"{"junk":[[]"#,
        r#"{"junk":"abc"#,
        r#"{"junk":"abc\"#,
        r#"{"junk":nul,"name":"a"}"#,
        r#"{"junk":?,"name":"a"}"#,
        r#"{"junk":}"#,
    ] {
        assert!(from_slice::<Picky>(bad.as_bytes()).is_err(), "{bad}");
        assert!(serde_json::from_str::<Picky>(bad).is_err(), "{bad}");
    }
}

#[test]
fn derived_structs_decide_as_under_serde_json() {
    let cases = [
        r#"{"name":"a","count":3,"flag":true,"other":{"x":[1,{"y":"z"}]}}"#,
        r#"{"name":"a\u0062","count":null}"#,
        r#"{"nam\u0065":"a"}"#,
        r#"["a",3,false]"#,
        r#"["a"]"#,
        r#"["a",1,true,4]"#,
        r#"{"count":3}"#,
        r#"{"name":"a","name":"b"}"#,
        r#"{"name":"a","count":-1}"#,
        r#"{"name":"a","count":4294967296}"#,
        r#"{"name":"a","count":1.0}"#,
        r#"{"name":"a","flag":1}"#,
        r#"{"name":7}"#,
        r#"{"name":"a",}"#,
        r#"{"name":"a" "count":1}"#,
        r#"{"name" "a"}"#,
        r#"{name:"a"}"#,
        r#"{"name":"a"]"#,
        "null",
        "\"a\"",
    ];
    for json in cases {
        let ours = from_slice::<Picky>(json.as_bytes());
        let theirs = serde_json::from_str::<Picky>(json);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{json}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }
    let picky: Picky = from_slice(br#"{"name":"plain"}"#).unwrap();
    assert!(matches!(picky.name, Cow::Borrowed("plain")));
}

#[test]
fn errors_say_what_and_where() {
    let message = |json: &str| from_slice::<Value>(json.as_bytes()).unwrap_err().to_string();
    assert_eq!(message(r#"{"a" 1}"#), "expected `:` at byte 5");
    assert_eq!(message(r#"{"a":1 "b":2}"#), "expected `,` or `}` at byte 7");
    assert_eq!(message(r#"[1,]"#), "trailing comma at byte 3");
    assert_eq!(message(r#"{"a":1,}"#), "trailing comma at byte 7");
    assert_eq!(message(r#"{1:2}"#), "expected a string key at byte 1");
    assert_eq!(message(r#"[1 2]"#), "expected `,` or `]` at byte 3");
    assert_eq!(message(r#"["abc"#), "unexpected end of input while parsing a string at byte 5");
    assert_eq!(message(r#"[tru]"#), "expected `true`, `false` or `null` at byte 1");
    assert_eq!(message("\"a\\qb\""), "invalid escape at byte 2");
    assert_eq!(message(""), "unexpected end of input while parsing a value at byte 0");
    let picky = |json: &str| from_slice::<Picky>(json.as_bytes()).unwrap_err().to_string();
    assert_eq!(picky(r#"{"x":1}"#), "missing field `name` at byte 0");
    assert_eq!(picky(r#"{"name":"a","flag":"yes"}"#), "invalid type: string \"yes\", expected a boolean at byte 19");
    assert_eq!(picky(r#"{"name":"a","name":"b"}"#), "duplicate field `name` at byte 0");
}

#[derive(Deserialize, Debug, PartialEq)]
enum Kind {
    Unit,
    Newtype(u8),
    Tuple(u8, bool),
    Struct { a: String },
}

#[test]
fn maps_options_units_and_enums() {
    let map: BTreeMap<String, Option<()>> = from_slice(br#"{"a":null,"b\n":null}"#).unwrap();
    assert_eq!(map, BTreeMap::from([("a".into(), None), ("b\n".into(), None)]));
    assert!(from_slice::<Option<()>>(b"1").is_err());
    let kinds: Vec<Kind> =
        from_slice(br#"["Unit",{"Newtype":7},{"Tuple":[1,true]},{"Struct":{"a":"x"}},"\u0055nit"]"#).unwrap();
    assert_eq!(kinds, [Kind::Unit, Kind::Newtype(7), Kind::Tuple(1, true), Kind::Struct { a: "x".into() }, Kind::Unit]);
    for bad in [r#""Other""#, r#"{"Newtype":7,"x":1}"#, r#"{"Unit":1}"#, r#"{"Newtype":7"#, r#"7"#] {
        assert!(from_slice::<Kind>(bad.as_bytes()).is_err(), "{bad}");
        assert!(serde_json::from_str::<Kind>(bad).is_err(), "{bad}");
    }
    assert_eq!(from_slice::<Kind>(br#"{"Unit":null}"#).unwrap(), Kind::Unit);
    let bytes: serde_bytes_like::Bytes = from_slice(br#""ab\n""#).unwrap();
    assert_eq!(bytes.0, b"ab\n");
}

/// A byte buffer read through `deserialize_bytes` (no `serde_bytes` dependency for one test).
mod serde_bytes_like {
    pub struct Bytes(pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            deserializer.deserialize_bytes(V)
        }
    }
}

#[test]
fn the_example_reviews_read_as_under_serde_json() {
    for review in [
        &include_bytes!("../../examples/admission-review.json")[..],
        include_bytes!("../../examples/admission-review-deployment.json"),
    ] {
        same(review).unwrap();
        let value: Value = serde_json::from_slice(review).unwrap();
        let pod = &value["request"]["object"];
        let pod_bytes = serde_json::to_vec(pod).unwrap();
        let ours = crate::mutate::Pod::from_json(&pod_bytes).unwrap();
        let theirs: crate::mutate::Pod = serde_json::from_slice(&pod_bytes).unwrap();
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let pretty = serde_json::to_vec_pretty(pod).unwrap();
        assert_eq!(format!("{:?}", crate::mutate::Pod::from_json(&pretty).unwrap()), format!("{theirs:?}"));
    }
}
