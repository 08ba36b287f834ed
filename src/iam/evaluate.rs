//! IAM's evaluation of a role trust policy for one `sts:AssumeRoleWithWebIdentity` call, as IAM documents it.
//!
//! - A statement applies when its principal, its action and every condition match; an applying `Deny` wins over
//!   any `Allow`; without an applying `Allow` the call is refused.
//! - The principal is `Federated: arn:<partition>:iam::<account>:oidc-provider/<issuer without https://>` of the
//!   role's partition and account.
//! - The request's context keys are `<issuer without https://>:sub` and `:aud`, from the token. Keys are
//!   case-insensitive, values are not (except under `...IgnoreCase`). Keys of another provider are absent from the
//!   request. Every other key (`aws:SourceIp`, `:amr`, ...) is *not evaluated*: its conditions come out
//!   [`Tri::Unknown`] and are named, never guessed.
//! - Several values of one key are OR (for a negated operator: none may match); several keys and operators are AND.
//! - A key absent from the request: `...IfExists` matches, a negated operator (`StringNotEquals`, ...) matches,
//!   `ForAllValues:` matches, `ForAnyValue:` does not, anything else does not. `ForAnyValue:...IfExists` on an
//!   absent key is where IAM's documented rules disagree: [`Tri::Unknown`].
//!
//! Pure, and linear in the policy's size but for `StringLike`, which is O(pattern × claim) with claims of a few
//! hundred characters and a policy of at most [`super::policy::MAX_POLICY_BYTES`].

use super::policy::{
    ActionElement, Condition, Effect, PolicyDocument, PrincipalElement, Principals, Statement, Version,
    MAX_POLICY_BYTES,
};
use crate::identity::ServiceAccountRef;
use crate::oidc::Issuer;
use crate::settings;

/// The action the pod's AWS SDK calls.
pub const ACTION: &str = "sts:AssumeRoleWithWebIdentity";

/// Three-valued: `Unknown` when a condition depends on something this offline check does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn from_bool(value: bool) -> Self {
        if value {
            Self::True
        } else {
            Self::False
        }
    }

    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::False, _) | (_, Self::False) => Self::False,
            (Self::True, Self::True) => Self::True,
            _ => Self::Unknown,
        }
    }
}

/// What STS knows when a pod presents its projected token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub issuer: Issuer,
    pub service_account: ServiceAccountRef,
    /// The token's `aud`: the audience of the pod's projected token.
    pub audience: String,
    /// The role whose trust policy is evaluated, when known: its partition and account are where STS looks for the
    /// OIDC provider.
    pub role_arn: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
}

impl Request {
    /// The partition comes from the role ARN, else from an EKS issuer's region; the account only from the role ARN.
    pub fn new(issuer: Issuer, service_account: ServiceAccountRef, audience: &str, role_arn: Option<&str>) -> Self {
        let arn_parts = role_arn.and_then(|arn| {
            let mut parts = arn.split(':');
            match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account)) => Some((partition, account)),
                _ => None,
            }
        });
        let partition = arn_parts.map(|(partition, _)| partition.to_owned()).or_else(|| {
            eks_issuer(issuer.without_scheme()).map(|(region, _)| settings::partition_for_region(region).to_owned())
        });
        Self {
            account: arn_parts.map(|(_, account)| account.to_owned()),
            partition,
            role_arn: role_arn.map(str::to_owned),
            audience: audience.to_owned(),
            service_account,
            issuer,
        }
    }

    /// The token's `sub`.
    pub fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.service_account.namespace, self.service_account.name)
    }

    /// How IAM prefixes this provider's condition keys and names it in ARNs: the issuer without `https://`.
    pub fn key_prefix(&self) -> &str {
        self.issuer.without_scheme()
    }

    /// The provider ARN STS looks for, when partition and account are known.
    pub fn provider_arn(&self) -> Option<String> {
        Some(format!(
            "arn:{}:iam::{}:oidc-provider/{}",
            self.partition.as_ref()?,
            self.account.as_ref()?,
            self.key_prefix()
        ))
    }
}

