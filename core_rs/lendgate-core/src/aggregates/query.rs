//! The functions over element state: `calc_aggregate`, `calc_interval`, previous value,
//! and the transforms (ratio, sum, multiple, substring, `compare_fl`).
//!
//! Every query is evaluated "as of" the event time `t`: a record is visible when its
//! time is in `(t - last, t - skip]`, newer than `t - max_days`, and among the newest
//! `max_records` records at or before `t`.

use super::compile::{Element, Search, Window};
use super::spec::{AggKind, WhichSpec};
use super::state::{bucket_start, Bucket, ElemState, Rec};
use super::value::{Millis, Scalar, SmallStr};
use std::collections::HashSet;

/// Records of `recs` visible at `t` through `w`.
pub(crate) fn visible_records<'a>(recs: &'a [Rec], e: &Element, t: Millis, w: Window) -> &'a [Rec] {
    let (lo, hi) = bounds(e, t, w);
    let upto_t = recs.partition_point(|r| r.t <= t);
    let by_depth = upto_t.saturating_sub(e.max_records as usize);
    let start = recs.partition_point(|r| r.t <= lo).max(by_depth);
    let end = recs.partition_point(|r| r.t <= hi);
    recs.get(start..end).unwrap_or(&[])
}

fn visible_buckets<'a>(bs: &'a [Bucket], e: &Element, t: Millis, w: Window) -> &'a [Bucket] {
    let (lo, hi) = bounds(e, t, w);
    let s = |x: &Bucket| bucket_start(x.b, e.bucket_ms);
    let upto_t = bs.partition_point(|x| s(x) <= t);
    let by_depth = upto_t.saturating_sub(e.max_records as usize);
    let start = bs.partition_point(|x| s(x) <= lo).max(by_depth);
    let end = bs.partition_point(|x| s(x) <= hi);
    bs.get(start..end).unwrap_or(&[])
}

/// Exclusive lower and inclusive upper time bounds of a window at `t`.
fn bounds(e: &Element, t: Millis, w: Window) -> (Millis, Millis) {
    let mut lo = t - e.horizon_ms;
    if let Some(last) = w.last_ms {
        lo = lo.max(t - last);
    }
    (lo, t - w.skip_ms)
}

/// `calc_aggregate` over one element's state. `except` holds the current event's value
/// when records equal to it are to be left out.
pub(crate) fn aggregate(
    state: &ElemState,
    e: &Element,
    t: Millis,
    w: Window,
    agg: AggKind,
    p: f64,
    except: Option<&Scalar>,
) -> Scalar {
    match state {
        ElemState::Empty => empty_aggregate(e, agg),
        ElemState::Single { updated, v, .. } => {
            if *updated <= t - e.horizon_ms {
                empty_aggregate(e, agg)
            } else {
                v.clone()
            }
        }
        ElemState::Records(recs) => {
            let recs = visible_records(recs, e, t, w);
            let vals = recs.iter().map(|r| &r.v).filter(|v| except != Some(*v));
            aggregate_values(vals, agg, p)
        }
        ElemState::Buckets(bs) => {
            let bs = visible_buckets(bs, e, t, w);
            let total: i64 = bs.iter().map(|x| i64::from(x.n)).sum();
            match agg {
                AggKind::Count | AggKind::Sum => Scalar::Int(total),
                AggKind::AnyCount | AggKind::UniqueCount => Scalar::Int(bs.len() as i64),
                _ => {
                    let counts: Vec<Scalar> =
                        bs.iter().map(|x| Scalar::Int(i64::from(x.n))).collect();
                    aggregate_values(counts.iter(), agg, p)
                }
            }
        }
    }
}

fn empty_aggregate(e: &Element, agg: AggKind) -> Scalar {
    use super::spec::ElementKind as K;
    match (e.kind, agg) {
        (K::Count, _) | (_, AggKind::Count | AggKind::AnyCount | AggKind::UniqueCount) => {
            Scalar::Int(0)
        }
        (K::Sum, _) | (_, AggKind::Sum) => Scalar::Int(0),
        _ => Scalar::Null,
    }
}

