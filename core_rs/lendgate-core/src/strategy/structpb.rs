//! `google.protobuf.Struct` in and out of [`Value`] with prost, so that a gRPC
//! request's input crosses from Python to Rust as the bytes it arrived in, and the
//! output goes back as bytes Python merges into the response (no dict in between).
//!
//! Struct numbers are doubles: integral doubles become exact decimals, others the
//! nearest decimal (as for JSON input); decimals are written as the nearest double.

use std::sync::Arc;

use prost::encoding::{
    check_wire_type, decode_key, decode_varint, encode_varint, encoded_len_varint, skip_field,
    DecodeContext, WireType,
};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use crate::expr::value_serde::{json_number, JsonNumber};
use crate::expr::{map_with_capacity, Map, Value};

/// Nesting deeper than this is refused (prost's own default limit).
const MAX_DEPTH: u32 = 100;

// Tags (field number << 3 | wire type) of the messages written here.
const FIELDS_ENTRY: u8 = 0x0a; // Struct.fields (1, LEN), ListValue.values (1, LEN)
const ENTRY_KEY: u8 = 0x0a; // map entry key (1, LEN)
const ENTRY_VALUE: u8 = 0x12; // map entry value (2, LEN)
const NULL_VALUE: u8 = 0x08; // Value.null_value (1, VARINT)
const NUMBER_VALUE: u8 = 0x11; // Value.number_value (2, I64)
const STRING_VALUE: u8 = 0x1a; // Value.string_value (3, LEN)
const BOOL_VALUE: u8 = 0x20; // Value.bool_value (4, VARINT)
const STRUCT_VALUE: u8 = 0x2a; // Value.struct_value (5, LEN)
const LIST_VALUE: u8 = 0x32; // Value.list_value (6, LEN)

/// Decodes a serialized `Struct` into an object value. Straight from the wire into the
/// engine's values (no intermediate message tree); a map key given twice keeps its
/// last value, as protobuf's map semantics say.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    decode_struct(bytes, 0).map(Value::object)
}

/// Encodes a value as a serialized `Struct`: an object as itself, anything else
/// (an array, a scalar) under the key `value`, `null` as an empty Struct. Written
/// straight from the values in two passes (the sizes of the nested messages first, in
/// the order they are written, then the bytes); members in the object's order.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut sizes = Vec::new();
    let mut out;
    match value {
        Value::Object(map) => {
            let len = size_struct(map, &mut sizes);
            out = Vec::with_capacity(len);
            write_struct(map, &sizes, &mut 0, &mut out);
        }
        Value::Null => out = Vec::new(),
        other => {
            let body = size_value(other, &mut sizes);
            out = Vec::with_capacity(entry_len("value", body) + 8);
            write_entry("value", other, &sizes, &mut 0, &mut out);
        }
    }
    out
}

// --- decoding -------------------------------------------------------------------------

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The body of a length-delimited field, advancing `buf` past it.
fn take<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = usize::try_from(decode_varint(buf).map_err(err)?).map_err(err)?;
    if len > buf.len() {
        return Err("buffer underflow".into());
    }
    let (body, rest) = buf.split_at(len);
    *buf = rest;
    Ok(body)
}

fn depth_check(depth: u32) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("recursion limit reached".into());
    }
    Ok(())
}

fn decode_struct(mut buf: &[u8], depth: u32) -> Result<Map, String> {
    depth_check(depth)?;
    let mut map = map_with_capacity(8);
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(err)?;
        if number == 1 {
            check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
            let (key, value) = decode_entry(take(&mut buf)?, depth)?;
            map.insert(key, value);
        } else {
            skip_field(wire, number, &mut buf, DecodeContext::default()).map_err(err)?;
        }
    }
    Ok(map)
}

fn decode_entry(mut buf: &[u8], depth: u32) -> Result<(Arc<str>, Value), String> {
    let (mut key, mut value): (Arc<str>, Value) = (Arc::from(""), Value::Null);
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(err)?;
        match number {
            1 => {
                check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
                key = Arc::from(utf8(take(&mut buf)?)?);
            }
            2 => {
                check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
                value = decode_value(take(&mut buf)?, depth + 1)?;
            }
            _ => skip_field(wire, number, &mut buf, DecodeContext::default()).map_err(err)?,
        }
    }
    Ok((key, value))
}

