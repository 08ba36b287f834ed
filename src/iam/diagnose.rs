//! From an [`Evaluation`] to the lines people read: the `ok` / `problem` / `hint` findings of `doctor`, each naming
//! the statement (Sid or position) and the condition, what the token has instead, and the fix in one line — the
//! corrected condition, or the `irsa-webhook trust-policy` command that prints a correct policy. Near misses are
//! named: a typo in the namespace or ServiceAccount, `StringEquals` with a wildcard, another cluster's provider,
//! `https://` or a trailing slash where IAM has neither, the wrong partition or account.

use std::collections::HashMap;

use serde_json::Value;

use super::evaluate::{
    self, eks_issuer, Decision, Evaluation, Key, Operator, ProviderArn, Request, StatementResult, StringKind, Tri,
    ACTION,
};
use super::policy::{ActionElement, Condition, Effect, PrincipalElement, RolePolicy, Statement, Version};
use super::CHECK_TRUST_POLICY;
use crate::doctor::Finding;
use crate::identity;

/// At most this many lines about the conditions of one statement (each carries its operator's whole block).
const MAX_CONDITION_LINES: usize = 10;

/// Edit distances are computed only on strings up to this long (they are O(a × b)); Kubernetes names are shorter.
const MAX_COMPARED_LEN: usize = 253;

fn ok(message: String) -> Finding {
    Finding::ok(CHECK_TRUST_POLICY, message)
}

fn problem(message: String, fix: String) -> Finding {
    Finding::problem(CHECK_TRUST_POLICY, message, fix)
}

fn hint(message: String, fix: Option<String>) -> Finding {
    Finding::hint(CHECK_TRUST_POLICY, message, fix)
}

/// The findings for one trust policy. `service_account_role` is the role the ServiceAccount names, when known.
pub fn diagnose(
    policy: &RolePolicy,
    request: &Request,
    service_account_role: Option<&str>,
    evaluation: &Evaluation<'_>,
) -> Vec<Finding> {
    let context = Context { request, version: policy.document.version };
    let mut findings = Vec::new();
    if let (Some(given), Some(named)) = (policy.role_arn.as_deref(), service_account_role) {
        findings.push(context.role_line(given, named));
    }
    for result in &evaluation.statements {
        if result.statement.has_resource {
            findings.push(hint(
                format!(
                    "{} has a Resource element, which IAM refuses in a trust policy: is this the role's \
                     permissions policy?",
                    result.statement.label()
                ),
                Some(
                    "give the trust policy: aws iam get-role --role-name <role> (its AssumeRolePolicyDocument)".into(),
                ),
            ));
        }
    }
    let with_effect = |effect: Effect, applies: Tri| {
        evaluation.statements.iter().filter(move |s| s.statement.effect == effect && s.applies == applies)
    };
    match evaluation.decision {
        Decision::Allowed => {
            for result in with_effect(Effect::Allow, Tri::True) {
                findings.push(ok(context.allows(result)));
                findings.extend(context.allow_hints(result));
            }
        }
        Decision::ExplicitDeny => {
            for result in with_effect(Effect::Deny, Tri::True) {
                findings.push(context.denies(result));
            }
        }
        Decision::Undetermined => {
            let mut allowed = false;
            for result in with_effect(Effect::Allow, Tri::True) {
                allowed = true;
                findings.push(ok(context.allows(result)));
                findings.extend(context.allow_hints(result));
            }
            for result in &evaluation.statements {
                let relevant = result.statement.effect == Effect::Deny || !allowed;
                if relevant && result.applies == Tri::Unknown {
                    findings.push(context.undetermined(result));
                }
            }
        }
        Decision::NotAllowed => findings.extend(context.not_allowed(evaluation)),
    }
    findings
}

struct Context<'r> {
    request: &'r Request,
    version: Version,
}

