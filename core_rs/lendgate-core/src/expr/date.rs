//! Dates: the `d()` value with its methods, intervals, durations, and the older
//! timestamp-based date functions (`date()`, `dateString()`, `startOf()`...).

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat,
    TimeDelta, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::functions::Behaviour;
use super::value::Value;

/// A date-time in a time zone; `None` is an invalid date (`d('foo')`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateValue(pub Option<DateTime<Tz>>);

impl fmt::Display for DateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Invalid date"),
            Some(d) => f.write_str(&d.to_rfc3339_opts(SecondsFormat::Secs, true)),
        }
    }
}

/// `[a..b]`, `(a..b)`, ... over numbers or dates.
#[derive(Debug, Clone)]
pub struct Interval {
    pub left: Value,
    pub right: Value,
    pub left_bracket: char,
    pub right_bracket: char,
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Value| match v {
            Value::Number(n) => n.to_string(),
            Value::Date(d) => d.to_string(),
            other => other.to_string(),
        };
        write!(
            f,
            "{}{}..{}{}",
            self.left_bracket,
            show(&self.left),
            show(&self.right),
            self.right_bracket
        )
    }
}

/// Ordering key of an interval bound or tested value (numbers before dates, as ZEN).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Bound<'a> {
    Number(Decimal),
    Date(&'a DateValue),
}

fn bound(v: &Value) -> Option<Bound<'_>> {
    match v {
        Value::Number(n) => Some(Bound::Number(*n)),
        Value::Date(d) => Some(Bound::Date(d)),
        _ => None,
    }
}

impl Interval {
    /// Whether `v` lies in the interval; reversed brackets (`]a..b[`) mean outside.
    pub fn includes(&self, v: &Value) -> Option<bool> {
        let (l, r, v) = (bound(&self.left)?, bound(&self.right)?, bound(v)?);
        let mut open = false;
        let first = match self.left_bracket {
            '(' => l < v,
            '[' => l <= v,
            ')' => {
                open = true;
                l > v
            }
            _ => {
                open = true;
                l >= v
            }
        };
        let second = match self.right_bracket {
            ')' => r > v,
            ']' => r >= v,
            '(' => r < v,
            _ => r <= v,
        };
        Some(if open {
            first || second
        } else {
            first && second
        })
    }

    /// The integers of a numeric interval, for closures (`map([0..3], #)`); `None`
    /// for date intervals or bounds too large; `limit` caps the length.
    pub fn to_range(&self) -> Option<(i64, i64)> {
        let (Value::Number(l), Value::Number(r)) = (&self.left, &self.right) else {
            return None;
        };
        let start = match self.left_bracket {
            '(' => l.to_i64()?.checked_add(1)?,
            '[' => l.to_i64()?,
            _ => return None,
        };
        let end = match self.right_bracket {
            ')' => r.to_i64()?.checked_sub(1)?,
            ']' => r.to_i64()?,
            _ => return None,
        };
        Some((start, end))
    }
}

/// Units of `add`, `startOf`, `diff`...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "seconds" | "second" | "secs" | "sec" | "s" => Self::Second,
            "minutes" | "minute" | "min" | "mins" | "m" => Self::Minute,
            "hours" | "hour" | "hr" | "hrs" | "h" => Self::Hour,
            "days" | "day" | "d" => Self::Day,
            "weeks" | "week" | "w" => Self::Week,
            "months" | "month" | "mo" | "M" => Self::Month,
            "quarters" | "quarter" | "qtr" | "q" => Self::Quarter,
            "years" | "year" | "y" => Self::Year,
            _ => return None,
        })
    }

    fn seconds(self) -> Option<i64> {
        Some(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
            Self::Week => 604_800,
            _ => return None,
        })
    }
}

/// A calendar-aware duration: seconds plus months plus years.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Duration {
    pub seconds: i64,
    pub months: i32,
    pub years: i32,
}

