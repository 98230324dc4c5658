//! Built-in functions.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use regex::Regex;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::date::{self, DateValue};
use super::eval::Cx;
use super::value::{Map, Value};
use super::ExprError;

/// How a unary-test term that is not itself a comparison is tested against `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// `$ == term`
    Equal,
    /// `$ in term`
    In,
    /// `bool(term)`
    AsBool,
}

/// Closure functions: the second argument is evaluated once per element (`#`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClosureFn {
    All,
    None,
    Some,
    One,
    Filter,
    Map,
    FlatMap,
    Count,
}

impl ClosureFn {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "all" => Self::All,
            "none" => Self::None,
            "some" => Self::Some,
            "one" => Self::One,
            "filter" => Self::Filter,
            "map" => Self::Map,
            "flatMap" => Self::FlatMap,
            "count" => Self::Count,
            _ => return None,
        })
    }

    pub(crate) fn behaviour(self) -> Behaviour {
        match self {
            Self::All | Self::None | Self::Some | Self::One => Behaviour::AsBool,
            Self::Filter | Self::Map | Self::FlatMap => Behaviour::In,
            Self::Count => Behaviour::Equal,
        }
    }
}

macro_rules! funcs {
    ($($variant:ident = $name:literal ($min:literal, $max:literal) $beh:ident,)*) => {
        /// Ordinary built-in functions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($variant,)* }

        impl Func {
            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
            pub(crate) fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
            /// (min, max) number of arguments.
            pub(crate) fn arity(self) -> (usize, usize) {
                match self { $(Self::$variant => ($min, $max),)* }
            }
            pub(crate) fn behaviour(self) -> Behaviour {
                match self { $(Self::$variant => Behaviour::$beh,)* }
            }
        }
    };
}

funcs! {
    Len = "len" (1, 1) Equal,
    Contains = "contains" (2, 2) AsBool,
    Flatten = "flatten" (1, 1) In,
    Merge = "merge" (1, 1) In,
    MergeDeep = "mergeDeep" (1, 1) In,
    Upper = "upper" (1, 1) Equal,
    Lower = "lower" (1, 1) Equal,
    Trim = "trim" (1, 1) Equal,
    StartsWith = "startsWith" (2, 2) AsBool,
    EndsWith = "endsWith" (2, 2) AsBool,
    Matches = "matches" (2, 2) AsBool,
    Extract = "extract" (2, 2) In,
    FuzzyMatch = "fuzzyMatch" (2, 2) Equal,
    Split = "split" (2, 2) In,
    Abs = "abs" (1, 1) Equal,
    Sum = "sum" (1, 1) Equal,
    Avg = "avg" (1, 1) Equal,
    Min = "min" (1, 1) Equal,
    Max = "max" (1, 1) Equal,
    Rand = "rand" (1, 1) Equal,
    Median = "median" (1, 1) Equal,
    Mode = "mode" (1, 1) Equal,
    Floor = "floor" (1, 1) Equal,
    Ceil = "ceil" (1, 1) Equal,
    Round = "round" (1, 2) Equal,
    Trunc = "trunc" (1, 2) Equal,
    IsNumeric = "isNumeric" (1, 1) AsBool,
    String = "string" (1, 1) Equal,
    Number = "number" (1, 1) Equal,
    Bool = "bool" (1, 1) Equal,
    Type = "type" (1, 1) Equal,
    Keys = "keys" (1, 1) In,
    Values = "values" (1, 1) In,
    D = "d" (0, 2) Equal,
    Date = "date" (1, 1) Equal,
    Time = "time" (1, 1) Equal,
    Duration = "duration" (1, 1) Equal,
    Year = "year" (1, 1) Equal,
    DayOfWeek = "dayOfWeek" (1, 1) Equal,
    DayOfMonth = "dayOfMonth" (1, 1) Equal,
    DayOfYear = "dayOfYear" (1, 1) Equal,
    WeekOfYear = "weekOfYear" (1, 1) Equal,
    MonthOfYear = "monthOfYear" (1, 1) Equal,
    MonthString = "monthString" (1, 1) Equal,
    DateString = "dateString" (1, 1) Equal,
    WeekdayString = "weekdayString" (1, 1) Equal,
    StartOf = "startOf" (2, 2) Equal,
    EndOf = "endOf" (2, 2) Equal,
}

fn fail(func: Func, msg: impl std::fmt::Display) -> ExprError {
    ExprError::eval(format!("{}(): {msg}", func.name()))
}

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