impl Context<'_> {
    fn subject(&self) -> String {
        self.request.subject()
    }

    fn key_for(&self, claim: Key) -> String {
        let name = if claim == Key::Aud { "aud" } else { "sub" };
        format!("{}:{name}", self.request.key_prefix())
    }

    fn claim(&self, claim: Key) -> Option<String> {
        match claim {
            Key::Sub => Some(self.subject()),
            Key::Aud => Some(self.request.audience.clone()),
            Key::Absent | Key::NotEvaluated => None,
        }
    }

    /// The `trust-policy` command for a correct policy; the account of a provider ARN found in the policy stands in
    /// for a role account that is not known.
    fn command(&self, found: Option<ProviderArn<'_>>) -> String {
        crate::trust_policy::command_line(
            &self.request.issuer,
            self.request.account.as_deref().or(found.map(|p| p.account)),
            self.request.partition.as_deref().unwrap_or(crate::trust_policy::DEFAULT_PARTITION),
            &self.request.audience,
            &self.request.service_account.to_string(),
        )
    }

    /// The provider ARN to write, with `<account>` / the policy's own partition where they are not known.
    fn provider_arn_or(&self, found: Option<ProviderArn<'_>>) -> String {
        let partition = self.request.partition.as_deref().or(found.map(|p| p.partition)).unwrap_or("aws");
        let account = self.request.account.as_deref().or(found.map(|p| p.account)).unwrap_or("<account>");
        format!("arn:{partition}:iam::{account}:oidc-provider/{}", self.request.key_prefix())
    }

    fn role_line(&self, given: &str, named: &str) -> Finding {
        let sa = &self.request.service_account;
        if given == named {
            return ok(format!("the policy is the trust policy of role {given}, the role ServiceAccount {sa} names"));
        }
        let name_of = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
        let message = format!(
            "ServiceAccount {sa} names role {named}, but the policy given is role {given}'s: STS checks the trust \
             policy of {named}"
        );
        let fix = format!("check that role's trust policy: aws iam get-role --role-name {}", name_of(named));
        if name_of(given) == name_of(named) && given.split(':').nth(4) == named.split(':').nth(4) {
            // Same account and name, another path: role names are unique in an account, so this may well be the
            // same role written two ways. Say so rather than call it a problem.
            return hint(
                format!("{message} (the same name with another path: are both spelt as IAM prints the ARN?)"),
                Some(fix),
            );
        }
        problem(message, fix)
    }

    fn allows(&self, result: &StatementResult<'_>) -> String {
        let principal = match &result.statement.principal {
            PrincipalElement::Principal(p) => {
                match p.federated().find(|arn| evaluate::provider_matches(arn, self.request)) {
                    Some(arn) => format!("Federated {arn}"),
                    None => "Principal \"*\"".to_owned(),
                }
            }
            PrincipalElement::NotPrincipal(_) => "NotPrincipal".to_owned(),
        };
        format!(
            "{} allows ServiceAccount {}: {principal}, sub {}, aud {}",
            result.statement.label(),
            self.request.service_account,
            self.subject(),
            self.request.audience
        )
    }

    /// What is loose or unchecked about a statement that allows.
    fn allow_hints(&self, result: &StatementResult<'_>) -> Vec<Finding> {
        let label = result.statement.label();
        let mut hints = Vec::new();
        if let PrincipalElement::Principal(p) = &result.statement.principal {
            let by_provider = p.federated().find(|arn| evaluate::provider_matches(arn, self.request));
            match by_provider {
                None => hints.push(hint(
                    format!(
                        "{label} trusts every principal (\"*\"): any identity provider of the account whose tokens \
                         meet its conditions"
                    ),
                    Some(format!(
                        "name the provider: \"Principal\": {{\"Federated\": \"{}\"}}",
                        self.provider_arn_or(None)
                    )),
                )),
                Some(arn) if self.request.account.is_none() => hints.push(hint(
                    format!(
                        "{label}: the provider's account {} is not compared with the role's, which is not known here",
                        ProviderArn::parse(arn).map_or("", |p| p.account)
                    ),
                    Some("give the role ARN (--role-arn), or the whole `aws iam get-role` output".into()),
                )),
                Some(_) => {}
            }
        }
        let checks = |claim: Key| {
            result.conditions.iter().filter(move |c| {
                let positive = |op: Operator| matches!(op.base, evaluate::BaseOperator::String { negated: false, .. });
                c.key == claim && c.operator.is_some_and(positive)
            })
        };
        // Conditions that hold only because their key is absent (IfExists, a negated operator, ForAllValues): they
        // look like checks and check nothing.
        let mut vacuous_claims = Vec::new();
        for c in
            result.conditions.iter().filter(|c| c.key == Key::Absent && c.result == Tri::True).take(MAX_CONDITION_LINES)
        {
            vacuous_claims.extend(absent_claim(&c.condition.key));
            let fix = self.correction(c).map(|k| {
                let block = render_block(result.statement, &k.operator, std::slice::from_ref(&k));
                format!("name the key as IAM does: {block}")
            });
            hints.push(hint(
                format!(
                    "{label}: {} holds only because this request has no such key, so it checks nothing ({})",
                    condition_text(c.condition),
                    self.absent_why(&c.condition.key)
                ),
                fix,
            ));
        }
        let sub = self.subject();
        if checks(Key::Sub).next().is_none() && !vacuous_claims.contains(&Key::Sub) {
            hints.push(hint(
                format!(
                    "{label} does not check {}: every ServiceAccount of the cluster whose token has audience {} can \
                     assume the role",
                    self.key_for(Key::Sub),
                    self.request.audience
                ),
                Some(format!(
                    "add the condition \"StringEquals\": {{{}: {}}}",
                    quote(&self.key_for(Key::Sub)),
                    quote(&sub)
                )),
            ));
        } else {
            // Matched only through a wildcard: every ServiceAccount the pattern covers gets the role too.
            let sub = sub.as_str();
            let wildcards: Vec<&str> = checks(Key::Sub)
                .flat_map(|c| {
                    let kind = string_kind(c.operator);
                    c.condition.values.iter().filter(move |v| {
                        kind == Some(StringKind::Like)
                            && v.contains(['*', '?'])
                            && evaluate::string_matches(StringKind::Like, v, sub, self.version, self.request)
                                == Ok(true)
                    })
                })
                .map(String::as_str)
                .collect();
            let exact = checks(Key::Sub).any(|c| c.condition.values.iter().any(|v| v == sub));
            if !wildcards.is_empty() && !exact {
                hints.push(hint(
                    format!(
                        "{label} matches {} by wildcard ({}): every ServiceAccount that matches can assume the role",
                        self.key_for(Key::Sub),
                        values_text(wildcards.iter().copied())
                    ),
                    None,
                ));
            }
        }
        if checks(Key::Aud).next().is_none() && !vacuous_claims.contains(&Key::Aud) {
            let provider = self.request.provider_arn();
            hints.push(hint(
                format!(
                    "{label} does not check {}; STS still requires the token's audience {} to be a client ID of the \
                     IAM OIDC provider",
                    self.key_for(Key::Aud),
                    self.request.audience
                ),
                Some(format!(
                    "aws iam get-open-id-connect-provider --open-id-connect-provider-arn {} --query ClientIDList",
                    provider.unwrap_or_else(|| self.provider_arn_or(None))
                )),
            ));
        }
        let set_operators = result
            .conditions
            .iter()
            .filter(|c| c.operator.is_some_and(|op| op.set.is_some()) && matches!(c.key, Key::Sub | Key::Aud));
        for c in set_operators.take(MAX_CONDITION_LINES) {
            let Some(operator) = c.operator else { continue };
            let plain = c.condition.operator.split_once(':').map_or("", |(_, rest)| rest);
            let absent = if operator.set == Some(evaluate::SetOperator::ForAllValues) {
                ", and ForAllValues matches when the key is absent"
            } else {
                ""
            };
            hints.push(hint(
                format!(
                    "{label} uses {} on {}, a single-valued key: AWS advises set operators for multivalued keys \
                     only{absent}",
                    c.condition.operator, c.condition.key
                ),
                Some(format!("use {plain}")),
            ));
        }
        hints
    }

    fn denies(&self, result: &StatementResult<'_>) -> Finding {
        let label = result.statement.label();
        let matched: Vec<String> = result.conditions.iter().map(|c| condition_text(c.condition)).collect();
        let because = if matched.is_empty() { String::new() } else { format!(" ({})", matched.join(", ")) };
        problem(
            format!(
                "{label} denies ServiceAccount {}{because}, and an explicit Deny wins over every Allow",
                self.request.service_account
            ),
            format!("remove {label}, or change its condition so that it does not match {}", self.subject()),
        )
    }

    fn undetermined(&self, result: &StatementResult<'_>) -> Finding {
        let label = result.statement.label();
        let mut unknown: Vec<String> = Vec::new();
        if result.principal == Tri::Unknown {
            unknown.push("NotPrincipal is not evaluated".into());
        }
        for c in result.conditions.iter().filter(|c| c.result == Tri::Unknown) {
            match (c.key, c.unevaluated.as_deref()) {
                (Key::NotEvaluated, _) | (_, None) => unknown.push(condition_text(c.condition)),
                (_, Some(why)) => unknown.push(format!("{} ({why})", condition_text(c.condition))),
            }
        }
        let verb = if result.statement.effect == Effect::Allow { "allows" } else { "denies" };
        hint(
            format!(
                "{label} {verb} ServiceAccount {} only if these conditions hold, which cannot be evaluated offline: {}",
                self.request.service_account,
                unknown.join("; ")
            ),
            None,
        )
    }

    fn not_allowed(&self, evaluation: &Evaluation<'_>) -> Vec<Finding> {
        let allows: Vec<&StatementResult<'_>> =
            evaluation.statements.iter().filter(|s| s.statement.effect == Effect::Allow).collect();
        let mut findings = Vec::new();
        // `"*"` trusts everyone, so it only counts where the action is right; a named provider counts either way.
        let trusting: Vec<&&StatementResult<'_>> = allows
            .iter()
            .filter(|s| s.principal == Tri::True && (self.names_provider(s.statement) || s.action != Tri::False))
            .collect();
        for result in &trusting {
            if result.action == Tri::False {
                findings.push(problem(
                    format!(
                        "{} trusts this cluster's provider, but its {}, so it does not allow {ACTION}",
                        result.statement.label(),
                        action_text(&result.statement.action)
                    ),
                    format!("\"Action\": \"{ACTION}\""),
                ));
            } else {
                findings.extend(self.failed_conditions(result));
            }
        }
        if !trusting.is_empty() {
            return findings;
        }
        // No statement trusts this cluster's provider: name the near misses among those that could apply.
        for result in allows.iter().filter(|s| s.action != Tri::False) {
            let PrincipalElement::Principal(principals) = &result.statement.principal else { continue };
            for arn in principals.federated() {
                if let Some((finding, only_spelling)) = self.provider_miss(result.statement, arn) {
                    findings.push(finding);
                    if only_spelling {
                        findings.extend(self.failed_conditions(result));
                    }
                }
            }
        }
        if findings.is_empty() {
            let trusted: Vec<String> = allows
                .iter()
                .filter_map(|s| match &s.statement.principal {
                    PrincipalElement::Principal(p) => {
                        Some(p.entries.iter().map(|(kind, value)| format!("{} {kind} {value}", s.statement.label())))
                    }
                    PrincipalElement::NotPrincipal(_) => None,
                })
                .flatten()
                .collect();
            let trusted = if trusted.is_empty() { "no Allow statement".to_owned() } else { trusted.join(", ") };
            findings.push(problem(
                format!(
                    "no statement allows {ACTION} from this cluster's provider {}; the policy trusts: {trusted}",
                    self.request
                        .provider_arn()
                        .unwrap_or_else(|| format!("oidc-provider/{}", self.request.key_prefix()))
                ),
                self.command(None),
            ));
        }
        findings
    }

    fn names_provider(&self, statement: &Statement) -> bool {
        match &statement.principal {
            PrincipalElement::Principal(p) => p.federated().any(|arn| evaluate::provider_matches(arn, self.request)),
            PrincipalElement::NotPrincipal(_) => false,
        }
    }

    /// Why `arn` is not this cluster's provider, and whether only its spelling is wrong (so the statement's
    /// conditions are worth reading too). `None` for principals that are not OIDC provider ARNs.
    fn provider_miss(&self, statement: &Statement, arn: &str) -> Option<(Finding, bool)> {
        let found = ProviderArn::parse(arn)?;
        let mut reasons = Vec::new();
        let mut only_spelling = true;
        if found.url != self.request.key_prefix() {
            let miss = url_miss(found.url, self.request.key_prefix());
            only_spelling &= miss.is_spelling();
            reasons.push(format!("its issuer {}", miss.describe(self.request.key_prefix())));
        }
        if let Some(partition) = self.request.partition.as_deref().filter(|p| *p != found.partition) {
            let source = match &self.request.role_arn {
                Some(role) => format!("the role {role} is"),
                None => match eks_issuer(self.request.key_prefix()) {
                    Some((region, _)) => format!("this cluster's region {region} is"),
                    None => "this cluster is".to_owned(),
                },
            };
            reasons.push(format!("its partition is {}, but {source} in {partition}", found.partition));
        }
        if let Some(account) = self.request.account.as_deref().filter(|a| *a != found.account) {
            reasons.push(format!(
                "its account is {}, but the role's is {account} (STS looks for the provider in the role's account)",
                found.account
            ));
        }
        let fix = if only_spelling {
            format!("\"Principal\": {{\"Federated\": \"{}\"}}", self.provider_arn_or(Some(found)))
        } else {
            self.command(Some(found))
        };
        let message =
            format!("{} trusts {arn}, not this cluster's provider: {}", statement.label(), reasons.join("; "));
        Some((problem(message, fix), only_spelling))
    }

    /// One problem per failing condition of a statement, each with the corrected condition block.
    fn failed_conditions(&self, result: &StatementResult<'_>) -> Vec<Finding> {
        let failing: Vec<&evaluate::ConditionResult<'_>> =
            result.conditions.iter().filter(|c| c.result == Tri::False).collect();
        let corrections: Vec<Correction<'_>> = failing.iter().filter_map(|c| self.correction(c)).collect();
        // Each line carries its operator's whole block, so a pasted policy with thousands of failing keys would print
        // thousands of blocks: past a handful, one line sends to a correct policy instead.
        let mut findings: Vec<Finding> = failing
            .iter()
            .take(MAX_CONDITION_LINES)
            .map(|c| {
                let message = format!("{}: {}", result.statement.label(), self.condition_message(c));
                let fix = match corrections.iter().find(|k| std::ptr::eq(k.condition, c.condition)) {
                    Some(correction) => {
                        let block = render_block(result.statement, &correction.operator, &corrections);
                        if correction.operator == c.condition.operator {
                            block
                        } else {
                            format!("move it to {}: {block}", correction.operator)
                        }
                    }
                    None => format!("remove {} from {}", c.condition.key, c.condition.operator),
                };
                problem(message, fix)
            })
            .collect();
        if failing.len() > MAX_CONDITION_LINES {
            findings.push(problem(
                format!("{}: {} more conditions fail", result.statement.label(), failing.len() - MAX_CONDITION_LINES),
                self.command(None),
            ));
        }
        findings
    }

    /// Why a condition fails, in words.
    fn condition_message(&self, c: &evaluate::ConditionResult<'_>) -> String {
        let condition = c.condition;
        let operator = c.operator;
        if c.key == Key::Absent {
            return format!(
                "{}: this request has no such key, so the condition fails ({})",
                condition_text(condition),
                self.absent_why(&condition.key)
            );
        }
        let Some(actual) = self.claim(c.key) else {
            return format!("{} fails", condition_text(condition));
        };
        let claim = if c.key == Key::Sub { "sub" } else { "aud" };
        let Some(operator) = operator else {
            return format!("{} fails", condition_text(condition));
        };
        match operator.base {
            evaluate::BaseOperator::Null => {
                format!("{} fails: the token always has {claim}", condition_text(condition))
            }
            evaluate::BaseOperator::String { negated: true, .. } => {
                format!("{} excludes the token's {claim} {}", condition_text(condition), quote(&actual))
            }
            evaluate::BaseOperator::String { kind, negated: false } => {
                if kind != StringKind::Like {
                    if let Some(wildcard) = condition.values.iter().find(|v| {
                        v.contains(['*', '?'])
                            && evaluate::string_matches(StringKind::Like, v, &actual, self.version, self.request)
                                == Ok(true)
                    }) {
                        return format!(
                            "{} compares \"*\" and \"?\" literally, so {} {} never matches the token's {claim} {}",
                            condition.operator,
                            condition.key,
                            quote(wildcard),
                            quote(&actual)
                        );
                    }
                }
                let closest = closest(&condition.values, &actual);
                let reason = closest.and_then(|value| match c.key {
                    Key::Sub => self.sub_reason(value, kind).map(|(reason, _)| reason),
                    _ => Some(aud_reason(value, &actual, kind).0),
                });
                let mut reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
                if operator.if_exists {
                    reason.push_str(&format!(" (IfExists skips only an absent key, and the token always has {claim})"));
                }
                format!(
                    "{} {} is {}, but the token's {claim} is {}{reason}",
                    condition.operator,
                    condition.key,
                    values_text(condition.values.iter().map(String::as_str)),
                    quote(&actual)
                )
            }
            evaluate::BaseOperator::Other { .. } => format!("{} fails", condition_text(condition)),
        }
    }

    /// Why a key is absent from this request.
    fn absent_why(&self, key: &str) -> String {
        let (prefix, name) = key.rsplit_once(':').unwrap_or((key, ""));
        let ours = self.request.key_prefix();
        match absent_claim(key) {
            Some(_) => format!(
                "the key's issuer {}; the key is {ours}:{}",
                url_miss(prefix, ours).describe(ours),
                name.to_ascii_lowercase()
            ),
            None => format!("a token from {} does not bring it", self.request.issuer.as_str()),
        }
    }

    /// Why a `sub` value is not this ServiceAccount's, and whether it is a near miss (a typo or a case slip) that a
    /// fix should replace rather than add to.
    fn sub_reason(&self, value: &str, kind: StringKind) -> Option<(String, bool)> {
        let sa = &self.request.service_account;
        let subject = self.subject();
        if kind != StringKind::EqualsIgnoreCase && value.to_lowercase() == subject.to_lowercase() {
            return Some(("they differ in case, and the comparison is case-sensitive".into(), true));
        }
        if let Some(rest) = value.strip_prefix("system:serviceaccount:") {
            let Some((namespace, name)) = rest.split_once(':') else {
                return Some(("it has no ServiceAccount name (system:serviceaccount:NAMESPACE:NAME)".into(), false));
            };
            let typo = |theirs: &str, ours: &str| {
                theirs.len() <= MAX_COMPARED_LEN && identity::edit_distance(theirs, ours) <= 2
            };
            return match (namespace == sa.namespace, name == sa.name) {
                (true, false) if typo(name, &sa.name) => Some((
                    format!(
                        "a typo? the policy has ServiceAccount name {} where the token has {}",
                        quote(name),
                        quote(&sa.name)
                    ),
                    true,
                )),
                (false, true) if typo(namespace, &sa.namespace) => Some((
                    format!(
                        "a typo? the policy has namespace {} where the token has {}",
                        quote(namespace),
                        quote(&sa.namespace)
                    ),
                    true,
                )),
                (true, true) => None,
                _ => Some((format!("it names ServiceAccount {namespace}/{name}, not {sa}"), false)),
            };
        }
        let reason = if value.starts_with("system:serviceaccounts:") || value == "system:serviceaccounts" {
            format!("{} is a group of ServiceAccounts, never a token's sub", quote(value))
        } else if value == format!("{}/{}", sa.namespace, sa.name) || value == format!("{}:{}", sa.namespace, sa.name) {
            format!("a token's sub is {}", quote(&subject))
        } else {
            "it is not a ServiceAccount's sub (system:serviceaccount:NAMESPACE:NAME)".into()
        };
        Some((reason, false))
    }

    /// The corrected form of a failing condition: its key as IAM names it, its values with the token's claim in
    /// place of the near miss, under `StringLike` when it held a wildcard under `StringEquals`.
    fn correction<'p>(&self, c: &evaluate::ConditionResult<'p>) -> Option<Correction<'p>> {
        let condition = c.condition;
        let operator = c.operator?;
        let evaluate::BaseOperator::String { kind, negated } = operator.base else {
            return None;
        };
        let claim = match c.key {
            Key::Sub | Key::Aud => c.key,
            Key::Absent => absent_claim(&condition.key)?,
            Key::NotEvaluated => return None,
        };
        let actual = self.claim(claim)?;
        let key = self.key_for(claim);
        let matches =
            |kind, value: &str| evaluate::string_matches(kind, value, &actual, self.version, self.request) == Ok(true);
        if negated {
            let values: Vec<String> = condition.values.iter().filter(|v| !matches(kind, v)).cloned().collect();
            return Some(Correction { condition, operator: condition.operator.clone(), key, values });
        }
        if kind != StringKind::Like
            && condition.values.iter().any(|v| v.contains(['*', '?']) && matches(StringKind::Like, v))
        {
            let like = condition
                .operator
                .replace("StringEqualsIgnoreCase", "StringLike")
                .replace("StringEquals", "StringLike");
            return Some(Correction { condition, operator: like, key, values: condition.values.clone() });
        }
        let mut values = condition.values.clone();
        if !values.iter().any(|v| matches(kind, v)) {
            // Replace a near miss (a typo, a case slip); otherwise add the claim, so that whoever the value was
            // written for keeps the role.
            let near = |v: &String| match claim {
                Key::Sub => self.sub_reason(v, kind).is_some_and(|(_, near)| near),
                _ => aud_reason(v, &actual, kind).1,
            };
            let replace =
                closest(&values, &actual).filter(|v| near(v)).and_then(|v| values.iter().position(|x| x == v));
            match replace {
                Some(i) => values[i] = actual,
                None => values.push(actual),
            }
        }
        Some(Correction { condition, operator: condition.operator.clone(), key, values })
    }
}

