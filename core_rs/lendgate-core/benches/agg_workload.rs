//! The synthetic workload shared by the aggregate bench and the profiling example:
//! the seed-003 rule pack and a deterministic population of loan-application and
//! payment events.

#![allow(dead_code)]

use lendgate_core::aggregates::Definitions;
use serde_json::{json, Value};

/// 2024-03-01T00:00:00Z.
pub const T0: i64 = 1_709_251_200_000;

/// The seed-003 pack's JSON text.
pub fn pack_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/aggregates/seed003_rules.json"
    );
    std::fs::read_to_string(path).expect("seed pack")
}

/// The seed-003 pack, compiled.
pub fn pack() -> Definitions {
    Definitions::from_json(&pack_text()).expect("seed pack compiles")
}

/// A loan-application / payment event of a synthetic population (deterministic);
/// event `i` is 50 ms after event `i - 1`.
pub fn event(i: u64, clients: u64) -> Value {
    event_at(i, clients, T0 + (i as i64) * 50)
}

/// [`event`] at an explicit time.
pub fn event_at(i: u64, clients: u64, t: i64) -> Value {
    let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let client = r % clients;
    let sub = [
        "LOAN_APP_CREATE",
        "LOAN_APP_RESULT",
        "LOAN_APP_SPECIAL_CHECK",
        "PAYMENT",
        "PAYMENT",
        "LOAN_APP_BKI_CHECK",
        "PAYMENT",
        "LOAN_APP_CREATE",
    ][(r >> 20) as usize % 8];
    json!({
        "common": {"eventTime": t, "subtype": sub,
                   "partnerId": format!("partner-{}", (r >> 8) % 40)},
        "consumer": {"userId": format!("user-{client}"), "fio": format!("Name{} Surname{}", client % 997, client),
                     "mobile": format!("+7 912 {:07}", client), "birthdate": "1990-01-01",
                     "idDocumentNumber": format!("45{:08}", client), "passportIssueRegion": format!("region-{}", client % 85)},
        // One application in ten has a co-borrower; co-borrowers rarely repeat.
        "coBorrower": if (r >> 40) % 10 == 0 {
            json!({"idDocumentNumber": format!("46{:08}", (r >> 16) % (clients * 10))})
        } else {
            Value::Null
        },
        "employer": {"inn": format!("77{:08}", (r >> 12) % 20_000)},
        "device": {"ip": format!("10.{}.{}.{}", (r >> 3) % 4, (r >> 5) % 256, (r >> 7) % 256), "id": format!("dev-{}", client * 2 + (r >> 30) % 2)},
        "ext": {"requestResult": if r % 3 == 0 { "REJECTED" } else { "APPROVED" },
                "checkResultSpecial": if r % 5 == 0 { "REJECTED" } else { "OK" }, "bkiDefault90and12": r % 7},
        "tx": {"amount": (r % 100_000) as f64 / 10.0, "currency": "RUB", "cardNumber": "4276123456789012"},
    })
}

/// A pack over `lendgate.v1.ApplicationEvent` fields (proto names): per applicant, per
/// partner, per device and per passport region, with the history parameters.
pub fn proto_pack() -> Definitions {
    let text = json!({
        "time_attr": "event_time", "allowed_lateness_seconds": 3600, "retention_days": 180,
        "objects": [
            {"name": "Client", "key": [{"attr": "applicant.client_id", "kind": "text"}], "elements": [
                {"name": "amounts", "kind": "time_and_value", "attr": "loan_amount.amount_minor", "type": "integer", "max_records": 200, "max_days": 30},
                {"name": "n", "kind": "count"},
                {"name": "passports", "kind": "unique", "attr": "applicant.passport.number", "max_records": 20}]},
            {"name": "Partner", "key": [{"attr": "partner_id", "kind": "text"}], "elements": [
                {"name": "created", "kind": "date_and_counter", "filter": {"all": [{"attr": "subtype", "eq": "LOAN_APP_CREATE"}]}},
                {"name": "rejected", "kind": "date_and_counter", "filter": {"all": [{"attr": "result", "eq": "REJECTED"}]}}]},
            {"name": "Device", "key": [{"attr": "device.device_id", "kind": "text"}], "elements": [
                {"name": "clients", "kind": "time_and_last_unique_value", "attr": "applicant.client_id", "max_records": 50}]},
            {"name": "Region", "key": [{"attr": "applicant.passport.issuing_region", "kind": "text"}], "elements": [
                {"name": "apps", "kind": "date_and_counter"}]}
        ],
        "params": [
            {"fn": "calc_aggregate", "name": "client_median_30d", "object": "Client", "element": "amounts", "agg": "median", "window": {"unit": "days", "last": 30}},
            {"fn": "calc_aggregate", "name": "client_n", "object": "Client", "element": "n", "agg": "value"},
            {"fn": "calc_aggregate", "name": "client_other_passports", "object": "Client", "element": "passports", "agg": "count", "except": "value"},
            {"fn": "calc_aggregate", "name": "partner_created_7d", "object": "Partner", "element": "created", "agg": "sum", "window": {"unit": "days", "last": 7}},
            {"fn": "calc_aggregate", "name": "partner_rejected_7d", "object": "Partner", "element": "rejected", "agg": "sum", "window": {"unit": "days", "last": 7}},
            {"fn": "ratio", "name": "partner_reject_ratio", "a": {"param": "partner_rejected_7d"}, "b": {"param": "partner_created_7d"}},
            {"fn": "calc_aggregate", "name": "device_clients_30d", "object": "Device", "element": "clients", "agg": "unique_count", "window": {"unit": "days", "last": 30}},
            {"fn": "calc_aggregate", "name": "region_apps_1d", "object": "Region", "element": "apps", "agg": "sum", "window": {"unit": "days", "last": 1}},
            {"fn": "event_count", "name": "apps_24h", "key": [{"attr": "applicant.client_id", "kind": "text"}], "window": {"unit": "hours", "last": 24}, "filter": {"all": [{"attr": "subtype", "eq": "LOAN_APP_CREATE"}]}},
            {"fn": "save", "name": "previous_passport", "key": [{"attr": "applicant.client_id", "kind": "text"}], "attr": "applicant.passport.number", "window": {"unit": "days", "last": 30}},
            {"fn": "compare_fl", "name": "passport_mismatch_pct", "a": {"attr": "applicant.passport.number"}, "b": {"param": "previous_passport"}}
        ]
    });
    Definitions::from_json(&text.to_string()).expect("proto pack compiles")
}

