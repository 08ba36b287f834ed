//! Where identities come from, behind one trait: "who is ns/sa?".
//!
//! Sources keep only what mutation needs — the resolved [`ServiceAccountConfig`] of each ServiceAccount — never
//! whole objects. The admission path asks [`ServiceAccountSource::lookup`] and nothing else.

pub mod config_map;
pub mod file;
pub mod kube;
pub mod layered;
pub mod live;
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

/// Counters a source exposes for `/metrics`. Live lookups are counted by result: each request sent to the API
/// ends found, not found or failed (`live_lookups` is their sum); a lookup refused by the rate limit or joined to
/// one already in flight sends none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// ServiceAccounts held in memory.
    pub cached: u64,
    /// Requests sent to the API because the cache missed.
    pub live_lookups: u64,
    /// Live lookups that failed (timeout, error).
    pub live_lookup_failures: u64,
    /// Live lookups that found the ServiceAccount.
    pub live_lookups_found: u64,
    /// Live lookups the API answered with "does not exist".
    pub live_lookups_not_found: u64,
    /// Lookups that needed the API but were over the rate limit: the pod was admitted unmutated, with a warning.
    pub live_lookups_rate_limited: u64,
    /// Lookups that joined a live lookup of the same ServiceAccount already in flight.
    pub live_lookups_coalesced: u64,
}

impl std::ops::Add for SourceStats {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            cached: self.cached + other.cached,
            live_lookups: self.live_lookups + other.live_lookups,
            live_lookup_failures: self.live_lookup_failures + other.live_lookup_failures,
            live_lookups_found: self.live_lookups_found + other.live_lookups_found,
            live_lookups_not_found: self.live_lookups_not_found + other.live_lookups_not_found,
            live_lookups_rate_limited: self.live_lookups_rate_limited + other.live_lookups_rate_limited,
            live_lookups_coalesced: self.live_lookups_coalesced + other.live_lookups_coalesced,
        }
    }
}

pub trait ServiceAccountSource: Send + Sync + 'static {
    /// The config of `sa`. A source backed by a watch waits a bounded grace period for the watch, then asks the
    /// API directly, so a pod created right after its ServiceAccount is still mutated.
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup>;
    /// The answer `lookup` would give, when it needs no waiting (a file's table, a cache hit); `None` sends the
    /// caller to `lookup`. Admission asks this first: most lookups are answered at once, and a boxed future per
    /// request was an allocation and a free for nothing.
    fn at_hand(&self, _sa: &ServiceAccountRef) -> Option<Lookup> {
        None
    }
    /// True once the initial state is loaded; `/readyz` waits for it.
    fn is_ready(&self) -> bool;
    fn stats(&self) -> SourceStats;
}