/// A failing condition as it should read.
struct Correction<'p> {
    condition: &'p Condition,
    operator: String,
    key: String,
    /// Empty: the key goes away.
    values: Vec<String>,
}

/// `"Operator": {"key": value, ...}` for one operator of the statement, with the corrections applied: the fix a
/// person pastes over that operator's block.
fn render_block(statement: &Statement, operator: &str, corrections: &[Correction<'_>]) -> String {
    // By address: conditions are compared as the same element of the statement, not as equal text.
    let by_condition: HashMap<*const Condition, &Correction<'_>> =
        corrections.iter().map(|k| (std::ptr::from_ref(k.condition), k)).collect();
    let corrected = |c: &Condition| by_condition.get(&std::ptr::from_ref(c)).copied();
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    for condition in statement.conditions.iter().filter(|c| c.operator == operator) {
        match corrected(condition) {
            Some(k) if k.operator == operator => entries.push((k.key.clone(), k.values.clone())),
            Some(_) => {}
            None => entries.push((condition.key.clone(), condition.values.clone())),
        }
    }
    for k in corrections.iter().filter(|k| k.operator == operator && k.condition.operator != operator) {
        entries.push((k.key.clone(), k.values.clone()));
    }
    // Corrections can bring several keys to the same name (`https://K:sub` and `K/:sub` both become `K:sub`); IAM
    // keys are case-insensitive, so one entry with the values of all.
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (key, values) in entries {
        match index.get(&key.to_lowercase()) {
            Some(&at) => {
                for value in values {
                    if !merged[at].1.contains(&value) {
                        merged[at].1.push(value);
                    }
                }
            }
            None => {
                index.insert(key.to_lowercase(), merged.len());
                merged.push((key, values));
            }
        }
    }
    let mut entries = merged;
    entries.retain(|(_, values)| !values.is_empty());
    if entries.is_empty() {
        return format!("remove the {operator} condition");
    }
    let body: Vec<String> = entries
        .iter()
        .map(|(key, values)| format!("{}: {}", quote(key), values_text(values.iter().map(String::as_str))))
        .collect();
    format!("{}: {{{}}}", quote(operator), body.join(", "))
}

/// The claim a key absent from this request was meant for: another issuer's (or a misspelt) `:sub` or `:aud`.
fn absent_claim(key: &str) -> Option<Key> {
    let name = key.rsplit_once(':').map_or("", |(_, name)| name);
    if name.eq_ignore_ascii_case("sub") {
        Some(Key::Sub)
    } else if name.eq_ignore_ascii_case("aud") {
        Some(Key::Aud)
    } else {
        None
    }
}

fn string_kind(operator: Option<Operator>) -> Option<StringKind> {
    match operator?.base {
        evaluate::BaseOperator::String { kind, .. } => Some(kind),
        _ => None,
    }
}

/// The value closest to the claim, for explaining and correcting near misses.
fn closest<'v>(values: &'v [String], actual: &str) -> Option<&'v String> {
    values.iter().min_by_key(|v| {
        if v.len() > MAX_COMPARED_LEN || actual.len() > MAX_COMPARED_LEN {
            usize::MAX
        } else {
            identity::edit_distance(v, actual)
        }
    })
}