fn str_arg(func: Func, args: &[Value], i: usize) -> Result<&str, ExprError> {
    match arg(args, i) {
        Value::String(s) => Ok(s),
        other => Err(fail(
            func,
            format!(
                "argument {} must be a string, got {}",
                i + 1,
                other.type_name()
            ),
        )),
    }
}

fn num_arg(func: Func, args: &[Value], i: usize) -> Result<Decimal, ExprError> {
    match arg(args, i) {
        Value::Number(n) => Ok(*n),
        other => Err(fail(
            func,
            format!(
                "argument {} must be a number, got {}",
                i + 1,
                other.type_name()
            ),
        )),
    }
}

fn array_arg(func: Func, args: &[Value], i: usize) -> Result<&Arc<Vec<Value>>, ExprError> {
    match arg(args, i) {
        Value::Array(a) => Ok(a),
        other => Err(fail(
            func,
            format!(
                "argument {} must be an array, got {}",
                i + 1,
                other.type_name()
            ),
        )),
    }
}

fn numbers(func: Func, args: &[Value]) -> Result<Vec<Decimal>, ExprError> {
    array_arg(func, args, 0)?
        .iter()
        .map(|v| match v {
            Value::Number(n) => Ok(*n),
            _ => Err(fail(func, "expected an array of numbers")),
        })
        .collect()
}

fn decimal_places(func: Func, args: &[Value]) -> Result<u32, ExprError> {
    match args.get(1) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .to_u32()
            .ok_or_else(|| fail(func, "invalid number of decimal places")),
        Some(other) => Err(fail(
            func,
            format!("decimal places must be a number, got {}", other.type_name()),
        )),
    }
}

/// Parses a number from text the way `number()` and `isNumeric()` do.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    Decimal::from_str_exact(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// `string(v)`: also used by template strings and computed object keys.
pub(crate) fn to_string(v: &Value) -> Result<Arc<str>, ExprError> {
    Ok(match v {
        Value::Null => Arc::from("null"),
        Value::Bool(b) => Arc::from(if *b { "true" } else { "false" }),
        Value::Number(n) => Arc::from(n.to_string().as_str()),
        Value::String(s) => s.clone(),
        other => {
            return Err(ExprError::eval(format!(
                "cannot convert {} to a string",
                other.type_name()
            )))
        }
    })
}

fn regex_arg(
    func: Func,
    args: &[Value],
    cached: Option<&Arc<Regex>>,
) -> Result<Arc<Regex>, ExprError> {
    if let Some(r) = cached {
        return Ok(r.clone());
    }
    let pattern = str_arg(func, args, 1)?;
    Regex::new(pattern)
        .map(Arc::new)
        .map_err(|e| fail(func, format!("invalid regular expression: {e}")))
}

fn random_up_to(n: i64) -> i64 {
    let mut h = RandomState::new().build_hasher();
    h.write_i64(n);
    let r = h.finish();
    if n < 0 {
        return 0;
    }
    let span = n.unsigned_abs().saturating_add(1);
    i64::try_from(r % span).unwrap_or(0)
}

fn deep_merge(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(a), Value::Object(b)) => {
            let mut merged: Map = a.as_ref().clone();
            for (k, v) in b.iter() {
                let next = match merged.get(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => v.clone(),
                };
                merged.insert(k.clone(), next);
            }
            Value::object(merged)
        }
        (Value::Array(a), Value::Array(b)) => {
            Value::array(a.iter().chain(b.iter()).cloned().collect())
        }
        (_, patch) => patch.clone(),
    }
}

fn date_value(dt: Option<chrono::DateTime<Tz>>) -> Value {
    Value::Date(Arc::new(DateValue(dt)))
}

