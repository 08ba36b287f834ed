//! `--watch-config-map`: identities from the ConfigMap `pod-identity-webhook` in the webhook's namespace, key
//! `config`, as the reference reads it: `{"ns/name": {"RoleARN": "…", "Audience": "…", "UseRegionalSTS": true,
//! "TokenExpiration": 3600}}`, all but RoleARN optional.
//!
//! Matching: the namespace part may be exact, `*`, or a glob (`team-*`); the name part exact or `*`. The most
//! specific entry wins: an exact namespace before a glob, a glob with more literal characters before one with
//! fewer, `*` last; within one namespace pattern an exact name before `*`. So `ns/name` > `ns/*` > `team-*/name` >
//! `team-*/*` > `*/name` > `*/*`.
//!
//! Deleting the ConfigMap, or its `config` key, removes every entry (the reference keeps them). A `config` that is
//! not a JSON object keeps the previous entries, with a warning. Parsing and matching are pure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use ::kube::api::Api;
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::Client;
use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use tokio::task::AbortHandle;

use super::{Lookup, ServiceAccountSource, SourceStats};
use crate::identity::{role_arn_from, ServiceAccountConfig, ServiceAccountRef};
use crate::settings::MutationSettings;

pub const CONFIG_MAP_NAME: &str = "pod-identity-webhook";
pub const CONFIG_MAP_KEY: &str = "config";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMapError {
    #[error("ConfigMap {CONFIG_MAP_NAME} key {CONFIG_MAP_KEY:?} is not valid JSON: {0}")]
    Json(String),
    #[error(
        "ConfigMap {CONFIG_MAP_NAME} key {CONFIG_MAP_KEY:?} must be a JSON object of \"namespace/name\": {{\"RoleARN\": …}}"
    )]
    NotAnObject,
}

/// The entries of one namespace pattern.
#[derive(Debug, Default)]
struct Names {
    exact: HashMap<String, Arc<ServiceAccountConfig>>,
    any: Option<Arc<ServiceAccountConfig>>,
}

impl Names {
    fn get(&self, name: &str) -> Option<&Arc<ServiceAccountConfig>> {
        self.exact.get(name).or(self.any.as_ref())
    }

    fn insert(&mut self, name: &str, config: Arc<ServiceAccountConfig>) {
        if name == "*" {
            self.any = Some(config);
        } else {
            self.exact.insert(name.to_owned(), config);
        }
    }
}

/// A namespace pattern with `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    pattern: String,
}

impl Glob {
    /// Literal characters: the more, the more specific.
    fn specificity(&self) -> usize {
        self.pattern.chars().filter(|c| *c != '*').count()
    }

    fn matches(&self, text: &str) -> bool {
        let mut parts = self.pattern.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let mut parts: Vec<&str> = parts.collect();
        // There is at least one `*`, so a last part exists; it must end the text.
        let Some(last) = parts.pop() else {
            return rest.is_empty();
        };
        for part in parts {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// The parsed `config` key: what applies to which ServiceAccount.
#[derive(Debug, Default)]
pub struct ConfigMapEntries {
    exact: HashMap<String, Names>,
    /// Most specific first.
    globs: Vec<(Glob, Names)>,
    len: usize,
    /// Problems with single entries or fields, which were skipped; the rest applies.
    pub warnings: Vec<String>,
}

impl ConfigMapEntries {
    pub fn parse(text: &str, settings: &MutationSettings) -> Result<Self, ConfigMapError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigMapError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ConfigMapError::NotAnObject);
        };
        let mut entries = Self::default();
        let mut globs: HashMap<String, Names> = HashMap::new();
        for (key, entry) in map {
            let Some((namespace, name)) = key.split_once('/') else {
                entries.warnings.push(format!("entry {key:?} is not \"namespace/name\"; ignored"));
                continue;
            };
            if namespace.is_empty() || name.is_empty() || name.contains('/') {
                entries.warnings.push(format!("entry {key:?} is not \"namespace/name\"; ignored"));
                continue;
            }
            if name.contains('*') && name != "*" {
                entries.warnings.push(format!(
                    "entry {key:?}: a name is exact or \"*\"; globs work in the namespace part only; ignored"
                ));
                continue;
            }
            let Some(config) = entry_config(&key, entry, settings, &mut entries.warnings) else {
                continue;
            };
            let config = Arc::new(config);
            if namespace.contains('*') {
                globs.entry(namespace.to_owned()).or_default().insert(name, config);
            } else {
                entries.exact.entry(namespace.to_owned()).or_default().insert(name, config);
            }
            entries.len += 1;
        }
        entries.globs = globs.into_iter().map(|(pattern, names)| (Glob { pattern }, names)).collect();
        // Most literal characters first; ties in pattern order, so the result never depends on hash order.
        entries.globs.sort_by(|(a, _), (b, _)| b.specificity().cmp(&a.specificity()).then(a.pattern.cmp(&b.pattern)));
        Ok(entries)
    }

