//! The definition format (what analysts write, as JSON; YAML is converted by the caller).
//!
//! Every struct rejects unknown fields, so a typo is an error naming its path rather
//! than a silently ignored setting. See `docs/AGGREGATES.md` for the format.

use super::filter::FilterSpec;
use super::value::ValueType;
use crate::normalize::KeyKind;
use serde::Deserialize;
use serde_json::Value;

/// The whole definition document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsSpec {
    /// Where events carry their time (epoch ms or RFC 3339). Default `common.eventTime`.
    #[serde(default = "default_time_attr")]
    pub time_attr: String,
    /// How far behind the newest event time seen an event may be and still be applied.
    #[serde(default = "default_lateness")]
    pub allowed_lateness_seconds: u64,
    /// Horizon of elements without their own `max_days` (days).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Dynamic calculation objects.
    #[serde(default)]
    pub objects: Vec<ObjectSpec>,
    /// Calculated parameters, returned for each event in this order.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
}

fn default_time_attr() -> String {
    "common.eventTime".into()
}
fn default_lateness() -> u64 {
    86_400
}
fn default_retention() -> u32 {
    180
}

/// One object: a key and its elements.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Unique name (`EmployerINN`).
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// One attribute (simple key) or several (composite key), each normalised.
    pub key: Vec<KeyPartSpec>,
    /// The elements kept per key.
    pub elements: Vec<ElementSpec>,
}

/// One part of a key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPartSpec {
    /// Dotted attribute path.
    pub attr: String,
    /// Normalisation (default `text`).
    #[serde(default)]
    pub kind: KeyKind,
}

/// What an element keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementKind {
    /// The earliest value (by event time).
    First,
    /// The latest value (by event time).
    Last,
    /// Sum of the values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Number of events.
    Count,
    /// Distinct values, each with the time it was first seen.
    Unique,
    /// (time, value) records.
    TimeAndValue,
    /// Event counters per day (or per hour) bucket.
    DateAndCounter,
    /// Distinct values, each with the time it was last seen.
    TimeAndLastUniqueValue,
}

/// Bucket size of `date_and_counter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketSpec {
    /// UTC calendar days.
    #[default]
    Day,
    /// Hours.
    Hour,
}

/// One element of an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElementSpec {
    /// Name, unique within the object.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// What is kept.
    pub kind: ElementKind,
    /// Source attribute (not needed by `count` and `date_and_counter`).
    pub attr: Option<String>,
    /// Type of the source attribute.
    #[serde(rename = "type", default)]
    pub ty: ValueType,
    /// Structured filter; the element is updated only by events that pass.
    pub filter: Option<FilterSpec>,
    /// An expression filter (needs the expression engine).
    pub filter_expr: Option<String>,
    /// Depth in records (arrays).
    pub max_records: Option<u32>,
    /// Depth in days (defaults to the document's `retention_days`).
    pub max_days: Option<u32>,
    /// Bucket size (`date_and_counter` only).
    pub bucket: Option<BucketSpec>,
}

/// Time unit of windows and intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days (24 hours).
    #[default]
    Days,
}

impl Unit {
    /// Milliseconds in one unit.
    pub fn millis(self) -> i64 {
        match self {
            Self::Seconds => 1_000,
            Self::Minutes => 60_000,
            Self::Hours => 3_600_000,
            Self::Days => 86_400_000,
        }
    }
}

/// A window relative to the event time `t`: records with time in
/// `(t - last, t - skip]` (seed: `intervalTo` = `last`, `intervalFrom` = `skip`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Unit of `last` and `skip`.
    #[serde(default)]
    pub unit: Unit,
    /// How far back the window reaches; absent = the element's whole depth.
    pub last: Option<u32>,
    /// How much of the most recent time is left out (default 0).
    #[serde(default)]
    pub skip: u32,
}

/// What `calc_aggregate` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggKind {
    /// The value of a single-value element, or the latest value in the window.
    Value,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Median (linear interpolation).
    Median,
    /// Percentile `p` in 0..=100 (linear interpolation).
    Percentile,
    /// Sum of the values.
    Sum,
    /// Mean of the values.
    Mean,
    /// Number of records (events).
    Count,
    /// Number of non-null values.
    AnyCount,
    /// Number of distinct values.
    UniqueCount,
}

/// Which of the current event's contributions a function leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptSpec {
    /// Nothing.
    #[default]
    None,
    /// The record this event added (the state just before the event).
    Record,
    /// Every record whose value equals this event's value of the element's attribute.
    Value,
}