impl Duration {
    /// Parses `"1d 5h"`, `"30m"`, `"2 years"`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut d = Duration::default();
        let mut rest = s.trim_start();
        if rest.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return None;
            }
            let n: i64 = rest[..digits].parse().ok()?;
            rest = rest[digits..].trim_start();
            let letters = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = Unit::parse(&rest[..letters])?;
            rest = rest[letters..].trim_start();
            d = d.plus(Self::of(n, unit)?)?;
        }
        Some(d)
    }

    pub(crate) fn of(n: i64, unit: Unit) -> Option<Self> {
        let mut d = Duration::default();
        match unit {
            Unit::Month => d.months = i32::try_from(n).ok()?,
            Unit::Quarter => d.months = i32::try_from(n).ok()?.checked_mul(3)?,
            Unit::Year => d.years = i32::try_from(n).ok()?,
            other => d.seconds = n.checked_mul(other.seconds()?)?,
        }
        Some(d)
    }

    pub(crate) fn from_decimal(n: Decimal, unit: Unit) -> Option<Self> {
        match unit.seconds() {
            Some(s) => Some(Duration {
                seconds: n.checked_mul(Decimal::from(s))?.to_i64()?,
                ..Default::default()
            }),
            None => Self::of(n.to_i64()?, unit),
        }
    }

    fn plus(self, o: Self) -> Option<Self> {
        Some(Duration {
            seconds: self.seconds.checked_add(o.seconds)?,
            months: self.months.checked_add(o.months)?,
            years: self.years.checked_add(o.years)?,
        })
    }

    pub(crate) fn negate(self) -> Self {
        Duration {
            seconds: -self.seconds,
            months: -self.months,
            years: -self.years,
        }
    }
}

/// Parses `d(value, tz)`: RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]`, milliseconds since the
/// epoch, an existing date, or a time-zone name (meaning "now there").
pub(crate) fn parse_date(v: &Value, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Tz>> {
    match v {
        Value::Number(n) => tz.timestamp_millis_opt(n.to_i64()?).earliest(),
        Value::String(s) => {
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return tz.from_local_datetime(&dt.naive_local()).earliest();
            }
            // A bare date (the commonest input after RFC 3339) cannot match the
            // date-time formats below: parse it directly, without interpreting three
            // strftime patterns first.
            if s.len() == 10 {
                if let Ok(d) = s.parse::<NaiveDate>() {
                    return d
                        .and_hms_opt(0, 0, 0)
                        .and_then(|n| tz.from_local_datetime(&n).earliest());
                }
            }
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                });
            match naive {
                Some(n) => tz.from_local_datetime(&n).earliest(),
                None => Tz::from_str(s).ok().map(|z| now.with_timezone(&z)),
            }
        }
        Value::Date(d) => d.0,
        _ => None,
    }
}

pub(crate) fn add_duration(dt: DateTime<Tz>, d: Duration) -> Option<DateTime<Tz>> {
    let dt = dt.checked_add_signed(TimeDelta::try_seconds(d.seconds)?)?;
    let dt = if d.months < 0 {
        dt.checked_sub_months(Months::new(d.months.unsigned_abs()))?
    } else {
        dt.checked_add_months(Months::new(d.months.unsigned_abs()))?
    };
    dt.with_year(dt.year().checked_add(d.years)?)
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = first.checked_add_months(Months::new(1))?;
    u32::try_from(next.signed_duration_since(first).num_days()).ok()
}

pub(crate) fn start_of(dt: DateTime<Tz>, unit: Unit) -> Option<DateTime<Tz>> {
    let dt = dt.with_nanosecond(0)?;
    Some(match unit {
        Unit::Second => dt,
        Unit::Minute => dt.with_second(0)?,
        Unit::Hour => dt.with_minute(0)?.with_second(0)?,
        Unit::Day => dt.with_hour(0)?.with_minute(0)?.with_second(0)?,
        Unit::Week => {
            let back = u64::from(dt.weekday().num_days_from_monday());
            start_of(dt.checked_sub_days(Days::new(back))?, Unit::Day)?
        }
        Unit::Month => start_of(dt.with_day(1)?, Unit::Day)?,
        Unit::Quarter => start_of(
            dt.with_day(1)?.with_month((dt.quarter() - 1) * 3 + 1)?,
            Unit::Day,
        )?,
        Unit::Year => start_of(dt.with_day(1)?.with_month(1)?, Unit::Day)?,
    })
}

pub(crate) fn end_of(dt: DateTime<Tz>, unit: Unit) -> Option<DateTime<Tz>> {
    let dt = dt.with_nanosecond(999_999_999)?;
    let end_of_day = |d: DateTime<Tz>| d.with_hour(23)?.with_minute(59)?.with_second(59);
    Some(match unit {
        Unit::Second => dt,
        Unit::Minute => dt.with_second(59)?,
        Unit::Hour => dt.with_minute(59)?.with_second(59)?,
        Unit::Day => end_of_day(dt)?,
        Unit::Week => {
            let ahead = u64::from(6 - dt.weekday().num_days_from_monday());
            end_of_day(dt.checked_add_days(Days::new(ahead))?)?
        }
        Unit::Month => end_of_day(dt.with_day(days_in_month(dt.year(), dt.month())?)?)?,
        Unit::Quarter => {
            let month = dt.quarter() * 3;
            let last = days_in_month(dt.year(), month)?;
            end_of_day(dt.with_day(1)?.with_month(month)?.with_day(last)?)?
        }
        Unit::Year => end_of_day(dt.with_day(1)?.with_month(12)?.with_day(31)?)?,
    })
}

