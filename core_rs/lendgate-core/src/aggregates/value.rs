//! Typed values kept in aggregate state, attribute paths into JSON events, and event time.

use crate::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch (UTC): the one time unit of the aggregates.
pub type Millis = i64;

/// Longest string accepted as a stored value or a key part (bytes).
pub const MAX_STRING_BYTES: usize = 4096;

/// Earliest event time accepted: 2000-01-01T00:00:00Z.
pub const MIN_EVENT_TIME: Millis = 946_684_800_000;
/// First event time rejected: 2100-01-01T00:00:00Z.
pub const MAX_EVENT_TIME: Millis = 4_102_444_800_000;

/// The declared type of an element's source attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Text; JSON numbers and booleans are accepted and kept as their JSON text.
    #[default]
    String,
    /// A 64-bit integer; a JSON integer or a string of one.
    Integer,
    /// A number (kept as `f64`); a JSON number or a string of one.
    Decimal,
    /// A point in time, kept as epoch milliseconds; epoch milliseconds or RFC 3339.
    Timestamp,
    /// `true`/`false`, or the strings "true"/"false".
    Boolean,
}

/// One stored value. 24 bytes; strings are boxed so a record stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    /// No value (elements that only count events store this).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer or a timestamp (epoch milliseconds).
    Int(i64),
    /// A decimal.
    Num(f64),
    /// A string.
    Str(Box<str>),
}

impl Scalar {
    /// The value as a number, for numeric aggregates (`None` for strings, booleans, null).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Num(x) => Some(*x),
            _ => None,
        }
    }

    /// The value as JSON (for results).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::Num(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.to_string()),
        }
    }

    /// Equality with a JSON literal from a definition (numbers compare numerically).
    pub fn eq_json(&self, lit: &Value) -> bool {
        match (self, lit) {
            (Self::Null, Value::Null) => true,
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Str(a), Value::String(b)) => **a == **b,
            (Self::Int(_) | Self::Num(_), Value::Number(n)) => self.as_f64() == n.as_f64(),
            _ => false,
        }
    }
}

/// A dotted attribute path (`applicant.passport.number`), split once at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    text: Box<str>,
    parts: Box<[Box<str>]>,
}

impl AttrPath {
    /// Parses a dotted path; `field` names the definition field for errors.
    pub fn parse(text: &str, field: &str) -> CoreResult<Self> {
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(CoreError::invalid(
                field,
                format!("{text:?} is not a dotted attribute path (like \"common.subtype\")"),
            ));
        }
        Ok(Self {
            text: text.into(),
            parts: text.split('.').map(Box::from).collect(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, or `None` when any step is missing or null.
    pub fn get<'a>(&self, event: &'a Value) -> Option<&'a Value> {
        let mut cur = event;
        for part in self.parts.iter() {
            cur = cur.as_object()?.get(&**part)?;
        }
        (!cur.is_null()).then_some(cur)
    }
}

/// Converts the JSON value found at `path` to `ty`; errors name the attribute.
pub fn convert(ty: ValueType, v: &Value, path: &AttrPath) -> CoreResult<Scalar> {
    let bad = |what: &str| {
        CoreError::invalid(
            path.as_str(),
            format!("expected {what}, got {}", short_json(v)),
        )
    };
    match ty {
        ValueType::String => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(bad("a string")),
            };
            check_len(&s, path.as_str())?;
            Ok(Scalar::Str(s.into_boxed_str()))
        }
        ValueType::Integer => match v {
            Value::Number(n) => n.as_i64().map(Scalar::Int).ok_or_else(|| bad("an integer")),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Scalar::Int)
                .map_err(|_| bad("an integer")),
            _ => Err(bad("an integer")),
        },
        ValueType::Decimal => {
            let x = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match x {
                Some(x) if x.is_finite() => Ok(Scalar::Num(x)),
                _ => Err(bad("a finite decimal number")),
            }
        }
        ValueType::Timestamp => parse_time(v, path.as_str()).map(Scalar::Int),
        ValueType::Boolean => match v {
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            Value::String(s) if s == "true" => Ok(Scalar::Bool(true)),
            Value::String(s) if s == "false" => Ok(Scalar::Bool(false)),
            _ => Err(bad("a boolean")),
        },
    }
}

/// Rejects strings longer than [`MAX_STRING_BYTES`].
pub fn check_len(s: &str, field: &str) -> CoreResult<()> {
    if s.len() > MAX_STRING_BYTES {
        return Err(CoreError::invalid(
            field,
            format!(
                "string of {} bytes is longer than the limit of {MAX_STRING_BYTES}",
                s.len()
            ),
        ));
    }
    Ok(())
}

fn short_json(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Parses an event time: epoch milliseconds (integer) or an RFC 3339 string
/// (`2024-03-01T10:00:00Z`, `2024-03-01T13:00:00.250+03:00`). Times before 2000 or
/// from 2100 on are rejected as absurd.
pub fn parse_time(v: &Value, field: &str) -> CoreResult<Millis> {
    let ms = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_rfc3339(s),
        _ => None,
    }
    .ok_or_else(|| {
        CoreError::invalid(
            field,
            format!(
                "expected epoch milliseconds or an RFC 3339 time, got {}",
                short_json(v)
            ),
        )
    })?;
    if !(MIN_EVENT_TIME..MAX_EVENT_TIME).contains(&ms) {
        return Err(CoreError::invalid(
            field,
            format!("time {ms} ms is outside the accepted years 2000..2099"),
        ));
    }
    Ok(ms)
}

fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let ms3: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = ms3.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_and_epoch_agree() {
        let a = parse_time(&json!("2024-03-01T10:00:00Z"), "t").unwrap();
        let b = parse_time(&json!("2024-03-01T13:00:00.000+03:00"), "t").unwrap();
        assert_eq!(a, 1_709_287_200_000);
        assert_eq!(a, b);
        assert_eq!(parse_time(&json!(1_709_287_200_000i64), "t").unwrap(), a);
        let c = parse_time(&json!("2024-03-01T10:00:00.25Z"), "t").unwrap();
        assert_eq!(c - a, 250);
    }

    #[test]
    fn absurd_times_are_rejected() {
        for v in [
            json!("1900-01-01T00:00:00Z"),
            json!("2999-01-01T00:00:00Z"),
            json!(5),
        ] {
            let err = parse_time(&v, "common.eventTime").unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "common.eventTime")
            );
        }
        assert!(parse_time(&json!("2024-02-30T00:00:00Z"), "t").is_err());
        assert!(parse_time(&json!("yesterday"), "t").is_err());
    }

    #[test]
    fn conversion_names_the_attribute() {
        let p = AttrPath::parse("ext.amount", "attr").unwrap();
        assert_eq!(
            convert(ValueType::Decimal, &json!("12.5"), &p).unwrap(),
            Scalar::Num(12.5)
        );
        let err = convert(ValueType::Integer, &json!("abc"), &p).unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "ext.amount")
        );
        assert_eq!(
            convert(ValueType::String, &json!(4510), &p).unwrap(),
            Scalar::Str("4510".into())
        );
    }

    #[test]
    fn paths_walk_objects() {
        let p = AttrPath::parse("a.b.c", "attr").unwrap();
        assert_eq!(p.get(&json!({"a": {"b": {"c": 1}}})), Some(&json!(1)));
        assert_eq!(p.get(&json!({"a": {"b": null}})), None);
        assert!(AttrPath::parse("a..b", "attr").is_err());
    }
}
