//! Bad input: every kind of malformed event gives `InvalidArgument` naming the field,
//! never a panic, and leaves the state exactly as it was (checked by snapshot bytes).

use lendgate_core::aggregates::{AggregateStore, Definitions};
use lendgate_core::CoreError;
use serde_json::json;

const T0: i64 = 1_709_251_200_000;

fn store() -> AggregateStore {
    let defs = json!({
        "time_attr": "common.eventTime",
        "objects": [
            {"name": "Client", "key": [{"attr": "client.id", "kind": "text"}],
             "elements": [{"name": "n", "kind": "count"},
                          {"name": "amounts", "kind": "time_and_value", "attr": "amount", "type": "integer"}]},
            {"name": "Phone", "key": [{"attr": "phone", "kind": "phone"}],
             "elements": [{"name": "names", "kind": "unique", "attr": "name", "type": "string"}]}
        ],
        "params": [{"fn": "calc_aggregate", "name": "n", "object": "Client", "element": "n", "agg": "value"}]
    });
    AggregateStore::new(Definitions::from_json(&defs.to_string()).expect("ok"))
}

fn good(t: i64) -> serde_json::Value {
    json!({"common": {"eventTime": t}, "client": {"id": "c1"}, "amount": 5,
           "phone": "+7 912 000 11 22", "name": "Ivan"})
}

/// Applies `event` and expects `InvalidArgument` on `field`, with the state untouched.
fn refused(store: &AggregateStore, event: &[u8], field: &str) {
    let before = store.snapshot().expect("ok");
    match store.apply(event) {
        Err(CoreError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected InvalidArgument on {field}, got {other:?}"),
    }
    assert_eq!(
        store.snapshot().expect("ok"),
        before,
        "state changed by a refused event"
    );
}

#[test]
fn malformed_events_are_refused_whole() {
    let s = store();
    s.apply(good(T0).to_string().as_bytes()).expect("ok");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut ev = good(T0 + 1000);
        f(&mut ev);
        ev.to_string().into_bytes()
    };
    // Wrong types: the Client object would apply, but the Phone object's value is bad.
    refused(&s, &with(&|e| e["amount"] = json!("lots")), "amount");
    refused(&s, &with(&|e| e["amount"] = json!(1.5)), "amount");
    refused(&s, &with(&|e| e["name"] = json!({"first": "Ivan"})), "name");
    refused(
        &s,
        &with(&|e| e["client"]["id"] = json!(["c1"])),
        "client.id",
    );
    refused(&s, &with(&|e| e["phone"] = json!("12")), "phone");
    // Missing or absurd time.
    refused(&s, &with(&|e| e["common"] = json!({})), "common.eventTime");
    refused(
        &s,
        &with(&|e| e["common"]["eventTime"] = json!("1900-01-01T00:00:00Z")),
        "common.eventTime",
    );
    refused(
        &s,
        &with(&|e| e["common"]["eventTime"] = json!(-2_208_988_800_000i64)),
        "common.eventTime",
    );
    refused(
        &s,
        &with(&|e| e["common"]["eventTime"] = json!("9999-12-31T23:59:59Z")),
        "common.eventTime",
    );
    refused(
        &s,
        &with(&|e| e["common"]["eventTime"] = json!(i64::MAX)),
        "common.eventTime",
    );
    refused(
        &s,
        &with(&|e| e["common"]["eventTime"] = json!(true)),
        "common.eventTime",
    );
    // Huge strings, in a key and in a value.
    let huge = "x".repeat(5000);
    refused(&s, &with(&|e| e["client"]["id"] = json!(huge)), "client.id");
    refused(&s, &with(&|e| e["name"] = json!(huge)), "name");
    // Not an event at all.
    refused(&s, b"", "event");
    refused(&s, b"[1, 2]", "event");
    refused(&s, b"{\"common\": ", "event");
    refused(&s, &[0xff, 0xfe, 0x00], "event");
}

#[test]
fn missing_or_empty_keys_skip_the_object() {
    let s = store();
    let mut ev = good(T0);
    ev["client"] = json!({"id": "   "});
    ev.as_object_mut().expect("ok").remove("phone");
    let out = s.apply(ev.to_string().as_bytes()).expect("ok");
    assert_eq!(out, vec![lendgate_core::aggregates::Scalar::Null]);
    assert!(s.key_counts().iter().all(|(_, n)| *n == 0));
    // Attributes the definitions do not read are ignored, whatever their type.
    let mut ev = good(T0);
    ev["unknown"] = json!({"deep": [1, {"x": null}]});
    s.apply(ev.to_string().as_bytes()).expect("ok");
}

#[test]
fn unknown_definition_fields_and_messages_are_named() {
    let err = Definitions::from_json(
        r#"{"objects": [{"name": "A", "key": [{"attr": "a"}], "elements": [], "colour": 1}]}"#,
    )
    .expect_err("an error");
    assert!(
        matches!(err, CoreError::InvalidArgument { ref field, .. } if field.starts_with("objects[0]")),
        "{err:?}"
    );
    let s = store();
    // An unknown message type is the caller's mistake, not the event's: NotFound.
    let err = s
        .apply_proto("lendgate.v1.NoSuchMessage", b"")
        .expect_err("an error");
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    let err = s
        .apply_proto("lendgate.v1.ApplicationEvent", &[0xff, 0xff, 0xff])
        .expect_err("an error");
    assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
}

#[test]
fn protobuf_events_are_decoded_in_rust() {
    let defs = json!({
        "time_attr": "event_time",
        "objects": [{"name": "Partner", "key": [{"attr": "partner_id", "kind": "text"}],
                     "elements": [{"name": "n", "kind": "count"}]}],
        "params": [{"fn": "calc_aggregate", "name": "n", "object": "Partner", "element": "n", "agg": "value"}]
    });
    let s = AggregateStore::new(Definitions::from_json(&defs.to_string()).expect("ok"));
    // ApplicationEvent { partner_id (4) = "p1", event_time (3) = Timestamp { seconds (1) } }
    let secs: u64 = 1_709_251_200;
    let mut ts = vec![0x08];
    let mut x = secs;
    while x >= 0x80 {
        ts.push((x as u8) | 0x80);
        x >>= 7;
    }
    ts.push(x as u8);
    let mut msg = vec![0x1a, ts.len() as u8];
    msg.extend_from_slice(&ts);
    msg.extend_from_slice(&[0x22, 2, b'p', b'1']);
    let a = s
        .apply_proto("lendgate.v1.ApplicationEvent", &msg)
        .expect("ok");
    let b = s
        .apply_proto("lendgate.v1.ApplicationEvent", &msg)
        .expect("ok");
    use lendgate_core::aggregates::Scalar;
    assert_eq!((a, b), (vec![Scalar::Int(1)], vec![Scalar::Int(2)]));
}