    /// The most specific entry for `sa`, if any.
    pub fn get(&self, sa: &ServiceAccountRef) -> Option<&Arc<ServiceAccountConfig>> {
        if let Some(found) = self.exact.get(&sa.namespace).and_then(|names| names.get(&sa.name)) {
            return Some(found);
        }
        self.globs.iter().filter(|(glob, _)| glob.matches(&sa.namespace)).find_map(|(_, names)| names.get(&sa.name))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One entry's value. Go's encoding/json, which the reference uses, matches field names case-insensitively; so do
/// we. A field of the wrong type is skipped with a warning rather than failing the whole ConfigMap.
fn entry_config(
    key: &str,
    entry: Value,
    settings: &MutationSettings,
    warnings: &mut Vec<String>,
) -> Option<ServiceAccountConfig> {
    let context = format!("ConfigMap {CONFIG_MAP_NAME} entry {key:?}");
    let Value::Object(fields) = entry else {
        warnings.push(format!("{context} is not an object; ignored"));
        return None;
    };
    let mut config = ServiceAccountConfig::default();
    for (field, value) in fields {
        match (field.to_ascii_lowercase().as_str(), value) {
            ("rolearn", Value::String(arn)) => {
                if let Some((arn, warning)) = role_arn_from(&arn, &format!("{context}: RoleARN"), settings) {
                    config.warnings.extend(warning);
                    config.role_arn = Some(arn);
                }
            }
            ("audience", Value::String(audience)) => {
                config.audience = Some(audience.trim().to_owned()).filter(|a| !a.is_empty());
            }
            ("useregionalsts", Value::Bool(on)) => config.regional_sts = Some(on),
            // 0 is Go's zero value: the reference reads it as "not set".
            ("tokenexpiration", Value::Number(n)) => match n.as_i64() {
                Some(0) => {}
                Some(seconds) => config.token_expiration = Some(seconds),
                None => warnings.push(format!("{context}: TokenExpiration {n} is not a whole number; ignored")),
            },
            ("rolearn" | "audience" | "useregionalsts" | "tokenexpiration", value) => {
                warnings.push(format!("{context}: {field} has the wrong type ({value}); ignored"));
            }
            _ => warnings.push(format!("{context}: unknown field {field:?}; ignored")),
        }
    }
    if config.role_arn.is_none() {
        warnings.push(format!("{context} has no RoleARN: matching pods are not mutated"));
    }
    Some(config)
}

/// What the watch task and lookups share.
struct State {
    settings: Arc<MutationSettings>,
    entries: RwLock<Arc<ConfigMapEntries>>,
    ready: AtomicBool,
    /// Whether the ConfigMap appeared in the list in progress; a list without it means it was deleted.
    listed: AtomicBool,
}

impl State {
    fn entries(&self) -> Arc<ConfigMapEntries> {
        Arc::clone(&self.entries.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn apply(&self, event: Event<ConfigMap>) {
        match event {
            Event::Init => self.listed.store(false, Ordering::Relaxed),
            Event::InitApply(config_map) => {
                if is_ours(&config_map) {
                    self.listed.store(true, Ordering::Relaxed);
                    self.load(&config_map);
                }
            }
            Event::Apply(config_map) => {
                if is_ours(&config_map) {
                    self.load(&config_map);
                }
            }
            Event::Delete(config_map) => {
                if is_ours(&config_map) {
                    self.clear("was deleted");
                }
            }
            Event::InitDone => {
                if !self.listed.load(Ordering::Relaxed) {
                    self.clear("does not exist");
                }
                self.ready.store(true, Ordering::Release);
            }
        }
    }

    fn load(&self, config_map: &ConfigMap) {
        let Some(text) = config_map.data.as_ref().and_then(|data| data.get(CONFIG_MAP_KEY)) else {
            self.clear("has no key \"config\"");
            return;
        };
        match ConfigMapEntries::parse(text, &self.settings) {
            Ok(entries) => {
                for warning in &entries.warnings {
                    tracing::warn!(configmap = CONFIG_MAP_NAME, "{warning}");
                }
                tracing::info!(configmap = CONFIG_MAP_NAME, entries = entries.len(), "ConfigMap identities loaded");
                self.replace(entries);
            }
            Err(error) => tracing::warn!(%error, "keeping the previous ConfigMap identities"),
        }
    }

    fn clear(&self, why: &str) {
        if !self.entries().is_empty() {
            tracing::info!(configmap = CONFIG_MAP_NAME, "the ConfigMap {why}: its identities are removed");
        }
        self.replace(ConfigMapEntries::default());
    }

    fn replace(&self, entries: ConfigMapEntries) {
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(entries);
    }
}

fn is_ours(config_map: &ConfigMap) -> bool {
    config_map.metadata.name.as_deref() == Some(CONFIG_MAP_NAME)
}

/// The ConfigMap identity source: a watch on the one ConfigMap, applied by [`ConfigMapSource::apply`].
pub struct ConfigMapSource {
    state: Arc<State>,
    watch_task: Option<AbortHandle>,
}

impl ConfigMapSource {
    /// A source fed by [`ConfigMapSource::apply`] only.
    pub fn new(settings: Arc<MutationSettings>) -> Self {
        let state = State {
            settings,
            entries: RwLock::new(Arc::default()),
            ready: AtomicBool::new(false),
            listed: AtomicBool::new(false),
        };
        Self { state: Arc::new(state), watch_task: None }
    }

    /// Watches ConfigMap `pod-identity-webhook` in `namespace`. Must be called inside a Tokio runtime.
    pub fn start(client: Client, namespace: &str, settings: Arc<MutationSettings>) -> Arc<Self> {
        let mut source = Self::new(settings);
        let api = Api::<ConfigMap>::namespaced(client, namespace);
        let task = tokio::spawn(watch_config_map(api, Arc::clone(&source.state)));
        source.watch_task = Some(task.abort_handle());
        Arc::new(source)
    }

    /// The current entries; a snapshot, cheap to take.
    pub fn entries(&self) -> Arc<ConfigMapEntries> {
        self.state.entries()
    }

    pub fn get(&self, sa: &ServiceAccountRef) -> Option<Arc<ServiceAccountConfig>> {
        self.entries().get(sa).cloned()
    }

    /// Applies one watch event of the ConfigMap; other ConfigMaps are ignored. A list (`Init` … `InitDone`)
    /// without the ConfigMap removes all entries, as a deletion does.
    pub fn apply(&self, event: Event<ConfigMap>) {
        self.state.apply(event);
    }
}

impl Drop for ConfigMapSource {
    fn drop(&mut self) {
        if let Some(task) = &self.watch_task {
            task.abort();
        }
    }
}

impl ConfigMapSource {
    fn answer(&self, sa: &ServiceAccountRef) -> Lookup {
        self.get(sa).map_or(Lookup::NotFound, Lookup::Found)
    }
}

impl ServiceAccountSource for ConfigMapSource {
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
        Box::pin(std::future::ready(self.answer(sa)))
    }

    fn at_hand(&self, sa: &ServiceAccountRef) -> Option<Lookup> {
        Some(self.answer(sa))
    }

    fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }

    fn stats(&self) -> SourceStats {
        SourceStats { cached: self.entries().len() as u64, ..SourceStats::default() }
    }
}

/// Runs for the life of the source; errors are retried with kube's default backoff.
async fn watch_config_map(api: Api<ConfigMap>, state: Arc<State>) {
    // A field selector: only this one ConfigMap of the namespace is listed and watched.
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => state.apply(event),
            Err(error) => tracing::warn!(%error, "ConfigMap watch failed; retrying, keeping the current identities"),
        }
    }
    tracing::warn!("ConfigMap watch ended; its identities are no longer updated");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::settings::RoleArnComposer;

