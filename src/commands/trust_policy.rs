//! `irsa-webhook trust-policy`: arguments in, policy text out. The rules live in `crate::trust_policy`.

use crate::cli::{TrustPolicyArgs, TrustPolicyOutput};
use crate::trust_policy::{TrustPolicyError, TrustPolicyRequest};

#[derive(Debug, thiserror::Error)]
pub enum TrustPolicyCommandError {
    #[error(transparent)]
    Policy(#[from] TrustPolicyError),
    #[error("--role-name only applies to -o terraform")]
    RoleNameWithJson,
    #[error("cannot serialize the policy: {0}")]
    Serialize(String),
}

/// What the command produces: the text for stdout and the warnings for stderr.
pub struct TrustPolicyOutputText {
    pub stdout: String,
    pub warnings: Vec<String>,
}

pub fn run(args: &TrustPolicyArgs) -> Result<TrustPolicyOutputText, TrustPolicyCommandError> {
    let request =
        TrustPolicyRequest::new(&args.issuer, &args.account, &args.partition, &args.audience, &args.service_accounts)?;
    let stdout = match args.output {
        TrustPolicyOutput::Json => {
            if args.role_name.is_some() {
                return Err(TrustPolicyCommandError::RoleNameWithJson);
            }
            let mut text = serde_json::to_string_pretty(&request.policy())
                .map_err(|e| TrustPolicyCommandError::Serialize(e.to_string()))?;
            text.push('\n');
            text
        }
        TrustPolicyOutput::Terraform => request.terraform(args.role_name.as_deref())?,
    };
    Ok(TrustPolicyOutputText { stdout, warnings: request.issuer.warnings() })
}
