//! What the fuzz targets share: the bounds they assert, arbitrary JSON, the pod model of the `mutate` target, and
//! the invariants of a mutation (the same file the property tests include).

use arbitrary::{Arbitrary, Result, Unstructured};
use irsa_webhook::settings::MutationSettings;
use serde_json::{Map, Value};

pub mod model;

/// The request path's JSON reader against serde_json; shared with `tests/json_differential.rs`.
#[path = "../../tests/support/json_contract.rs"]
pub mod json_contract;
/// The checks every mutation must pass; shared with `tests/mutate_props.rs`.
#[path = "../../tests/support/pod_invariants.rs"]
pub mod pod_invariants;
/// Every JSON pointer into a value, for grafting; shared with the property tests.
#[path = "../../tests/support/pointers.rs"]
pub mod pointers;
pub use pointers::pointers;

/// A warning quotes at most a few values from the input, each cut to 100 characters (`mutate::shown`), in a sentence.
pub const MAX_WARNING_BYTES: usize = 2048;

/// What one container may add to a patch: up to six env vars and a mount, each an `add` of about 150 bytes of
/// structure plus strings from the settings or the ServiceAccount, of which `longest` is the longest (JSON-escaped).
/// The same bound covers the pod-level operations (volume, label, fsGroup), counted as one more container.
pub fn patch_bytes_per_container(longest: usize) -> usize {
    1024 + 8 * longest
}

/// The longest JSON-escaped string a patch may take from `settings` or from `extra` (role ARNs, audiences).
pub fn longest_patch_string(settings: &MutationSettings, extra: &[&str]) -> usize {
    let cc = &settings.container_credentials;
    let token_files = [
        (settings.token_mount_path.as_str(), irsa_webhook::settings::WEB_IDENTITY_TOKEN_FILE_NAME),
        (cc.token_mount_path.as_str(), cc.token_path.as_str()),
    ]
    .into_iter()
    .flat_map(|(path, file)| [false, true].map(|windows| irsa_webhook::mutate::token_file_path(path, file, windows)));
    let fixed = [
        settings.token_audience.as_str(),
        settings.token_mount_path.as_str(),
        settings.aws_default_region.as_deref().unwrap_or_default(),
        cc.audience.as_str(),
        cc.token_mount_path.as_str(),
        cc.token_volume_name.as_str(),
        cc.token_path.as_str(),
        cc.full_uri.as_str(),
    ];
    let json_len = |s: &str| serde_json::to_string(s).map_or(0, |j| j.len());
    token_files
        .map(|s| json_len(&s))
        .chain(fixed.into_iter().chain(extra.iter().copied()).map(json_len))
        .max()
        .unwrap_or(0)
}

/// Small arbitrary JSON (at most four levels), with the field names and values the rules look at in its vocabulary.
#[derive(Debug, Clone)]
pub struct Json(pub Value);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json(u, 3).map(Json)
    }
}

fn json(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Value::String(Word::arbitrary(u)?.text()),
        4 => Value::String(u.choose(VOCABULARY)?.to_string()),
        5 => {
            let len = u.int_in_range(0..=3)?;
            Value::Array((0..len).map(|_| json(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let len = u.int_in_range(0..=3)?;
            let mut map = Map::new();
            for _ in 0..len {
                map.insert(Word::arbitrary(u)?.text(), json(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.choose_index(5)? {
        0 => Value::from(u.int_in_range(-2..=70_000i64)?),
        1 => Value::from(i64::arbitrary(u)?),
        2 => Value::from(u64::arbitrary(u)?),
        3 => serde_json::Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
        _ => Value::from(*u.choose(&[0i64, 1, 65534, 2147483647, 2147483648, 4294967296, -1])?),
    })
}

/// Names and values the rules read, so that arbitrary JSON often means something to them.
const VOCABULARY: &[&str] = &[
    "name",
    "env",
    "value",
    "volumeMounts",
    "mountPath",
    "containers",
    "initContainers",
    "ephemeralContainers",
    "volumes",
    "projected",
    "sources",
    "serviceAccountToken",
    "securityContext",
    "fsGroup",
    "fsGroupChangePolicy",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "nodeSelector",
    "os",
    "metadata",
    "annotations",
    "labels",
    "spec",
    "kind",
    "Pod",
    "windows",
    "kubernetes.io/os",
    "aws-iam-token",
    "eks-pod-identity-token",
    "AWS_ROLE_ARN",
    "AWS_REGION",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    "eks.amazonaws.com/pod-identity",
    "eks.amazonaws.com/skip-containers",
    "a",
    "b",
];

/// A short string: from the vocabulary, arbitrary (up to 24 characters), or one character repeated up to 3,000 times
/// (long enough to find values echoed without a bound).
#[derive(Debug, Clone)]
pub enum Word {
    Vocabulary(u8),
    Text(String),
    Repeat(char, u16),
}

impl<'a> Arbitrary<'a> for Word {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=15u8)? {
            0 => Word::Repeat(char::arbitrary(u)?, u.int_in_range(0..=3000)?),
            1..=7 => Word::Text(String::arbitrary(u)?.chars().take(24).collect()),
            _ => Word::Vocabulary(u8::arbitrary(u)?),
        })
    }
}

impl Word {
    pub fn text(&self) -> String {
        match self {
            Word::Vocabulary(i) => VOCABULARY[usize::from(*i) % VOCABULARY.len()].to_owned(),
            Word::Text(text) => text.clone(),
            Word::Repeat(c, n) => std::iter::repeat_n(*c, usize::from(*n)).collect(),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// The pods of the repository's fixtures (`tests/fixtures/**`, `examples/`), in path order: realistic starting
/// points for the `mutate` target. Embedded at build time by `build.rs`, parsed once.
pub fn fixture_pods() -> &'static [Value] {
    static PODS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    PODS.get_or_init(|| {
        let mut pods = Vec::new();
        for (_, text) in FIXTURE_FILES {
            for document in irsa_webhook::manifest::parse_documents(text).unwrap_or_default() {
                // A fixture case holds its pod under `pod`, and the expected one under `expect.pod`; a review holds
                // it under `request.object`; a pod file is the pod.
                for pointer in ["/pod", "/expect/pod", "/request/object"] {
                    pods.extend(document.pointer(pointer).filter(|p| p.is_object()).cloned());
                }
                if document.get("kind").and_then(Value::as_str) == Some("Pod") {
                    pods.push(document);
                }
            }
        }
        assert!(!pods.is_empty(), "no fixture pods among the {} embedded files", FIXTURE_FILES.len());
        pods
    })
}
