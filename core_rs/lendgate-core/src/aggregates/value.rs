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
///
/// Once definitions are compiled, every path carries a *slot*: the index of its value
/// in an [`EventView`], where each distinct path of the definitions is resolved once
/// per event (not once per element, filter or key that reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    text: Box<str>,
    parts: Box<[Box<str>]>,
    slot: u32,
}

/// A path without a slot (resolved by walking the document).
const NO_SLOT: u32 = u32::MAX;

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
            slot: NO_SLOT,
        })
    }

    /// The slot of this path in its definitions' event views.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The value at this path in an event view, or `None` when missing or null.
    #[inline]
    pub fn at<'a>(&self, ev: &EventView<'a>) -> Option<&'a Value> {
        match ev.slots.get(self.slot as usize) {
            Some(v) => *v,
            None => ev.doc.and_then(|d| self.get(d)),
        }
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

    /// The value at this path inside `v`, the value at `prefix` (a prefix of this path).
    fn get_suffix<'a>(&self, v: &'a Value, prefix: &AttrPath) -> Option<&'a Value> {
        let mut cur = v;
        for part in self.parts.get(prefix.parts.len()..)?.iter() {
            cur = cur.as_object()?.get(&**part)?;
        }
        Some(cur)
    }
}

/// One event as the aggregates read it: the value of every distinct attribute path of
/// the definitions, resolved once (by slot), and the whole document when there is one.
#[derive(Debug)]
pub struct EventView<'a> {
    pub(crate) doc: Option<&'a Value>,
    pub(crate) slots: Vec<Option<&'a Value>>,
}

impl<'a> EventView<'a> {
    /// Resolves every path of `paths` (slot order) against a parsed document.
    pub fn from_document(doc: &'a Value, paths: &PathTable) -> Self {
        Self {
            doc: Some(doc),
            slots: paths.paths.iter().map(|p| p.get(doc)).collect(),
        }
    }

    /// A view of values extracted by [`PathTable::extract_json`] (no whole document).
    pub fn from_extracted(values: &'a [Option<Value>]) -> Self {
        Self {
            doc: None,
            slots: values
                .iter()
                .map(|v| v.as_ref().filter(|v| !v.is_null()))
                .collect(),
        }
    }

    /// The whole document, when the view was made from one.
    pub fn document(&self) -> Option<&'a Value> {
        self.doc
    }
}

/// The distinct attribute paths of a set of definitions, in slot order, and a trie of
/// them that extracts exactly those values from JSON bytes without building the rest
/// of the document.
#[derive(Debug, Default)]
pub struct PathTable {
    paths: Vec<AttrPath>,
    index: std::collections::HashMap<Box<str>, u32>,
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    children: Vec<(Box<str>, u32)>,
    /// The slot of the path ending here.
    slot: Option<u32>,
    /// The slots of this node and every node below it.
    below: Box<[u32]>,
}

impl PathTable {
    /// Registers `path` and stores its slot in it.
    pub(crate) fn intern(&mut self, path: &mut AttrPath) {
        let next = self.paths.len() as u32;
        let slot = *self.index.entry(path.as_str().into()).or_insert(next);
        if slot == next {
            let mut p = path.clone();
            p.slot = slot;
            self.paths.push(p);
        }
        path.slot = slot;
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no paths.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Builds the trie of the interned paths.
    pub(crate) fn finish(&mut self) {
        let mut nodes = vec![TrieNode::default()];
        for (slot, p) in self.paths.iter().enumerate() {
            let mut n = 0usize;
            for part in p.parts.iter() {
                n = match nodes[n].children.iter().find(|(k, _)| k == part) {
                    Some((_, c)) => *c as usize,
                    None => {
                        nodes.push(TrieNode::default());
                        let c = nodes.len() - 1;
                        nodes[n].children.push((part.clone(), c as u32));
                        c
                    }
                };
            }
            nodes[n].slot = Some(slot as u32);
        }
        self.nodes = nodes;
        for n in 0..self.nodes.len() {
            let mut below = Vec::new();
            self.subtree_slots(n, &mut below);
            self.nodes[n].below = below.into();
        }
    }

    /// Slots under node `n` (for clearing on a repeated JSON key).
    fn subtree_slots(&self, n: usize, out: &mut Vec<u32>) {
        let node = &self.nodes[n];
        out.extend(node.slot);
        for (_, c) in &node.children {
            self.subtree_slots(*c as usize, out);
        }
    }

    /// Parses JSON bytes, keeping only the values at the table's paths (by slot).
    /// Errors as parsing the whole document would: not JSON, or not an object.
    pub fn extract_json(&self, bytes: &[u8]) -> CoreResult<Vec<Option<Value>>> {
        use serde::de::DeserializeSeed;
        let mut out = vec![None; self.paths.len()];
        let mut seen = vec![false; self.nodes.len()];
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut not_object = false;
        NodeSeed {
            table: self,
            node: 0,
            out: &mut out,
            seen: &mut seen,
            root_not_object: Some(&mut not_object),
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| CoreError::invalid("event", format!("not a JSON document: {e}")))?;
        if not_object {
            return Err(CoreError::invalid(
                "event",
                "the event must be a JSON object",
            ));
        }
        Ok(out)
    }
}

struct NodeSeed<'t, 's> {
    table: &'t PathTable,
    node: usize,
    out: &'s mut Vec<Option<Value>>,
    seen: &'s mut Vec<bool>,
    root_not_object: Option<&'s mut bool>,
}

impl NodeSeed<'_, '_> {
    fn clear(&mut self) {
        if std::mem::replace(&mut self.seen[self.node], true) {
            for &s in self.table.nodes[self.node].below.iter() {
                self.out[s as usize] = None;
            }
        }
    }

