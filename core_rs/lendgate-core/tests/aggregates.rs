//! Behaviour of the aggregate store through its public API.

use lendgate_core::aggregates::{AggregateStore, Definitions, Scalar};
use lendgate_core::CoreError;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_709_251_200_000; // 2024-03-01T00:00:00Z

fn seed_pack() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/aggregates/seed003_rules.json"
    );
    std::fs::read_to_string(path).expect("seed pack")
}

fn store(defs: &Value) -> AggregateStore {
    AggregateStore::new(Definitions::from_json(&defs.to_string()).expect("definitions"))
}

fn get(store: &AggregateStore, values: &[Scalar], name: &str) -> Scalar {
    let i = store
        .definitions()
        .param_names()
        .position(|n| n == name)
        .expect("param");
    values[i].clone()
}

fn apply(store: &AggregateStore, ev: Value) -> Vec<Scalar> {
    store.apply(ev.to_string().as_bytes()).expect("apply")
}

fn err_field(e: CoreError) -> String {
    match e {
        CoreError::InvalidArgument { field, .. } => field,
        other => panic!("unexpected {other:?}"),
    }
}

/// One object keyed by client with a time_and_value array of amounts.
fn amounts_defs(max_records: Option<u32>, lateness_s: u64) -> Value {
    let mut el = json!({"name": "amounts", "kind": "time_and_value", "attr": "amount",
                        "type": "integer", "max_days": 10});
    if let Some(n) = max_records {
        el["max_records"] = json!(n);
    }
    json!({
        "time_attr": "t", "allowed_lateness_seconds": lateness_s,
        "objects": [{"name": "C", "key": [{"attr": "client"}], "elements": [el]}],
        "params": [
            {"fn": "calc_aggregate", "name": "n2d", "object": "C", "element": "amounts",
             "agg": "count", "window": {"unit": "days", "last": 2}},
            {"fn": "calc_aggregate", "name": "sum2d", "object": "C", "element": "amounts",
             "agg": "sum", "window": {"unit": "days", "last": 2}},
            {"fn": "calc_aggregate", "name": "sum_all_prev", "object": "C", "element": "amounts",
             "agg": "sum", "except": "record"},
            {"fn": "calc_aggregate", "name": "max_skip1d", "object": "C", "element": "amounts",
             "agg": "max", "window": {"unit": "days", "last": 5, "skip": 1}},
        ]
    })
}

#[test]
fn windows_follow_event_time_not_arrival() {
    let s = store(&amounts_defs(None, 7 * 86_400));
    let ev = |t: i64, a: i64| json!({"t": t, "client": "c1", "amount": a});
    let r = apply(&s, ev(T0, 10));
    assert_eq!(get(&s, &r, "n2d"), Scalar::Int(1));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(0));
    let r = apply(&s, ev(T0 + DAY, 20));
    assert_eq!(get(&s, &r, "sum2d"), Scalar::Int(30));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(10));
    // Three days later the first two records have left the 2-day window.
    let r = apply(&s, ev(T0 + 3 * DAY, 5));
    assert_eq!(get(&s, &r, "sum2d"), Scalar::Int(5));
    assert_eq!(get(&s, &r, "max_skip1d"), Scalar::Int(20));
    // A late event (within the allowed lateness) is answered as of its own time: it
    // sees the records up to its time, not the later one.
    let r = apply(&s, ev(T0 + DAY + 1000, 7));
    assert_eq!(get(&s, &r, "sum2d"), Scalar::Int(37));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(30));
    // ...and it lands in place for later events.
    let r = apply(&s, ev(T0 + 3 * DAY + 1, 1));
    assert_eq!(get(&s, &r, "sum2d"), Scalar::Int(7 + 5 + 1));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(42));
}

#[test]
fn events_beyond_the_lateness_are_rejected_whole() {
    let s = store(&amounts_defs(None, 3600));
    apply(&s, json!({"t": T0 + DAY, "client": "c1", "amount": 1}));
    let err = s
        .apply(
            json!({"t": T0, "client": "c1", "amount": 1})
                .to_string()
                .as_bytes(),
        )
        .unwrap_err();
    assert_eq!(err_field(err), "t");
    let r = apply(&s, json!({"t": T0 + DAY, "client": "c1", "amount": 1}));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(1));
}

