//! serde's side: which value a visitor is handed for what the reader finds, the same calls serde_json makes, so the
//! same `Deserialize` impls decide the same way under both.

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

use super::read::{Deserializer, Number, Str};
use super::Error;

impl<'de> Str<'de> {
    #[inline]
    fn visit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Str::Borrowed(s) => visitor.visit_borrowed_str(s),
            Str::Owned(s) => visitor.visit_string(s),
        }
    }

    fn visit_enum<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Str::Borrowed(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Str::Owned(s) => visitor.visit_enum(StringDeserializer::new(s)),
        }
    }
}

impl Number {
    #[inline]
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Number::U64(n) => visitor.visit_u64(n),
            Number::I64(n) => visitor.visit_i64(n),
            Number::F64(n) => visitor.visit_f64(n),
        }
    }

    fn unexpected(self) -> Unexpected<'static> {
        match self {
            Number::U64(n) => Unexpected::Unsigned(n),
            Number::I64(n) => Unexpected::Signed(n),
            Number::F64(n) => Unexpected::Float(n),
        }
    }
}

impl<'de> Deserializer<'de> {
    /// The value at the cursor is not of the kind `expected`: says what it is instead (reading it, as serde_json
    /// does, so a broken value is reported as broken).
    #[cold]
    fn invalid_type(&mut self, expected: &dyn de::Expected) -> Error {
        let next = self.peek();
        let at = self.pos;
        let unexpected = match next {
            Some(b'n') => self.literal(b"null").map(|()| Unexpected::Unit),
            Some(b't') => self.literal(b"true").map(|()| Unexpected::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Unexpected::Bool(false)),
            Some(b'-' | b'0'..=b'9') => self.read_number().map(Number::unexpected),
            Some(b'"') => {
                return match self.read_str() {
                    Ok(s) => <Error as de::Error>::invalid_type(Unexpected::Str(&s), expected).at(at),
                    Err(e) => e,
                }
            }
            Some(b'[') => Ok(Unexpected::Seq),
            Some(b'{') => Ok(Unexpected::Map),
            Some(_) => Err(Error::Expected { what: "a value", at }),
            None => Err(Error::Eof { what: "a value", at }),
        };
        match unexpected {
            Ok(unexpected) => <Error as de::Error>::invalid_type(unexpected, expected).at(at),
            Err(e) => e,
        }
    }

    fn visit_seq<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        self.enter()?;
        let value = visitor.visit_seq(SeqAccess { de: self, first: true })?;
        self.leave(b']', "an array")?;
        Ok(value)
    }

    fn visit_map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        self.enter()?;
        let value = visitor.visit_map(MapAccess { de: self, first: true })?;
        self.leave(b'}', "an object")?;
        Ok(value)
    }

    fn visit_number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        match self.peek_value()? {
            b'-' | b'0'..=b'9' => {
                let at = self.pos;
                self.read_number()?.visit(visitor).map_err(|e| e.at(at))
            }
            _ => Err(self.invalid_type(&visitor)),
        }
    }
}