/// Why an `aud` value is not the token's, and whether it is a near miss (case, `https://`, a trailing '/').
fn aud_reason(value: &str, actual: &str, kind: StringKind) -> (String, bool) {
    if kind != StringKind::EqualsIgnoreCase && value.to_lowercase() == actual.to_lowercase() {
        return ("they differ in case, and the comparison is case-sensitive".into(), true);
    }
    let bare = |s: &str| s.trim_start_matches("https://").trim_end_matches('/').to_owned();
    if bare(value) == bare(actual) {
        return ("one of them has https:// or a trailing '/'".into(), true);
    }
    (
        "the pod's token audience comes from the ServiceAccount's eks.amazonaws.com/audience annotation, else the \
         webhook's --token-audience"
            .into(),
        false,
    )
}

/// `StringEquals k "v"` / `StringLike k ["a", "b"]`.
fn condition_text(condition: &Condition) -> String {
    format!("{} {} {}", condition.operator, condition.key, values_text(condition.values.iter().map(String::as_str)))
}

fn action_text(action: &ActionElement) -> String {
    match action {
        ActionElement::Action(list) => format!("Action is {}", values_text(list.iter().map(String::as_str))),
        ActionElement::NotAction(list) => {
            format!("NotAction excludes it ({})", values_text(list.iter().map(String::as_str)))
        }
    }
}