/// `(region, id)` of an EKS issuer's `oidc.eks.<region>.amazonaws.com[.cn]/id/<id>` (without `https://`).
pub fn eks_issuer(url: &str) -> Option<(&str, &str)> {
    let (host, path) = url.split_once('/')?;
    let region = host.strip_prefix("oidc.eks.")?;
    let region = region.strip_suffix(".amazonaws.com").or_else(|| region.strip_suffix(".amazonaws.com.cn"))?;
    let id = path.strip_prefix("id/").filter(|id| !id.is_empty() && !id.contains('/'))?;
    (!region.is_empty() && !region.contains('.')).then_some((region, id))
}

/// `arn:<partition>:iam::<account>:oidc-provider/<url>`, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderArn<'a> {
    pub partition: &'a str,
    pub account: &'a str,
    pub url: &'a str,
}

impl<'a> ProviderArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        // The URL may hold a ':' (a port), so split only the fixed fields.
        let mut parts = arn.splitn(6, ':');
        match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) => {
                Some(Self { partition, account, url: resource.strip_prefix("oidc-provider/")? })
            }
            _ => None,
        }
    }
}

/// Where a condition key's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `<issuer>:sub`.
    Sub,
    /// `<issuer>:aud`.
    Aud,
    /// Another provider's key (`<other issuer>:sub`, `https://<issuer>:sub`, ...): not in this request.
    Absent,
    /// A key this check does not know the value of (`aws:SourceIp`, `<issuer>:amr`, ...).
    NotEvaluated,
}

/// Condition keys are case-insensitive; the part before the last ':' names the provider or the service.
pub fn key(request: &Request, key: &str) -> Key {
    let Some((prefix, name)) = key.rsplit_once(':') else {
        return Key::NotEvaluated;
    };
    if prefix.eq_ignore_ascii_case(request.key_prefix()) {
        if name.eq_ignore_ascii_case("sub") {
            Key::Sub
        } else if name.eq_ignore_ascii_case("aud") {
            Key::Aud
        } else {
            Key::NotEvaluated
        }
    } else if prefix.contains(['.', '/']) {
        // A host name (and path): an identity provider's keys, which only that provider's tokens bring.
        Key::Absent
    } else {
        // `aws:`, `sts:`, `saml:`, ...: global or service keys whose values this check cannot know.
        Key::NotEvaluated
    }
}

