//! A ServiceAccount's own annotations first, a fallback source (the `--watch-config-map` ConfigMap) second: the
//! reference's order. The fallback applies when the ServiceAccount has no role ARN of its own, or is not found —
//! ConfigMap mode works for ServiceAccounts without annotations.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Lookup, ServiceAccountSource, SourceStats};
use crate::identity::{ServiceAccountConfig, ServiceAccountRef};

pub struct LayeredSource {
    primary: Arc<dyn ServiceAccountSource>,
    fallback: Arc<dyn ServiceAccountSource>,
}

impl LayeredSource {
    /// `primary`: the ServiceAccounts (API watch or file); `fallback`: the ConfigMap source.
    pub fn new(primary: Arc<dyn ServiceAccountSource>, fallback: Arc<dyn ServiceAccountSource>) -> Self {
        Self { primary, fallback }
    }

    async fn find(&self, sa: &ServiceAccountRef) -> Lookup {
        let primary = self.primary.lookup(sa).await;
        if has_role(&primary) {
            return primary;
        }
        combine(sa, primary, self.fallback.lookup(sa).await)
    }
}

fn has_role(lookup: &Lookup) -> bool {
    matches!(lookup, Lookup::Found(own) if own.role_arn.is_some())
}

/// The answer from the ServiceAccount's own (without a role) and the fallback's.
fn combine(sa: &ServiceAccountRef, primary: Lookup, fallback: Lookup) -> Lookup {
    let entry = match fallback {
        Lookup::Found(entry) if entry.role_arn.is_some() => entry,
        // No role anywhere: what the ServiceAccount itself says (or that it is missing) is the answer.
        _ => return primary,
    };
    match primary {
        Lookup::Found(own) => Lookup::Found(merge(&own, entry)),
        Lookup::NotFound => Lookup::Found(entry),
        Lookup::Unavailable(reason) => {
            // Its own annotations would win, but cannot be read; the entry is better than no identity.
            let mut config = ServiceAccountConfig::clone(&entry);
            config.warnings.push(format!("{reason}; the ConfigMap entry for {sa} was used"));
            Lookup::Found(Arc::new(config))
        }
    }
}

/// The entry's role with whatever else the ServiceAccount's own annotations set winning, field by field.
fn merge(own: &ServiceAccountConfig, entry: Arc<ServiceAccountConfig>) -> Arc<ServiceAccountConfig> {
    if *own == ServiceAccountConfig::default() {
        // The usual case, an unannotated ServiceAccount: no copy.
        return entry;
    }
    Arc::new(ServiceAccountConfig {
        role_arn: entry.role_arn.clone(),
        audience: own.audience.clone().or_else(|| entry.audience.clone()),
        regional_sts: own.regional_sts.or(entry.regional_sts),
        token_expiration: own.token_expiration.or(entry.token_expiration),
        fs_group: own.fs_group.or(entry.fs_group),
        warnings: own.warnings.iter().chain(&entry.warnings).cloned().collect(),
    })
}