/// One value as a JSON string, several as a JSON list: the way they are written in the policy.
fn values_text<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = values.map(quote).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// How a provider URL (in an ARN or a condition key) differs from this cluster's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlMiss {
    /// `https://`, a trailing `/` or letter case: the same issuer, spelt as IAM does not spell it.
    Spelling {
        scheme: bool,
        slash: bool,
        case: bool,
    },
    /// Another EKS cluster: `(region, id)` of theirs.
    OtherCluster {
        region: String,
        id: String,
    },
    /// Another issuer on the same host.
    OtherPath,
    Other,
}

impl UrlMiss {
    fn is_spelling(&self) -> bool {
        matches!(self, Self::Spelling { .. })
    }

    /// What is wrong with `theirs`, as a phrase after "its issuer" / "the key's issuer".
    fn describe(&self, ours: &str) -> String {
        match self {
            Self::Spelling { scheme, slash, case } => {
                let mut what = Vec::new();
                if *scheme {
                    what.push("starts with https://");
                }
                if *slash {
                    what.push("ends with '/'");
                }
                if *case {
                    what.push("differs in letter case, which IAM compares");
                }
                format!("{}; IAM writes {ours}", what.join(" and "))
            }
            Self::OtherCluster { region, id } => match eks_issuer(ours) {
                Some((our_region, our_id)) if our_region == region => {
                    format!("is another cluster's (id {id}; this cluster's is {our_id})")
                }
                Some((our_region, _)) => format!("is a cluster's in {region}; this cluster is in {our_region}"),
                None => format!("is an EKS cluster's; this cluster's issuer is {ours}"),
            },
            Self::OtherPath => format!("is another issuer on the same host; this cluster's is {ours}"),
            Self::Other => format!("is another issuer; this cluster's is {ours}"),
        }
    }
}

