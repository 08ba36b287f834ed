//! Reading a role's trust policy from what people paste: the whole `aws iam get-role` output (its
//! `Role.AssumeRolePolicyDocument` decoded as the CLI prints it, or still URL-encoded as the IAM API returns it), the
//! policy document alone, or the URL-encoded document. Pure: the command reads the bytes, this module parses them.

use serde_json::{Map, Value};

/// Larger input is refused before parsing. IAM's own limit for a trust policy is 2,048 characters by default and
/// 8,192 at most; `get-role` output adds the role's metadata. 64 KiB leaves room for all of it, and for tabs.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "the input is larger than {MAX_POLICY_BYTES} bytes, more than this tool reads; IAM's own limit for a trust \
         policy is 8,192 characters"
    )]
    TooLarge,
    #[error("the input is empty: expected `aws iam get-role` output, a policy document or the URL-encoded document")]
    Empty,
    #[error("the input is not UTF-8 text")]
    NotUtf8,
    #[error("not JSON: {0}")]
    Json(String),
    #[error("bad URL encoding: {0}")]
    UrlEncoding(&'static str),
    #[error(
        "expected `aws iam get-role` output ({{\"Role\": {{...}}}}), a policy document ({{\"Statement\": [...]}}) \
         or the URL-encoded document (%7B%22Version...); {0}"
    )]
    Shape(String),
    #[error("the policy's Version is {0:?}; IAM knows \"2012-10-17\" and \"2008-10-17\"")]
    Version(String),
    #[error("{statement}: {reason}")]
    Statement { statement: String, reason: String },
}

/// The role's trust policy, and which role it belongs to when the input says so (`aws iam get-role` output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    pub document: PolicyDocument,
    /// `Role.Arn` of `aws iam get-role` output.
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: policy variables (`${...}`) are substituted.
    V2012,
    /// `2008-10-17`, also what IAM assumes when `Version` is absent: `${...}` is literal text.
    V2008,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub version: Version,
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Principal` or `NotPrincipal`: `"*"`, or `{"Federated": ..., "AWS": ..., "Service": ...}` with a string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principals {
    /// `"*"` or `{"AWS": "*"}`, which IAM documents as the same thing: every principal.
    pub any: bool,
    /// `(type, value)`, e.g. `("Federated", "arn:aws:iam::111122223333:oidc-provider/...")`, in document order.
    pub entries: Vec<(String, String)>,
}

impl Principals {
    pub fn federated(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter(|(kind, _)| kind == "Federated").map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalElement {
    Principal(Principals),
    NotPrincipal(Principals),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionElement {
    Action(Vec<String>),
    NotAction(Vec<String>),
}

/// One key under one operator: `"StringEquals": {"<key>": <values>}`. Scalars are read as one-value lists; IAM
/// reads `true` and `12` as the strings "true" and "12".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// 1-based position in `Statement`.
    pub index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: PrincipalElement,
    pub action: ActionElement,
    /// In document order, operator by operator.
    pub conditions: Vec<Condition>,
    /// `Resource`/`NotResource`: IAM refuses them in a trust policy, so a document with one is not a role's trust
    /// policy as stored.
    pub has_resource: bool,
}

impl Statement {
    /// How messages name the statement: `statement "Sid" (#2)`, or `statement #2` without a Sid.
    pub fn label(&self) -> String {
        match &self.sid {
            Some(sid) => format!("statement {sid:?} (#{})", self.index),
            None => format!("statement #{}", self.index),
        }
    }
}

/// Parses what the user gave: see the module documentation for the accepted forms.
pub fn parse(input: &[u8]) -> Result<RolePolicy, PolicyError> {
    if input.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge);
    }
    let text = std::str::from_utf8(input).map_err(|_| PolicyError::NotUtf8)?;
    let value = decode_text(text, 0)?;
    from_value(&value)
}

/// A policy from a JSON value: `get-role` output, `Role` itself, or the document.
pub fn from_value(value: &Value) -> Result<RolePolicy, PolicyError> {
    from_value_at(value, 0)
}