macro_rules! numbers {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.visit_number(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let first = self.peek_value()?;
        let at = self.pos;
        let value = match first {
            b'"' => self.read_str()?.visit(visitor),
            b'{' => self.visit_map(visitor),
            b'[' => self.visit_seq(visitor),
            b'-' | b'0'..=b'9' => self.read_number()?.visit(visitor),
            b't' => self.literal(b"true").and_then(|()| visitor.visit_bool(true)),
            b'f' => self.literal(b"false").and_then(|()| visitor.visit_bool(false)),
            b'n' => self.literal(b"null").and_then(|()| visitor.visit_unit()),
            _ => return Err(Error::Expected { what: "a value", at }),
        };
        value.map_err(|e| e.at(at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip_value()?;
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek_value()? == b'n' {
            let at = self.pos;
            self.literal(b"null")?;
            visitor.visit_none().map_err(|e: Error| e.at(at))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek_value()? == b'"' {
            let at = self.pos;
            self.read_str()?.visit(visitor).map_err(|e| e.at(at))
        } else {
            Err(self.invalid_type(&visitor))
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    /// A string's UTF-8 bytes (validated, unlike serde_json), or an array of numbers.
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let first = self.peek_value()?;
        let at = self.pos;
        match first {
            b'"' => match self.read_str()? {
                Str::Borrowed(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
                Str::Owned(s) => visitor.visit_byte_buf(s.into_bytes()),
            },
            b'[' => self.visit_seq(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let first = self.peek_value()?;
        let at = self.pos;
        match first {
            b't' => self.literal(b"true").and_then(|()| visitor.visit_bool(true)),
            b'f' => self.literal(b"false").and_then(|()| visitor.visit_bool(false)),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek_value()? == b'n' {
            let at = self.pos;
            self.literal(b"null")?;
            visitor.visit_unit().map_err(|e: Error| e.at(at))
        } else {
            Err(self.invalid_type(&visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek_value()? == b'[' {
            let at = self.pos;
            self.visit_seq(visitor).map_err(|e| e.at(at))
        } else {
            Err(self.invalid_type(&visitor))
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek_value()? == b'{' {
            let at = self.pos;
            self.visit_map(visitor).map_err(|e| e.at(at))
        } else {
            Err(self.invalid_type(&visitor))
        }
    }

    /// An object, or (as serde_json allows, and serde's derive reads) an array of the fields in order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = self.peek_value()?;
        let at = self.pos;
        match first {
            b'{' => self.visit_map(visitor),
            b'[' => self.visit_seq(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    /// A unit variant as a string, any other variant as an object of one entry (serde's external tagging).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = self.peek_value()?;
        let at = self.pos;
        match first {
            b'"' => self.read_str()?.visit_enum(visitor),
            b'{' => {
                self.enter()?;
                let value = visitor.visit_enum(Enum { de: self })?;
                self.leave(b'}', "an object")?;
                Ok(value)
            }
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }
}

struct SeqAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    first: bool,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.de.peek() {
            Some(b']') => return Ok(None),
            Some(_) if self.first => self.first = false,
            Some(b',') => {
                self.de.pos += 1;
                match self.de.peek() {
                    Some(b']') => return Err(Error::TrailingComma { at: self.de.pos }),
                    Some(_) => {}
                    None => return Err(Error::Eof { what: "a value", at: self.de.pos }),
                }
            }
            Some(_) => return Err(Error::Expected { what: "`,` or `]`", at: self.de.pos }),
            None => return Err(Error::Eof { what: "an array", at: self.de.pos }),
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct MapAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    first: bool,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.de.peek() {
            Some(b'}') => return Ok(None),
            Some(b'"') if self.first => self.first = false,
            Some(b',') if !self.first => {
                self.de.pos += 1;
                match self.de.peek() {
                    Some(b'"') => {}
                    Some(b'}') => return Err(Error::TrailingComma { at: self.de.pos }),
                    Some(_) => return Err(Error::Expected { what: "a string key", at: self.de.pos }),
                    None => return Err(Error::Eof { what: "an object", at: self.de.pos }),
                }
            }
            Some(_) if self.first => return Err(Error::Expected { what: "a string key", at: self.de.pos }),
            Some(_) => return Err(Error::Expected { what: "`,` or `}`", at: self.de.pos }),
            None => return Err(Error::Eof { what: "an object", at: self.de.pos }),
        }
        seed.deserialize(MapKey { de: &mut *self.de }).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        colon(self.de)?;
        seed.deserialize(&mut *self.de)
    }
}

/// Consumes the `:` after a key.
#[inline]
fn colon(de: &mut Deserializer<'_>) -> Result<(), Error> {
    match de.peek() {
        Some(b':') => {
            de.pos += 1;
            Ok(())
        }
        Some(_) => Err(Error::Expected { what: "`:`", at: de.pos }),
        None => Err(Error::Eof { what: "an object", at: de.pos }),
    }
}

/// An object key (the cursor is at its `"`): always handed to visitors as a string.
struct MapKey<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::Deserializer<'de> for MapKey<'_, 'de> {
    type Error = Error;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.de.pos;
        self.de.read_str()?.visit(visitor).map_err(|e| e.at(at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.de.skip_str()?;
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let at = self.de.pos;
        self.de.read_str()?.visit_enum(visitor).map_err(|e| e.at(at))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// `{"Variant": value}`, the cursor after the `{`.
struct Enum<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Enum<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        match self.de.peek() {
            Some(b'"') => {}
            Some(_) => return Err(Error::Expected { what: "a string key", at: self.de.pos }),
            None => return Err(Error::Eof { what: "an object", at: self.de.pos }),
        }
        let variant = seed.deserialize(MapKey { de: &mut *self.de })?;
        colon(self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self.de, "", fields, visitor)
    }
}