fn decode_value(mut buf: &[u8], depth: u32) -> Result<Value, String> {
    depth_check(depth)?;
    let mut value = Value::Null;
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(err)?;
        value = match number {
            1 => {
                check_wire_type(WireType::Varint, wire).map_err(err)?;
                decode_varint(&mut buf).map_err(err)?;
                Value::Null
            }
            2 => {
                check_wire_type(WireType::SixtyFourBit, wire).map_err(err)?;
                let Some((bits, rest)) = buf.split_first_chunk::<8>() else {
                    return Err("buffer underflow".into());
                };
                buf = rest;
                number_value(f64::from_le_bytes(*bits))
            }
            3 => {
                check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
                Value::String(Arc::from(utf8(take(&mut buf)?)?))
            }
            4 => {
                check_wire_type(WireType::Varint, wire).map_err(err)?;
                Value::Bool(decode_varint(&mut buf).map_err(err)? != 0)
            }
            5 => {
                check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
                Value::object(decode_struct(take(&mut buf)?, depth + 1)?)
            }
            6 => {
                check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
                Value::array(decode_list(take(&mut buf)?, depth + 1)?)
            }
            _ => {
                skip_field(wire, number, &mut buf, DecodeContext::default()).map_err(err)?;
                continue;
            }
        };
    }
    Ok(value)
}

fn decode_list(mut buf: &[u8], depth: u32) -> Result<Vec<Value>, String> {
    depth_check(depth)?;
    let mut items = Vec::new();
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(err)?;
        if number == 1 {
            check_wire_type(WireType::LengthDelimited, wire).map_err(err)?;
            items.push(decode_value(take(&mut buf)?, depth + 1)?);
        } else {
            skip_field(wire, number, &mut buf, DecodeContext::default()).map_err(err)?;
        }
    }
    Ok(items)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "invalid string value: data is not UTF-8 encoded".into())
}

fn number_value(f: f64) -> Value {
    // Integral doubles up to 2^53 are exact integers; anything else the nearest decimal.
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Decimal::from(f as i64));
    }
    Decimal::from_f64(f).map_or(Value::Null, Value::Number)
}

// --- encoding -------------------------------------------------------------------------

/// What a scalar is written as (`None` for objects and arrays).
enum Scalar<'a> {
    Null,
    Number(f64),
    Bool(bool),
    Str(&'a str),
    Owned(String),
}