#[test]
fn bad_events_are_typed_errors_and_change_nothing() {
    let s = store(&amounts_defs(None, 3600));
    apply(&s, json!({"t": T0, "client": "c1", "amount": 1}));
    for (ev, field) in [
        (json!({"client": "c1", "amount": 1}), "t"),
        (
            json!({"t": "1900-01-01T00:00:00Z", "client": "c1", "amount": 1}),
            "t",
        ),
        (
            json!({"t": "2999-01-01T00:00:00Z", "client": "c1", "amount": 1}),
            "t",
        ),
        (json!({"t": T0, "client": "c1", "amount": "lots"}), "amount"),
        (
            json!({"t": T0, "client": "x".repeat(5000), "amount": 1}),
            "client",
        ),
        (json!({"t": T0, "client": {"id": 1}, "amount": 1}), "client"),
    ] {
        let err = s.apply(ev.to_string().as_bytes()).unwrap_err();
        assert_eq!(err_field(err), field, "{ev}");
    }
    assert_eq!(err_field(s.apply(b"{not json").unwrap_err()), "event");
    assert_eq!(err_field(s.apply(b"[1]").unwrap_err()), "event");
    let r = apply(&s, json!({"t": T0, "client": "c1", "amount": 2}));
    assert_eq!(get(&s, &r, "sum_all_prev"), Scalar::Int(1));
    // A missing key skips the object: its parameters are null.
    let r = apply(&s, json!({"t": T0, "amount": 2}));
    assert_eq!(get(&s, &r, "n2d"), Scalar::Null);
}

#[test]
fn evaluate_answers_like_apply_without_changing_state() {
    let s = store(&amounts_defs(None, 3600));
    apply(&s, json!({"t": T0, "client": "c1", "amount": 4}));
    let ev = json!({"t": T0 + 1, "client": "c1", "amount": 6}).to_string();
    let dry = s.evaluate(ev.as_bytes()).unwrap();
    let dry2 = s.evaluate(ev.as_bytes()).unwrap();
    assert_eq!(dry, dry2);
    assert_eq!(dry, s.apply(ev.as_bytes()).unwrap());
}

/// A deliberately naive reference: every accepted record in a list; a query at `t`
/// takes records with time <= t, sorted by (time, arrival), the newest `n` of them,
/// then those inside `(t - 2 days, t]` and newer than `t - 10 days`.
#[test]
fn random_out_of_order_streams_match_a_naive_reference() {
    for seed in 1..=40u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let n = 1 + (next() % 6) as u32;
        let lateness_s = 6 * 3600;
        let s = store(&amounts_defs(Some(n), lateness_s));
        let mut log: Vec<(i64, usize, &str, i64)> = Vec::new();
        let mut newest = T0;
        for i in 0..300 {
            let client = ["a", "b", "c"][(next() % 3) as usize];
            let step = (next() % (3 * 3600)) as i64 * 1000;
            let back = (next() % (lateness_s * 1000 - 1)) as i64;
            let t = if next() % 4 == 0 {
                newest - back
            } else {
                newest + step
            };
            newest = newest.max(t);
            let amount = (next() % 100) as i64;
            let got = apply(&s, json!({"t": t, "client": client, "amount": amount}));
            log.push((t, i, client, amount));
            let mut mine: Vec<_> = log.iter().filter(|r| r.2 == client && r.0 <= t).collect();
            mine.sort_by_key(|r| (r.0, r.1));
            let keep = &mine[mine.len().saturating_sub(n as usize)..];
            let lo = (t - 2 * DAY).max(t - 10 * DAY);
            let inwin: Vec<_> = keep.iter().filter(|r| r.0 > lo).collect();
            let want_n = inwin.len() as i64;
            let want_sum: i64 = inwin.iter().map(|r| r.3).sum();
            assert_eq!(
                get(&s, &got, "n2d"),
                Scalar::Int(want_n),
                "seed {seed} event {i}"
            );
            assert_eq!(
                get(&s, &got, "sum2d"),
                Scalar::Int(want_sum),
                "seed {seed} event {i}"
            );
        }
    }
}