    fn not_object<E>(self) -> Result<(), E> {
        if let Some(flag) = self.root_not_object {
            *flag = true;
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        use serde::Deserialize;
        if self.node != 0 {
            // A repeated key replaces what an earlier occurrence set (last wins, as
            // when the whole document is parsed).
            self.clear();
        }
        let node = &self.table.nodes[self.node];
        if let (Some(slot), false) = (node.slot, self.node == 0) {
            let v = Value::deserialize(d)?;
            if !node.children.is_empty() {
                for &s in node.below.iter() {
                    if s != slot {
                        self.out[s as usize] = self.table.paths[s as usize]
                            .get_suffix(&v, &self.table.paths[slot as usize])
                            .cloned();
                    }
                }
            }
            self.out[slot as usize] = Some(v);
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

struct KeySeed<'t> {
    children: &'t [(Box<str>, u32)],
}

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<u32>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed<'_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, k: &str) -> Result<Option<u32>, E> {
        Ok(self
            .children
            .iter()
            .find(|(name, _)| &**name == k)
            .map(|(_, c)| *c))
    }
}

impl<'de> serde::de::Visitor<'de> for NodeSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let table = self.table;
        let children = &table.nodes[self.node].children;
        while let Some(child) = map.next_key_seed(KeySeed { children })? {
            match child {
                Some(c) => map.next_value_seed(NodeSeed {
                    table,
                    node: c as usize,
                    out: &mut *self.out,
                    seen: &mut *self.seen,
                    root_not_object: None,
                })?,
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        self.not_object()
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.not_object()
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.not_object()
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.not_object()
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.not_object()
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.not_object()
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
    fn extraction_from_bytes_matches_the_parsed_document() {
        let mut table = PathTable::default();
        let mut paths: Vec<AttrPath> = ["a.b", "a.b.c", "x", "y.z", "n", "a.d"]
            .iter()
            .map(|p| AttrPath::parse(p, "attr").unwrap())
            .collect();
        for p in &mut paths {
            table.intern(p);
        }
        table.finish();
        for doc in [
            r#"{"a": {"b": {"c": 1}, "d": "s"}, "x": [1, 2], "y": {"z": null}, "n": 2.5}"#,
            r#"{"a": {"b": 5, "d": "first"}, "a": {"d": "second"}, "x": "t\u00e9"}"#,
            r#"{"y": 3, "y": {"z": true}, "a": null, "other": {"deep": [{"a": 1}]}}"#,
            r#"{"a": {"b": {"c": 1}}, "a": 7}"#,
        ] {
            let parsed: Value = serde_json::from_str(doc).unwrap();
            let whole = EventView::from_document(&parsed, &table);
            let values = table.extract_json(doc.as_bytes()).unwrap();
            let extracted = EventView::from_extracted(&values);
            for p in &paths {
                assert_eq!(p.at(&whole), p.at(&extracted), "{doc} at {}", p.as_str());
            }
        }
        for bad in ["[1]", "3", "\"s\"", "{", "{} x", "null"] {
            let parsed = serde_json::from_str::<Value>(bad);
            let err = table.extract_json(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "event"),
                "{bad}: {err:?} (parsed: {parsed:?})"
            );
        }
    }

    #[test]
    fn paths_walk_objects() {
        let p = AttrPath::parse("a.b.c", "attr").unwrap();
        assert_eq!(p.get(&json!({"a": {"b": {"c": 1}}})), Some(&json!(1)));
        assert_eq!(p.get(&json!({"a": {"b": null}})), None);
        assert!(AttrPath::parse("a..b", "attr").is_err());
    }
}
