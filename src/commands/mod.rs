//! The subcommands that run without a server.

pub mod mutate;