#[test]
fn composite_keys_are_normalised() {
    let s = AggregateStore::new(Definitions::from_json(&seed_pack()).unwrap());
    let ev = |t: i64, fio: &str, phone: &str, bd: &str| {
        json!({"common": {"eventTime": t, "subtype": "LOAN_APP_CREATE"},
               "consumer": {"fio": fio, "mobile": phone, "birthdate": bd}})
    };
    let r = apply(
        &s,
        ev(T0, "Ivan Petrov", "+7 (912) 345-67-89", "1990-01-01"),
    );
    assert_eq!(get(&s, &r, "rule1_other_birth_dates"), Scalar::Int(0));
    let r = apply(
        &s,
        ev(
            T0 + 1000,
            "  IVAN   petrov ",
            "8 912 345 67 89",
            "1990-01-01",
        ),
    );
    assert_eq!(get(&s, &r, "rule1_other_birth_dates"), Scalar::Int(0));
    let r = apply(
        &s,
        ev(T0 + 2000, "ivan petrov", "89123456789", "1991-02-02"),
    );
    assert_eq!(get(&s, &r, "rule1_other_birth_dates"), Scalar::Int(1));
    // Another phone is another key.
    let r = apply(
        &s,
        ev(T0 + 3000, "ivan petrov", "89990000000", "1992-03-03"),
    );
    assert_eq!(get(&s, &r, "rule1_other_birth_dates"), Scalar::Int(0));
}

#[test]
fn seed_rules_2_3_7_and_11() {
    let s = AggregateStore::new(Definitions::from_json(&seed_pack()).unwrap());
    let create = |t: i64, user: &str, passport: &str, co: &str, ip: &str| {
        json!({"common": {"eventTime": t, "subtype": "LOAN_APP_CREATE", "partnerId": "p1"},
               "consumer": {"userId": user, "idDocumentNumber": passport},
               "coBorrower": {"idDocumentNumber": co},
               "employer": {"inn": "7701234567"}, "device": {"ip": ip}})
    };
    // Rule 2: the co-borrower's passport appears with three other borrowers.
    for (i, p) in ["1111 111111", "2222 222222", "3333 333333", "2222 222222"]
        .iter()
        .enumerate()
    {
        apply(
            &s,
            create(
                T0 + i as i64 * 60_000,
                &format!("u{i}"),
                p,
                "9999 999999",
                "10.0.0.1",
            ),
        );
    }
    let r = apply(
        &s,
        create(T0 + DAY, "u9", "4444 444444", "9999-999999", "10.0.0.1"),
    );
    assert_eq!(get(&s, &r, "rule2_other_borrowers"), Scalar::Int(3));
    assert_eq!(get(&s, &r, "rule2_other_borrower_apps"), Scalar::Int(4));
    // Rule 7: five applications by the employer from one IP in two days (day buckets).
    assert_eq!(get(&s, &r, "rule7_apps_by_employer_ip_2d"), Scalar::Int(5));
    let r = apply(
        &s,
        create(T0 + 2 * DAY, "u9", "4444 444444", "8888", "10.0.0.1"),
    );
    assert_eq!(get(&s, &r, "rule7_apps_by_employer_ip_2d"), Scalar::Int(2));
    let r = apply(
        &s,
        create(T0 + 2 * DAY, "u9", "4444 444444", "8888", "10.0.0.2"),
    );
    assert_eq!(get(&s, &r, "rule7_apps_by_employer_ip_2d"), Scalar::Int(1));

    // Rule 3: days since the employer was marked fraud ("F").
    let mark = |t: i64, res: &str| {
        json!({"common": {"eventTime": t, "subtype": "LOAN_APP_RESOLUTION"},
               "employer": {"inn": "77 0123 4567"}, "ext": {"resolution": res}})
    };
    let r = apply(&s, mark(T0 + 3 * DAY, "OK"));
    assert_eq!(get(&s, &r, "rule3_days_since_employer_fraud"), Scalar::Null);
    apply(&s, mark(T0 + 3 * DAY, "F"));
    let r = apply(&s, mark(T0 + 13 * DAY, "OK"));
    assert_eq!(
        get(&s, &r, "rule3_days_since_employer_fraud"),
        Scalar::Num(10.0)
    );

    // Rule 11: previous passport of the same client within 1440 minutes.
    let r = apply(
        &s,
        create(T0 + 20 * DAY, "u100", "4510 123456", "1", "1.1.1.1"),
    );
    assert_eq!(get(&s, &r, "rule11_previous_passport"), Scalar::Null);
    assert_eq!(get(&s, &r, "rule11_passport_mismatch_pct"), Scalar::Null);
    let r = apply(
        &s,
        create(
            T0 + 20 * DAY + 3_600_000,
            "u100",
            "4510 123465",
            "1",
            "1.1.1.1",
        ),
    );
    assert_eq!(
        get(&s, &r, "rule11_previous_passport"),
        Scalar::Str("4510 123456".into())
    );
    let Scalar::Num(pct) = get(&s, &r, "rule11_passport_mismatch_pct") else {
        panic!()
    };
    assert!(pct > 0.0 && pct < 10.0, "{pct}");
    let r = apply(
        &s,
        create(T0 + 22 * DAY, "u100", "4510 000000", "1", "1.1.1.1"),
    );
    assert_eq!(get(&s, &r, "rule11_previous_passport"), Scalar::Null);
}

