//! The env vars the rules may add, and which of them a container already sets. The rules never ask about any
//! other name, so a container's env list is decoded into one bit per name here, whatever its length.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::lenient::{Key, Obj, Text};

/// Every env var name the webhook can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvName {
    StsRegionalEndpoints,
    DefaultRegion,
    Region,
    RoleArn,
    WebIdentityTokenFile,
    RoleSessionName,
    ContainerCredentialsFullUri,
    ContainerAuthorizationTokenFile,
}

impl EnvName {
    pub const ALL: [EnvName; 8] = [
        EnvName::StsRegionalEndpoints,
        EnvName::DefaultRegion,
        EnvName::Region,
        EnvName::RoleArn,
        EnvName::WebIdentityTokenFile,
        EnvName::RoleSessionName,
        EnvName::ContainerCredentialsFullUri,
        EnvName::ContainerAuthorizationTokenFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnvName::StsRegionalEndpoints => "AWS_STS_REGIONAL_ENDPOINTS",
            EnvName::DefaultRegion => "AWS_DEFAULT_REGION",
            EnvName::Region => "AWS_REGION",
            EnvName::RoleArn => "AWS_ROLE_ARN",
            EnvName::WebIdentityTokenFile => "AWS_WEB_IDENTITY_TOKEN_FILE",
            EnvName::RoleSessionName => "AWS_ROLE_SESSION_NAME",
            EnvName::ContainerCredentialsFullUri => "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            EnvName::ContainerAuthorizationTokenFile => "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        }
    }

    pub fn parse(name: &str) -> Option<EnvName> {
        // Every name starts with AWS_; most env vars of a real container do not, and are rejected at once.
        if !name.starts_with("AWS_") {
            return None;
        }
        EnvName::ALL.into_iter().find(|n| n.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the [`EnvName`]s a container's `env` list sets, and how long the list is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EnvNames {
    set: u16,
}

impl EnvNames {
    pub fn contains(self, name: EnvName) -> bool {
        self.set & name.bit() != 0
    }

    pub fn insert(&mut self, name: EnvName) {
        self.set |= name.bit();
    }
}

impl<'de> Deserialize<'de> for EnvNames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = EnvNames;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EnvNames, A::Error> {
                let mut names = EnvNames::default();
                // An entry that is not an object, or has no string name, names nothing (as `Value::get` reads it).
                while let Some(entry) = seq.next_element::<Obj<EntryName>>()? {
                    if let Some(name) = entry.get().and_then(|e| e.0) {
                        names.insert(name);
                    }
                }
                Ok(names)
            }
        }
        deserializer.deserialize_seq(Entries)
    }
}

/// The `name` of one env entry, if it is one of ours.
struct EntryName(Option<EnvName>);

impl<'de> Deserialize<'de> for EntryName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntryName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryName, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if key.0 == "name" {
                        // The last `name` wins, as a JSON object parser keeps it.
                        name = map.next_value::<Text<'de>>()?.get().map(EnvName::parse);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(EntryName(name.flatten()))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_kept() {
        let names: EnvNames = serde_json::from_str(
            r#"[{"name":"AWS_ROLE_ARN","value":"x"},{"name":"PATH"},"junk",{"name":7},{"value":"AWS_REGION"},
                {"name":"AWS_REGION","name":"OTHER"},{"name":"AWS_CONTAINER_CREDENTIALS_FULL_URI"}]"#,
        )
        .unwrap();
        let set: Vec<_> = EnvName::ALL.into_iter().filter(|n| names.contains(*n)).collect();
        assert_eq!(set, [EnvName::RoleArn, EnvName::ContainerCredentialsFullUri]);
    }

    #[test]
    fn names_round_trip() {
        for name in EnvName::ALL {
            assert_eq!(EnvName::parse(name.as_str()), Some(name));
        }
        assert_eq!(EnvName::parse("AWS_NOPE"), None);
    }
}