fn add_months_or_same(d: DateTime<Tz>, months: i32) -> DateTime<Tz> {
    let r = if months >= 0 {
        d.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        d.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    r.unwrap_or(d)
}

/// Fractional months from `a` to `b`, negated (moment.js's monthDiff, as ZEN).
#[allow(clippy::cast_precision_loss)]
fn month_diff(a: DateTime<Tz>, b: DateTime<Tz>) -> f64 {
    if a.day() < b.day() {
        return -month_diff(b, a);
    }
    let whole = (b.year() - a.year()) * 12 + (b.month() as i32 - a.month() as i32);
    let anchor = add_months_or_same(a, whole);
    let before = b.timestamp_millis() - anchor.timestamp_millis() < 0;
    let anchor2 = add_months_or_same(a, whole + if before { -1 } else { 1 });
    let num = b.timestamp_millis() - anchor.timestamp_millis();
    let den = if before {
        anchor.timestamp_millis() - anchor2.timestamp_millis()
    } else {
        anchor2.timestamp_millis() - anchor.timestamp_millis()
    };
    let frac = if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    };
    -(f64::from(whole) + frac)
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
pub(crate) fn diff(a: DateTime<Tz>, b: DateTime<Tz>, unit: Option<Unit>) -> i64 {
    let zone_delta = (i64::from(b.offset().fix().local_minus_utc())
        - i64::from(a.offset().fix().local_minus_utc()))
        * 1000;
    let ms = a.timestamp_millis() - b.timestamp_millis();
    let Some(unit) = unit else {
        return ms;
    };
    let r = match unit {
        Unit::Year => month_diff(a, b) / 12.0,
        Unit::Month => month_diff(a, b),
        Unit::Quarter => month_diff(a, b) / 3.0,
        Unit::Week => (ms - zone_delta) as f64 / 604_800_000.0,
        Unit::Day => (ms - zone_delta) as f64 / 86_400_000.0,
        Unit::Hour => ms as f64 / 3_600_000.0,
        Unit::Minute => ms as f64 / 60_000.0,
        Unit::Second => ms as f64 / 1000.0,
    };
    r.trunc() as i64
}

pub(crate) fn set(dt: DateTime<Tz>, unit: Unit, value: u32) -> Option<DateTime<Tz>> {
    match unit {
        Unit::Second => dt.with_second(value),
        Unit::Minute => dt.with_minute(value),
        Unit::Hour => dt.with_hour(value),
        Unit::Day => dt.with_day(value),
        Unit::Month => dt.with_month(value),
        Unit::Year => dt.with_year(i32::try_from(value).ok()?),
        Unit::Week | Unit::Quarter => Some(dt),
    }
}

pub(crate) fn is_same(a: DateTime<Tz>, b: DateTime<Tz>, unit: Option<Unit>) -> bool {
    match unit {
        Some(u) => match (start_of(a, u), end_of(a, u)) {
            (Some(s), Some(e)) => s <= b && b <= e,
            _ => false,
        },
        None => a.timestamp_millis() == b.timestamp_millis(),
    }
}

pub(crate) fn is_before(a: DateTime<Tz>, b: DateTime<Tz>, unit: Option<Unit>) -> bool {
    match unit {
        Some(u) => end_of(a, u).is_some_and(|e| e < b),
        None => a < b,
    }
}

pub(crate) fn is_after(a: DateTime<Tz>, b: DateTime<Tz>, unit: Option<Unit>) -> bool {
    match unit {
        Some(u) => start_of(a, u).is_some_and(|s| b < s),
        None => a > b,
    }
}

/// Methods callable on a date: `d('2024-01-01').add(1, 'd')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Add,
    Sub,
    Set,
    Format,
    StartOf,
    EndOf,
    Diff,
    Tz,
    IsSame,
    IsBefore,
    IsAfter,
    IsSameOrBefore,
    IsSameOrAfter,
    Second,
    Minute,
    Hour,
    Day,
    DayOfYear,
    Week,
    Weekday,
    Month,
    Quarter,
    Year,
    Timestamp,
    OffsetName,
    IsValid,
    IsYesterday,
    IsToday,
    IsTomorrow,
    IsLeapYear,
}