/// How many times a string may hold another encoding of the document (a JSON string holding URL-encoded text is 2).
const MAX_NESTING: u8 = 3;

fn decode_text(text: &str, depth: u8) -> Result<Value, PolicyError> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(PolicyError::Empty);
    }
    if depth > MAX_NESTING {
        return Err(PolicyError::Shape("the text is encoded too many times over".into()));
    }
    if text.starts_with('{') || text.starts_with('"') {
        serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))
    } else if text.starts_with('%') {
        decode_text(&url_decode(text)?, depth + 1)
    } else {
        Err(PolicyError::Shape(format!("the input starts with {:?}", text.chars().take(20).collect::<String>())))
    }
}

fn from_value_at(value: &Value, depth: u8) -> Result<RolePolicy, PolicyError> {
    match value {
        // `--query Role.AssumeRolePolicyDocument --output json` of a raw API answer, or a JSON-encoded document.
        Value::String(text) if depth < MAX_NESTING => from_value_at(&decode_text(text, depth + 1)?, depth + 1),
        Value::Object(object) => {
            if let Some(role) = object.get("Role") {
                let role = role.as_object().ok_or_else(|| PolicyError::Shape("Role is not an object".into()))?;
                return from_role(role, depth);
            }
            if object.contains_key("AssumeRolePolicyDocument") {
                return from_role(object, depth);
            }
            if object.contains_key("Roles") {
                return Err(PolicyError::Shape(
                    "this lists several roles; give one: aws iam get-role --role-name NAME".into(),
                ));
            }
            if object.contains_key("Statement") {
                return Ok(RolePolicy { document: document(object)?, role_arn: None });
            }
            Err(PolicyError::Shape("the object has none of Role, AssumeRolePolicyDocument or Statement".into()))
        }
        _ => Err(PolicyError::Shape("the JSON is not an object".into())),
    }
}

fn from_role(role: &Map<String, Value>, depth: u8) -> Result<RolePolicy, PolicyError> {
    let Some(document) = role.get("AssumeRolePolicyDocument") else {
        return Err(PolicyError::Shape("Role has no AssumeRolePolicyDocument".into()));
    };
    let mut policy = match document {
        Value::Object(_) | Value::String(_) => from_value_at(document, depth + 1)?,
        _ => return Err(PolicyError::Shape("AssumeRolePolicyDocument is neither an object nor a string".into())),
    };
    policy.role_arn = role.get("Arn").and_then(Value::as_str).map(str::to_owned);
    Ok(policy)
}

/// Percent-decoding as RFC 3986 (which the IAM API uses). A `+` is a space only in form encoding, which never
/// writes `%20`: so `+` becomes a space when the text has no `%20`, and stays `+` otherwise.
fn url_decode(text: &str) -> Result<String, PolicyError> {
    let plus_is_space = !text.contains("%20");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(high), Some(low)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PolicyError::UrlEncoding("'%' is not followed by two hex digits"));
                };
                // Both digits are below 16, so this fits in a byte.
                out.push(u8::try_from(high * 16 + low).unwrap_or_default());
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| PolicyError::UrlEncoding("the decoded bytes are not UTF-8"))
}

fn document(object: &Map<String, Value>) -> Result<PolicyDocument, PolicyError> {
    let version = match object.get("Version") {
        None => Version::V2008,
        Some(Value::String(v)) if v == "2012-10-17" => Version::V2012,
        Some(Value::String(v)) if v == "2008-10-17" => Version::V2008,
        Some(other) => {
            return Err(PolicyError::Version(other.as_str().map_or_else(|| other.to_string(), str::to_owned)))
        }
    };
    let statements = match object.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => return Err(PolicyError::Shape("Statement is neither an object nor a list".into())),
    };
    if statements.is_empty() {
        return Err(PolicyError::Shape("Statement is empty".into()));
    }
    let statements =
        statements.into_iter().enumerate().map(|(i, s)| statement(i + 1, s)).collect::<Result<Vec<_>, _>>()?;
    Ok(PolicyDocument { version, statements })
}

