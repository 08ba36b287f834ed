//! The IAM role trust policy that lets the pods of given ServiceAccounts assume a role with their projected token,
//! as JSON or as a Terraform `aws_iam_role`. Pure.

use serde_json::{json, Map, Value};

use crate::oidc::{Issuer, OidcError};
use crate::settings::DEFAULT_TOKEN_AUDIENCE;
use crate::shell;

pub const DEFAULT_PARTITION: &str = "aws";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustPolicyError {
    #[error(transparent)]
    Issuer(#[from] OidcError),
    #[error("account {0:?} is not a 12-digit AWS account ID")]
    Account(String),
    #[error("partition {0:?} is not an AWS partition name (aws, aws-cn, aws-us-gov, ...)")]
    Partition(String),
    #[error("the audience must not be empty")]
    EmptyAudience,
    #[error("at least one service account is needed")]
    NoServiceAccount,
    #[error("service account {value:?}: {reason}")]
    ServiceAccount { value: String, reason: &'static str },
    #[error("role name {0:?} is not a valid IAM role name (1-64 characters of A-Z a-z 0-9 +=,.@_-)")]
    RoleName(String),
}

/// `namespace/name`, either part possibly with `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountPattern {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountPattern {
    pub fn parse(value: &str) -> Result<Self, TrustPolicyError> {
        let refuse = |reason| Err(TrustPolicyError::ServiceAccount { value: value.to_owned(), reason });
        let Some((namespace, name)) = value.split_once('/') else {
            return refuse("expected NAMESPACE/NAME");
        };
        if value.contains('?') {
            // In StringLike `?` matches any character; Kubernetes names never contain one, so it is a mistake.
            return refuse("'?' is a wildcard in IAM StringLike and never part of a Kubernetes name; use '*'");
        }
        if !is_name_pattern(namespace, 63, false) {
            return refuse("the namespace must be a DNS label (a-z, 0-9, '-', at most 63), '*' allowed as a wildcard");
        }
        if !is_name_pattern(name, 253, true) {
            return refuse(
                "the name must be a DNS subdomain (a-z, 0-9, '-', '.', at most 253), '*' allowed as a wildcard",
            );
        }
        Ok(Self { namespace: namespace.to_owned(), name: name.to_owned() })
    }

    /// The token's `sub` claim for this ServiceAccount.
    pub fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    pub fn is_wildcard(&self) -> bool {
        self.namespace.contains('*') || self.name.contains('*')
    }
}

/// Kubernetes' DNS-1123 label (or subdomain when `dots`), with `*` standing for any run of characters.
fn is_name_pattern(value: &str, max_len: usize, dots: bool) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*' || (dots && c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '*');
    !value.is_empty()
        && value.len() <= max_len
        && value.chars().all(allowed)
        && edge(value.chars().next())
        && edge(value.chars().last())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicyRequest {
    pub issuer: Issuer,
    pub account_id: String,
    pub partition: String,
    pub audience: String,
    pub service_accounts: Vec<ServiceAccountPattern>,
}

impl TrustPolicyRequest {
    /// Validates every part; duplicate service accounts are dropped, order kept.
    pub fn new(
        issuer: &str,
        account_id: &str,
        partition: &str,
        audience: &str,
        service_accounts: &[String],
    ) -> Result<Self, TrustPolicyError> {
        let issuer = Issuer::parse(issuer)?;
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TrustPolicyError::Account(account_id.to_owned()));
        }
        if !partition.starts_with("aws")
            || !partition.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(TrustPolicyError::Partition(partition.to_owned()));
        }
        if audience.trim().is_empty() {
            return Err(TrustPolicyError::EmptyAudience);
        }
        let mut patterns: Vec<ServiceAccountPattern> = Vec::new();
        for value in service_accounts {
            let pattern = ServiceAccountPattern::parse(value)?;
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        if patterns.is_empty() {
            return Err(TrustPolicyError::NoServiceAccount);
        }
        Ok(Self {
            issuer,
            account_id: account_id.to_owned(),
            partition: partition.to_owned(),
            audience: audience.to_owned(),
            service_accounts: patterns,
        })
    }

    /// `arn:<partition>:iam::<account>:oidc-provider/<issuer without https://>`.
    pub fn provider_arn(&self) -> String {
        format!("arn:{}:iam::{}:oidc-provider/{}", self.partition, self.account_id, self.issuer.without_scheme())
    }

    /// The policy document. `sub` goes under StringLike as soon as one pattern has a `*` (StringEquals would compare
    /// the `*` literally and never match); `aud` always stays under StringEquals.
    pub fn policy(&self) -> Value {
        let prefix = self.issuer.without_scheme();
        let subjects: Vec<String> = self.service_accounts.iter().map(ServiceAccountPattern::subject).collect();
        let subject = match subjects.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let sub_key = format!("{prefix}:sub");
        let aud_key = format!("{prefix}:aud");
        let mut condition = Map::new();
        if self.service_accounts.iter().any(ServiceAccountPattern::is_wildcard) {
            condition.insert("StringEquals".into(), json!({ aud_key: self.audience }));
            condition.insert("StringLike".into(), json!({ sub_key: subject }));
        } else {
            let mut equals = Map::new();
            equals.insert(sub_key, subject);
            equals.insert(aud_key, json!(self.audience));
            condition.insert("StringEquals".into(), Value::Object(equals));
        }
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Federated": self.provider_arn() },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }],
        })
    }

    /// A role name from the service accounts: `namespace-name` joined by `-`, `*` spelled `all`, cut to IAM's 64.
    pub fn default_role_name(&self) -> String {
        let joined = self
            .service_accounts
            .iter()
            .map(|sa| format!("{}-{}", sa.namespace, sa.name).replace('*', "all"))
            .collect::<Vec<_>>()
            .join("-");
        joined.chars().take(64).collect::<String>().trim_end_matches(['-', '.']).to_owned()
    }

    /// An `aws_iam_role` resource whose `assume_role_policy` is the policy as `jsonencode({...})`, laid out as
    /// `terraform fmt` would lay it out, so it pastes into a module without a diff.
    pub fn terraform(&self, role_name: Option<&str>) -> Result<String, TrustPolicyError> {
        let name = match role_name {
            Some(name) => {
                let iam_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
                if name.is_empty() || name.len() > 64 || !name.chars().all(iam_char) {
                    return Err(TrustPolicyError::RoleName(name.to_owned()));
                }
                name.to_owned()
            }
            None => self.default_role_name(),
        };
        let mut out = format!("resource \"aws_iam_role\" \"{}\" {{\n", terraform_identifier(&name));
        out.push_str(&format!("  name = {}\n", hcl_string(&name)));
        out.push_str(&format!("  assume_role_policy = jsonencode({})\n", hcl_value(&self.policy(), 1)));
        out.push_str("}\n");
        Ok(out)
    }
}

