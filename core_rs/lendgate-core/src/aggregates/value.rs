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

/// One stored value. 24 bytes: strings up to 22 bytes (passport numbers, dates,
/// statuses, most ids) are kept inline, so scanning an array's records compares them
/// where they are instead of following a pointer per record.
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
    Str(SmallStr),
}

// A record (time + value) stays 32 bytes.
const _: () = assert!(std::mem::size_of::<Scalar>() == 24);

/// Bytes of a string value kept inline ([`SmallStr`]).
const SMALL_STR: usize = 22;

/// A string value: inline up to 22 bytes, so a record stays 32 bytes.
pub type SmallStr = InlineStr<SMALL_STR>;

/// An immutable string kept inline up to `N` bytes (`N` ≥ 16), boxed beyond — string
/// values (`N` = 22) and the aggregates' keys (`N` = 46). It reads as a `&str`
/// (`Deref`), and serialises as one (the snapshot format is that of `Box<str>`). Its
/// form is private: a string has exactly one (inline exactly when short, zero-padded),
/// which equality relies on to compare short strings as fixed-size words.
#[derive(Clone)]
pub struct InlineStr<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    /// A short string: its length and its bytes, then zeros.
    Inline { len: u8, bytes: [u8; N] },
    /// A longer string.
    Heap(Box<str>),
}

impl<const N: usize> InlineStr<N> {
    /// The string's bytes (no UTF-8 check: they came from a `&str`).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len).min(N)],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Made from a `&str` (see `From`), cut at its length: valid UTF-8.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }

    /// Whether the string is kept inline.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl<const N: usize> From<&str> for InlineStr<N> {
    fn from(s: &str) -> Self {
        if s.len() <= N && N <= usize::from(u8::MAX) {
            let mut bytes = [0; N];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Self(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Self(Repr::Heap(s.into()))
        }
    }
}

impl<const N: usize> From<String> for InlineStr<N> {
    fn from(s: String) -> Self {
        if s.len() <= N {
            s.as_str().into()
        } else {
            Self(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl<const N: usize> From<Box<str>> for InlineStr<N> {
    fn from(s: Box<str>) -> Self {
        if s.len() <= N {
            (*s).into()
        } else {
            Self(Repr::Heap(s))
        }
    }
}

impl<const N: usize> std::ops::Deref for InlineStr<N> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq for InlineStr<N> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // One form per string (inline exactly when short, zero-padded): compare the
            // fixed-size forms in 16-byte words, the last one overlapping (the compiler
            // would call `memcmp` for the arrays).
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                if N < 16 {
                    return a == b && x == y;
                }
                let word = |z: &[u8; N], at: usize| {
                    let at = at.min(N - 16);
                    u128::from_ne_bytes(z[at..at + 16].try_into().unwrap_or_default())
                };
                a == b && (0..N).step_by(16).all(|at| word(x, at) == word(y, at))
            }
            (Repr::Heap(a), Repr::Heap(b)) => a == b,
            _ => false,
        }
    }
}

impl<const N: usize> Eq for InlineStr<N> {}

impl<const N: usize> std::hash::Hash for InlineStr<N> {
    /// As `str` hashes (its bytes, then `0xff`), without checking the UTF-8 again.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl<const N: usize> std::fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Serialize for InlineStr<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> Deserialize<'de> for InlineStr<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<const M: usize>;
        impl<const M: usize> serde::de::Visitor<'_> for Visit<M> {
            type Value = InlineStr<M>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<InlineStr<M>, E> {
                Ok(v.into())
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<InlineStr<M>, E> {
                Ok(v.into())
            }
        }
        deserializer.deserialize_str(Visit::<N>)
    }
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

