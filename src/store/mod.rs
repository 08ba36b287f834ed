//! Where identities come from, behind one trait: "who is ns/sa?".
//!
//! Sources keep only what mutation needs — the resolved [`ServiceAccountConfig`] of each ServiceAccount — never
//! whole objects. The admission path asks [`ServiceAccountSource::lookup`] and nothing else.

pub mod config_map;
pub mod file;
pub mod kube;
pub mod layered;
pub mod watched_file;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::identity::{ServiceAccountConfig, ServiceAccountRef};

/// The answer to "who is ns/sa?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The ServiceAccount exists; its config may or may not carry a role.
    Found(Arc<ServiceAccountConfig>),
    /// The ServiceAccount does not exist (as far as the source can tell).
    NotFound,
    /// The source could not answer (API unreachable, timeout): the pod is admitted unmutated, with a warning.
    Unavailable(String),
}

/// Counters a source exposes for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// ServiceAccounts held in memory.
    pub cached: u64,
    /// Lookups that went to the API because the cache missed.
    pub live_lookups: u64,
    /// Live lookups that failed (timeout, error).
    pub live_lookup_failures: u64,
}

pub trait ServiceAccountSource: Send + Sync + 'static {
    /// The config of `sa`. A source backed by a watch waits a bounded grace period for the watch, then asks the
    /// API directly, so a pod created right after its ServiceAccount is still mutated.
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup>;
    /// True once the initial state is loaded; `/readyz` waits for it.
    fn is_ready(&self) -> bool;
    fn stats(&self) -> SourceStats;
}
