//! `trust-policy` (with `--role-policy FILE`) and `issuer` (with `--issuer`): IAM's side, evaluated offline by
//! [`crate::iam::check`] for the token this pod carries — its real claims when `--token-request` got one, else the
//! issuer the cluster publishes (or `--issuer`), `system:serviceaccount:NS:NAME` and the audience of its token
//! volume.

use super::token::TokenSource;
use super::token_request::TokenClaims;
use super::{Diagnosis, Finding, Source, CHECK_ISSUER, CHECK_TRUST_POLICY};
use crate::iam;
use crate::identity::{Credentials, Identity};
use crate::oidc::Issuer;

pub(super) fn check(
    d: &Diagnosis<'_>,
    identity: &Identity,
    token: &TokenSource,
    claims: Option<&TokenClaims>,
    findings: &mut Vec<Finding>,
) {
    let given = d.inputs.iam.issuer;
    let published = match &d.inputs.source {
        Source::Cluster(view) => view.published_issuer.ok(),
        Source::Offline => None,
    };
    // With a token, its iss was compared already; without one, what the user says against what the cluster says.
    if let (None, Some(given), Some(published)) = (claims, given, published) {
        if given != published {
            findings.push(Finding::problem(
                CHECK_ISSUER,
                format!(
                    "--issuer is {given}, but the cluster publishes {published} (/.well-known/openid-configuration)"
                ),
                format!("use --issuer {published}; the IAM OIDC provider must be for {published} too"),
            ));
        }
    }
    let Some(policy) = d.inputs.iam.role_policy else { return };
    let Credentials::WebIdentity { role_arn } = identity.credentials else {
        findings.push(Finding::hint(
            CHECK_TRUST_POLICY,
            "the pod uses EKS Pod Identity, whose roles trust pods.eks.amazonaws.com, not an OIDC provider: \
             --role-policy evaluates web-identity trust policies only",
            None,
        ));
        return;
    };
    let (issuer, from) = match (claims.and_then(|c| c.iss.as_deref()), published, given) {
        (Some(iss), _, _) => (iss, "the token's iss"),
        (None, Some(published), _) => (published, "the issuer the cluster publishes"),
        (None, None, Some(given)) => (given, "--issuer"),
        (None, None, None) => {
            findings.push(Finding::problem(
                CHECK_TRUST_POLICY,
                "the cluster's service-account issuer is not known, so the trust policy cannot be evaluated",
                "pass --issuer URL (aws eks describe-cluster --name C --query cluster.identity.oidc.issuer, or \
                 kubectl get --raw /.well-known/openid-configuration)",
            ));
            return;
        }
    };
    let issuer = match Issuer::parse(issuer) {
        Ok(issuer) => issuer,
        Err(error) => {
            findings.push(Finding::problem(
                CHECK_TRUST_POLICY,
                format!("{from} cannot be an IAM OIDC provider URL, so no trust policy can accept the token: {error}"),
                "set the API server's first --service-account-issuer to the https URL of the published discovery \
                 documents (irsa-webhook oidc publish)",
            ));
            return;
        }
    };
    let service_account =
        claims.and_then(TokenClaims::service_account).unwrap_or_else(|| d.pod.service_account.clone());
    let wanted = token.audience.as_deref().unwrap_or(&token.expected);
    // The token's own audience when there is one: the requested one if the API server kept it.
    let audience = claims
        .and_then(|claims| claims.aud.iter().find(|a| *a == wanted).or(claims.aud.first()))
        .map_or(wanted, String::as_str);
    let facts = iam::Facts { issuer: &issuer, service_account: &service_account, audience, role_arn: Some(role_arn) };
    findings.extend(issuer.warnings().into_iter().map(|w| Finding::hint(CHECK_ISSUER, w, None)));
    findings.extend(iam::check(policy, &facts));
}
