//! The subcommands that run without a server.

pub mod doctor;
pub mod inputs;
pub mod mutate;
pub mod oidc;
pub mod reference_flags;
pub mod serve;
pub mod trust_policy;
