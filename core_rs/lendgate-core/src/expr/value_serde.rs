//! JSON (de)serialization of [`Value`] without an intermediate `serde_json::Value`:
//! a document is parsed straight into reference-counted values and written straight
//! from them. The mapping is the one of [`Value::to_json`] and `From<&serde_json::Value>`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::value::{map_with_capacity, Value};

/// How a decimal is written: integral values as integers, others as the nearest
/// double (as [`super::value::decimal_to_json`]); `null` if not representable.
pub(crate) enum JsonNumber {
    I64(i64),
    U64(u64),
    F64(f64),
    Null,
}

pub(crate) fn json_number(n: Decimal) -> JsonNumber {
    if n.scale() == 0 {
        // Already an integer: no normalisation needed (the common case).
        if let Some(i) = n.to_i64() {
            return JsonNumber::I64(i);
        }
    }
    let n = n.normalize();
    if n.scale() == 0 {
        if let Some(i) = n.to_i64() {
            return JsonNumber::I64(i);
        }
        if let Some(u) = n.to_u64() {
            return JsonNumber::U64(u);
        }
    }
    match f64::from_str(&n.to_string()).ok().or_else(|| n.to_f64()) {
        Some(f) if f.is_finite() => JsonNumber::F64(f),
        _ => JsonNumber::Null,
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match json_number(*n) {
                JsonNumber::I64(i) => s.serialize_i64(i),
                JsonNumber::U64(u) => s.serialize_u64(u),
                JsonNumber::F64(f) => s.serialize_f64(f),
                JsonNumber::Null => s.serialize_unit(),
            },
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = s.serialize_map(Some(map.len()))?;
                for (k, v) in map.iter() {
                    out.serialize_entry(k.as_ref(), v)?;
                }
                out.end()
            }
            Value::Date(d) => s.collect_str(d),
            Value::Interval(i) => s.collect_str(i),
        }
    }
}

/// Writes `value` as JSON (the same text as its `Serialize` impl gives).
///
/// Containers shared by several places of the document (an engine output often
/// repeats its input: pass-through nodes, `copy = items` expressions) are written
/// once and copied afterwards, which makes large outputs several times cheaper.
pub fn to_json_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut seen: HashMap<usize, (usize, usize)> = HashMap::new();
    write_json(value, &mut out, &mut seen);
    out
}

fn write_json(value: &Value, out: &mut Vec<u8>, seen: &mut HashMap<usize, (usize, usize)>) {
    let shared = match value {
        Value::Array(a) if Arc::strong_count(a) > 1 && !a.is_empty() => {
            Some(Arc::as_ptr(a) as usize)
        }
        Value::Object(m) if Arc::strong_count(m) > 1 && !m.is_empty() => {
            Some(Arc::as_ptr(m) as usize)
        }
        _ => None,
    };
    if let Some(ptr) = shared {
        if let Some(&(from, to)) = seen.get(&ptr) {
            out.extend_from_within(from..to);
            return;
        }
    }
    let start = out.len();
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out, seen);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_json(v, out, seen);
            }
            out.push(b'}');
        }
        Value::String(text) => write_str(text, out),
        other => write_scalar(other, out),
    }
    if let Some(ptr) = shared {
        seen.insert(ptr, (start, out.len()));
    }
}

fn write_scalar<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing scalars to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Writes a JSON string: copied as it is when nothing in it needs escaping (keys and
/// most values), else through serde_json's escaping.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_scalar(s, out);
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        // Outside the decimal range: `null`, as ZEN does.
        Ok(Decimal::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(Arc::from(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // serde_json gives no size hint: start with room for a typical small object
        // rather than growing (and rehashing) from zero.
        let mut map = map_with_capacity(access.size_hint().unwrap_or(8).min(4096));
        while let Some(key) = access.next_key::<KeyStr>()? {
            let value = access.next_value::<Value>()?;
            // serde_json keeps the last of duplicate keys; so do we.
            map.insert(key.0, value);
        }
        Ok(Value::object(map))
    }
}

/// An object key, borrowed from the input when possible.
struct KeyStr(Arc<str>);

impl<'de> Deserialize<'de> for KeyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyStr, E> {
                Ok(KeyStr(Arc::from(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Map;
    use serde_json::json;

    #[test]
    fn round_trips_like_the_serde_json_path() {
        let doc = json!({
            "a": 1, "b": -2, "c": 0.1, "d": 1.5e300, "e": "x", "f": [true, null, {"g": 18446744073709551615u64}],
            "h": 3.0, "i": {}
        });
        let text = doc.to_string();
        let direct: Value = serde_json::from_str(&text).expect("parse");
        let via = Value::from(&doc);
        assert_eq!(direct.to_json(), via.to_json());
        let written = serde_json::to_value(&direct).expect("write");
        assert_eq!(written, via.to_json());
        let bytes: serde_json::Value = serde_json::from_slice(&to_json_bytes(&direct)).expect("j");
        assert_eq!(bytes, via.to_json());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        for text in [
            "plain",
            "",
            "quote\"s",
            "back\\slash",
            "tab\tnl\n\u{1}",
            "ünï ✓ \u{7f}",
        ] {
            let doc = Value::from(&json!({ text: text }));
            let ours = String::from_utf8(to_json_bytes(&doc)).expect("utf8");
            assert_eq!(
                ours,
                serde_json::to_string(&json!({ text: text })).expect("ser")
            );
        }
    }

    #[test]
    fn shared_containers_are_written_once_and_copied() {
        let items = Value::from(&json!([{"a": 1}, {"b": "x\"y"}]));
        let mut map = Map::default();
        map.insert(Arc::from("one"), items.clone());
        map.insert(Arc::from("two"), items.clone());
        map.insert(
            Arc::from("three"),
            Value::array(vec![items.clone(), Value::Null]),
        );
        let doc = Value::object(map);
        let text = String::from_utf8(to_json_bytes(&doc)).expect("utf8");
        assert_eq!(text, serde_json::to_string(&doc).expect("ser"));
    }
}
