//! irsa-webhook: IAM Roles for Service Accounts for Kubernetes pods.
//!
//! The path of a request: `server` (HTTPS) → `admission` (decode the review) → `store` (who is ns/sa?) →
//! `identity` (annotations → Identity) → `mutate` (pod + identity + settings → JSON Patch) → response.

pub mod admission;
pub mod cli;
pub mod commands;
pub mod const_duration;
pub mod container_credentials;
pub mod doctor;
pub mod iam;
pub mod identity;
pub mod imds;
/// Public only for the differential tests and the fuzz target: not an API of its own.
#[doc(hidden)]
pub mod json;
pub mod kube_client;
pub mod log_once;
pub mod manifest;
pub mod mutate;
pub mod oidc;
pub mod server;
pub mod settings;
pub mod shell;
pub mod store;
pub mod trust_policy;
pub mod x509;
