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
