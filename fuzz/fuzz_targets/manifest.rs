//! Arbitrary text → the offline readers: `manifest::parse_documents`, `parse_pod`, `parse_service_accounts` (and
//! the ServiceAccount annotations read from them), `ContainerCredentialsConfig::parse`, and the `--watch-config-map`
//! entries (`ConfigMapEntries::parse`, then lookups). With NUL bytes in the input, its parts are a pod, its
//! ServiceAccounts and a container-credentials config, which then go through the offline `mutate` pipeline, whose
//! patch must apply.
//!
//! Checked: never a panic. Memory and time are bounded by libFuzzer (`-rss_limit_mb`, `-malloc_limit_mb`,
//! `-timeout` in tests/fuzz.sh): YAML alias bombs and deep nesting must be refused, not expanded.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use irsa_webhook::commands::mutate::mutate_with_service_accounts;
use irsa_webhook::container_credentials::ContainerCredentialsConfig;
use irsa_webhook::identity::ServiceAccountRef;
use irsa_webhook::manifest::{parse_documents, parse_pod, parse_service_accounts};
use irsa_webhook::settings::{MutationSettings, RoleArnComposer};
use irsa_webhook::store::config_map::ConfigMapEntries;
use irsa_webhook::store::file::FileSource;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn settings() -> &'static [MutationSettings] {
    static SETTINGS: OnceLock<Vec<MutationSettings>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let composing = MutationSettings {
            compose_role_arn: Some(RoleArnComposer { partition: "aws".into(), account_id: "111122223333".into() }),
            annotation_prefix: "example.com".into(),
            ..MutationSettings::default()
        };
        vec![MutationSettings::default(), composing]
    })
}

fuzz_target!(|data: &[u8]| {
    // Files are read as UTF-8 text (`read_to_string`) before any reader sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let first = parts.next().unwrap_or_default();
    let (second, third) = (parts.next(), parts.next());

    let _ = parse_documents(first);
    let pod = parse_pod(first);
    let service_accounts = parse_service_accounts(first);
    let _ = ContainerCredentialsConfig::parse(first);
    for settings in settings() {
        if let Ok(manifests) = &service_accounts {
            let _ = FileSource::from_manifests(manifests.clone(), settings);
        }
        if let Ok(entries) = ConfigMapEntries::parse(first, settings) {
            for sa in probes(first) {
                let _ = entries.get(&sa);
            }
        }
    }

    let (Ok(pod), Some(second)) = (pod, second) else {
        return;
    };
    let Ok(service_accounts) = parse_service_accounts(second) else {
        return;
    };
    let service_accounts: HashMap<_, _> = service_accounts.into_iter().map(|sa| (sa.reference.clone(), sa)).collect();
    let container_credentials = third.and_then(|t| ContainerCredentialsConfig::parse(t).ok()).unwrap_or_default();
    for settings in settings() {
        if let Ok(mutation) = mutate_with_service_accounts(&pod, &service_accounts, &container_credentials, settings) {
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &mutation.patch)
                .unwrap_or_else(|e| panic!("the patch does not apply: {e}"));
        }
    }
});

/// ServiceAccounts to look up in parsed ConfigMap entries: a few fixed ones, and each entry's own key (a glob's `*`
/// read as `x`), so that glob matching meets the patterns it was built from.
fn probes(text: &str) -> Vec<ServiceAccountRef> {
    let mut probes = vec![
        ServiceAccountRef::new("default", "app"),
        ServiceAccountRef::new("team-a", "x"),
        ServiceAccountRef::new("", ""),
    ];
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
        for key in map.keys().take(16) {
            if let Some((namespace, name)) = key.split_once('/') {
                probes.push(ServiceAccountRef::new(namespace.replace('*', "x"), name));
                probes.push(ServiceAccountRef::new(namespace, name));
            }
        }
    }
    probes
}