/// Which match `calc_interval` measures from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhichSpec {
    /// The most recent matching record.
    #[default]
    Last,
    /// The earliest matching record.
    First,
}

/// What `calc_interval` searches for; exactly one field is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Value equal to this literal.
    pub equal: Option<Value>,
    /// Value in this list.
    #[serde(rename = "in")]
    pub in_: Option<Vec<Value>>,
    /// Any record.
    pub any: Option<bool>,
    /// Value equal to this event's value of the element's attribute.
    pub current: Option<bool>,
}

/// An input of a transform: exactly one of an event attribute, an earlier parameter
/// or a literal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperandSpec {
    /// Dotted attribute path of the event.
    pub attr: Option<String>,
    /// Name of a parameter defined earlier.
    pub param: Option<String>,
    /// A literal.
    pub value: Option<Value>,
}

/// A calculated parameter. `fn` selects the function.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "fn", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParamSpec {
    /// Aggregate of an element over a window.
    CalcAggregate {
        name: String,
        object: String,
        element: String,
        agg: AggKind,
        p: Option<f64>,
        window: Option<WindowSpec>,
        #[serde(default)]
        except: ExceptSpec,
    },
    /// Time since the last/first matching record, in `unit`.
    CalcInterval {
        name: String,
        object: String,
        element: String,
        #[serde(default)]
        unit: Unit,
        #[serde(default)]
        which: WhichSpec,
        search: SearchSpec,
        window: Option<WindowSpec>,
        #[serde(default)]
        except: ExceptSpec,
    },
    /// The `nth` previous value of `attr` for the same key within `window` (seed `Save`).
    Save {
        name: String,
        key: Vec<KeyPartSpec>,
        attr: String,
        #[serde(rename = "type", default)]
        ty: ValueType,
        #[serde(default = "one")]
        nth: u32,
        window: WindowSpec,
        filter: Option<FilterSpec>,
        filter_expr: Option<String>,
    },
    /// Jaro–Winkler mismatch percentage (0..100) of two strings (seed `CompareFL`).
    CompareFl {
        name: String,
        a: OperandSpec,
        b: OperandSpec,
    },
    /// `a / b` (null when `b` is 0).
    Ratio {
        name: String,
        a: OperandSpec,
        b: OperandSpec,
    },
    /// Sum of the operands.
    Sum { name: String, of: Vec<OperandSpec> },
    /// Product `a * b`.
    Multiple {
        name: String,
        a: OperandSpec,
        b: OperandSpec,
    },
    /// Characters `start .. start + len` of a string (card BIN: start 0, len 6).
    Substring {
        name: String,
        of: OperandSpec,
        #[serde(default)]
        start: u32,
        len: Option<u32>,
    },
    /// Built-in: number of events per key over a window.
    EventCount {
        name: String,
        key: Vec<KeyPartSpec>,
        window: WindowSpec,
        filter: Option<FilterSpec>,
        filter_expr: Option<String>,
    },
    /// Built-in: sum of an amount per key over a window.
    AmountSum {
        name: String,
        key: Vec<KeyPartSpec>,
        attr: String,
        window: WindowSpec,
        filter: Option<FilterSpec>,
        filter_expr: Option<String>,
    },
    /// Built-in: time since the previous event of the key, in `unit`.
    TimeSincePrevious {
        name: String,
        key: Vec<KeyPartSpec>,
        #[serde(default)]
        unit: Unit,
        filter: Option<FilterSpec>,
        filter_expr: Option<String>,
    },
    /// Built-in: time since this event's device was first seen for the key, in `unit`
    /// (0 for a new device).
    TimeSinceNewDevice {
        name: String,
        key: Vec<KeyPartSpec>,
        device: String,
        #[serde(default)]
        unit: Unit,
        max_devices: Option<u32>,
        filter: Option<FilterSpec>,
        filter_expr: Option<String>,
    },
}

fn one() -> u32 {
    1
}

impl ParamSpec {
    /// The parameter's name.
    pub fn name(&self) -> &str {
        match self {
            Self::CalcAggregate { name, .. }
            | Self::CalcInterval { name, .. }
            | Self::Save { name, .. }
            | Self::CompareFl { name, .. }
            | Self::Ratio { name, .. }
            | Self::Sum { name, .. }
            | Self::Multiple { name, .. }
            | Self::Substring { name, .. }
            | Self::EventCount { name, .. }
            | Self::AmountSum { name, .. }
            | Self::TimeSincePrevious { name, .. }
            | Self::TimeSinceNewDevice { name, .. } => name,
        }
    }
}