fn statement(index: usize, value: &Value) -> Result<Statement, PolicyError> {
    let sid = value.get("Sid").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let label = match &sid {
        Some(sid) => format!("statement {sid:?} (#{index})"),
        None => format!("statement #{index}"),
    };
    let fail = |reason: String| PolicyError::Statement { statement: label.clone(), reason };
    let Some(object) = value.as_object() else {
        return Err(fail("not an object".into()));
    };
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(fail(format!("Effect is {other:?}; IAM knows \"Allow\" and \"Deny\""))),
        None => return Err(fail("has no Effect".into())),
    };
    let principal =
        match (object.get("Principal"), object.get("NotPrincipal")) {
            (Some(p), None) => PrincipalElement::Principal(principals(p).map_err(&fail)?),
            (None, Some(p)) => PrincipalElement::NotPrincipal(principals(p).map_err(&fail)?),
            (Some(_), Some(_)) => return Err(fail("has both Principal and NotPrincipal".into())),
            (None, None) => return Err(fail(
                "has no Principal: this looks like a permissions policy; the trust policy is what `aws iam get-role` \
                 prints as AssumeRolePolicyDocument"
                    .into(),
            )),
        };
    let action = match (object.get("Action"), object.get("NotAction")) {
        (Some(a), None) => ActionElement::Action(strings(a, "Action").map_err(&fail)?),
        (None, Some(a)) => ActionElement::NotAction(strings(a, "NotAction").map_err(&fail)?),
        (Some(_), Some(_)) => return Err(fail("has both Action and NotAction".into())),
        (None, None) => return Err(fail("has no Action".into())),
    };
    let conditions = match object.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(operators)) => {
            let mut conditions = Vec::new();
            for (operator, keys) in operators {
                let Some(keys) = keys.as_object() else {
                    return Err(fail(format!("Condition {operator:?} is not an object of keys")));
                };
                for (key, values) in keys {
                    let values = strings(values, &format!("Condition {operator} {key}")).map_err(&fail)?;
                    conditions.push(Condition { operator: operator.clone(), key: key.clone(), values });
                }
            }
            conditions
        }
        Some(_) => return Err(fail("Condition is not an object".into())),
    };
    let has_resource = object.contains_key("Resource") || object.contains_key("NotResource");
    Ok(Statement { index, sid, effect, principal, action, conditions, has_resource })
}

fn principals(value: &Value) -> Result<Principals, String> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals { any: true, entries: Vec::new() }),
        Value::Object(kinds) => {
            let mut principals = Principals::default();
            for (kind, values) in kinds {
                for value in strings(values, &format!("Principal {kind}"))? {
                    principals.any |= kind == "AWS" && value == "*";
                    principals.entries.push((kind.clone(), value));
                }
            }
            Ok(principals)
        }
        _ => Err("Principal is neither \"*\" nor an object".into()),
    }
}