/// Event `i` of the synthetic population as `lendgate.v1.ApplicationEvent` bytes,
/// filled like a real application (names, passport, device, bureau, attributes).
pub fn proto_event(i: u64, clients: u64) -> Vec<u8> {
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, Value as P};
    let d = |n: &str| lendgate_core::document::message_descriptor(n).expect("descriptor");
    let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let client = r % clients;
    let t = T0 + (i as i64) * 50;
    let mut m = DynamicMessage::new(d("lendgate.v1.ApplicationEvent"));
    let set = |m: &mut DynamicMessage, k: &str, v: P| m.set_field_by_name(k, v);
    set(&mut m, "application_id", P::String(format!("app-{i}")));
    set(&mut m, "subtype", P::EnumNumber(1 + (r >> 20) as i32 % 4));
    let mut ts = DynamicMessage::new(d("google.protobuf.Timestamp"));
    ts.set_field_by_name("seconds", P::I64(t / 1000));
    ts.set_field_by_name("nanos", P::I32((t % 1000) as i32 * 1_000_000));
    set(&mut m, "event_time", P::Message(ts));
    set(
        &mut m,
        "partner_id",
        P::String(format!("partner-{}", (r >> 8) % 40)),
    );
    set(
        &mut m,
        "result",
        P::EnumNumber(if r % 3 == 0 { 2 } else { 1 }),
    );
    set(
        &mut m,
        "branch_id",
        P::String(format!("branch-{}", (r >> 9) % 400)),
    );
    let mut money = DynamicMessage::new(d("lendgate.v1.Money"));
    money.set_field_by_name("amount_minor", P::I64((r % 100_000) as i64 * 100));
    money.set_field_by_name("currency", P::String("RUB".into()));
    set(&mut m, "loan_amount", P::Message(money));
    let mut person = DynamicMessage::new(d("lendgate.v1.Person"));
    person.set_field_by_name("client_id", P::String(format!("user-{client}")));
    person.set_field_by_name("last_name", P::String(format!("Surname{client}")));
    person.set_field_by_name("first_name", P::String(format!("Name{}", client % 997)));
    person.set_field_by_name("birth_date", P::String("1990-01-01".into()));
    let mut passport = DynamicMessage::new(d("lendgate.v1.Passport"));
    passport.set_field_by_name("series", P::String("4510".into()));
    passport.set_field_by_name("number", P::String(format!("{:06}", client % 1_000_000)));
    passport.set_field_by_name(
        "issuing_region",
        P::String(format!("region-{}", client % 85)),
    );
    person.set_field_by_name("passport", P::Message(passport));
    person.set_field_by_name(
        "emails",
        P::List(vec![P::String(format!("user{client}@example.org"))]),
    );
    set(&mut m, "applicant", P::Message(person));
    set(
        &mut m,
        "ip_address",
        P::String(format!(
            "10.{}.{}.{}",
            (r >> 3) % 4,
            (r >> 5) % 256,
            (r >> 7) % 256
        )),
    );
    let mut device = DynamicMessage::new(d("lendgate.v1.Device"));
    device.set_field_by_name(
        "device_id",
        P::String(format!("dev-{}", client * 2 + (r >> 30) % 2)),
    );
    device.set_field_by_name("model", P::String("Pixel 8".into()));
    set(&mut m, "device", P::Message(device));
    set(
        &mut m,
        "session_id",
        P::String(format!("s-{}", r % 1_000_000_007)),
    );
    m.encode_to_vec()
}