#[test]
fn rule_4_refusal_percentage_and_builtins() {
    let s = AggregateStore::new(Definitions::from_json(&seed_pack()).unwrap());
    let result = |t: i64, res: &str| {
        json!({"common": {"eventTime": t, "subtype": "LOAN_APP_RESULT"},
               "employer": {"inn": "500100732259"}, "ext": {"requestResult": res}})
    };
    for (i, res) in ["REJECTED", "APPROVED", "REJECTED", "REJECTED", "APPROVED"]
        .iter()
        .enumerate()
    {
        apply(&s, result(T0 + i as i64 * DAY, res));
    }
    let r = apply(&s, result(T0 + 61 * DAY, "REJECTED"));
    // "Last 60 days" on day buckets is the 60 calendar days ending today: days 2..=61,
    // so days 0 and 1 are out.
    assert_eq!(get(&s, &r, "rule4_finished_60d"), Scalar::Int(4));
    assert_eq!(get(&s, &r, "rule4_rejected_60d"), Scalar::Int(3));
    assert_eq!(get(&s, &r, "rule4_reject_pct_60d"), Scalar::Num(75.0));

    let t1 = T0 + 70 * DAY;
    let pay = |t: i64, amount: f64, device: &str| {
        json!({"common": {"eventTime": t1 + t - T0, "subtype": "PAYMENT"}, "consumer": {"userId": "u1"},
               "tx": {"amount": amount, "currency": "RUB", "cardNumber": "4276123456789012"},
               "device": {"id": device}})
    };
    let r = apply(&s, pay(T0, 500.0, "d1"));
    assert_eq!(get(&s, &r, "tx_count_24h"), Scalar::Int(1));
    assert_eq!(get(&s, &r, "tx_amount_rub_24h"), Scalar::Int(0));
    assert_eq!(get(&s, &r, "tx_seconds_since_previous"), Scalar::Null);
    assert_eq!(get(&s, &r, "days_since_new_device"), Scalar::Num(0.0));
    assert_eq!(get(&s, &r, "card_bin"), Scalar::Str("427612".into()));
    let r = apply(&s, pay(T0 + 90_000, 1500.0, "d1"));
    assert_eq!(get(&s, &r, "tx_count_24h"), Scalar::Int(2));
    assert_eq!(get(&s, &r, "tx_amount_rub_24h"), Scalar::Num(1500.0));
    assert_eq!(get(&s, &r, "tx_seconds_since_previous"), Scalar::Num(90.0));
    let r = apply(&s, pay(T0 + 2 * DAY, 2500.0, "d2"));
    assert_eq!(get(&s, &r, "tx_count_24h"), Scalar::Int(1));
    assert_eq!(get(&s, &r, "days_since_new_device"), Scalar::Num(0.0));
    let r = apply(&s, pay(T0 + 3 * DAY, 10.0, "d1"));
    assert_eq!(get(&s, &r, "days_since_new_device"), Scalar::Num(3.0));
    assert_eq!(get(&s, &r, "client_events"), Scalar::Int(4));
    assert_eq!(get(&s, &r, "client_amount_median_30d"), Scalar::Num(1000.0));
    assert_eq!(get(&s, &r, "client_amount_mean_7d"), Scalar::Num(1500.0));
}

