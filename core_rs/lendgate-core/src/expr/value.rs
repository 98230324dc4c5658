//! The runtime value of the expression language.
//!
//! Numbers are decimals (`rust_decimal`), as in ZEN, so `0.1 + 0.2 == 0.3` holds.
//! Containers are reference-counted so that passing an input document into many
//! evaluations, or a closure's array into its body, never deep-copies it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use indexmap::IndexMap;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

use super::date::{DateValue, Interval};

/// An object: keys in insertion order.
pub type Map = IndexMap<Arc<str>, Value, MapHasher>;

/// The hasher of [`Map`]: foldhash, seeded per process. Object keys are hashed on every
/// member access, and SipHash (std's default) was 13–30 % of rule and strategy
/// evaluation; foldhash's per-process random seed keeps keys chosen by a client from
/// being aimed at one bucket.
pub type MapHasher = foldhash::fast::RandomState;

/// An empty [`Map`] with room for `capacity` members.
pub fn map_with_capacity(capacity: usize) -> Map {
    Map::with_capacity_and_hasher(capacity, MapHasher::default())
}

/// A value of the expression language.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// `null`, and the value of any missing field.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A decimal number (96-bit mantissa, scale up to 28).
    Number(Decimal),
    /// A string.
    String(Arc<str>),
    /// An array.
    Array(Arc<Vec<Value>>),
    /// An object.
    Object(Arc<Map>),
    /// A date-time with its time zone (from `d(...)`); may be invalid.
    Date(Arc<DateValue>),
    /// A numeric or date interval such as `[1..10)`.
    Interval(Arc<Interval>),
}

impl Value {
    /// The name `type()` reports for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Date(_) => "date",
            Value::Interval(_) => "interval",
        }
    }

    /// Builds a string value.
    pub fn str(s: &str) -> Self {
        Value::String(Arc::from(s))
    }

    /// Builds an array value.
    pub fn array(items: Vec<Value>) -> Self {
        Value::Array(Arc::new(items))
    }

    /// Builds an object value.
    pub fn object(map: Map) -> Self {
        Value::Object(Arc::new(map))
    }

    /// Converts to JSON the way ZEN does: numbers normalised (`3.0` → `3`), dates as
    /// RFC 3339 strings, intervals as their source form.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => decimal_to_json(*n),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Date(d) => serde_json::Value::String(d.to_string()),
            Value::Interval(i) => serde_json::Value::String(i.to_string()),
        }
    }
}

/// A decimal as a JSON number: integral values as integers, others as floats.
pub fn decimal_to_json(n: Decimal) -> serde_json::Value {
    let n = n.normalize();
    if n.scale() == 0 {
        if let Some(i) = n.to_i64() {
            return serde_json::Value::from(i);
        }
        if let Some(u) = n.to_u64() {
            return serde_json::Value::from(u);
        }
    }
    serde_json::Number::from_str(&n.to_string())
        .ok()
        .or_else(|| n.to_f64().and_then(serde_json::Number::from_f64))
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A JSON number as a decimal; `None` when it is outside the decimal range (ZEN
/// turns those into `null`).
pub fn json_number_to_decimal(n: &serde_json::Number) -> Option<Decimal> {
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    n.as_f64().and_then(Decimal::from_f64)
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                json_number_to_decimal(n).map_or(Value::Null, Value::Number)
            }
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(items) => {
                Value::array(items.iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => Value::object(
                map.iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Decimal> for Value {
    fn from(n: Decimal) -> Self {
        Value::Number(n)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}