/// A string, or a list of strings; booleans and numbers are read as IAM reads them, as their text.
fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    let one = |value: &Value| match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(_) | Value::Number(_) => Ok(value.to_string()),
        _ => Err(format!("{what} holds {value}, not a string")),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/oidc.example.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.example.com:sub":"system:serviceaccount:a b:c+d"}}}]}"#;

    fn encode(text: &str, space: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b' ' => space.to_owned(),
                b if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    }

    fn sub_of(policy: &RolePolicy) -> &str {
        &policy.document.statements[0].conditions[0].values[0]
    }

    #[test]
    fn the_forms_people_paste() {
        let plain = parse(DOCUMENT.as_bytes()).unwrap();
        assert_eq!(plain.role_arn, None);
        assert_eq!(sub_of(&plain), "system:serviceaccount:a b:c+d");

        let get_role = format!(
            r#"{{"Role":{{"RoleName":"r","Arn":"arn:aws:iam::111122223333:role/r","AssumeRolePolicyDocument":{DOCUMENT}}}}}"#
        );
        let parsed = parse(get_role.as_bytes()).unwrap();
        assert_eq!(parsed.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/r"));
        assert_eq!(parsed.document, plain.document);

        // RFC 3986 (%20 for spaces, so '+' is literal) and form encoding ('+' for spaces, %2B for '+').
        for encoded in [encode(DOCUMENT, "%20"), encode(DOCUMENT, "+")] {
            assert_eq!(parse(encoded.as_bytes()).unwrap().document, plain.document, "{encoded}");
            let raw_api =
                format!(r#"{{"Role":{{"Arn":"arn:aws:iam::1:role/r","AssumeRolePolicyDocument":"{encoded}"}}}}"#);
            assert_eq!(parse(raw_api.as_bytes()).unwrap().document, plain.document);
        }
        // `--query Role.AssumeRolePolicyDocument` of a raw answer: a JSON string.
        let quoted = serde_json::to_string(&encode(DOCUMENT, "%20")).unwrap();
        assert_eq!(parse(quoted.as_bytes()).unwrap().document, plain.document);
        let bom = format!("\u{feff}\n{DOCUMENT}\n");
        assert_eq!(parse(bom.as_bytes()).unwrap().document, plain.document);
    }

    #[test]
    fn refusals() {
        let big = vec![b' '; MAX_POLICY_BYTES + 1];
        assert_eq!(parse(&big), Err(PolicyError::TooLarge));
        assert_eq!(parse(b"  \n"), Err(PolicyError::Empty));
        assert_eq!(parse(&[0xff, 0xfe]), Err(PolicyError::NotUtf8));
        assert!(matches!(parse(b"{"), Err(PolicyError::Json(_))));
        assert!(matches!(parse(b"%7"), Err(PolicyError::UrlEncoding(_))));
        assert!(matches!(parse(b"Version: 2012-10-17"), Err(PolicyError::Shape(_))));
        assert!(matches!(parse(br#"{"Roles":[]}"#), Err(PolicyError::Shape(_))));
        assert!(matches!(parse(br#"{"Version":"2012-10-18","Statement":[]}"#), Err(PolicyError::Version(_))));
        // A string holding a string holding ... is refused, not followed forever.
        let mut nested = DOCUMENT.to_owned();
        for _ in 0..6 {
            nested = serde_json::to_string(&nested).unwrap();
        }
        assert!(matches!(parse(nested.as_bytes()), Err(PolicyError::Shape(_))));
        let permissions =
            br#"{"Version":"2012-10-17","Statement":[{"Sid":"S3","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        match parse(permissions) {
            Err(PolicyError::Statement { statement, reason }) => {
                assert_eq!(statement, "statement \"S3\" (#1)");
                assert!(reason.contains("permissions policy"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let effect = br#"{"Statement":{"Effect":"allow","Principal":"*","Action":"*"}}"#;
        assert!(matches!(parse(effect), Err(PolicyError::Statement { .. })));
        let object_value = br#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"k":{"a":1}}}}}"#;
        assert!(matches!(parse(object_value), Err(PolicyError::Statement { .. })));
    }

    #[test]
    fn elements() {
        let text = br#"{"Statement":{"Sid":"","Effect":"Deny","Principal":{"AWS":"*","Federated":["a","b"]},"NotAction":["iam:*"],"Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"k":[1,2]}}}}"#;
        let policy = parse(text).unwrap();
        assert_eq!(policy.document.version, Version::V2008);
        let statement = &policy.document.statements[0];
        assert_eq!(statement.label(), "statement #1");
        assert_eq!(statement.effect, Effect::Deny);
        let PrincipalElement::Principal(principals) = &statement.principal else { panic!() };
        assert!(principals.any);
        assert_eq!(principals.federated().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(statement.action, ActionElement::NotAction(vec!["iam:*".into()]));
        assert!(statement.has_resource);
        assert_eq!(
            statement.conditions,
            [
                Condition { operator: "Bool".into(), key: "aws:SecureTransport".into(), values: vec!["false".into()] },
                Condition { operator: "NumericLessThan".into(), key: "k".into(), values: vec!["1".into(), "2".into()] },
            ]
        );
    }
}
