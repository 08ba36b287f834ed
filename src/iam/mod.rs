//! IAM's side of IRSA, offline: does a role's trust policy let this ServiceAccount's token in through
//! `sts:AssumeRoleWithWebIdentity`, and if not, which statement and condition refuse it and what fixes it.
//!
//! - [`policy`] reads what people paste (`aws iam get-role` output, the document, the URL-encoded document);
//! - [`evaluate`] is IAM's documented evaluation, three-valued where a condition needs what is not known offline;
//! - [`diagnose`] turns the result into `doctor`'s `ok` / `problem` / `hint` findings with one-line fixes.
//!
//! Pure: no I/O. `irsa-webhook trust-policy check` and `doctor` gather the facts and print the findings.

pub mod diagnose;
pub mod evaluate;
pub mod policy;

pub use evaluate::{evaluate, Decision, Evaluation, Request};
pub use policy::{parse, PolicyError, RolePolicy, MAX_POLICY_BYTES};

use crate::doctor::Finding;
use crate::identity::ServiceAccountRef;
use crate::oidc::Issuer;

/// The name of the check, in the second column of the findings.
pub const CHECK_TRUST_POLICY: &str = "trust-policy";

/// What is known about the pod's side of the call.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The cluster's service-account issuer: the token's `iss`.
    pub issuer: &'a Issuer,
    pub service_account: &'a ServiceAccountRef,
    /// The audience of the pod's projected token: the token's `aud`. Longer than [`MAX_AUDIENCE_LEN`] is a problem
    /// of its own and nothing else is evaluated.
    pub audience: &'a str,
    /// The role the ServiceAccount names (`eks.amazonaws.com/role-arn`), when known.
    pub role_arn: Option<&'a str>,
}

/// IAM's limit for an OIDC provider's client IDs, which the token's `aud` must be one of. Also what keeps
/// `StringLike` matching against the audience cheap.
pub const MAX_AUDIENCE_LEN: usize = 255;

/// Evaluates `policy` for the token described by `facts` and explains the outcome.
pub fn check(policy: &RolePolicy, facts: &Facts<'_>) -> Vec<Finding> {
    let length = facts.audience.chars().count();
    if length > MAX_AUDIENCE_LEN {
        return vec![Finding::problem(
            CHECK_TRUST_POLICY,
            format!(
                "the token's audience is {length} characters long; an IAM OIDC provider's client IDs are at most \
                 {MAX_AUDIENCE_LEN}, so STS cannot accept it whatever the trust policy says"
            ),
            "use a shorter audience (eks.amazonaws.com/audience; the default is sts.amazonaws.com)",
        )];
    }
    // The policy's own role (from get-role output) is where STS looks for the provider; else the one the
    // ServiceAccount names, which is the role the pod will ask for.
    let role = policy.role_arn.as_deref().or(facts.role_arn);
    let request = Request::new(facts.issuer.clone(), facts.service_account.clone(), facts.audience, role);
    let evaluation = evaluate(&policy.document, &request);
    diagnose::diagnose(policy, &request, facts.role_arn, &evaluation)
}
