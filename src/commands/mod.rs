//! The subcommands that run without a server.

use std::io::Write;

pub mod doctor;
pub mod inputs;
pub mod mutate;
pub mod oidc;
pub mod reference_flags;
pub mod serve;
pub mod trust_policy;

/// An error followed by its causes, `error: cause: cause`, as `main` prints every other command's (anyhow's
/// `{:#}`): the commands that print their own errors (`doctor`, `trust-policy check`) use this.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What an offline command (`mutate`, `oidc`, `trust-policy`) produces: the result for stdout and the warnings for
/// stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub warnings: Vec<String>,
}

impl Output {
    /// The offline commands' contract: each warning on stderr as `warning: ...`, then the result on stdout.
    pub fn emit(&self) -> std::io::Result<()> {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
        std::io::stdout().lock().write_all(self.stdout.as_bytes())
    }
}
