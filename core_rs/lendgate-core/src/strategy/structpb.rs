//! `google.protobuf.Struct` in and out of [`Value`] with prost, so that a gRPC
//! request's input crosses from Python to Rust as the bytes it arrived in, and the
//! output goes back as bytes Python merges into the response (no dict in between).
//!
//! Struct numbers are doubles: integral doubles become exact decimals, others the
//! nearest decimal (as for JSON input); decimals are written as the nearest double.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use crate::expr::value_serde::{json_number, JsonNumber};
use crate::expr::{map_with_capacity, Map, Value};

/// `google.protobuf.Struct`.
#[derive(Clone, PartialEq, Message)]
pub struct Struct {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, PbValue>,
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct PbValue {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<Kind>,
}

/// `google.protobuf.Value.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(Struct),
    #[prost(message, tag = "6")]
    List(ListValue),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<PbValue>,
}

/// Decodes a serialized `Struct` into an object value.
pub fn decode(bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    Ok(from_struct(Struct::decode(bytes)?))
}

/// Encodes a value as a serialized `Struct`: an object as itself, anything else
/// (an array, a scalar) under the key `value`, `null` as an empty Struct.
pub fn encode(value: &Value) -> Vec<u8> {
    let s = match value {
        Value::Object(map) => to_struct(map),
        Value::Null => Struct::default(),
        other => Struct {
            fields: BTreeMap::from([("value".to_owned(), to_pb(other))]),
        },
    };
    s.encode_to_vec()
}

fn from_struct(s: Struct) -> Value {
    let mut map = map_with_capacity(s.fields.len());
    for (k, v) in s.fields {
        map.insert(Arc::from(k), from_pb(v));
    }
    Value::object(map)
}

fn from_pb(v: PbValue) -> Value {
    match v.kind {
        None | Some(Kind::Null(_)) => Value::Null,
        Some(Kind::Bool(b)) => Value::Bool(b),
        Some(Kind::Number(f)) => number(f),
        Some(Kind::String(s)) => Value::String(Arc::from(s)),
        Some(Kind::Struct(s)) => from_struct(s),
        Some(Kind::List(l)) => Value::array(l.values.into_iter().map(from_pb).collect()),
    }
}

fn number(f: f64) -> Value {
    // Integral doubles up to 2^53 are exact integers; anything else the nearest decimal.
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Decimal::from(f as i64));
    }
    Decimal::from_f64(f).map_or(Value::Null, Value::Number)
}

fn to_struct(map: &Map) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.to_string(), to_pb(v))).collect(),
    }
}

fn to_pb(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::Null(0),
        Value::Bool(b) => Kind::Bool(*b),
        #[allow(clippy::cast_precision_loss)]
        Value::Number(n) => match json_number(*n) {
            JsonNumber::I64(i) => Kind::Number(i as f64),
            JsonNumber::U64(u) => Kind::Number(u as f64),
            JsonNumber::F64(f) => Kind::Number(f),
            JsonNumber::Null => Kind::Null(0),
        },
        Value::String(s) => Kind::String(s.to_string()),
        Value::Array(items) => Kind::List(ListValue {
            values: items.iter().map(to_pb).collect(),
        }),
        Value::Object(map) => Kind::Struct(to_struct(map)),
        Value::Date(d) => Kind::String(d.to_string()),
        Value::Interval(i) => Kind::String(i.to_string()),
    };
    PbValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn struct_round_trip() {
        let v = Value::from(&json!({"a": 1, "b": [0.5, "x", null, true], "c": {"d": -3}}));
        let back = decode(&encode(&v)).expect("decode");
        assert_eq!(back.to_json(), v.to_json());
        assert!(decode(b"\xff\xff").is_err());
    }
}