#[derive(Hash, PartialEq, Eq)]
enum Distinct<'a> {
    Bool(bool),
    Int(i64),
    Num(u64),
    Str(&'a SmallStr),
}

/// Aggregates a sequence of values. Numeric aggregates skip non-numeric values.
pub(crate) fn aggregate_values<'a>(
    vals: impl Iterator<Item = &'a Scalar>,
    agg: AggKind,
    p: f64,
) -> Scalar {
    match agg {
        AggKind::Value => vals.last().cloned().unwrap_or(Scalar::Null),
        AggKind::Count => Scalar::Int(vals.count() as i64),
        AggKind::AnyCount => Scalar::Int(vals.filter(|v| **v != Scalar::Null).count() as i64),
        AggKind::UniqueCount => {
            let distinct = vals.filter_map(|v| match v {
                Scalar::Null => None,
                Scalar::Bool(b) => Some(Distinct::Bool(*b)),
                Scalar::Int(i) => Some(Distinct::Int(*i)),
                Scalar::Num(x) => Some(Distinct::Num(x.to_bits())),
                Scalar::Str(s) => Some(Distinct::Str(s)),
            });
            Scalar::Int(count_distinct(distinct) as i64)
        }
        AggKind::Sum => {
            let mut int: Option<i64> = Some(0);
            let mut num = 0.0;
            for v in vals {
                match v {
                    Scalar::Int(i) => {
                        int = int.map(|a| a.saturating_add(*i));
                        num += *i as f64;
                    }
                    Scalar::Num(x) => {
                        int = None;
                        num += x;
                    }
                    _ => {}
                }
            }
            int.map_or(Scalar::Num(num), Scalar::Int)
        }
        AggKind::Max | AggKind::Min => {
            let mut best: Option<(&Scalar, f64)> = None;
            for v in vals {
                if let Some(x) = v.as_f64() {
                    let better = best.map_or(
                        true,
                        |(_, b)| if agg == AggKind::Max { x > b } else { x < b },
                    );
                    if better {
                        best = Some((v, x));
                    }
                }
            }
            best.map_or(Scalar::Null, |(v, _)| v.clone())
        }
        AggKind::Mean => {
            let (mut n, mut s) = (0usize, 0.0);
            for x in vals.filter_map(Scalar::as_f64) {
                n += 1;
                s += x;
            }
            if n == 0 {
                Scalar::Null
            } else {
                Scalar::Num(s / n as f64)
            }
        }
        AggKind::Median | AggKind::Percentile => {
            let select = |xs: &mut Vec<f64>| {
                xs.clear();
                xs.extend(vals.filter_map(Scalar::as_f64));
                percentile(xs, p).map_or(Scalar::Null, Scalar::Num)
            };
            // The buffer is free unless a query were ever nested in another: then a
            // fresh one, never a panic.
            NUMBERS.with(|cell| match cell.try_borrow_mut() {
                Ok(mut xs) => select(&mut xs),
                Err(_) => select(&mut Vec::new()),
            })
        }
    }
}