    /// The value at this path in an event view, or `None` when missing or null.
    #[inline]
    pub fn at<'v, 'a>(&self, ev: &'v EventView<'a>) -> Option<&'v Val<'a>> {
        ev.slots.get(self.slot as usize).and_then(Option::as_ref)
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

/// One attribute's value in an event, borrowed from the event wherever it can be:
/// what the aggregates read of an event without building a JSON document.
///
/// Numbers keep the three forms a JSON parser gives them (`1` is an integer, `1.0` a
/// float), so conversions and comparisons behave exactly as on a parsed document.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A positive integer above `i64::MAX`.
    UInt(u64),
    /// A number with a fraction or an exponent (or beyond the 64-bit integers).
    Float(f64),
    /// A string (borrowed unless it had escapes or was formatted for the view).
    Str(std::borrow::Cow<'a, str>),
    /// An object or an array of a parsed document.
    Json(&'a Value),
    /// An object or an array, as its JSON text (or a short description of a
    /// protobuf message): present, but not a scalar.
    Raw(&'a str),
}

impl<'a> Val<'a> {
    /// The view of one value of a parsed document (`None` for `null`).
    pub fn from_json(v: &'a Value) -> Option<Self> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Self::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Self::UInt(u)
                } else {
                    Self::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Self::Str(std::borrow::Cow::Borrowed(s.as_str())),
            Value::Array(_) | Value::Object(_) => Self::Json(v),
        })
    }

    /// The number, for numeric comparisons (`None` for strings and the rest).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::UInt(u) => Some(*u as f64),
            Self::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The value as a 64-bit integer, as `serde_json::Number::as_i64` would give it.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A number or a boolean as its JSON text (`None` for strings and compounds).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Self::Bool(b) => Some(b.to_string()),
            Self::Int(i) => Some(i.to_string()),
            Self::UInt(u) => Some(u.to_string()),
            Self::Float(x) => Some(
                serde_json::Number::from_f64(*x).map_or_else(|| x.to_string(), |n| n.to_string()),
            ),
            _ => None,
        }
    }

    /// JSON equality with a literal of a definition, numbers compared by value
    /// (`1 == 1.0`), as [`super::filter::json_eq`] compares two documents.
    pub fn eq_json(&self, lit: &Value) -> bool {
        match (self, lit) {
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Str(a), Value::String(b)) => **a == **b,
            (Self::Int(_) | Self::UInt(_) | Self::Float(_), Value::Number(n)) => {
                self.as_f64() == n.as_f64()
            }
            (Self::Json(v), lit) => super::filter::json_eq(v, lit),
            (Self::Raw(text), Value::Array(_) | Value::Object(_)) => {
                serde_json::from_str::<Value>(text).is_ok_and(|v| super::filter::json_eq(&v, lit))
            }
            _ => false,
        }
    }

    /// A short text of the value for error messages.
    pub(crate) fn short(&self) -> String {
        let mut s = match self {
            Self::Str(s) => Value::String(s.to_string()).to_string(),
            Self::Json(v) => v.to_string(),
            Self::Raw(t) => (*t).to_string(),
            other => other.scalar_text().unwrap_or_default(),
        };
        if s.len() > 60 {
            let cut = (0..=60).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s.truncate(cut);
            s.push('…');
        }
        s
    }
}

/// One event as the aggregates read it: the value of every distinct attribute path of
/// the definitions, resolved once (by slot), and the whole document when there is one.
#[derive(Debug)]
pub struct EventView<'a> {
    pub(crate) doc: Option<&'a Value>,
    pub(crate) slots: Vec<Option<Val<'a>>>,
}

impl<'a> EventView<'a> {
    /// Resolves every path of `paths` (slot order) against a parsed document.
    pub fn from_document(doc: &'a Value, paths: &PathTable) -> Self {
        Self {
            doc: Some(doc),
            slots: paths
                .paths
                .iter()
                .map(|p| p.get(doc).and_then(Val::from_json))
                .collect(),
        }
    }

    /// A view of values extracted without a document (JSON bytes or protobuf), in
    /// slot order.
    pub fn from_slots(slots: Vec<Option<Val<'a>>>) -> Self {
        Self { doc: None, slots }
    }

    /// The whole document, when the view was made from one.
    pub fn document(&self) -> Option<&'a Value> {
        self.doc
    }
}