/// The seed-003 pack over `lendgate.v1.ApplicationEvent` fields
/// (`testdata/aggregates/seed003_proto_rules.json`), compiled.
pub fn seed003_proto_pack() -> Definitions {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/aggregates/seed003_proto_rules.json"
    );
    let text = std::fs::read_to_string(path).expect("seed proto pack");
    Definitions::from_json(&text).expect("seed proto pack compiles")
}

/// Event `i` of the population of [`event`] as `lendgate.v1.ApplicationEvent` bytes,
/// with every field [`seed003_proto_pack`] reads (the stage-specific ones on their
/// stage: bureau facts on a bureau check, the special result on a special check, the
/// result on a result), 50 ms after event `i - 1`.
pub fn seed003_proto_event(i: u64, clients: u64) -> Vec<u8> {
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, Value as P};
    let d = |n: &str| lendgate_core::document::message_descriptor(n).expect("descriptor");
    let msg = |name: &str, fields: Vec<(&str, P)>| {
        let mut m = DynamicMessage::new(d(name));
        for (k, v) in fields {
            m.set_field_by_name(k, v);
        }
        P::Message(m)
    };
    let s = |x: String| P::String(x);
    let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let client = r % clients;
    let t = T0 + (i as i64) * 50;
    // CREATE, RESULT, SPECIAL_CHECK, CREATE, CREATE, BKI_CHECK, CREATE, CREATE.
    let subtype = [1, 4, 3, 1, 1, 2, 1, 1][(r >> 20) as usize % 8];
    let mut fields = vec![
        ("application_id", s(format!("app-{i}"))),
        ("subtype", P::EnumNumber(subtype)),
        (
            "event_time",
            msg(
                "google.protobuf.Timestamp",
                vec![
                    ("seconds", P::I64(t / 1000)),
                    ("nanos", P::I32((t % 1000) as i32 * 1_000_000)),
                ],
            ),
        ),
        ("partner_id", s(format!("partner-{}", (r >> 8) % 40))),
        ("branch_id", s(format!("branch-{}", (r >> 9) % 400))),
        (
            "loan_amount",
            msg(
                "lendgate.v1.Money",
                vec![
                    ("amount_minor", P::I64((r % 100_000) as i64 * 100)),
                    ("currency", s("RUB".into())),
                ],
            ),
        ),
        (
            "applicant",
            msg(
                "lendgate.v1.Person",
                vec![
                    ("client_id", s(format!("user-{client}"))),
                    ("last_name", s(format!("Surname{client}"))),
                    ("first_name", s(format!("Name{}", client % 997))),
                    ("birth_date", s("1990-01-01".into())),
                    (
                        "passport",
                        msg(
                            "lendgate.v1.Passport",
                            vec![
                                ("series", s("4510".into())),
                                ("number", s(format!("{:06}", client % 1_000_000))),
                                ("issuing_region", s(format!("region-{}", client % 85))),
                            ],
                        ),
                    ),
                    (
                        "employer",
                        msg(
                            "lendgate.v1.Employer",
                            vec![("tax_id", s(format!("77{:08}", (r >> 12) % 20_000)))],
                        ),
                    ),
                    (
                        "emails",
                        P::List(vec![s(format!("user{client}@example.org"))]),
                    ),
                ],
            ),
        ),
        (
            "ip_address",
            s(format!(
                "10.{}.{}.{}",
                (r >> 3) % 4,
                (r >> 5) % 256,
                (r >> 7) % 256
            )),
        ),
        (
            "device",
            msg(
                "lendgate.v1.Device",
                vec![
                    (
                        "device_id",
                        s(format!("dev-{}", client * 2 + (r >> 30) % 2)),
                    ),
                    ("msisdn", s(format!("+7 912 {:07}", client))),
                    ("imei", s(format!("35{:013}", client * 2 + (r >> 30) % 2))),
                    ("model", s("Pixel 8".into())),
                ],
            ),
        ),
        ("session_id", s(format!("s-{}", r % 1_000_000_007))),
    ];
    let rejected = P::EnumNumber(2);
    let approved = P::EnumNumber(1);
    match subtype {
        2 => fields.push((
            "bureau_check",
            msg(
                "lendgate.v1.BureauCheck",
                vec![
                    ("bureau", s("NBKI".into())),
                    ("default_90_12_count", P::I32((r % 7) as i32)),
                ],
            ),
        )),
        3 => fields.push((
            "special_check_result",
            if r % 5 == 0 { rejected } else { approved },
        )),
        4 => fields.push(("result", if r % 3 == 0 { rejected } else { approved })),
        _ => {}
    }
    let mut m = DynamicMessage::new(d("lendgate.v1.ApplicationEvent"));
    for (k, v) in fields {
        m.set_field_by_name(k, v);
    }
    m.encode_to_vec()
}