thread_local! {
    /// The values a percentile is selected from, reused from query to query.
    static NUMBERS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Distinct values counted by comparing each with those before it while there are few
/// (no allocation, no hashing: the common case of a key's handful of records), in a
/// hash set past [`FEW_DISTINCT`] values.
fn count_distinct<'a>(mut vals: impl Iterator<Item = Distinct<'a>>) -> usize {
    let mut few: [Option<Distinct<'a>>; FEW_DISTINCT] = [const { None }; FEW_DISTINCT];
    let mut n = 0;
    while let Some(v) = vals.next() {
        if few[..n].iter().any(|seen| seen.as_ref() == Some(&v)) {
            continue;
        }
        if n == FEW_DISTINCT {
            let mut set: HashSet<Distinct<'a>> = few.into_iter().flatten().collect();
            set.insert(v);
            set.extend(vals);
            return set.len();
        }
        few[n] = Some(v);
        n += 1;
    }
    n
}

/// Distinct values kept in an array by [`count_distinct`] before it turns to a set.
const FEW_DISTINCT: usize = 16;

/// Linear-interpolation percentile (numpy's default) of `xs`, `p` in 0..=100.
fn percentile(xs: &mut [f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let rank = p / 100.0 * (xs.len() - 1) as f64;
    let lo = rank.floor() as usize;
    // Selection instead of a full sort: O(n) per query.
    let (_, a, above) = xs.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let b = if rank > lo as f64 {
        above.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    } else {
        a
    };
    Some(a + (b - a) * (rank - lo as f64))
}

/// `calc_interval`: time from the last (or first) matching visible record to `t`,
/// in units of `unit_ms`; null when nothing matches.
#[allow(clippy::too_many_arguments)]
pub(crate) fn interval(
    state: &ElemState,
    e: &Element,
    t: Millis,
    w: Window,
    which: WhichSpec,
    search: &Search,
    unit_ms: Millis,
    current: Option<&Scalar>,
    except: Option<&Scalar>,
) -> Scalar {
    let ElemState::Records(recs) = state else {
        return Scalar::Null;
    };
    let recs = visible_records(recs, e, t, w);
    let hit = |r: &&Rec| {
        if except.is_some_and(|x| r.v == *x) {
            return false;
        }
        match search {
            Search::Any => true,
            Search::Equal(lit) => r.v.eq_json(lit),
            Search::In(lits) => lits.iter().any(|l| r.v.eq_json(l)),
            Search::Current => current.is_some_and(|c| r.v == *c),
        }
    };
    let found = match which {
        WhichSpec::Last => recs.iter().rev().find(hit),
        WhichSpec::First => recs.iter().find(hit),
    };
    found.map_or(Scalar::Null, |r| {
        Scalar::Num((t - r.t) as f64 / unit_ms as f64)
    })
}

/// The `nth` most recent visible value (1 = the latest).
pub(crate) fn previous(state: &ElemState, e: &Element, t: Millis, w: Window, nth: u32) -> Scalar {
    let ElemState::Records(recs) = state else {
        return Scalar::Null;
    };
    let recs = visible_records(recs, e, t, w);
    recs.len()
        .checked_sub(nth as usize)
        .and_then(|i| recs.get(i))
        .map_or(Scalar::Null, |r| r.v.clone())
}

/// Jaro–Winkler mismatch percentage: `(1 - similarity) * 100`, 0 for equal strings.
///
/// ASCII strings of up to 64 bytes (passports, INNs, phones, names) take a fast path
/// with bit-mask match flags and no allocation; it computes exactly what `strsim`
/// computes (same matching order, same arithmetic), which the other strings use.
pub fn compare_fl(a: &str, b: &str) -> f64 {
    let sim = if a.is_ascii() && b.is_ascii() && a.len() <= 64 && b.len() <= 64 {
        jaro_winkler_ascii(a.as_bytes(), b.as_bytes())
    } else {
        strsim::jaro_winkler(a, b)
    };
    (1.0 - sim) * 100.0
}

fn jaro_winkler_ascii(a: &[u8], b: &[u8]) -> f64 {
    let (al, bl) = (a.len(), b.len());
    if al == 0 && bl == 0 {
        return 1.0;
    }
    if al == 0 || bl == 0 {
        return 0.0;
    }
    let range = (al.max(bl) / 2).saturating_sub(1);
    let (mut af, mut bf) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &c) in a.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = bl.min(i + range + 1);
        for (j, &d) in b.iter().enumerate().take(hi).skip(lo) {
            if bf & (1 << j) == 0 && d == c {
                af |= 1 << i;
                bf |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut rest = bf;
    for (i, &c) in a.iter().enumerate() {
        if af & (1 << i) != 0 {
            let j = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if b[j] != c {
                transpositions += 1;
            }
        }
    }
    transpositions /= 2;
    let m = matches as f64;
    let sim = ((m / al as f64) + (m / bl as f64) + ((matches - transpositions) as f64 / m)) / 3.0;
    if sim > 0.7 {
        let prefix = a.iter().take(4).zip(b).take_while(|(x, y)| x == y).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

/// Characters `start..start+len` of `s` (by characters, not bytes).
pub fn substring(s: &str, start: usize, len: Option<usize>) -> String {
    let it = s.chars().skip(start);
    match len {
        Some(n) => it.take(n).collect(),
        None => it.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_are_counted_alike_below_and_past_the_array() {
        for n in [0usize, 1, 5, 15, 16, 17, 40, 300] {
            for modulus in [1usize, 3, 16, 17, 1000] {
                let vals: Vec<Scalar> = (0..n)
                    .map(|i| match i % 3 {
                        0 => Scalar::Int((i % modulus) as i64),
                        1 => Scalar::Str(format!("s{}", i % modulus).into()),
                        _ => Scalar::Null,
                    })
                    .collect();
                let want = vals
                    .iter()
                    .filter(|v| **v != Scalar::Null)
                    .map(|v| format!("{v:?}"))
                    .collect::<HashSet<_>>()
                    .len() as i64;
                let got = aggregate_values(vals.iter(), AggKind::UniqueCount, 0.0);
                assert_eq!(got, Scalar::Int(want), "n {n} modulus {modulus}");
            }
        }
    }

    fn s(x: f64) -> Scalar {
        Scalar::Num(x)
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [s(1.0), s(2.0), s(3.0), s(4.0)];
        assert_eq!(aggregate_values(v.iter(), AggKind::Median, 50.0), s(2.5));
        assert_eq!(
            aggregate_values(v.iter(), AggKind::Percentile, 100.0),
            s(4.0)
        );
        assert_eq!(aggregate_values(v.iter(), AggKind::Percentile, 0.0), s(1.0));
        assert_eq!(
            aggregate_values([].iter(), AggKind::Median, 50.0),
            Scalar::Null
        );
    }

    #[test]
    fn sums_stay_integer_when_they_can() {
        let v = [Scalar::Int(2), Scalar::Int(3)];
        assert_eq!(
            aggregate_values(v.iter(), AggKind::Sum, 0.0),
            Scalar::Int(5)
        );
        let v = [Scalar::Int(2), s(0.5)];
        assert_eq!(aggregate_values(v.iter(), AggKind::Sum, 0.0), s(2.5));
    }

    #[test]
    fn unique_count_ignores_nulls() {
        let v = [
            Scalar::Str("a".into()),
            Scalar::Str("a".into()),
            Scalar::Null,
            Scalar::Int(1),
        ];
        assert_eq!(
            aggregate_values(v.iter(), AggKind::UniqueCount, 0.0),
            Scalar::Int(2)
        );
        assert_eq!(
            aggregate_values(v.iter(), AggKind::AnyCount, 0.0),
            Scalar::Int(3)
        );
        assert_eq!(
            aggregate_values(v.iter(), AggKind::Count, 0.0),
            Scalar::Int(4)
        );
    }

    #[test]
    fn compare_fl_is_a_mismatch_percentage() {
        assert_eq!(compare_fl("4510123456", "4510123456"), 0.0);
        let d = compare_fl("4510123456", "4510123465");
        assert!(d > 0.0 && d < 10.0, "{d}");
        assert!((compare_fl("abc", "xyz") - 100.0).abs() < 1e-9);
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_jaro_winkler_is_strsim_exactly(
            a in "[0-9a-c ]{0,66}", b in "[0-9a-c ]{0,66}"
        ) {
            let want = (1.0 - strsim::jaro_winkler(&a, &b)) * 100.0;
            proptest::prop_assert_eq!(compare_fl(&a, &b).to_bits(), want.to_bits());
        }

        #[test]
        fn the_ascii_jaro_winkler_is_strsim_on_near_copies(
            a in "[0-9]{1,12}", i in 0usize..12, c in "[0-9]"
        ) {
            let mut b: Vec<char> = a.chars().collect();
            let i = i % b.len();
            b[i] = c.chars().next().unwrap_or('0');
            let b: String = b.into_iter().collect();
            let want = (1.0 - strsim::jaro_winkler(&a, &b)) * 100.0;
            proptest::prop_assert_eq!(compare_fl(&a, &b).to_bits(), want.to_bits());
        }
    }

    #[test]
    fn substring_counts_characters() {
        assert_eq!(substring("4276123456789012", 0, Some(6)), "427612");
        assert_eq!(substring("привет", 2, Some(3)), "иве");
        assert_eq!(substring("ab", 5, Some(3)), "");
    }
}
