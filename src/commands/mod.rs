//! The subcommands that run without a server.

use std::io::Write;

pub mod doctor;
pub mod inputs;
pub mod mutate;
pub mod oidc;
pub mod reference_flags;
pub mod serve;
pub mod trust_policy;

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