#[test]
fn retention_drops_old_keys_incrementally() {
    let s = store(&amounts_defs(None, 3600));
    for i in 0..100 {
        apply(&s, json!({"t": T0, "client": format!("c{i}"), "amount": 1}));
    }
    apply(
        &s,
        json!({"t": T0 + 30 * DAY, "client": "fresh", "amount": 1}),
    );
    let mut dropped = 0;
    loop {
        let p = s.expire_step(8);
        assert!(p.shards <= 8);
        dropped += p.keys_dropped;
        if p.pass_complete {
            break;
        }
    }
    assert_eq!(dropped, 100);
    assert_eq!(s.key_counts(), vec![("C".to_string(), 1)]);
}

#[test]
fn snapshot_restore_and_replay_of_the_tail_give_identical_answers() {
    let defs = seed_pack();
    let live = AggregateStore::new(Definitions::from_json(&defs).unwrap());
    let events: Vec<Value> = (0..400)
        .map(|i: i64| {
            let sub = ["LOAN_APP_CREATE", "LOAN_APP_RESULT", "LOAN_APP_SPECIAL_CHECK", "PAYMENT"][(i % 4) as usize];
            json!({"common": {"eventTime": T0 + i * 3_600_000 - (i % 3) * 600_000, "subtype": sub,
                              "partnerId": format!("p{}", i % 3)},
                   "consumer": {"userId": format!("u{}", i % 17), "idDocumentNumber": format!("45{:08}", i % 23),
                                "fio": "A B", "mobile": format!("8912{:07}", i % 5), "birthdate": format!("19{}", 70 + i % 7),
                                "passportIssueRegion": "Moscow"},
                   "employer": {"inn": format!("77{}", i % 4)}, "device": {"ip": "1.2.3.4", "id": format!("d{}", i % 9)},
                   "ext": {"requestResult": if i % 5 == 0 { "REJECTED" } else { "APPROVED" },
                           "checkResultSpecial": "REJECTED"},
                   "tx": {"amount": i * 10, "currency": "RUB", "cardNumber": "4276000011112222"}})
        })
        .collect();
    let mut answers = Vec::new();
    let mut snap = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        if i == 250 {
            snap = live.snapshot().unwrap();
        }
        answers.push(apply(&live, ev.clone()));
    }
    let restored = AggregateStore::restore(Definitions::from_json(&defs).unwrap(), &snap).unwrap();
    for (i, ev) in events.iter().enumerate().skip(250) {
        assert_eq!(apply(&restored, ev.clone()), answers[i], "event {i}");
    }
    assert_eq!(restored.key_counts(), live.key_counts());

    // Another format version, other definitions, garbage: clear refusals.
    let mut newer = snap.clone();
    newer[8] = 3;
    let e = AggregateStore::restore(Definitions::from_json(&defs).unwrap(), &newer)
        .err()
        .unwrap();
    assert!(e.to_string().contains("version 3"), "{e}");
    let other = Definitions::from_json(&amounts_defs(None, 60).to_string()).unwrap();
    let e = AggregateStore::restore(other, &snap).err().unwrap();
    assert!(
        e.to_string().contains("different object definitions"),
        "{e}"
    );
    let e = AggregateStore::restore(
        Definitions::from_json(&defs).unwrap(),
        &snap[..snap.len() / 2],
    )
    .err()
    .unwrap();
    assert_eq!(err_field(e), "snapshot");
}

