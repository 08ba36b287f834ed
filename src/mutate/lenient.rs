//! Decoding that never fails on a wrong type: every field the rules read is taken as what it should be, or noted as
//! absent, null or of the wrong kind. The rules then decide what a wrong kind means (a clear error for the shapes
//! they rely on, "not set" for the rest), exactly as they would on a parsed `serde_json::Value`.
//!
//! Values that are skipped are skipped by the parser (`IgnoredAny`): nothing is built for them. Strings are borrowed
//! from the input where JSON allows (no escapes).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Consumes whatever value a visitor was handed but does not want.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the scalar `visit_*` methods of a lenient visitor as "not what we wanted".
macro_rules! scalars_are {
    ($wrong:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($wrong)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrong)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrong)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrong)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($wrong)
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Ok($wrong)
        }
    };
}

/// A field that should be a JSON object, decoded as `T` when it is one.
#[derive(Debug, Default)]
pub(crate) enum Obj<T> {
    #[default]
    Absent,
    Null,
    Wrong,
    Some(T),
}

impl<T> Obj<T> {
    /// The object, if the field is one; absent, null and wrong kinds alike give `None`.
    pub(crate) fn get(&self) -> Option<&T> {
        match self {
            Obj::Some(value) => Some(value),
            _ => None,
        }
    }

    /// `Err` for a value of the wrong kind; absent and null are `Ok(None)`.
    pub(crate) fn checked(&self) -> Result<Option<&T>, &'static str> {
        match self {
            Obj::Wrong => Err("an object"),
            other => Ok(other.get()),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj::Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
                drain_seq(seq).map(|()| Obj::Wrong)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Null)
            }
            scalars_are!(Obj::Wrong);
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// A field that should be a JSON array, decoded as `T` (a `Vec`, or a collector of its own) when it is one.
#[derive(Debug, Default)]
pub(crate) enum Arr<T> {
    #[default]
    Absent,
    Null,
    Wrong,
    Some(T),
}

impl<T> Arr<T> {
    pub(crate) fn get(&self) -> Option<&T> {
        match self {
            Arr::Some(value) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn checked(&self) -> Result<Option<&T>, &'static str> {
        match self {
            Arr::Wrong => Err("an array"),
            other => Ok(other.get()),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Arr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Arr<T>, A::Error> {
                T::deserialize(SeqAccessDeserializer::new(seq)).map(Arr::Some)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Arr<T>, A::Error> {
                drain_map(map).map(|()| Arr::Wrong)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Arr<T>, E> {
                Ok(Arr::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Arr<T>, E> {
                Ok(Arr::Null)
            }
            scalars_are!(Arr::Wrong);
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// A string field; any other kind of value reads as "not set" (as `Value::as_str` would).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'a>, A::Error> {
                drain_map(map).map(|()| Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'a>, A::Error> {
                drain_seq(seq).map(|()| Text(None))
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// An integer field that fits an i64; anything else reads as "not set" (as `Value::as_i64` would).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub(crate) Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(v).ok()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Int, A::Error> {
                drain_map(map).map(|()| Int(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Int, A::Error> {
                drain_seq(seq).map(|()| Int(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A boolean field; anything else reads as "not set".
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Flag, A::Error> {
                drain_map(map).map(|()| Flag(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Flag, A::Error> {
                drain_seq(seq).map(|()| Flag(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Whether a field holds anything but null (an absent field is not set either).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Set(pub(crate) bool);

impl<'de> Deserialize<'de> for Set {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `Option` asks the parser whether the value is null and skips it otherwise.
        Option::<IgnoredAny>::deserialize(deserializer).map(|value| Set(value.is_some()))
    }
}

/// The elements of an array, of which at most `N` are kept (and decoded); the rest are only counted.
#[derive(Debug)]
pub(crate) struct Capped<T, const N: usize> {
    pub(crate) items: Vec<T>,
    pub(crate) total: usize,
}

impl<T, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Self { items: Vec::new(), total: 0 }
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<T, N>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N).min(16));
                while items.len() < N {
                    match seq.next_element::<T>()? {
                        Some(item) => items.push(item),
                        None => return Ok(Capped { total: items.len(), items }),
                    }
                }
                let mut total = items.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(Capped { items, total })
            }
        }
        deserializer.deserialize_seq(V(PhantomData))
    }
}

/// The string entries of a JSON object, in order; entries whose value is not a string are left out.
#[derive(Debug, Default)]
pub(crate) struct StrMap<'a>(pub(crate) Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> StrMap<'a> {
    /// The value of `key` (the last one, as a JSON object parser keeps).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrMap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = StrMap<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrMap<'a>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Key<'a>>()? {
                    if let Text(Some(value)) = map.next_value::<Text<'a>>()? {
                        entries.push((key.0, value));
                    }
                }
                Ok(StrMap(entries))
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}

/// An object key, borrowed where the input allows.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V(PhantomData))
    }
}

/// Calls `seen` with every key of an object whose value is not skipped by the caller; the values are skipped.
pub(crate) fn visit_keys<'de, A: MapAccess<'de>>(mut map: A, mut seen: impl FnMut(&str)) -> Result<(), A::Error> {
    while let Some(key) = map.next_key::<Key<'_>>()? {
        seen(&key.0);
        map.next_value::<IgnoredAny>()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Probe<'a> {
        #[serde(default)]
        o: Obj<IgnoredAny>,
        #[serde(default)]
        a: Arr<Vec<Int>>,
        #[serde(default, borrow)]
        t: Text<'a>,
        #[serde(default)]
        i: Int,
        #[serde(default)]
        f: Flag,
        #[serde(default)]
        s: Set,
        #[serde(default)]
        c: Arr<Capped<Int, 2>>,
    }

    #[test]
    fn wrong_kinds_are_noted_not_fatal() {
        let p: Probe = serde_json::from_str(r#"{"o":[1],"a":{"x":1},"t":{"y":[]},"i":"3","f":1,"s":null}"#).unwrap();
        assert!(matches!(p.o, Obj::Wrong));
        assert!(matches!(p.a, Arr::Wrong));
        assert_eq!((p.t.get(), p.i.0, p.f.0, p.s.0), (None, None, None, false));
        let p: Probe =
            serde_json::from_str(r#"{"o":null,"a":[1,"x",2.5,-4],"t":"é\n","i":9223372036854775808,"s":0}"#).unwrap();
        assert!(matches!(p.o, Obj::Null));
        assert_eq!(p.a.get().unwrap().iter().map(|i| i.0).collect::<Vec<_>>(), [Some(1), None, None, Some(-4)]);
        assert_eq!((p.t.get(), p.i.0, p.s.0), (Some("é\n"), None, true));
        assert!(matches!(p.c, Arr::Absent));
    }

    #[test]
    fn capped_lists_keep_the_first_and_count_all() {
        let p: Probe = serde_json::from_str(r#"{"c":[1,2,{"deep":[[[]]]},"x",5]}"#).unwrap();
        let c = p.c.get().unwrap();
        assert_eq!((c.items.len(), c.total), (2, 5));
    }

    #[test]
    fn strings_are_borrowed_when_they_can_be() {
        let json = r#"{"t":"plain"}"#;
        let p: Probe = serde_json::from_str(json).unwrap();
        assert!(matches!(p.t.0, Some(Cow::Borrowed(_))));
        let map: StrMap = serde_json::from_str(r#"{"a":"1","b":2,"a":"3"}"#).unwrap();
        assert_eq!((map.get("a"), map.get("b")), (Some("3"), None));
    }
}