/// The distinct attribute paths of a set of definitions, in slot order, and a trie of
/// them that extracts exactly those values from JSON bytes or protobuf messages
/// without building the rest of the document.
#[derive(Debug, Default)]
pub struct PathTable {
    pub(crate) paths: Vec<AttrPath>,
    index: std::collections::HashMap<Box<str>, u32>,
    pub(crate) nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
pub(crate) struct TrieNode {
    pub(crate) children: Vec<(Box<str>, u32)>,
    /// The slot of the path ending here.
    pub(crate) slot: Option<u32>,
    /// The slots of this node and every node below it.
    pub(crate) below: Box<[u32]>,
}

impl TrieNode {
    /// The child named `name`.
    #[inline]
    pub(crate) fn child(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, c)| *c)
    }
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

    /// Slots under node `n` (for clearing on a repeated key).
    fn subtree_slots(&self, n: usize, out: &mut Vec<u32>) {
        let node = &self.nodes[n];
        out.extend(node.slot);
        for (_, c) in &node.children {
            self.subtree_slots(*c as usize, out);
        }
    }

    /// Scans JSON bytes, keeping only the values at the table's paths (by slot),
    /// borrowed from `bytes`. Errors as parsing the whole document would: not JSON, or
    /// not an object.
    pub fn extract_json<'a>(&self, bytes: &'a [u8]) -> CoreResult<Vec<Option<Val<'a>>>> {
        super::json::extract(self, bytes)
    }
}

