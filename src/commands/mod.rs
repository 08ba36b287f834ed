//! The subcommands that run without a server.

pub mod mutate;
pub mod serve;