fn key_value(request: &Request, which: Key) -> Option<String> {
    match which {
        Key::Sub => Some(request.subject()),
        Key::Aud => Some(request.audience.clone()),
        Key::Absent | Key::NotEvaluated => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperator {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    Equals,
    EqualsIgnoreCase,
    Like,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOperator {
    String {
        kind: StringKind,
        negated: bool,
    },
    Null,
    /// Numeric, Date, Bool, Binary, IpAddress and Arn operators: only their absent-key behaviour is evaluated, as
    /// no key of a web-identity token is of those types.
    Other {
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub set: Option<SetOperator>,
    pub base: BaseOperator,
    pub if_exists: bool,
}

impl Operator {
    /// IAM's operator names, exactly; `None` for a name IAM does not document.
    pub fn parse(name: &str) -> Option<Self> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetOperator::ForAnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetOperator::ForAllValues), rest)
        } else {
            (None, name)
        };
        if rest == "Null" {
            return set.is_none().then_some(Self { set, base: BaseOperator::Null, if_exists: false });
        }
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let string = |kind, negated| BaseOperator::String { kind, negated };
        let base = match base {
            "StringEquals" => string(StringKind::Equals, false),
            "StringNotEquals" => string(StringKind::Equals, true),
            "StringEqualsIgnoreCase" => string(StringKind::EqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => string(StringKind::EqualsIgnoreCase, true),
            "StringLike" => string(StringKind::Like, false),
            "StringNotLike" => string(StringKind::Like, true),
            "NumericNotEquals" | "DateNotEquals" | "NotIpAddress" | "ArnNotEquals" | "ArnNotLike" => {
                BaseOperator::Other { negated: true }
            }
            "NumericEquals"
            | "NumericLessThan"
            | "NumericLessThanEquals"
            | "NumericGreaterThan"
            | "NumericGreaterThanEquals"
            | "DateEquals"
            | "DateLessThan"
            | "DateLessThanEquals"
            | "DateGreaterThan"
            | "DateGreaterThanEquals"
            | "Bool"
            | "BinaryEquals"
            | "IpAddress"
            | "ArnEquals"
            | "ArnLike" => BaseOperator::Other { negated: false },
            _ => return None,
        };
        Some(Self { set, base, if_exists })
    }

    pub fn negated(&self) -> bool {
        matches!(self.base, BaseOperator::String { negated: true, .. } | BaseOperator::Other { negated: true })
    }
}

/// One condition's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionResult<'p> {
    pub condition: &'p Condition,
    /// `None`: an operator IAM does not document (the result is then `Unknown`).
    pub operator: Option<Operator>,
    pub key: Key,
    pub result: Tri,
    /// Why the result is `Unknown`, in words.
    pub unevaluated: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementResult<'p> {
    pub statement: &'p Statement,
    pub principal: Tri,
    pub action: Tri,
    pub conditions: Vec<ConditionResult<'p>>,
    /// principal AND action AND every condition.
    pub applies: Tri,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` applies and no `Deny` applies or might.
    Allowed,
    /// A `Deny` applies.
    ExplicitDeny,
    /// No `Allow` applies or might.
    NotAllowed,
    /// The verdict depends on conditions that were not evaluated.
    Undetermined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'p> {
    pub decision: Decision,
    pub statements: Vec<StatementResult<'p>>,
}

pub fn evaluate<'p>(document: &'p PolicyDocument, request: &Request) -> Evaluation<'p> {
    let statements: Vec<StatementResult<'p>> =
        document.statements.iter().map(|statement| evaluate_statement(statement, document.version, request)).collect();
    let any =
        |effect: Effect, value: Tri| statements.iter().any(|s| s.statement.effect == effect && s.applies == value);
    let decision = if any(Effect::Deny, Tri::True) {
        Decision::ExplicitDeny
    } else if any(Effect::Allow, Tri::True) && !any(Effect::Deny, Tri::Unknown) {
        Decision::Allowed
    } else if any(Effect::Allow, Tri::True) || any(Effect::Allow, Tri::Unknown) {
        Decision::Undetermined
    } else {
        Decision::NotAllowed
    };
    Evaluation { decision, statements }
}

fn evaluate_statement<'p>(statement: &'p Statement, version: Version, request: &Request) -> StatementResult<'p> {
    let principal = match &statement.principal {
        PrincipalElement::Principal(principals) => Tri::from_bool(principal_matches(principals, request)),
        // Not a form trust policies use; its meaning for a federated caller is not something to guess.
        PrincipalElement::NotPrincipal(_) => Tri::Unknown,
    };
    let action = Tri::from_bool(match &statement.action {
        ActionElement::Action(patterns) => patterns.iter().any(|p| action_matches(p)),
        ActionElement::NotAction(patterns) => !patterns.iter().any(|p| action_matches(p)),
    });
    let conditions: Vec<ConditionResult<'p>> =
        statement.conditions.iter().map(|condition| evaluate_condition(condition, version, request)).collect();
    let applies = conditions.iter().fold(principal.and(action), |acc, c| acc.and(c.result));
    StatementResult { statement, principal, action, conditions, applies }
}

pub fn principal_matches(principals: &Principals, request: &Request) -> bool {
    principals.any || principals.federated().any(|arn| provider_matches(arn, request))
}

/// The ARN names this issuer exactly, in the role's partition and account when those are known.
pub fn provider_matches(arn: &str, request: &Request) -> bool {
    ProviderArn::parse(arn).is_some_and(|p| {
        p.url == request.key_prefix()
            && request.partition.as_deref().is_none_or(|partition| partition == p.partition)
            && request.account.as_deref().is_none_or(|account| account == p.account)
    })
}

/// Action names are case-insensitive; `*` and `?` are wildcards.
fn action_matches(pattern: &str) -> bool {
    let pattern: Vec<Token> = literal_tokens(&pattern.to_lowercase(), true);
    let action: Vec<char> = ACTION.to_lowercase().chars().collect();
    glob(&pattern, &action)
}

pub fn evaluate_condition<'p>(condition: &'p Condition, version: Version, request: &Request) -> ConditionResult<'p> {
    let which = key(request, &condition.key);
    let result = |result, unevaluated: Option<String>| ConditionResult {
        condition,
        operator: Operator::parse(&condition.operator),
        key: which,
        result,
        unevaluated,
    };
    let Some(operator) = Operator::parse(&condition.operator) else {
        return result(Tri::Unknown, Some(format!("{} is not an IAM condition operator", condition.operator)));
    };
    if which == Key::NotEvaluated {
        return result(Tri::Unknown, Some(format!("{} is not known offline", condition.key)));
    }
    let Some(actual) = key_value(request, which) else {
        // The key is absent from the request.
        let outcome = match (operator.base, operator.set, operator.if_exists) {
            (BaseOperator::Null, _, _) => {
                Tri::from_bool(condition.values.iter().any(|v| v.eq_ignore_ascii_case("true")))
            }
            (_, Some(SetOperator::ForAllValues), _) => Tri::True,
            (_, Some(SetOperator::ForAnyValue), true) => {
                return result(
                    Tri::Unknown,
                    Some(format!(
                        "{} is absent, where IAM documents both \"ForAnyValue is false\" and \"IfExists is true\"",
                        condition.key
                    )),
                )
            }
            (_, Some(SetOperator::ForAnyValue), false) => Tri::False,
            (_, None, true) => Tri::True,
            (_, None, false) => Tri::from_bool(operator.negated()),
        };
        return result(outcome, None);
    };
    match operator.base {
        BaseOperator::Null => {
            result(Tri::from_bool(condition.values.iter().any(|v| v.eq_ignore_ascii_case("false"))), None)
        }
        BaseOperator::Other { .. } => result(
            Tri::Unknown,
            Some(format!("{} does not compare a string claim; it is not evaluated", condition.operator)),
        ),
        // The token's sub and aud are single values: a set operator sees a set of one, for which ForAnyValue and
        // ForAllValues both reduce to the plain operator.
        BaseOperator::String { kind, negated } => {
            let mut any = Tri::False;
            let mut why = None;
            for value in &condition.values {
                match string_matches(kind, value, &actual, version, request) {
                    Ok(true) => {
                        any = Tri::True;
                        break;
                    }
                    Ok(false) => {}
                    Err(unknown) => {
                        any = Tri::Unknown;
                        why.get_or_insert(unknown);
                    }
                }
            }
            let outcome = match (any, negated) {
                (Tri::True, negated) => Tri::from_bool(!negated),
                (Tri::False, negated) => Tri::from_bool(negated),
                (Tri::Unknown, _) => return result(Tri::Unknown, why),
            };
            result(outcome, None)
        }
    }
}

/// Does one policy value match the claim? `Err` names a policy variable whose value is not known.
pub fn string_matches(
    kind: StringKind,
    value: &str,
    actual: &str,
    version: Version,
    request: &Request,
) -> Result<bool, String> {
    let pattern = value_tokens(value, version, kind == StringKind::Like, request)?;
    Ok(match kind {
        StringKind::Like => glob(&pattern, &actual.chars().collect::<Vec<_>>()),
        StringKind::Equals => pattern.iter().map(Token::literal).eq(actual.chars().map(Some)),
        StringKind::EqualsIgnoreCase => {
            let literal: String = pattern.iter().filter_map(Token::literal).collect();
            literal.to_lowercase() == actual.to_lowercase()
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run of characters.
    Any,
    /// `?`: one character.
    One,
}

impl Token {
    fn literal(&self) -> Option<char> {
        match self {
            Self::Char(c) => Some(*c),
            Self::Any | Self::One => None,
        }
    }
}

fn literal_tokens(text: &str, wildcards: bool) -> Vec<Token> {
    text.chars()
        .map(|c| match c {
            '*' if wildcards => Token::Any,
            '?' if wildcards => Token::One,
            c => Token::Char(c),
        })
        .collect()
}

/// A policy value as tokens. With Version 2012-10-17, `${*}`, `${?}` and `${$}` are the literal characters and
/// `${<issuer>:sub}` / `${<issuer>:aud}` the token's claims; any other variable is not known offline.
fn value_tokens(value: &str, version: Version, wildcards: bool, request: &Request) -> Result<Vec<Token>, String> {
    if version == Version::V2008 {
        return Ok(literal_tokens(value, wildcards));
    }
    let mut tokens = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        tokens.extend(literal_tokens(&rest[..start], wildcards));
        let inner = &rest[start + 2..start + 2 + length];
        match inner {
            "*" | "?" | "$" => tokens.extend(inner.chars().map(Token::Char)),
            variable => {
                // `${key, 'default'}`: the default only matters when the key is absent, which ours never are.
                let name = variable.split(',').next().unwrap_or_default().trim();
                match key_value(request, key(request, name)) {
                    Some(claim) => tokens.extend(claim.chars().map(Token::Char)),
                    None => return Err(format!("the policy variable ${{{variable}}} is not known offline")),
                }
                // Short variables expand to whole claims: keep the expanded value within the input's own bound.
                if tokens.len() > MAX_POLICY_BYTES {
                    return Err("its policy variables expand to more than this check reads".into());
                }
            }
        }
        rest = &rest[start + 2 + length + 1..];
    }
    tokens.extend(literal_tokens(rest, wildcards));
    Ok(tokens)
}

/// `*`/`?` matching with one backtracking point: O(pattern × text) at worst, no recursion.
fn glob(pattern: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| *token == Token::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::policy;

    const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC";
    const KEY: &str = "oidc.eks.us-west-2.amazonaws.com/id/ABC";

    fn request() -> Request {
        Request::new(
            Issuer::parse(ISSUER).unwrap(),
            ServiceAccountRef::new("team", "app"),
            "sts.amazonaws.com",
            Some("arn:aws:iam::111122223333:role/app"),
        )
    }

    fn condition(operator: &str, key: &str, values: &[&str]) -> Tri {
        let condition = Condition {
            operator: operator.into(),
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        evaluate_condition(&condition, Version::V2012, &request()).result
    }

    #[test]
    fn request_facts() {
        let r = request();
        assert_eq!(r.subject(), "system:serviceaccount:team:app");
        assert_eq!(r.provider_arn().unwrap(), format!("arn:aws:iam::111122223333:oidc-provider/{KEY}"));
        let china = Request::new(
            Issuer::parse("https://oidc.eks.cn-north-1.amazonaws.com.cn/id/X").unwrap(),
            ServiceAccountRef::new("a", "b"),
            "sts.amazonaws.com",
            None,
        );
        assert_eq!((china.partition.as_deref(), china.account.as_deref()), (Some("aws-cn"), None));
        assert_eq!(eks_issuer("oidc.eks.us-gov-west-1.amazonaws.com/id/X"), Some(("us-gov-west-1", "X")));
        assert_eq!(eks_issuer("example.com/id/X"), None);
        let custom =
            Request::new(Issuer::parse("https://example.com").unwrap(), ServiceAccountRef::new("a", "b"), "x", None);
        assert_eq!(custom.partition, None);
    }

    #[test]
    fn keys_are_case_insensitive_and_foreign_ones_absent() {
        let r = request();
        assert_eq!(key(&r, &format!("{KEY}:sub")), Key::Sub);
        assert_eq!(key(&r, &format!("{}:SUB", KEY.to_uppercase())), Key::Sub);
        assert_eq!(key(&r, &format!("{KEY}:Aud")), Key::Aud);
        assert_eq!(key(&r, &format!("{KEY}:amr")), Key::NotEvaluated);
        assert_eq!(key(&r, "aws:SourceIp"), Key::NotEvaluated);
        assert_eq!(key(&r, &format!("https://{KEY}:sub")), Key::Absent);
        assert_eq!(key(&r, &format!("{KEY}/:sub")), Key::Absent);
        assert_eq!(key(&r, "accounts.google.com:aud"), Key::Absent);
        assert_eq!(key(&r, "nocolon"), Key::NotEvaluated);
    }

    #[test]
    fn string_operators() {
        let sub = &format!("{KEY}:sub");
        let me = "system:serviceaccount:team:app";
        assert_eq!(condition("StringEquals", sub, &[me]), Tri::True);
        assert_eq!(condition("StringEquals", sub, &["other", me]), Tri::True, "values are OR");
        assert_eq!(condition("StringEquals", sub, &["system:serviceaccount:team:*"]), Tri::False, "'*' is literal");
        assert_eq!(condition("StringEquals", sub, &["System:ServiceAccount:team:app"]), Tri::False);
        assert_eq!(condition("StringEqualsIgnoreCase", sub, &["System:ServiceAccount:TEAM:app"]), Tri::True);
        assert_eq!(condition("StringNotEqualsIgnoreCase", sub, &["System:ServiceAccount:TEAM:app"]), Tri::False);
        assert_eq!(condition("StringLike", sub, &["system:serviceaccount:team:*"]), Tri::True);
        assert_eq!(condition("StringLike", sub, &["system:serviceaccount:te?m:a*p"]), Tri::True);
        assert_eq!(condition("StringLike", sub, &["system:serviceaccount:team:ap?"]), Tri::True);
        assert_eq!(condition("StringLike", sub, &["system:serviceaccount:team:app?"]), Tri::False);
        assert_eq!(condition("StringLike", sub, &["*:team:*"]), Tri::True);
        assert_eq!(condition("StringNotEquals", sub, &["a", "b"]), Tri::True, "negated: none may match");
        assert_eq!(condition("StringNotEquals", sub, &["a", me]), Tri::False);
        assert_eq!(condition("StringNotLike", sub, &["system:serviceaccount:kube-system:*"]), Tri::True);
        assert_eq!(condition("ForAnyValue:StringLike", sub, &["*:team:*"]), Tri::True);
        assert_eq!(condition("ForAllValues:StringEquals", sub, &["x"]), Tri::False);
        assert_eq!(condition("StringEqualsIfExists", sub, &["x"]), Tri::False, "present: IfExists compares");
        assert_eq!(condition("Null", sub, &["false"]), Tri::True);
        assert_eq!(condition("Null", sub, &["true"]), Tri::False);
        assert_eq!(condition("stringequals", sub, &[me]), Tri::Unknown, "operator names are exact");
        assert_eq!(condition("NumericLessThan", sub, &["1"]), Tri::Unknown);
    }

    #[test]
    fn absent_keys_follow_the_documented_rules() {
        let absent = &format!("https://{KEY}:sub");
        let me = "system:serviceaccount:team:app";
        assert_eq!(condition("StringEquals", absent, &[me]), Tri::False);
        assert_eq!(condition("StringLike", absent, &["*"]), Tri::False);
        assert_eq!(condition("StringNotEquals", absent, &[me]), Tri::True);
        assert_eq!(condition("StringNotLike", absent, &["*"]), Tri::True);
        assert_eq!(condition("StringEqualsIfExists", absent, &["x"]), Tri::True);
        assert_eq!(condition("ForAllValues:StringEquals", absent, &["x"]), Tri::True);
        assert_eq!(condition("ForAnyValue:StringEquals", absent, &[me]), Tri::False);
        assert_eq!(condition("ForAnyValue:StringEqualsIfExists", absent, &[me]), Tri::Unknown);
        assert_eq!(condition("Null", absent, &["true"]), Tri::True);
        assert_eq!(condition("Bool", absent, &["true"]), Tri::False);
        assert_eq!(condition("ArnNotLike", absent, &["arn:*"]), Tri::True);
        assert_eq!(condition("StringEquals", "aws:SourceIp", &["x"]), Tri::Unknown);
    }

    #[test]
    fn policy_variables() {
        let sub = &format!("{KEY}:sub");
        let v2008 = Condition { operator: "StringEquals".into(), key: sub.clone(), values: vec!["${*}".into()] };
        assert_eq!(evaluate_condition(&v2008, Version::V2008, &request()).result, Tri::False);
        assert_eq!(
            condition("StringLike", sub, &["system:serviceaccount:team:${*}"]),
            Tri::False,
            "${{*}} is a literal *"
        );
        assert_eq!(condition("StringEquals", sub, &[&format!("${{{KEY}:sub}}")]), Tri::True);
        let unknown =
            Condition { operator: "StringEquals".into(), key: sub.clone(), values: vec!["${aws:username}".into()] };
        let result = evaluate_condition(&unknown, Version::V2012, &request());
        assert_eq!(result.result, Tri::Unknown);
        assert!(result.unevaluated.unwrap().contains("${aws:username}"));
        // One value that matches settles an OR, whatever the unknown one would be.
        assert_eq!(condition("StringEquals", sub, &["${aws:username}", "system:serviceaccount:team:app"]), Tri::True);
        assert_eq!(condition("StringEquals", sub, &["${aws:username}", "x"]), Tri::Unknown);
        // A short issuer makes short variables: their expansion stays within the input's bound.
        let short =
            Request::new(Issuer::parse("https://a.io").unwrap(), ServiceAccountRef::new("team", "app"), "x", None);
        let many = Condition {
            operator: "StringLike".into(),
            key: "a.io:sub".into(),
            values: vec!["${a.io:sub}".repeat(3000)],
        };
        let result = evaluate_condition(&many, Version::V2012, &short);
        assert_eq!(result.result, Tri::Unknown);
        assert!(result.unevaluated.unwrap().contains("expand"));
    }

    #[test]
    fn statements_and_decisions() {
        let document = |statements: &str| {
            policy::parse(format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#).as_bytes())
                .unwrap()
                .document
        };
        let allow = format!(
            r#"{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::111122223333:oidc-provider/{KEY}"}},"Action":"sts:AssumeRoleWith*","Condition":{{"StringEquals":{{"{KEY}:sub":"system:serviceaccount:team:app"}}}}}}"#
        );
        let deny = r#"{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"StringLike":{"oidc.eks.us-west-2.amazonaws.com/id/ABC:sub":"*:team:*"}}}"#;
        let deny_unknown =
            r#"{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#;
        let r = request();
        assert_eq!(evaluate(&document(&allow), &r).decision, Decision::Allowed);
        assert_eq!(evaluate(&document(&format!("{allow},{deny}")), &r).decision, Decision::ExplicitDeny);
        assert_eq!(evaluate(&document(&format!("{allow},{deny_unknown}")), &r).decision, Decision::Undetermined);
        let other_account = allow.replace("111122223333", "444455556666");
        assert_eq!(evaluate(&document(&other_account), &r).decision, Decision::NotAllowed);
        let other_action = allow.replace("sts:AssumeRoleWith*", "sts:AssumeRole");
        assert_eq!(evaluate(&document(&other_action), &r).decision, Decision::NotAllowed);
        let not_action = allow.replace("\"Action\":\"sts:AssumeRoleWith*\"", "\"NotAction\":\"iam:*\"");
        assert_eq!(evaluate(&document(&not_action), &r).decision, Decision::Allowed);
        let case = allow.replace("sts:AssumeRoleWith*", "STS:assumerolewithwebidentity");
        assert_eq!(evaluate(&document(&case), &r).decision, Decision::Allowed);
        let not_principal = allow.replace("\"Principal\"", "\"NotPrincipal\"");
        assert_eq!(evaluate(&document(&not_principal), &r).decision, Decision::Undetermined);
    }

    #[test]
    fn provider_arns() {
        let p = ProviderArn::parse("arn:aws:iam::111122223333:oidc-provider/example.com:8443/x").unwrap();
        assert_eq!((p.partition, p.account, p.url), ("aws", "111122223333", "example.com:8443/x"));
        assert_eq!(ProviderArn::parse("arn:aws:iam::111122223333:saml-provider/x"), None);
        assert_eq!(ProviderArn::parse("cognito-identity.amazonaws.com"), None);
    }

    #[test]
    fn glob_is_not_exponential() {
        let text: Vec<char> = "a".repeat(300).chars().collect();
        let pattern = literal_tokens(&format!("{}b", "*a".repeat(2000)), true);
        assert!(!glob(&pattern, &text));
        assert!(glob(&literal_tokens("*", true), &[]));
        assert!(!glob(&literal_tokens("?", true), &[]));
    }
}