impl ServiceAccountSource for LayeredSource {
    fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
        Box::pin(self.find(sa))
    }

    /// As `find`, with both answers at hand.
    fn at_hand(&self, sa: &ServiceAccountRef) -> Option<Lookup> {
        let primary = self.primary.at_hand(sa)?;
        if has_role(&primary) {
            return Some(primary);
        }
        Some(combine(sa, primary, self.fallback.at_hand(sa)?))
    }

    fn is_ready(&self) -> bool {
        self.primary.is_ready() && self.fallback.is_ready()
    }

    fn stats(&self) -> SourceStats {
        self.primary.stats() + self.fallback.stats()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::identity::FsGroupRequest;

    /// A fixed answer per ServiceAccount.
    struct Fixed {
        answers: HashMap<ServiceAccountRef, Lookup>,
        ready: bool,
    }

    impl Fixed {
        fn source(answers: &[(&str, Lookup)]) -> Arc<dyn ServiceAccountSource> {
            let answers = answers.iter().map(|(name, l)| (ServiceAccountRef::new("n", *name), l.clone())).collect();
            Arc::new(Self { answers, ready: true })
        }
    }

    impl ServiceAccountSource for Fixed {
        fn lookup<'a>(&'a self, sa: &'a ServiceAccountRef) -> BoxFuture<'a, Lookup> {
            Box::pin(std::future::ready(self.answers.get(sa).cloned().unwrap_or(Lookup::NotFound)))
        }
        fn at_hand(&self, sa: &ServiceAccountRef) -> Option<Lookup> {
            // Only ServiceAccounts this source knows: the others make the layered source wait (`None`).
            self.answers.get(sa).cloned()
        }
        fn is_ready(&self) -> bool {
            self.ready
        }
        fn stats(&self) -> SourceStats {
            SourceStats { cached: self.answers.len() as u64, live_lookups: 1, ..SourceStats::default() }
        }
    }

    fn found(config: ServiceAccountConfig) -> Lookup {
        Lookup::Found(Arc::new(config))
    }

    fn with_role(role: &str) -> ServiceAccountConfig {
        ServiceAccountConfig { role_arn: Some(role.into()), ..ServiceAccountConfig::default() }
    }

    async fn role(source: &LayeredSource, name: &str) -> Option<String> {
        match source.lookup(&ServiceAccountRef::new("n", name)).await {
            Lookup::Found(config) => config.role_arn.clone(),
            _ => None,
        }
    }

    fn layered() -> LayeredSource {
        let own_audience = ServiceAccountConfig {
            audience: Some("own".into()),
            fs_group: Some(FsGroupRequest::Off),
            ..ServiceAccountConfig::default()
        };
        let primary = Fixed::source(&[
            ("annotated", found(with_role("own-role"))),
            ("plain", found(ServiceAccountConfig::default())),
            ("own-audience", found(own_audience)),
            ("unreadable", Lookup::Unavailable("API down".into())),
            ("unreadable-no-entry", Lookup::Unavailable("API down".into())),
            ("no-entry", found(ServiceAccountConfig::default())),
        ]);
        let entry = |role: &str| {
            found(ServiceAccountConfig { audience: Some("cm".into()), regional_sts: Some(true), ..with_role(role) })
        };
        let fallback = Fixed::source(&[
            ("annotated", entry("cm-role")),
            ("plain", entry("cm-plain")),
            ("own-audience", entry("cm-own-audience")),
            ("unreadable", entry("cm-unreadable")),
            ("missing", entry("cm-missing")),
            ("no-entry", found(ServiceAccountConfig::default())),
        ]);
        LayeredSource::new(primary, fallback)
    }

    #[tokio::test]
    async fn own_role_wins_and_the_config_map_fills_in() {
        let source = layered();
        assert_eq!(role(&source, "annotated").await.as_deref(), Some("own-role"));
        assert_eq!(role(&source, "plain").await.as_deref(), Some("cm-plain"));
        assert_eq!(role(&source, "missing").await.as_deref(), Some("cm-missing"), "works without the SA");
        assert_eq!(role(&source, "no-entry").await, None);
        assert_eq!(source.lookup(&ServiceAccountRef::new("n", "nowhere")).await, Lookup::NotFound);
    }

    #[tokio::test]
    async fn own_annotations_win_field_by_field() {
        let Lookup::Found(config) = layered().lookup(&ServiceAccountRef::new("n", "own-audience")).await else {
            panic!("not found");
        };
        assert_eq!(config.role_arn.as_deref(), Some("cm-own-audience"));
        assert_eq!(config.audience.as_deref(), Some("own"));
        assert_eq!(config.regional_sts, Some(true));
        assert_eq!(config.fs_group, Some(FsGroupRequest::Off));
    }

    #[tokio::test]
    async fn an_unreadable_service_account_falls_back_with_a_warning() {
        let source = layered();
        let Lookup::Found(config) = source.lookup(&ServiceAccountRef::new("n", "unreadable")).await else {
            panic!("not found");
        };
        assert_eq!(config.role_arn.as_deref(), Some("cm-unreadable"));
        assert!(config.warnings.iter().any(|w| w.contains("API down")), "{:?}", config.warnings);
        let answer = source.lookup(&ServiceAccountRef::new("n", "unreadable-no-entry")).await;
        assert_eq!(answer, Lookup::Unavailable("API down".into()));
    }

    /// What is at hand is what a lookup answers; a ServiceAccount either layer lacks at hand is not at hand.
    #[tokio::test]
    async fn at_hand_answers_as_lookup_does() {
        let source = layered();
        let mut answered = 0;
        for name in ["annotated", "plain", "own-audience", "unreadable", "unreadable-no-entry", "no-entry", "missing"] {
            let sa = ServiceAccountRef::new("n", name);
            match source.at_hand(&sa) {
                Some(at_hand) => {
                    assert_eq!(at_hand, source.lookup(&sa).await, "{name}");
                    answered += 1;
                }
                None => assert!(name == "missing" || name == "unreadable-no-entry", "{name}"),
            }
        }
        assert_eq!(answered, 5);
        assert_eq!(source.at_hand(&ServiceAccountRef::new("n", "annotated")).map(|l| has_role(&l)), Some(true));
    }

    #[test]
    fn ready_when_both_are() {
        let not_ready: Arc<dyn ServiceAccountSource> = Arc::new(Fixed { answers: HashMap::new(), ready: false });
        assert!(!LayeredSource::new(Fixed::source(&[]), Arc::clone(&not_ready)).is_ready());
        assert!(!LayeredSource::new(not_ready, Fixed::source(&[])).is_ready());
        let both = LayeredSource::new(Fixed::source(&[("a", Lookup::NotFound)]), Fixed::source(&[]));
        assert!(both.is_ready());
        assert_eq!(both.stats(), SourceStats { cached: 1, live_lookups: 2, ..SourceStats::default() });
    }
}
