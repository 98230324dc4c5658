//! Property tests (proptest) of the aggregate store against a naive model that keeps
//! every accepted event and scans them per query — the same rules as
//! `tests/aggregates_reference.py` (the Python reference of the hypothesis tests):
//! out-of-order events within the lateness (and refusals beyond it), depth by records
//! and by days, windows with `last`/`skip`, composite keys with normalisation, and
//! `except: record` / `except: value`.

use lendgate_core::aggregates::{AggregateStore, Definitions, Scalar};
use proptest::prelude::*;
use serde_json::{json, Value};

const T0: i64 = 1_709_251_200_000;
const DAY: i64 = 86_400_000;
const LATENESS_MS: i64 = 6 * 3_600_000;

#[derive(Debug, Clone)]
struct Param {
    agg: &'static str,
    except: &'static str,
    last_min: Option<i64>,
    skip_min: i64,
}

#[derive(Debug, Clone)]
struct Case {
    composite: bool,
    max_records: Option<usize>,
    max_days: Option<i64>,
    params: Vec<Param>,
    events: Vec<Event>,
}

/// Time, key parts `k1`/`k2`, value `v`.
type Event = (i64, Option<&'static str>, Option<&'static str>, Option<i64>);

fn case() -> impl Strategy<Value = Case> {
    let param = (
        prop::sample::select(vec!["count", "sum", "unique_count", "max", "min", "value"]),
        prop::sample::select(vec!["none", "record", "value"]),
        prop::option::of(1i64..3000),
        0i64..120,
    )
        .prop_map(|(agg, except, last_min, skip_min)| Param {
            agg,
            except,
            last_min,
            skip_min,
        });
    let part = prop::option::of(prop::sample::select(vec!["a", "A ", " a", "b", ""]));
    let event = (
        prop_oneof![
            0i64..3 * 3_600_000,
            DAY / 2..2 * DAY,
            -(LATENESS_MS + 600_000)..0i64
        ],
        part.clone(),
        part,
        prop::option::of(-3i64..5),
    );
    (
        any::<bool>(),
        prop::option::of(1usize..6),
        prop::option::of(1i64..3),
        prop::collection::vec(param, 1..4),
        prop::collection::vec(event, 1..40),
    )
        .prop_map(|(composite, max_records, max_days, params, steps)| {
            let mut t = T0;
            let events = steps
                .into_iter()
                .map(|(step, k1, k2, v)| {
                    t = (t + step).max(T0);
                    (t, k1, k2, v)
                })
                .collect();
            Case {
                composite,
                max_records,
                max_days,
                params,
                events,
            }
        })
}

fn definitions(c: &Case) -> Value {
    let mut el = json!({"name": "e", "kind": "time_and_value", "attr": "v", "type": "integer"});
    if let Some(n) = c.max_records {
        el["max_records"] = json!(n);
    }
    if let Some(d) = c.max_days {
        el["max_days"] = json!(d);
    }
    let key = if c.composite {
        json!([{"attr": "k1", "kind": "text"}, {"attr": "k2", "kind": "text"}])
    } else {
        json!([{"attr": "k1", "kind": "text"}])
    };
    let params: Vec<Value> = c
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v = json!({"fn": "calc_aggregate", "name": format!("p{i}"), "object": "O",
                               "element": "e", "agg": p.agg});
            if p.except != "none" {
                v["except"] = json!(p.except);
            }
            if let Some(last) = p.last_min {
                v["window"] = json!({"unit": "minutes", "last": last, "skip": p.skip_min});
            }
            v
        })
        .collect();
    json!({"time_attr": "t", "allowed_lateness_seconds": LATENESS_MS / 1000, "retention_days": 4,
           "objects": [{"name": "O", "key": key, "elements": [el]}], "params": params})
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The naive model: all accepted events, scanned per query.
fn model(c: &Case) -> Vec<Result<Vec<Scalar>, ()>> {
    let horizon = c.max_days.unwrap_or(4) * DAY;
    let depth = c.max_records.unwrap_or(100_000);
    let mut all: Vec<(i64, usize, String, i64)> = Vec::new();
    let mut watermark: Option<i64> = None;
    let mut out = Vec::new();
    for (seq, (t, k1, k2, v)) in c.events.iter().enumerate() {
        let t = *t;
        if watermark.is_some_and(|w| t < w - LATENESS_MS) {
            out.push(Err(()));
            continue;
        }
        watermark = Some(watermark.map_or(t, |w| w.max(t)));
        let key = match (k1.map(norm), k2.map(norm), c.composite) {
            (Some(a), _, false) if !a.is_empty() => Some(a),
            (Some(a), Some(b), true) if !a.is_empty() && !b.is_empty() => {
                Some(format!("{a}\u{1f}{b}"))
            }
            _ => None,
        };
        let before = all.clone();
        if let (Some(k), Some(v)) = (&key, v) {
            all.push((t, seq, k.clone(), *v));
        }
        let Some(key) = key else {
            out.push(Ok(vec![Scalar::Null; c.params.len()]));
            continue;
        };
        let answers = c
            .params
            .iter()
            .map(|p| {
                let hist = if p.except == "record" { &before } else { &all };
                let mut recs: Vec<_> = hist.iter().filter(|r| r.2 == key).collect();
                recs.sort_by_key(|r| (r.0, r.1));
                let upto: Vec<_> = recs.iter().filter(|r| r.0 <= t).collect();
                let newest: Vec<usize> = upto[upto.len().saturating_sub(depth)..]
                    .iter()
                    .map(|r| r.1)
                    .collect();
                let mut lo = t - horizon;
                if let Some(last) = p.last_min {
                    lo = lo.max(t - last * 60_000);
                }
                let hi = t - if p.last_min.is_some() {
                    p.skip_min * 60_000
                } else {
                    0
                };
                let vals: Vec<i64> = recs
                    .iter()
                    .filter(|r| newest.contains(&r.1) && lo < r.0 && r.0 <= hi)
                    .map(|r| r.3)
                    .filter(|x| p.except != "value" || Some(*x) != *v)
                    .collect();
                match p.agg {
                    "count" => Scalar::Int(vals.len() as i64),
                    "sum" => Scalar::Int(vals.iter().sum()),
                    "unique_count" => {
                        let mut u = vals.clone();
                        u.sort_unstable();
                        u.dedup();
                        Scalar::Int(u.len() as i64)
                    }
                    "max" => vals.iter().max().map_or(Scalar::Null, |x| Scalar::Int(*x)),
                    "min" => vals.iter().min().map_or(Scalar::Null, |x| Scalar::Int(*x)),
                    _ => vals.last().map_or(Scalar::Null, |x| Scalar::Int(*x)),
                }
            })
            .collect();
        out.push(Ok(answers));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_naive_model(c in case()) {
        let defs = Definitions::from_json(&definitions(&c).to_string()).expect("ok");
        let store = AggregateStore::new(defs);
        let want = model(&c);
        for (i, ((t, k1, k2, v), want)) in c.events.iter().zip(want).enumerate() {
            let mut ev = json!({"t": t});
            if let Some(k) = k1 { ev["k1"] = json!(k); }
            if let Some(k) = k2 { ev["k2"] = json!(k); }
            if let Some(v) = v { ev["v"] = json!(v); }
            let got = store.apply(ev.to_string().as_bytes());
            match want {
                Err(()) => prop_assert!(got.is_err(), "event {i} should be refused"),
                Ok(want) => prop_assert_eq!(got.expect("ok"), want, "event {}", i),
            }
        }
    }
}