impl Method {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "add" => Self::Add,
            "sub" => Self::Sub,
            "set" => Self::Set,
            "format" => Self::Format,
            "startOf" => Self::StartOf,
            "endOf" => Self::EndOf,
            "diff" => Self::Diff,
            "tz" => Self::Tz,
            "isSame" => Self::IsSame,
            "isBefore" => Self::IsBefore,
            "isAfter" => Self::IsAfter,
            "isSameOrBefore" => Self::IsSameOrBefore,
            "isSameOrAfter" => Self::IsSameOrAfter,
            "second" => Self::Second,
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "dayOfYear" => Self::DayOfYear,
            "week" => Self::Week,
            "weekday" => Self::Weekday,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            "timestamp" => Self::Timestamp,
            "offsetName" => Self::OffsetName,
            "isValid" => Self::IsValid,
            "isYesterday" => Self::IsYesterday,
            "isToday" => Self::IsToday,
            "isTomorrow" => Self::IsTomorrow,
            "isLeapYear" => Self::IsLeapYear,
            _ => return None,
        })
    }

    /// (min, max) arguments, not counting the date itself.
    pub(crate) fn arity(self) -> (usize, usize) {
        match self {
            Self::Add | Self::Sub | Self::Diff => (1, 2),
            Self::IsSame
            | Self::IsBefore
            | Self::IsAfter
            | Self::IsSameOrBefore
            | Self::IsSameOrAfter => (1, 2),
            Self::Set => (2, 2),
            Self::Format => (0, 1),
            Self::StartOf | Self::EndOf | Self::Tz => (1, 1),
            _ => (0, 0),
        }
    }

    pub(crate) fn behaviour(self) -> Behaviour {
        match self {
            Self::IsSame
            | Self::IsBefore
            | Self::IsAfter
            | Self::IsSameOrBefore
            | Self::IsSameOrAfter
            | Self::IsValid
            | Self::IsYesterday
            | Self::IsToday
            | Self::IsTomorrow
            | Self::IsLeapYear => Behaviour::AsBool,
            _ => Behaviour::Equal,
        }
    }
}

// --- the older, timestamp-based date functions ---------------------------------------

/// Parses the argument of `date()`, `year()`, `dateString()`...: a string date or a
/// Unix timestamp in seconds, as a naive UTC date-time.
pub(crate) fn legacy_datetime(v: &Value, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    match v {
        Value::String(s) => legacy_parse(s, now),
        Value::Number(n) => DateTime::from_timestamp(n.to_i64()?, 0).map(|d| d.naive_utc()),
        _ => None,
    }
}

pub(crate) fn legacy_parse(s: &str, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    if s == "now" {
        return Some(now.naive_utc());
    }
    if let Some(midnight) = iso_date(s) {
        return Some(midnight);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|d| d.naive_utc()))
}

/// `YYYY-MM-DD` at midnight, read without a format string (the common case of
/// `date()`; chrono's `parse_from_str` interprets its format on every call).
fn iso_date(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?.and_hms_opt(0, 0, 0)
}

pub(crate) fn legacy_time(s: &str, now: DateTime<Utc>) -> Option<NaiveTime> {
    if s == "now" {
        return Some(now.naive_utc().time());
    }
    NaiveTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .or_else(|_| NaiveTime::parse_from_str(s, "%H"))
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.naive_utc().time())
        })
}

/// `startOf` / `endOf` of the timestamp functions (units s, m, h, d, w, M, y).
pub(crate) fn legacy_bound(dt: NaiveDateTime, unit: &str, end: bool) -> Option<NaiveDateTime> {
    let unit = match unit {
        "s" | "second" | "seconds" => Unit::Second,
        "m" | "minute" | "minutes" => Unit::Minute,
        "h" | "hour" | "hours" => Unit::Hour,
        "d" | "day" | "days" => Unit::Day,
        "w" | "week" | "weeks" => Unit::Week,
        "M" | "month" | "months" => Unit::Month,
        "y" | "year" | "years" => Unit::Year,
        _ => return None,
    };
    let utc = Tz::UTC.from_utc_datetime(&dt);
    let r = if end {
        end_of(utc, unit)?
    } else {
        start_of(utc, unit)?
    };
    // The timestamp functions work in whole seconds.
    r.naive_utc().with_nanosecond(0)
}

pub(crate) fn weekday_name(w: Weekday) -> String {
    w.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_read_directly_as_chrono_reads_them() {
        for s in [
            "2023-01-15",
            "2024-02-29",
            "2023-02-29",
            "2023-13-01",
            "0000-01-01",
            "2023-1-15",
            "2023/01/15",
            "2023-01-1x",
            "2023-01-15 10:00:00",
        ] {
            let chrono = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0));
            if let Some(direct) = iso_date(s) {
                assert_eq!(Some(direct), chrono, "{s}");
            }
            assert_eq!(
                legacy_parse(s, Utc::now()),
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .or(chrono),
                "{s}"
            );
        }
    }
}