    fn role(name: &str) -> String {
        format!("arn:aws:iam::111122223333:role/{name}")
    }

    fn parse(text: &str) -> ConfigMapEntries {
        ConfigMapEntries::parse(text, &MutationSettings::default()).unwrap()
    }

    fn role_for(entries: &ConfigMapEntries, namespace: &str, name: &str) -> Option<String> {
        entries.get(&ServiceAccountRef::new(namespace, name)).and_then(|c| c.role_arn.clone())
    }

    fn config_map(config: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta { name: Some(CONFIG_MAP_NAME.into()), ..ObjectMeta::default() },
            data: config.map(|c| BTreeMap::from([(CONFIG_MAP_KEY.to_owned(), c.to_owned())])),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn reads_the_reference_format() {
        let entries = parse(&format!(
            r#"{{"default/app": {{"RoleARN": "{}", "Audience": "aud", "UseRegionalSTS": true, "TokenExpiration": 3600}},
                "default/plain": {{"RoleARN": "{}"}}}}"#,
            role("app"),
            role("plain")
        ));
        assert_eq!(entries.len(), 2);
        let app = entries.get(&ServiceAccountRef::new("default", "app")).unwrap();
        assert_eq!(app.role_arn.as_deref(), Some(role("app").as_str()));
        assert_eq!(app.audience.as_deref(), Some("aud"));
        assert_eq!(app.regional_sts, Some(true));
        assert_eq!(app.token_expiration, Some(3600));
        assert!(app.warnings.is_empty());
        let plain = entries.get(&ServiceAccountRef::new("default", "plain")).unwrap();
        assert_eq!((plain.audience.as_ref(), plain.regional_sts, plain.token_expiration), (None, None, None));
        assert!(entries.warnings.is_empty(), "{:?}", entries.warnings);
        assert_eq!(role_for(&entries, "default", "other"), None);
    }

    #[test]
    fn field_names_are_case_insensitive_like_go() {
        let entries = parse(&format!(r#"{{"n/s": {{"roleArn": "{}", "tokenexpiration": 0}}}}"#, role("r")));
        let config = entries.get(&ServiceAccountRef::new("n", "s")).unwrap();
        assert_eq!(config.role_arn, Some(role("r")));
        assert_eq!(config.token_expiration, None, "0 is Go's \"not set\"");
    }

    #[test]
    fn the_most_specific_entry_wins() {
        let entries = parse(&format!(
            r#"{{"*/*": {{"RoleARN": "{}"}}, "*/app": {{"RoleARN": "{}"}}, "team-*/*": {{"RoleARN": "{}"}},
                "team-*/app": {{"RoleARN": "{}"}}, "team-a*/app": {{"RoleARN": "{}"}}, "team-a/*": {{"RoleARN": "{}"}},
                "team-a/app": {{"RoleARN": "{}"}}}}"#,
            role("any"),
            role("any-app"),
            role("team-any"),
            role("team-app"),
            role("team-a-glob-app"),
            role("team-a-any"),
            role("team-a-app"),
        ));
        let expect = |namespace, name, want: &str| assert_eq!(role_for(&entries, namespace, name), Some(role(want)));
        expect("team-a", "app", "team-a-app");
        expect("team-a", "other", "team-a-any");
        expect("team-ab", "app", "team-a-glob-app");
        expect("team-b", "app", "team-app");
        expect("team-b", "other", "team-any");
        expect("elsewhere", "app", "any-app");
        expect("elsewhere", "other", "any");
    }

    #[test]
    fn globs_match_anywhere_in_the_namespace() {
        let entries = parse(&format!(
            r#"{{"*-prod/app": {{"RoleARN": "{}"}}, "a*b*c/x": {{"RoleARN": "{}"}}}}"#,
            role("p"),
            role("abc")
        ));
        assert_eq!(role_for(&entries, "payments-prod", "app"), Some(role("p")));
        assert_eq!(role_for(&entries, "payments-prod-2", "app"), None);
        assert_eq!(role_for(&entries, "abc", "x"), Some(role("abc")));
        assert_eq!(role_for(&entries, "a-b-c", "x"), Some(role("abc")));
        assert_eq!(role_for(&entries, "a-c-b", "x"), None);
        assert_eq!(role_for(&entries, "ab", "x"), None);
        assert!(!Glob { pattern: "ab*ba".into() }.matches("aba"), "overlapping prefix and suffix");
        assert!(Glob { pattern: "ab*ba".into() }.matches("abba"));
    }

    #[test]
    fn bad_entries_are_skipped_with_warnings_and_the_rest_applies() {
        let entries = parse(&format!(
            r#"{{"no-slash": {{}}, "n/a/b": {{}}, "n/app-*": {{}}, "n/str": "x",
                "n/typed": {{"RoleARN": "{}", "UseRegionalSTS": "yes", "Colour": 1}},
                "n/bad-arn": {{"RoleARN": "arn:aws:iam::1:role/x"}}, "n/no-role": {{"Audience": "a"}}}}"#,
            role("typed")
        ));
        assert_eq!(entries.len(), 3, "typed, bad-arn and no-role are kept");
        assert_eq!(role_for(&entries, "n", "typed"), Some(role("typed")));
        assert_eq!(entries.get(&ServiceAccountRef::new("n", "typed")).unwrap().regional_sts, None);
        let bad_arn = entries.get(&ServiceAccountRef::new("n", "bad-arn")).unwrap();
        assert!(bad_arn.warnings[0].contains("12 digits") && bad_arn.warnings[0].contains("n/bad-arn"));
        let warnings = entries.warnings.join("\n");
        for expected in [
            "\"no-slash\"",
            "\"n/a/b\"",
            "namespace part only",
            "\"n/str\" is not an object",
            "UseRegionalSTS has the wrong type",
            "unknown field \"Colour\"",
            "\"n/no-role\" has no RoleARN",
        ] {
            assert!(warnings.contains(expected), "{expected} missing from:\n{warnings}");
        }
    }

    #[test]
    fn bare_role_names_are_composed_when_configured() {
        let settings = MutationSettings {
            compose_role_arn: Some(RoleArnComposer { partition: "aws".into(), account_id: "111122223333".into() }),
            ..MutationSettings::default()
        };
        let entries = ConfigMapEntries::parse(r#"{"n/s": {"RoleARN": "reader"}}"#, &settings).unwrap();
        assert_eq!(role_for(&entries, "n", "s"), Some(role("reader")));
    }

    #[test]
    fn not_an_object_is_an_error() {
        let settings = MutationSettings::default();
        assert!(matches!(ConfigMapEntries::parse("{", &settings), Err(ConfigMapError::Json(_))));
        assert_eq!(ConfigMapEntries::parse("[]", &settings).unwrap_err(), ConfigMapError::NotAnObject);
    }

    #[tokio::test]
    async fn events_update_replace_and_remove_entries() {
        let source = ConfigMapSource::new(Arc::new(MutationSettings::default()));
        let app = ServiceAccountRef::new("n", "app");
        let first =
            format!(r#"{{"n/app": {{"RoleARN": "{}"}}, "n/old": {{"RoleARN": "{}"}}}}"#, role("1"), role("old"));
        source.apply(Event::Init);
        source.apply(Event::InitApply(config_map(Some(&first))));
        assert!(!source.is_ready());
        source.apply(Event::InitDone);
        assert!(source.is_ready());
        assert!(matches!(source.lookup(&app).await, Lookup::Found(c) if c.role_arn == Some(role("1"))));
        assert_eq!(source.stats().cached, 2);

        // An update replaces all entries: keys no longer present go away.
        source.apply(Event::Apply(config_map(Some(&format!(r#"{{"n/app": {{"RoleARN": "{}"}}}}"#, role("2"))))));
        assert_eq!(source.get(&app).and_then(|c| c.role_arn.clone()), Some(role("2")));
        assert_eq!(source.lookup(&ServiceAccountRef::new("n", "old")).await, Lookup::NotFound);

        // A broken update keeps what was there.
        source.apply(Event::Apply(config_map(Some("{not json"))));
        assert_eq!(source.get(&app).and_then(|c| c.role_arn.clone()), Some(role("2")));

        // Removing the key, or the ConfigMap, removes everything.
        source.apply(Event::Apply(config_map(None)));
        assert_eq!(source.stats().cached, 0);
        source.apply(Event::Apply(config_map(Some(&first))));
        assert_eq!(source.stats().cached, 2);
        source.apply(Event::Delete(config_map(Some(&first))));
        assert_eq!(source.stats().cached, 0);
        assert_eq!(source.lookup(&app).await, Lookup::NotFound);
    }

    #[test]
    fn a_list_without_the_config_map_means_it_was_deleted_while_away() {
        let source = ConfigMapSource::new(Arc::new(MutationSettings::default()));
        let text = format!(r#"{{"n/app": {{"RoleARN": "{}"}}}}"#, role("1"));
        source.apply(Event::Init);
        source.apply(Event::InitApply(config_map(Some(&text))));
        source.apply(Event::InitDone);
        assert_eq!(source.stats().cached, 1);
        source.apply(Event::Init);
        source.apply(Event::InitDone);
        assert_eq!(source.stats().cached, 0);
        assert!(source.is_ready());
    }

    #[test]
    fn other_config_maps_are_ignored() {
        let source = ConfigMapSource::new(Arc::new(MutationSettings::default()));
        let mut other = config_map(Some(&format!(r#"{{"n/app": {{"RoleARN": "{}"}}}}"#, role("1"))));
        other.metadata.name = Some("something-else".into());
        source.apply(Event::Apply(other));
        assert_eq!(source.stats().cached, 0);
    }
}