/// Calls `func` on evaluated arguments.
#[allow(clippy::too_many_lines)]
pub(crate) fn call(
    func: Func,
    args: &[Value],
    regex: Option<&Arc<Regex>>,
    cx: &mut Cx<'_>,
) -> Result<Value, ExprError> {
    use Func as F;
    let now = if matches!(
        func,
        F::D | F::Date
            | F::Time
            | F::Year
            | F::DayOfWeek
            | F::DayOfMonth
            | F::DayOfYear
            | F::WeekOfYear
            | F::MonthOfYear
            | F::MonthString
            | F::DateString
            | F::WeekdayString
            | F::StartOf
            | F::EndOf
    ) {
        cx.now()
    } else {
        chrono::DateTime::UNIX_EPOCH
    };
    Ok(match func {
        F::Len => match arg(args, 0) {
            // Bytes, as ZEN counts them.
            Value::String(s) => Value::Number(s.len().into()),
            Value::Array(a) => Value::Number(a.len().into()),
            other => {
                return Err(fail(
                    func,
                    format!("cannot take the length of {}", other.type_name()),
                ))
            }
        },
        F::Contains => match (arg(args, 0), arg(args, 1)) {
            (Value::String(a), Value::String(b)) => Value::Bool(a.contains(b.as_ref())),
            (Value::Array(a), b) => Value::Bool(a.iter().any(|x| match (x, b) {
                (Value::Number(x), Value::Number(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Null, Value::Null) => true,
                _ => false,
            })),
            (a, b) => {
                return Err(fail(
                    func,
                    format!("unsupported types {} and {}", a.type_name(), b.type_name()),
                ))
            }
        },
        F::Flatten => {
            let a = array_arg(func, args, 0)?;
            let mut out = Vec::with_capacity(a.len());
            for v in a.iter() {
                match v {
                    Value::Array(inner) => out.extend(inner.iter().cloned()),
                    other => out.push(other.clone()),
                }
            }
            cx.charge(out.len())?;
            Value::array(out)
        }
        F::Merge => {
            let a = array_arg(func, args, 0)?;
            match a.iter().find(|v| !matches!(v, Value::Null)) {
                None => Value::object(Map::default()),
                Some(Value::Array(_)) => {
                    let mut out = Vec::new();
                    for v in a.iter() {
                        match v {
                            Value::Array(inner) => out.extend(inner.iter().cloned()),
                            Value::Null => {}
                            _ => return Err(fail(func, "expected an array of arrays")),
                        }
                    }
                    cx.charge(out.len())?;
                    Value::array(out)
                }
                Some(Value::Object(_)) => {
                    let mut out = Map::default();
                    for v in a.iter() {
                        match v {
                            Value::Object(o) => {
                                for (k, v) in o.iter() {
                                    out.insert(k.clone(), v.clone());
                                }
                            }
                            Value::Null => {}
                            _ => return Err(fail(func, "expected an array of objects")),
                        }
                    }
                    cx.charge(out.len())?;
                    Value::object(out)
                }
                Some(other) => {
                    return Err(fail(
                        func,
                        format!("expects arrays or objects, got {}", other.type_name()),
                    ))
                }
            }
        }
        F::MergeDeep => {
            let a = array_arg(func, args, 0)?;
            let mut out = Value::object(Map::default());
            for v in a.iter() {
                match v {
                    Value::Object(_) => {
                        out = deep_merge(&out, v);
                        cx.charge(8)?;
                    }
                    Value::Null => {}
                    _ => return Err(fail(func, "expected an array of objects")),
                }
            }
            out
        }
        F::Upper => Value::str(&str_arg(func, args, 0)?.to_uppercase()),
        F::Lower => Value::str(&str_arg(func, args, 0)?.to_lowercase()),
        F::Trim => Value::str(str_arg(func, args, 0)?.trim()),
        F::StartsWith => Value::Bool(str_arg(func, args, 0)?.starts_with(str_arg(func, args, 1)?)),
        F::EndsWith => Value::Bool(str_arg(func, args, 0)?.ends_with(str_arg(func, args, 1)?)),
        F::Matches => {
            let s = str_arg(func, args, 0)?;
            Value::Bool(regex_arg(func, args, regex)?.is_match(s))
        }
        F::Extract => {
            let s = str_arg(func, args, 0)?;
            let re = regex_arg(func, args, regex)?;
            let items: Vec<Value> = re
                .captures(s)
                .map(|c| c.iter().flatten().map(|m| Value::str(m.as_str())).collect())
                .unwrap_or_default();
            Value::array(items)
        }
        F::FuzzyMatch => {
            let b = str_arg(func, args, 1)?;
            let sim = |a: &str| {
                Value::Number(
                    Decimal::from_f64(strsim::normalized_damerau_levenshtein(a, b))
                        .unwrap_or(Decimal::ZERO),
                )
            };
            match arg(args, 0) {
                Value::String(a) => sim(a),
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for v in items.iter() {
                        let Value::String(s) = v else {
                            return Err(fail(func, "expected an array of strings"));
                        };
                        cx.charge(1)?;
                        out.push(sim(s));
                    }
                    Value::array(out)
                }
                other => {
                    return Err(fail(
                        func,
                        format!("unsupported type {}", other.type_name()),
                    ))
                }
            }
        }
        F::Split => {
            let s = str_arg(func, args, 0)?;
            let sep = str_arg(func, args, 1)?;
            let parts: Vec<Value> = s.split(sep).map(Value::str).collect();
            cx.charge(parts.len())?;
            Value::array(parts)
        }
        F::Abs => Value::Number(num_arg(func, args, 0)?.abs()),
        F::Floor => Value::Number(num_arg(func, args, 0)?.floor()),
        F::Ceil => Value::Number(num_arg(func, args, 0)?.ceil()),
        F::Round => {
            let n = num_arg(func, args, 0)?;
            let dp = decimal_places(func, args)?;
            Value::Number(n.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero))
        }
        F::Trunc => {
            let n = num_arg(func, args, 0)?;
            Value::Number(n.trunc_with_scale(decimal_places(func, args)?))
        }
        F::Rand => {
            let n = num_arg(func, args, 0)?;
            let upper = n
                .round()
                .to_i64()
                .ok_or_else(|| fail(func, "invalid upper bound"))?;
            Value::Number(random_up_to(upper).into())
        }
        F::Sum => {
            let mut acc = Decimal::ZERO;
            for n in numbers(func, args)? {
                acc = acc
                    .checked_add(n)
                    .ok_or_else(|| fail(func, "number overflow"))?;
            }
            Value::Number(acc)
        }
        F::Avg => {
            let ns = numbers(func, args)?;
            let mut acc = Decimal::ZERO;
            for n in &ns {
                acc = acc
                    .checked_add(*n)
                    .ok_or_else(|| fail(func, "number overflow"))?;
            }
            Value::Number(
                acc.checked_div(Decimal::from(ns.len()))
                    .ok_or_else(|| fail(func, "empty array"))?,
            )
        }
        F::Min | F::Max => {
            let a = array_arg(func, args, 0)?;
            let want_max = func == F::Max;
            match a.first() {
                None => return Err(fail(func, "empty array")),
                Some(Value::Number(_)) => {
                    let ns = numbers(func, args)?;
                    let best = if want_max {
                        ns.into_iter().max()
                    } else {
                        ns.into_iter().min()
                    };
                    Value::Number(best.ok_or_else(|| fail(func, "empty array"))?)
                }
                Some(_) => {
                    let mut dates = Vec::with_capacity(a.len());
                    for v in a.iter() {
                        let Value::Date(d) = v else {
                            return Err(fail(func, "expected an array of numbers or dates"));
                        };
                        dates.push(d.clone());
                    }
                    let best = if want_max {
                        dates.into_iter().max()
                    } else {
                        dates.into_iter().min()
                    };
                    Value::Date(best.ok_or_else(|| fail(func, "empty array"))?)
                }
            }
        }
        F::Median => {
            let mut ns = numbers(func, args)?;
            ns.sort();
            let mid = ns.len() / 2;
            if ns.is_empty() {
                return Err(fail(func, "empty array"));
            }
            if ns.len() % 2 == 1 {
                Value::Number(ns[mid])
            } else {
                let s = ns[mid - 1]
                    .checked_add(ns[mid])
                    .ok_or_else(|| fail(func, "number overflow"))?;
                Value::Number(s / Decimal::TWO)
            }
        }
        F::Mode => {
            let mut counts: BTreeMap<Decimal, usize> = BTreeMap::new();
            for n in numbers(func, args)? {
                *counts.entry(n).or_insert(0) += 1;
            }
            let best = counts
                .into_iter()
                .max_by_key(|&(_, c)| c)
                .map(|(n, _)| n)
                .ok_or_else(|| fail(func, "empty array"))?;
            Value::Number(best)
        }
        F::IsNumeric => Value::Bool(match arg(args, 0) {
            Value::Number(_) => true,
            Value::String(s) => parse_decimal(s).is_some(),
            _ => false,
        }),
        F::String => Value::String(to_string(arg(args, 0)).map_err(|e| fail(func, e.reason()))?),
        F::Number => Value::Number(match arg(args, 0) {
            Value::Number(n) => *n,
            Value::String(s) => parse_decimal(s).ok_or_else(|| fail(func, "invalid number"))?,
            Value::Bool(b) => Decimal::from(u8::from(*b)),
            other => {
                return Err(fail(
                    func,
                    format!("cannot convert {} to a number", other.type_name()),
                ))
            }
        }),
        F::Bool => Value::Bool(match arg(args, 0) {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => !n.is_zero(),
            Value::Array(_) | Value::Object(_) | Value::Date(_) | Value::Interval(_) => true,
            // ZEN: "true"/"false" as named, any other string is true only when empty.
            Value::String(s) => match s.trim() {
                "true" => true,
                "false" => false,
                _ => s.is_empty(),
            },
        }),
        F::Type => Value::str(arg(args, 0).type_name()),
        F::Keys => match arg(args, 0) {
            Value::Array(a) => {
                Value::array((0..a.len()).map(|i| Value::Number(i.into())).collect())
            }
            Value::Object(o) => Value::array(o.keys().map(|k| Value::String(k.clone())).collect()),
            other => {
                return Err(fail(
                    func,
                    format!("cannot take keys of {}", other.type_name()),
                ))
            }
        },
        F::Values => match arg(args, 0) {
            Value::Object(o) => Value::array(o.values().cloned().collect()),
            other => {
                return Err(fail(
                    func,
                    format!("argument must be an object, got {}", other.type_name()),
                ))
            }
        },
        F::D => {
            let tz = match args.get(1) {
                None => cx.timezone,
                Some(Value::String(s)) => {
                    Tz::from_str(s).map_err(|_| fail(func, format!("invalid time zone {s:?}")))?
                }
                Some(other) => {
                    return Err(fail(
                        func,
                        format!("time zone must be a string, got {}", other.type_name()),
                    ))
                }
            };
            match args.first() {
                None => date_value(Some(now.with_timezone(&tz))),
                Some(v) => date_value(date::parse_date(v, tz, now)),
            }
        }
        F::Date => match arg(args, 0) {
            Value::String(s) => {
                let dt = date::legacy_parse(s, now)
                    .ok_or_else(|| fail(func, format!("cannot parse date {s:?}")))?;
                Value::Number(dt.and_utc().timestamp().into())
            }
            Value::Number(n) => Value::Number(n.trunc()),
            other => {
                return Err(fail(
                    func,
                    format!("unsupported type {}", other.type_name()),
                ))
            }
        },
        F::Time => match arg(args, 0) {
            Value::String(s) => {
                let t = date::legacy_time(s, now)
                    .ok_or_else(|| fail(func, format!("cannot parse time {s:?}")))?;
                Value::Number(t.num_seconds_from_midnight().into())
            }
            Value::Number(n) => Value::Number(n.trunc()),
            other => {
                return Err(fail(
                    func,
                    format!("unsupported type {}", other.type_name()),
                ))
            }
        },
        F::Duration => match arg(args, 0) {
            Value::String(s) => {
                let d = date::Duration::parse(s)
                    .ok_or_else(|| fail(func, format!("cannot parse duration {s:?}")))?;
                Value::Number(d.seconds.into())
            }
            Value::Number(n) => Value::Number(n.trunc()),
            other => {
                return Err(fail(
                    func,
                    format!("unsupported type {}", other.type_name()),
                ))
            }
        },
        F::Year
        | F::DayOfWeek
        | F::DayOfMonth
        | F::DayOfYear
        | F::WeekOfYear
        | F::MonthOfYear
        | F::MonthString
        | F::DateString
        | F::WeekdayString => {
            let dt = date::legacy_datetime(arg(args, 0), now)
                .ok_or_else(|| fail(func, "cannot convert the value to a date"))?;
            match func {
                F::Year => Value::Number(dt.year().into()),
                F::DayOfWeek => Value::Number(dt.weekday().number_from_monday().into()),
                F::DayOfMonth => Value::Number(dt.day().into()),
                F::DayOfYear => Value::Number(dt.ordinal().into()),
                F::WeekOfYear => Value::Number(dt.iso_week().week().into()),
                F::MonthOfYear => Value::Number(dt.month().into()),
                F::MonthString => Value::str(&dt.format("%b").to_string()),
                F::WeekdayString => Value::str(&date::weekday_name(dt.weekday())),
                _ => Value::str(&dt.to_string()),
            }
        }
        F::StartOf | F::EndOf => {
            let dt = date::legacy_datetime(arg(args, 0), now)
                .ok_or_else(|| fail(func, "cannot convert the value to a date"))?;
            let unit = str_arg(func, args, 1)?;
            let r = date::legacy_bound(dt, unit, func == F::EndOf)
                .ok_or_else(|| fail(func, format!("invalid date unit {unit:?}")))?;
            Value::Number(r.and_utc().timestamp().into())
        }
    })
}