/// The `irsa-webhook trust-policy` command that prints a correct policy for one ServiceAccount, as a one-line fix;
/// `<account>` stands in for an account that is not known.
pub fn command_line(
    issuer: &Issuer,
    account: Option<&str>,
    partition: &str,
    audience: &str,
    service_account: &str,
) -> String {
    let mut line = format!(
        "irsa-webhook trust-policy --issuer {} --account {} --service-account {}",
        shell::word(issuer.as_str()),
        account.map_or_else(|| "<account>".to_owned(), shell::word),
        shell::word(service_account)
    );
    if audience != DEFAULT_TOKEN_AUDIENCE {
        line.push_str(&format!(" --audience {}", shell::word(audience)));
    }
    if partition != DEFAULT_PARTITION {
        line.push_str(&format!(" --partition {}", shell::word(partition)));
    }
    line
}

/// Terraform resource names: letters, digits, `_` and `-`, not starting with a digit; snake_case by convention.
fn terraform_identifier(name: &str) -> String {
    let mut id: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id.insert_str(0, "sa_");
    }
    id
}

fn hcl_string(value: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `${` and `%{` start template sequences in HCL strings; doubling the sigil makes them literal.
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_key(key: &str) -> String {
    let mut chars = key.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if identifier {
        key.to_owned()
    } else {
        hcl_string(key)
    }
}

/// HCL for a JSON value at nesting `level` (two spaces each). Follows `terraform fmt`: in an object, consecutive
/// one-line `key = value` lines align their `=`; a line that opens a multi-line value is not aligned and ends the run.
fn hcl_value(value: &Value, level: usize) -> String {
    let indent = "  ".repeat(level + 1);
    let close = "  ".repeat(level);
    match value {
        Value::String(s) => hcl_string(s),
        Value::Null => "null".into(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            format!("[{}]", items.iter().map(|i| hcl_value(i, level)).collect::<Vec<_>>().join(", "))
        }
        Value::Array(items) => {
            let lines: String = items.iter().map(|i| format!("{indent}{},\n", hcl_value(i, level + 1))).collect();
            format!("[\n{lines}{close}]")
        }
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => {
            let members: Vec<(String, String)> =
                map.iter().map(|(k, v)| (hcl_key(k), hcl_value(v, level + 1))).collect();
            let mut out = String::from("{\n");
            let mut run_start = 0;
            for i in 0..=members.len() {
                let multi_line = members.get(i).is_none_or(|(_, v)| v.contains('\n'));
                if !multi_line {
                    continue;
                }
                let width = members[run_start..i].iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (key, rendered) in &members[run_start..i] {
                    out.push_str(&format!("{indent}{key:<width$} = {rendered}\n"));
                }
                if let Some((key, rendered)) = members.get(i) {
                    out.push_str(&format!("{indent}{key} = {rendered}\n"));
                }
                run_start = i + 1;
            }
            out.push_str(&close);
            out.push('}');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sas: &[&str]) -> TrustPolicyRequest {
        let sas: Vec<String> = sas.iter().map(|s| s.to_string()).collect();
        TrustPolicyRequest::new("https://oidc.example.com/id/ABC", "111122223333", "aws", DEFAULT_TOKEN_AUDIENCE, &sas)
            .unwrap()
    }

    #[test]
    fn exact_subjects_use_string_equals() {
        let policy = request(&["default/app"]).policy();
        let condition = &policy["Statement"][0]["Condition"];
        assert_eq!(condition["StringEquals"]["oidc.example.com/id/ABC:sub"], "system:serviceaccount:default:app");
        assert_eq!(condition["StringEquals"]["oidc.example.com/id/ABC:aud"], "sts.amazonaws.com");
        assert!(condition.get("StringLike").is_none());
        assert_eq!(
            policy["Statement"][0]["Principal"]["Federated"],
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC"
        );
    }

    #[test]
    fn wildcards_move_sub_to_string_like() {
        let policy = request(&["team-a/*", "default/app", "team-a/*"]).policy();
        let condition = &policy["Statement"][0]["Condition"];
        assert_eq!(
            condition["StringLike"]["oidc.example.com/id/ABC:sub"],
            json!(["system:serviceaccount:team-a:*", "system:serviceaccount:default:app"])
        );
        assert_eq!(condition["StringEquals"], json!({"oidc.example.com/id/ABC:aud": "sts.amazonaws.com"}));
    }

    #[test]
    fn validation() {
        let new = |issuer: &str, account: &str, partition: &str, audience: &str, sa: &str| {
            TrustPolicyRequest::new(issuer, account, partition, audience, &[sa.to_owned()]).err()
        };
        let issuer = "https://oidc.example.com";
        assert!(matches!(new("http://x", "111122223333", "aws", "a", "n/s"), Some(TrustPolicyError::Issuer(_))));
        assert!(matches!(new(issuer, "1234", "aws", "a", "n/s"), Some(TrustPolicyError::Account(_))));
        assert!(matches!(new(issuer, "111122223333", "AWS", "a", "n/s"), Some(TrustPolicyError::Partition(_))));
        assert_eq!(new(issuer, "111122223333", "aws", " ", "n/s"), Some(TrustPolicyError::EmptyAudience));
        for bad in ["nons", "/s", "n/", "N/s", "n/s?", "n/-s", "a.b/s", "n/s_x"] {
            assert!(
                matches!(new(issuer, "111122223333", "aws", "a", bad), Some(TrustPolicyError::ServiceAccount { .. })),
                "{bad}"
            );
        }
        for good in ["n/s", "*/*", "kube-system/aws-node", "n/s.v1", "team-*/app-*"] {
            assert_eq!(new(issuer, "111122223333", "aws-us-gov", "a", good), None, "{good}");
        }
        assert_eq!(
            TrustPolicyRequest::new(issuer, "111122223333", "aws", "a", &[]).err(),
            Some(TrustPolicyError::NoServiceAccount)
        );
    }

    #[test]
    fn hcl_strings_escape_templates_and_quotes() {
        assert_eq!(hcl_string("a\"b\\c${d}%{e}$f"), r#""a\"b\\c$${d}%%{e}$f""#);
        assert_eq!(hcl_key("Version"), "Version");
        assert_eq!(hcl_key("x.com:sub"), "\"x.com:sub\"");
    }

    #[test]
    fn command_lines() {
        let issuer = Issuer::parse("https://oidc.example.com/id/A").unwrap();
        assert_eq!(
            command_line(&issuer, Some("111122223333"), "aws", DEFAULT_TOKEN_AUDIENCE, "team/app"),
            "irsa-webhook trust-policy --issuer https://oidc.example.com/id/A --account 111122223333 \
             --service-account team/app"
        );
        assert_eq!(
            command_line(&issuer, None, "aws-cn", "it's mine", "team/app"),
            "irsa-webhook trust-policy --issuer https://oidc.example.com/id/A --account <account> \
             --service-account team/app --audience 'it'\\''s mine' --partition aws-cn"
        );
    }

    #[test]
    fn terraform_names() {
        let r = request(&["kube-system/aws-node"]);
        assert_eq!(r.default_role_name(), "kube-system-aws-node");
        assert!(r.terraform(None).unwrap().starts_with("resource \"aws_iam_role\" \"kube_system_aws_node\" {\n"));
        assert!(r.terraform(Some("1st-role")).unwrap().contains("\"sa_1st_role\""));
        assert!(r.terraform(Some("bad name")).is_err());
        assert_eq!(request(&["team/*"]).default_role_name(), "team-all");
    }
}