#[test]
fn bad_definitions_name_the_field() {
    let cases = [
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "median", "attr": "x"}]}]}),
            "objects[0].elements[0].kind",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "sum", "attr": "x", "type": "string"}]}]}),
            "objects[0].elements[0].type",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a", "kind": "fax"}],
                 "elements": [{"name": "e", "kind": "count"}]}]}),
            "objects[0].key[0].kind",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "count", "colour": 1}]}]}),
            "objects[0].elements[0].colour",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "unique", "attr": "x",
                               "filter_expr": "x == 1"}]}]}),
            "objects[0].elements[0].filter_expr",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "count"}]}],
                "params": [{"fn": "calc_aggregate", "name": "p", "object": "A", "element": "nope", "agg": "sum"}]}),
            "params[0].element",
        ),
        (
            json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "time_and_value", "attr": "x"}]}],
                "params": [{"fn": "calc_aggregate", "name": "p", "object": "A", "element": "e", "agg": "percentile"}]}),
            "params[0].p",
        ),
        (
            json!({"params": [{"fn": "ratio", "name": "p", "a": {"param": "later"}, "b": {"value": 1}}]}),
            "params[0].a.param",
        ),
        (
            json!({"params": [{"fn": "teleport", "name": "p"}]}),
            "params[0]",
        ),
    ];
    for (defs, field) in cases {
        let err = Definitions::from_json(&defs.to_string()).unwrap_err();
        let got = err_field(err.clone());
        assert!(got.starts_with(field), "{defs}: field {got:?}, {err}");
    }
    let err = Definitions::from_json(
        &json!({"objects": [{"name": "A", "key": [{"attr": "a"}],
                 "elements": [{"name": "e", "kind": "unique", "attr": "x", "filter_expr": "x == 1"}]}]})
        .to_string(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("expression engine"), "{err}");
}