fn url_miss(theirs: &str, ours: &str) -> UrlMiss {
    let lower = theirs.to_ascii_lowercase();
    let scheme = lower.starts_with("https://") || lower.starts_with("http://");
    let bare = theirs.split_once("://").filter(|_| scheme).map_or(theirs, |(_, rest)| rest);
    let slash = bare.ends_with('/');
    let bare = bare.trim_end_matches('/');
    if bare == ours || bare.eq_ignore_ascii_case(ours) {
        return UrlMiss::Spelling { scheme, slash, case: bare != ours };
    }
    if let Some((region, id)) = eks_issuer(bare) {
        return UrlMiss::OtherCluster { region: region.to_owned(), id: id.to_owned() };
    }
    let host = |url: &str| url.split('/').next().unwrap_or_default().to_ascii_lowercase();
    if host(bare) == host(ours) {
        UrlMiss::OtherPath
    } else {
        UrlMiss::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn url_misses() {
        let ours = "oidc.eks.us-west-2.amazonaws.com/id/ABC";
        assert_eq!(
            url_miss("https://oidc.eks.us-west-2.amazonaws.com/id/ABC/", ours),
            UrlMiss::Spelling { scheme: true, slash: true, case: false }
        );
        assert_eq!(
            url_miss("oidc.eks.us-west-2.amazonaws.com/id/abc", ours),
            UrlMiss::Spelling { scheme: false, slash: false, case: true }
        );
        assert_eq!(
            url_miss("oidc.eks.eu-west-1.amazonaws.com/id/DEF", ours),
            UrlMiss::OtherCluster { region: "eu-west-1".into(), id: "DEF".into() }
        );
        assert_eq!(url_miss("example.com/a", "example.com/b"), UrlMiss::OtherPath);
        assert_eq!(url_miss("accounts.google.com", ours), UrlMiss::Other);
    }

    #[test]
    fn thousands_of_failing_keys_give_a_bounded_report() {
        use crate::iam::{check, parse, Facts};
        use crate::identity::ServiceAccountRef;
        use crate::oidc::Issuer;

        let keys: Vec<String> = (0..3000).map(|i| format!("\"k{i}.io:sub\":\"x\"")).collect();
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::111122223333:oidc-provider/oidc.example.com"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{{}}}}}}}]}}"#,
            keys.join(",")
        );
        assert!(text.len() < crate::iam::MAX_POLICY_BYTES);
        let issuer = Issuer::parse("https://oidc.example.com").unwrap();
        let sa = ServiceAccountRef::new("team", "app");
        let facts = Facts { issuer: &issuer, service_account: &sa, audience: "sts.amazonaws.com", role_arn: None };
        let findings = check(&parse(text.as_bytes()).unwrap(), &facts);
        assert_eq!(findings.len(), MAX_CONDITION_LINES + 1);
        assert!(findings.last().unwrap().message.ends_with("2990 more conditions fail"));
        let printed: usize = findings.iter().map(|f| f.message.len() + f.fix.as_ref().map_or(0, String::len)).sum();
        assert!(printed < 64 * 1024, "{printed} bytes");
    }

    #[test]
    fn an_audience_sts_cannot_accept_stops_there() {
        use crate::iam::{check, parse, Facts, MAX_AUDIENCE_LEN};
        use crate::identity::ServiceAccountRef;
        use crate::oidc::Issuer;

        let text = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"*","Condition":{{"StringLike":{{"oidc.example.com:aud":"{}"}}}}}}}}"#,
            "*a".repeat(30_000)
        );
        let issuer = Issuer::parse("https://oidc.example.com").unwrap();
        let sa = ServiceAccountRef::new("team", "app");
        let audience = "a".repeat(MAX_AUDIENCE_LEN + 1);
        let facts = Facts { issuer: &issuer, service_account: &sa, audience: &audience, role_arn: None };
        let findings = check(&parse(text.as_bytes()).unwrap(), &facts);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].status, Status::Problem);
        assert!(findings[0].message.contains("256 characters"), "{findings:?}");
    }

    #[test]
    fn a_resource_element_and_not_principal_are_named() {
        use crate::iam::{check, parse, Facts};
        use crate::identity::ServiceAccountRef;
        use crate::oidc::Issuer;

        let text = br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRoleWithWebIdentity","Resource":"*"}]}"#;
        let issuer = Issuer::parse("https://oidc.example.com").unwrap();
        let sa = ServiceAccountRef::new("team", "app");
        let facts = Facts { issuer: &issuer, service_account: &sa, audience: "sts.amazonaws.com", role_arn: None };
        let findings = check(&parse(text).unwrap(), &facts);
        assert!(findings.iter().all(|f| f.status == Status::Hint), "{findings:?}");
        assert!(findings[0].message.contains("Resource element"), "{findings:?}");
        assert!(findings[1].message.contains("NotPrincipal is not evaluated"), "{findings:?}");
    }

    #[test]
    fn blocks_apply_every_correction_of_their_operator() {
        let statement = Statement {
            index: 1,
            sid: None,
            effect: Effect::Allow,
            principal: PrincipalElement::Principal(Default::default()),
            action: ActionElement::Action(vec![ACTION.into()]),
            conditions: vec![
                Condition { operator: "StringEquals".into(), key: "k:aud".into(), values: vec!["x".into()] },
                Condition { operator: "StringEquals".into(), key: "k:sub".into(), values: vec!["a*".into()] },
                Condition {
                    operator: "StringLike".into(),
                    key: "k:other".into(),
                    values: vec!["o".into(), "p".into()],
                },
            ],
            has_resource: false,
        };
        let corrections = [
            Correction {
                condition: &statement.conditions[0],
                operator: "StringEquals".into(),
                key: "k:aud".into(),
                values: vec!["y".into()],
            },
            Correction {
                condition: &statement.conditions[1],
                operator: "StringLike".into(),
                key: "k:sub".into(),
                values: vec!["a*".into()],
            },
        ];
        assert_eq!(render_block(&statement, "StringEquals", &corrections), r#""StringEquals": {"k:aud": "y"}"#);
        assert_eq!(
            render_block(&statement, "StringLike", &corrections),
            r#""StringLike": {"k:other": ["o", "p"], "k:sub": "a*"}"#
        );
    }
}
