//! `irsa-webhook trust-policy`: arguments in, policy text out. The rules live in `crate::trust_policy`.
//!
//! `irsa-webhook trust-policy check`: read a role's trust policy, evaluate it for a ServiceAccount's token with
//! `crate::iam`, print `doctor`'s `ok` / `problem` / `hint` lines. Exit status as `doctor`'s: 0 no problem, 1 at
//! least one problem, 2 bad usage or unreadable input.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use super::Output;
use crate::cli::{TrustPolicyArgs, TrustPolicyCheckArgs, TrustPolicyOutput};
use crate::doctor::Finding;
use crate::iam::{self, PolicyError, RolePolicy, MAX_POLICY_BYTES};
use crate::identity::{self, ServiceAccountRef};
use crate::oidc::Issuer;
use crate::trust_policy::{ServiceAccountPattern, TrustPolicyError, TrustPolicyRequest};

#[derive(Debug, thiserror::Error)]
pub enum TrustPolicyCommandError {
    #[error(transparent)]
    Policy(#[from] TrustPolicyError),
    #[error("--role-name only applies to -o terraform")]
    RoleNameWithJson,
    #[error("cannot serialize the policy")]
    Serialize(#[source] serde_json::Error),
    #[error("{0} is required")]
    Missing(&'static str),
}

pub fn run(args: &TrustPolicyArgs) -> Result<Output, TrustPolicyCommandError> {
    // clap requires both without a subcommand; the check keeps a missing one an error rather than a panic.
    let issuer = args.issuer.as_deref().ok_or(TrustPolicyCommandError::Missing("--issuer"))?;
    let account = args.account.as_deref().ok_or(TrustPolicyCommandError::Missing("--account"))?;
    let request = TrustPolicyRequest::new(issuer, account, &args.partition, &args.audience, &args.service_accounts)?;
    let stdout = match args.output {
        TrustPolicyOutput::Json => {
            if args.role_name.is_some() {
                return Err(TrustPolicyCommandError::RoleNameWithJson);
            }
            let mut text =
                serde_json::to_string_pretty(&request.policy()).map_err(TrustPolicyCommandError::Serialize)?;
            text.push('\n');
            text
        }
        TrustPolicyOutput::Terraform => request.terraform(args.role_name.as_deref())?,
    };
    Ok(Output { stdout, warnings: request.issuer.warnings() })
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Policy { path: String, error: PolicyError },
    #[error(transparent)]
    Arguments(#[from] TrustPolicyError),
    #[error("--role-arn {arn:?} is not an IAM role ARN: {reason}")]
    RoleArn { arn: String, reason: &'static str },
}

/// The findings, the ServiceAccount they are about, and warnings about the arguments.
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub service_account: ServiceAccountRef,
    pub warnings: Vec<String>,
}

/// Reads and parses a trust policy file (`-` for stdin), reading at most one byte more than the parser accepts so
/// that a huge or endless input is refused without being held in memory. Also for `doctor --role-policy`.
pub fn read_policy(path: &Path, stdin: impl Read) -> Result<RolePolicy, CheckError> {
    let name = if path == Path::new("-") { "<stdin>".to_owned() } else { path.display().to_string() };
    let limit = u64::try_from(MAX_POLICY_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        stdin.take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|error| CheckError::Read { path: name.clone(), error })?;
    iam::parse(&bytes).map_err(|error| CheckError::Policy { path: name, error })
}

pub fn check(args: &TrustPolicyCheckArgs, stdin: impl Read) -> Result<CheckReport, CheckError> {
    let issuer = Issuer::parse(&args.issuer).map_err(TrustPolicyError::from)?;
    let pattern = ServiceAccountPattern::parse(&args.service_account)?;
    if pattern.is_wildcard() {
        return Err(TrustPolicyError::ServiceAccount {
            value: args.service_account.clone(),
            reason: "name one ServiceAccount: a token is for exactly one, so '*' has no meaning here",
        }
        .into());
    }
    if args.audience.trim().is_empty() {
        return Err(TrustPolicyError::EmptyAudience.into());
    }
    if let Some(arn) = &args.role_arn {
        identity::validate_role_arn(arn).map_err(|reason| CheckError::RoleArn { arn: arn.clone(), reason })?;
    }
    let policy = read_policy(&args.policy, stdin)?;
    let service_account = ServiceAccountRef::new(pattern.namespace, pattern.name);
    let facts = iam::Facts {
        issuer: &issuer,
        service_account: &service_account,
        audience: &args.audience,
        role_arn: args.role_arn.as_deref(),
    };
    Ok(CheckReport { findings: iam::check(&policy, &facts), service_account, warnings: issuer.warnings() })
}

/// Runs `trust-policy check` as `main` does: prints the findings, returns the exit status (`doctor`'s tail).
pub fn check_main(args: &TrustPolicyCheckArgs) -> ExitCode {
    const NAME: &str = "irsa-webhook trust-policy check";
    let report = match check(args, std::io::stdin().lock()) {
        Ok(report) => report,
        Err(error) => return super::doctor::fail(NAME, &error),
    };
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    super::doctor::finish(NAME, &format!("ServiceAccount {}", report.service_account), &report.findings, args.output)
}