fn scalar(v: &Value) -> Option<Scalar<'_>> {
    Some(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        #[allow(clippy::cast_precision_loss)]
        Value::Number(n) => match json_number(*n) {
            JsonNumber::I64(i) => Scalar::Number(i as f64),
            JsonNumber::U64(u) => Scalar::Number(u as f64),
            JsonNumber::F64(f) => Scalar::Number(f),
            JsonNumber::Null => Scalar::Null,
        },
        Value::String(s) => Scalar::Str(s),
        Value::Date(d) => Scalar::Owned(d.to_string()),
        Value::Interval(i) => Scalar::Owned(i.to_string()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

fn len_field(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

fn entry_len(key: &str, value_body: usize) -> usize {
    len_field(len_field(key.len()) + len_field(value_body))
}

/// The body size of the `Value` message of `v`, recording (in write order) the body size
/// of every nested message the writer will need: this value's, then for an object or
/// array its `Struct` / `ListValue` body, then its members'.
fn size_value(v: &Value, sizes: &mut Vec<usize>) -> usize {
    let slot = sizes.len();
    sizes.push(0);
    let body = match v {
        Value::Object(map) => {
            let inner = sizes.len();
            sizes.push(0);
            let len = size_struct(map, sizes);
            sizes[inner] = len;
            len_field(len)
        }
        Value::Array(items) => {
            let inner = sizes.len();
            sizes.push(0);
            let len: usize = items
                .iter()
                .map(|item| len_field(size_value(item, sizes)))
                .sum();
            sizes[inner] = len;
            len_field(len)
        }
        other => match scalar(other) {
            Some(Scalar::Null | Scalar::Bool(_)) => 2,
            Some(Scalar::Number(_)) => 9,
            Some(Scalar::Str(s)) => len_field(s.len()),
            Some(Scalar::Owned(s)) => len_field(s.len()),
            None => 0,
        },
    };
    sizes[slot] = body;
    body
}

fn size_struct(map: &Map, sizes: &mut Vec<usize>) -> usize {
    map.iter()
        .map(|(k, v)| entry_len(k, size_value(v, sizes)))
        .sum()
}

fn next(sizes: &[usize], at: &mut usize) -> usize {
    let size = sizes.get(*at).copied().unwrap_or_default();
    *at += 1;
    size
}

fn write_struct(map: &Map, sizes: &[usize], at: &mut usize, out: &mut Vec<u8>) {
    for (k, v) in map.iter() {
        write_entry(k, v, sizes, at, out);
    }
}

fn write_entry(key: &str, v: &Value, sizes: &[usize], at: &mut usize, out: &mut Vec<u8>) {
    let body = sizes.get(*at).copied().unwrap_or_default();
    out.push(FIELDS_ENTRY);
    encode_varint((len_field(key.len()) + len_field(body)) as u64, out);
    out.push(ENTRY_KEY);
    encode_varint(key.len() as u64, out);
    out.extend_from_slice(key.as_bytes());
    out.push(ENTRY_VALUE);
    write_value(v, sizes, at, out);
}

/// Writes the length and body of the `Value` message of `v` (its size is next in
/// `sizes`).
fn write_value(v: &Value, sizes: &[usize], at: &mut usize, out: &mut Vec<u8>) {
    encode_varint(next(sizes, at) as u64, out);
    match v {
        Value::Object(map) => {
            out.push(STRUCT_VALUE);
            encode_varint(next(sizes, at) as u64, out);
            write_struct(map, sizes, at, out);
        }
        Value::Array(items) => {
            out.push(LIST_VALUE);
            encode_varint(next(sizes, at) as u64, out);
            for item in items.iter() {
                out.push(FIELDS_ENTRY);
                write_value(item, sizes, at, out);
            }
        }
        other => match scalar(other) {
            Some(Scalar::Null) => out.extend_from_slice(&[NULL_VALUE, 0]),
            Some(Scalar::Bool(b)) => out.extend_from_slice(&[BOOL_VALUE, u8::from(b)]),
            Some(Scalar::Number(f)) => {
                out.push(NUMBER_VALUE);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Some(Scalar::Str(s)) => write_string(s, out),
            Some(Scalar::Owned(s)) => write_string(&s, out),
            None => {}
        },
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(STRING_VALUE);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use prost::Message;
    use serde_json::json;

    use super::*;

    // The well-known types as prost derives them: the reference the direct codec is
    // checked against.
    #[derive(Clone, PartialEq, Message)]
    struct RefStruct {
        #[prost(btree_map = "string, message", tag = "1")]
        fields: BTreeMap<String, RefValue>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct RefValue {
        #[prost(oneof = "RefKind", tags = "1, 2, 3, 4, 5, 6")]
        kind: Option<RefKind>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    enum RefKind {
        #[prost(int32, tag = "1")]
        Null(i32),
        #[prost(double, tag = "2")]
        Number(f64),
        #[prost(string, tag = "3")]
        String(String),
        #[prost(bool, tag = "4")]
        Bool(bool),
        #[prost(message, tag = "5")]
        Struct(RefStruct),
        #[prost(message, tag = "6")]
        List(RefList),
    }

    #[derive(Clone, PartialEq, Message)]
    struct RefList {
        #[prost(message, repeated, tag = "1")]
        values: Vec<RefValue>,
    }

    fn ref_value(v: &serde_json::Value) -> RefValue {
        use serde_json::Value as J;
        let kind = match v {
            J::Null => RefKind::Null(0),
            J::Bool(b) => RefKind::Bool(*b),
            J::Number(n) => RefKind::Number(n.as_f64().unwrap_or_default()),
            J::String(s) => RefKind::String(s.clone()),
            J::Array(items) => RefKind::List(RefList {
                values: items.iter().map(ref_value).collect(),
            }),
            J::Object(m) => RefKind::Struct(ref_struct(m)),
        };
        RefValue { kind: Some(kind) }
    }

    fn ref_struct(m: &serde_json::Map<String, serde_json::Value>) -> RefStruct {
        RefStruct {
            fields: m.iter().map(|(k, v)| (k.clone(), ref_value(v))).collect(),
        }
    }

    fn samples() -> Vec<serde_json::Value> {
        vec![
            json!({}),
            json!({"a": 1, "b": [0.5, "x", null, true], "c": {"d": -3}}),
            json!({"empty": {}, "none": [], "nested": [[[]], [{}], {"x": [1, [2, [3]]]}]}),
            json!({"unicode ключ": "значение ✓", "esc": "tab\tquote\"", "": ""}),
            json!({"big": 9_007_199_254_740_992_u64, "neg": -12345678901_i64, "tiny": 1e-300,
                   "huge": 1.5e300, "third": 0.333_333_333_333_333_3, "zero": 0, "f": false}),
            json!({"long": "x".repeat(300), "many": (0..200).collect::<Vec<_>>()}),
        ]
    }

    #[test]
    fn struct_round_trip() {
        for j in samples() {
            let v = Value::from(&j);
            let back = decode(&encode(&v)).expect("decode");
            assert_eq!(back.to_json(), v.to_json(), "{j}");
        }
        assert!(decode(b"\xff\xff").is_err());
    }

    #[test]
    fn what_is_written_is_what_prost_reads() {
        for j in samples() {
            let v = Value::from(&j);
            let theirs = RefStruct::decode(encode(&v).as_slice()).expect("prost decodes ours");
            let expected = match &v {
                Value::Object(_) => {
                    // Numbers as ours writes them (decimals to the nearest double).
                    let written: serde_json::Value = v.to_json();
                    ref_struct(written.as_object().expect("object"))
                }
                _ => unreachable!(),
            };
            assert_eq!(theirs, expected, "{j}");
        }
        // A non-object under "value"; null as an empty Struct.
        let list = Value::from(&json!([1, "a"]));
        let theirs = RefStruct::decode(encode(&list).as_slice()).expect("decodes");
        assert_eq!(theirs.fields.keys().collect::<Vec<_>>(), ["value"]);
        assert!(encode(&Value::Null).is_empty());
    }

    #[test]
    fn what_prost_writes_is_what_is_read() {
        for j in samples() {
            let bytes = ref_struct(j.as_object().expect("object")).encode_to_vec();
            let ours = decode(&bytes).expect("decodes prost's bytes");
            assert_eq!(ours.to_json(), Value::from(&j).to_json(), "{j}");
        }
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_and_unknown_fields_are_skipped() {
        let first = RefStruct {
            fields: BTreeMap::from([("k".to_owned(), ref_value(&json!(1)))]),
        };
        let second = RefStruct {
            fields: BTreeMap::from([("k".to_owned(), ref_value(&json!("two")))]),
        };
        let mut bytes = first.encode_to_vec();
        bytes.extend(second.encode_to_vec());
        bytes.extend([0x98, 0x06, 0x01]); // field 99, varint 1: unknown
        assert_eq!(
            decode(&bytes).expect("decodes").to_json(),
            json!({"k": "two"})
        );
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let good = encode(&Value::from(&json!({"a": {"b": [1, "x"]}})));
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]); // any answer but a panic
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
        // Invalid UTF-8 in a key; a number with the wrong wire type.
        assert!(decode(&[0x0a, 0x03, 0x0a, 0x01, 0xff]).is_err());
        assert!(
            decode(&[0x0a, 0x05, 0x0a, 0x01, b'a', 0x12, 0x00, 0x0a, 0x03, 0x12, 0x01, 0x10])
                .is_err()
        );
        // Nesting past the limit.
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let bytes = ref_struct(json!({"d": deep}).as_object().expect("object")).encode_to_vec();
        assert!(decode(&bytes).unwrap_err().contains("recursion"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
