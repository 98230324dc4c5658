//! JSON bytes straight into the expression language's [`Value`], without building a
//! `serde_json::Value` first: an event is parsed once per evaluation call, so this
//! is on the hot path of every check that arrives as bytes.

use std::fmt;
use std::sync::Arc;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::expr::{map_with_capacity, Value};

/// A JSON document as a [`Value`]; numbers convert as `Value::from(&serde_json::Value)`
/// does (a float outside the decimal range becomes null).
pub(crate) struct Document(pub Value);

struct Key(Arc<str>);

struct DocumentVisitor;
struct KeyVisitor;

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocumentVisitor).map(Document)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(Arc::from(v)))
    }
}

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Decimal::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Document(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = map_with_capacity(map.size_hint().unwrap_or(0));
        while let Some((Key(k), Document(v))) = map.next_entry()? {
            out.insert(k, v);
        }
        Ok(Value::object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_serde_json_route() {
        let text = r#"{"a": [1, -2, 3.25, 1e300, null, true, "x\"y"], "b": {"c": {}}, "d": 18446744073709551615}"#;
        let direct = serde_json::from_str::<Document>(text).unwrap().0;
        let via: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(direct.to_json(), Value::from(&via).to_json());
    }
}