/// Converts the value found at `path` to `ty`; errors name the attribute.
pub fn convert(ty: ValueType, v: &Val<'_>, path: &AttrPath) -> CoreResult<Scalar> {
    let bad = |what: &str| {
        CoreError::invalid(path.as_str(), format!("expected {what}, got {}", v.short()))
    };
    match ty {
        ValueType::String => {
            let s: SmallStr = match v {
                Val::Str(s) => {
                    check_len(s, path.as_str())?;
                    (**s).into()
                }
                other => other.scalar_text().ok_or_else(|| bad("a string"))?.into(),
            };
            Ok(Scalar::Str(s))
        }
        ValueType::Integer => match v {
            Val::Int(i) => Ok(Scalar::Int(*i)),
            Val::Str(s) => s
                .trim()
                .parse()
                .map(Scalar::Int)
                .map_err(|_| bad("an integer")),
            _ => Err(bad("an integer")),
        },
        ValueType::Decimal => {
            let x = match v {
                Val::Str(s) => s.trim().parse::<f64>().ok(),
                other => other.as_f64(),
            };
            match x {
                Some(x) if x.is_finite() => Ok(Scalar::Num(x)),
                _ => Err(bad("a finite decimal number")),
            }
        }
        ValueType::Timestamp => parse_time_val(v, path.as_str()).map(Scalar::Int),
        ValueType::Boolean => match v {
            Val::Bool(b) => Ok(Scalar::Bool(*b)),
            Val::Str(s) if s == "true" => Ok(Scalar::Bool(true)),
            Val::Str(s) if s == "false" => Ok(Scalar::Bool(false)),
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

/// Parses an event time: epoch milliseconds (integer) or an RFC 3339 string
/// (`2024-03-01T10:00:00Z`, `2024-03-01T13:00:00.250+03:00`). Times before 2000 or
/// from 2100 on are rejected as absurd.
pub fn parse_time(v: &Value, field: &str) -> CoreResult<Millis> {
    match Val::from_json(v) {
        Some(v) => parse_time_val(&v, field),
        None => parse_time_val(&Val::Raw("null"), field),
    }
}

/// [`parse_time`] of a value of an event view.
pub fn parse_time_val(v: &Val<'_>, field: &str) -> CoreResult<Millis> {
    let ms = match v {
        Val::Int(i) => Some(*i),
        Val::Str(s) => parse_rfc3339(s),
        _ => None,
    }
    .ok_or_else(|| {
        CoreError::invalid(
            field,
            format!(
                "expected epoch milliseconds or an RFC 3339 time, got {}",
                v.short()
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
    // Fixed-width decimal fields, read without `str::parse` (this runs once or twice
    // per event).
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() {
            return None;
        }
        part.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
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
        if i == start {
            return None;
        }
        // The first three digits are the milliseconds; the others are dropped.
        frac_ms = (start..start + 3).fold(0i64, |acc, j| {
            acc * 10
                + b.get(j)
                    .filter(|_| j < i)
                    .map_or(0, |c| i64::from(c - b'0'))
        });
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
/// The UTC calendar date (year, month, day) of day `z` since 1970-01-01 (proleptic
/// Gregorian; the inverse of `days_from_civil`).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

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
    use std::sync::LazyLock;

    #[test]
    fn small_strings_read_compare_and_serialise_like_boxed_ones() {
        let texts = [
            "",
            "REJECTED",
            "1990-01-01",
            "exactly twenty-two b..",
            "twenty-three bytes long",
            // 11 two-byte letters = 22 bytes inline; one more goes to the heap.
            "ИВАНОВАИВАН",
            "ИВАНОВАИВАНА",
            "a string far longer than anything kept inline",
        ];
        for t in texts {
            let small = SmallStr::from(t);
            assert_eq!(small.as_str(), t);
            assert_eq!(small.is_inline(), t.len() <= SMALL_STR, "{t}");
            assert_eq!(small, SmallStr::from(t.to_string()));
            assert_eq!(small, SmallStr::from(Box::<str>::from(t)));
            // The snapshot bytes of a value are those of the boxed string it replaced.
            let boxed: Box<str> = t.into();
            let bytes = postcard::to_stdvec(&small).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&boxed).unwrap());
            assert_eq!(postcard::from_bytes::<SmallStr>(&bytes).unwrap(), small);
            let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                use std::hash::Hasher;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                x(&mut h);
                h.finish()
            };
            use std::hash::Hash;
            assert_eq!(hash(&|h| small.hash(h)), hash(&|h| t.hash(h)));
        }
        for (a, b) in texts.iter().zip(texts.iter().skip(1)) {
            assert_ne!(SmallStr::from(*a), SmallStr::from(*b));
        }
        // The keys' width (46: three words, the last overlapping), one byte apart at
        // each word and at either end.
        let key = "k".repeat(46);
        for at in [0, 15, 16, 31, 32, 45] {
            let mut other = key.clone().into_bytes();
            other[at] = b'j';
            let other = String::from_utf8(other).unwrap();
            assert_ne!(
                InlineStr::<46>::from(key.as_str()),
                InlineStr::<46>::from(other.as_str())
            );
        }
        assert_eq!(
            InlineStr::<46>::from(key.as_str()),
            InlineStr::<46>::from(key.clone())
        );
        assert!(InlineStr::<46>::from(key.as_str()).is_inline());
        assert!(!InlineStr::<46>::from(format!("{key}k").as_str()).is_inline());
        // Same length, one byte apart at either end of the inline bytes.
        assert_ne!(
            SmallStr::from("a234567890123456789012"),
            SmallStr::from("b234567890123456789012")
        );
        assert_ne!(
            SmallStr::from("123456789012345678901a"),
            SmallStr::from("123456789012345678901b")
        );
    }

    /// A value of a view as JSON, so views of documents and of bytes compare.
    fn norm(v: Option<&Val<'_>>) -> Option<Value> {
        v.map(|v| match v {
            Val::Json(v) => (*v).clone(),
            Val::Raw(t) => serde_json::from_str(t).unwrap(),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => json!(i),
            Val::UInt(u) => json!(u),
            Val::Float(x) => json!(x),
        })
    }

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

    proptest::proptest! {
        #[test]
        fn rfc3339_times_parse_as_chrono_reads_them(
            ms in 946_684_800_000i64..4_102_444_800_000,
            extra_nanos in 0u32..1_000_000,
            offset_min in -720i32..=840,
        ) {
            use chrono::{FixedOffset, SecondsFormat, TimeZone as _};
            let nanos = (ms.rem_euclid(1000) as u32) * 1_000_000 + extra_nanos;
            let zone = FixedOffset::east_opt(offset_min * 60).unwrap();
            let t = zone.timestamp_opt(ms.div_euclid(1000), nanos).unwrap();
            for format in [SecondsFormat::AutoSi, SecondsFormat::Millis, SecondsFormat::Nanos] {
                let text = t.to_rfc3339_opts(format, offset_min == 0);
                // Digits below the millisecond are dropped, not rounded.
                proptest::prop_assert_eq!(parse_rfc3339(&text), Some(ms), "{}", text);
            }
        }
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
        let val = |v: &'static Value| Val::from_json(v).unwrap();
        static DEC: LazyLock<Value> = LazyLock::new(|| json!("12.5"));
        static ABC: LazyLock<Value> = LazyLock::new(|| json!("abc"));
        static NUM: LazyLock<Value> = LazyLock::new(|| json!(4510));
        assert_eq!(
            convert(ValueType::Decimal, &val(&DEC), &p).unwrap(),
            Scalar::Num(12.5)
        );
        let err = convert(ValueType::Integer, &val(&ABC), &p).unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "ext.amount")
        );
        assert_eq!(
            convert(ValueType::String, &val(&NUM), &p).unwrap(),
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
            let extracted = EventView::from_slots(table.extract_json(doc.as_bytes()).unwrap());
            for p in &paths {
                assert_eq!(
                    norm(p.at(&whole)),
                    norm(p.at(&extracted)),
                    "{doc} at {}",
                    p.as_str()
                );
            }
        }
        for bad in [
            "[1]",
            "3",
            "\"s\"",
            "{",
            "{} x",
            "null",
            "{\"a\": 01}",
            "{\"a\": \"\\ud800\"}",
            "{\"a\": tru}",
            "{\"a\" 1}",
            "{\"a\": [1,]}",
            "{\"a\": 1e999}",
            "{\"a\": \"\t\"}",
        ] {
            let parsed = serde_json::from_str::<Value>(bad);
            assert!(parsed.as_ref().map_or(true, |v| !v.is_object()), "{bad}");
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

    fn table_of(paths: &[&str]) -> (PathTable, Vec<AttrPath>) {
        let mut table = PathTable::default();
        let mut ps: Vec<AttrPath> = paths
            .iter()
            .map(|p| AttrPath::parse(p, "attr").unwrap())
            .collect();
        for p in &mut ps {
            table.intern(p);
        }
        table.finish();
        (table, ps)
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-c\\\\\"\u{e9}\u{1F600}\n ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (prop::sample::select(vec!["a", "b", "c", "x"]), inner),
                    0..5
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest::proptest! {
        /// The byte scanner reads exactly what the parsed document holds, and refuses
        /// exactly what serde_json refuses (random documents, then random damage).
        #[test]
        fn extraction_is_the_parsed_document(
            doc in json_value(),
            pretty in proptest::bool::ANY,
            cut in 0usize..400,
            junk in proptest::sample::select(vec!["", "x", "}", ",", "\\", "\"", "0", "-", "\u{1}"]),
        ) {
            let (table, paths) = table_of(&["a", "a.b", "a.b.c", "x", "b.x", "c", "a.x.a"]);
            let text = if pretty { serde_json::to_string_pretty(&doc) } else { serde_json::to_string(&doc) }.unwrap();
            let parsed: Value = serde_json::from_str(&text).unwrap();
            match table.extract_json(text.as_bytes()) {
                Ok(slots) => {
                    proptest::prop_assert!(parsed.is_object());
                    let whole = EventView::from_document(&parsed, &table);
                    let view = EventView::from_slots(slots);
                    for p in &paths {
                        // serde_json (without `float_roundtrip`) may round a decimal one
                        // ulp away from the nearest double; the scanner rounds exactly.
                        let (a, b) = (p.at(&whole), p.at(&view));
                        if let (Some(Val::Float(x)), Some(Val::Float(y))) = (a, b) {
                            proptest::prop_assert!((x - y).abs() <= x.abs() * 4.0 * f64::EPSILON);
                            continue;
                        }
                        proptest::prop_assert_eq!(norm(a), norm(b), "{} at {}", text, p.as_str());
                    }
                }
                Err(_) => proptest::prop_assert!(!parsed.is_object()),
            }
            let mut damaged = text.clone();
            let at = (0..=cut.min(damaged.len())).rev().find(|i| damaged.is_char_boundary(*i)).unwrap_or(0);
            damaged.insert_str(at, junk);
            let serde_ok = serde_json::from_str::<Value>(&damaged).is_ok_and(|v| v.is_object());
            proptest::prop_assert_eq!(table.extract_json(damaged.as_bytes()).is_ok(), serde_ok, "{}", damaged);
        }
    }
}