#[test]
fn two_threads_on_one_store() {
    let s = std::sync::Arc::new(store(&amounts_defs(None, 86_400)));
    let threads: Vec<_> = (0..2)
        .map(|k| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..2000i64 {
                    let ev = json!({"t": T0 + i, "client": format!("c{}", i % 50 + k * 50), "amount": 1});
                    s.apply(ev.to_string().as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.key_counts(), vec![("C".to_string(), 100)]);
    let r = s
        .evaluate(
            json!({"t": T0 + 5000, "client": "c0", "amount": 0})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(r[2], Scalar::Int(40)); // sum_all_prev: 40 events of amount 1 for c0
}

/// One event locks a shard of every key group it touches, all at once (in group
/// order): threads whose events share keys in several groups, with expiry passes and
/// snapshots running beside them, must neither deadlock nor lose an update.
#[test]
fn threads_sharing_keys_across_groups() {
    let defs = json!({
        "time_attr": "t", "allowed_lateness_seconds": 86_400,
        "objects": [
            {"name": "Client", "key": [{"attr": "client"}],
             "elements": [{"name": "n", "kind": "count"}]},
            {"name": "Partner", "key": [{"attr": "partner"}],
             "elements": [{"name": "n", "kind": "count"}]},
            {"name": "Pair", "key": [{"attr": "partner"}, {"attr": "client"}],
             "elements": [{"name": "t", "kind": "time_and_value", "attr": "amount",
                           "type": "integer", "max_days": 10}]},
        ],
        "params": [
            {"fn": "calc_aggregate", "name": "client_n", "object": "Client", "element": "n",
             "agg": "value"},
            {"fn": "calc_aggregate", "name": "partner_n", "object": "Partner", "element": "n",
             "agg": "value"},
            {"fn": "calc_aggregate", "name": "pair_sum", "object": "Pair", "element": "t",
             "agg": "sum"},
        ]
    });
    let s = std::sync::Arc::new(store(&defs));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chores = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.expire_step(8);
                assert!(!s.snapshot().unwrap().is_empty());
            }
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..3000i64 {
                    // Threads take the same clients and partners in different orders.
                    let j = if k % 2 == 0 { i } else { 2999 - i };
                    let ev = json!({"t": T0 + i, "client": format!("c{}", j % 7),
                                    "partner": format!("p{}", (j + k) % 3), "amount": 1});
                    s.apply(ev.to_string().as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    chores.join().unwrap();
    let counts = s.key_counts();
    assert_eq!(
        counts,
        vec![
            ("Client".to_string(), 7),
            ("Partner".to_string(), 3),
            ("Pair".to_string(), 21)
        ]
    );
    // Every one of the 12,000 events is counted once per client and once per partner
    // (`evaluate` answers as if its own event were applied: one more each).
    let mut clients = 0;
    for c in 0..7 {
        let ev = json!({"t": T0 + 3000, "client": format!("c{c}"), "partner": "none"});
        let r = s.evaluate(ev.to_string().as_bytes()).unwrap();
        clients += match get(&s, &r, "client_n") {
            Scalar::Int(n) => n - 1,
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(clients, 12_000);
    let mut partners = 0;
    for p in 0..3 {
        let ev = json!({"t": T0 + 3000, "client": "none", "partner": format!("p{p}")});
        let r = s.evaluate(ev.to_string().as_bytes()).unwrap();
        partners += match get(&s, &r, "partner_n") {
            Scalar::Int(n) => n - 1,
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(partners, 12_000);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take_varint(rest: &mut &[u8]) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = rest[0];
        *rest = &rest[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A version 2 snapshot rewritten in the version 1 layout (no section headers: a varint
/// entity count per shard, then the same entities), and the offsets of the version 2
/// section headers.
fn as_version_1(snap: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = snap[..8].to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    let mut rest = &snap[10..];
    // The layout (a length-prefixed string), the watermark (a zigzag varint).
    let start = rest;
    let layout_len = take_varint(&mut rest) as usize;
    rest = &rest[layout_len..];
    take_varint(&mut rest);
    out.extend_from_slice(&start[..start.len() - rest.len()]);
    let n_obj = take_varint(&mut rest);
    varint(&mut out, n_obj);
    let mut heads = Vec::new();
    for _ in 0..n_obj {
        let n_shards = take_varint(&mut rest);
        varint(&mut out, n_shards);
        for _ in 0..n_shards {
            heads.push(snap.len() - rest.len());
            let count = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")) as usize;
            varint(&mut out, count);
            out.extend_from_slice(&rest[16..16 + len]);
            rest = &rest[16 + len..];
        }
    }
    assert!(rest.is_empty());
    (out, heads)
}

#[test]
fn a_restore_decodes_shard_sections_in_parallel_and_still_reads_version_1() {
    let defs = seed_pack();
    let live = AggregateStore::new(Definitions::from_json(&defs).unwrap());
    let event = |i: i64, t: i64| {
        json!({"common": {"eventTime": t, "subtype": "LOAN_APP_CREATE",
                          "partnerId": format!("p{}", i % 3)},
               "consumer": {"userId": format!("u{i}"), "idDocumentNumber": format!("45{i:08}"),
                            "fio": "A B", "mobile": format!("8912{i:07}"), "birthdate": "1980",
                            "passportIssueRegion": "Moscow"},
               "employer": {"inn": format!("77{}", i % 400)},
               "device": {"ip": format!("10.0.{}.{}", i / 250, i % 250), "id": format!("d{i}")},
               "ext": {"requestResult": "REJECTED", "checkResultSpecial": "REJECTED"},
               "tx": {"amount": i * 10, "currency": "RUB", "cardNumber": "4276000011112222"}})
    };
    // Enough keys that the shard sections of every object hold some.
    for i in 0..3000i64 {
        apply(&live, event(i, T0 + i * 60_000));
    }
    let snap = live.snapshot().unwrap();
    let (v1, heads) = as_version_1(&snap);
    assert!(heads.len() > 64, "one section per object and shard");
    let defs_now = || Definitions::from_json(&defs).unwrap();
    for bytes in [&snap, &v1] {
        let restored = AggregateStore::restore(defs_now(), bytes).unwrap();
        assert_eq!(restored.key_counts(), live.key_counts());
        for i in [0, 17, 2999] {
            let probe = event(i, T0 + 3001 * 60_000).to_string();
            assert_eq!(
                restored.evaluate(probe.as_bytes()).unwrap(),
                live.evaluate(probe.as_bytes()).unwrap(),
                "key {i}"
            );
        }
    }

    // Damaged sections are refused, never a panic: a count beyond the entities, a
    // length past the end, a truncation, a trailing byte.
    let busy = *heads
        .iter()
        .find(|&&h| u64::from_le_bytes(snap[h..h + 8].try_into().expect("8 bytes")) > 0)
        .unwrap();
    let mut more = snap.clone();
    more[busy] += 1;
    let mut past = snap.clone();
    past[busy + 8..busy + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut longer = snap.clone();
    longer.push(0);
    for bad in [more, past, snap[..snap.len() - 1].to_vec(), longer] {
        let e = AggregateStore::restore(defs_now(), &bad).err().unwrap();
        assert_eq!(err_field(e), "snapshot");
    }
}
