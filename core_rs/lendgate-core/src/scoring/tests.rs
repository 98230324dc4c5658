use prost::Message;
use prost_reflect::{DynamicMessage, Kind as FieldKind, ReflectMessage, Value as PValue};
use serde_json::json;

use super::*;
use crate::aggregates::Definitions;
use crate::document::message_descriptor;
use crate::rules::{parse_rules, RuleSet};

const T0_S: i64 = 1_763_800_000;
const NOW_US: i64 = (T0_S + 86_400 * 60) * 1_000_000;

fn child(parent: &DynamicMessage, field: &str) -> DynamicMessage {
    match parent.descriptor().get_field_by_name(field).unwrap().kind() {
        FieldKind::Message(m) => DynamicMessage::new(m),
        other => panic!("{field} is {other:?}"),
    }
}

/// A `CheckApplicationRequest` for an applicant with `name`, `phone`, `birth`.
fn request(
    app_id: &str,
    subtype: i32,
    name: &str,
    phone: &str,
    birth: &str,
    minutes: i64,
) -> Vec<u8> {
    let mut req =
        DynamicMessage::new(message_descriptor("lendgate.v1.CheckApplicationRequest").unwrap());
    req.set_field_by_name(
        "request_id",
        PValue::String(format!("r-{app_id}-{subtype}")),
    );
    let mut app = child(&req, "application");
    app.set_field_by_name("application_id", PValue::String(app_id.into()));
    app.set_field_by_name("subtype", PValue::EnumNumber(subtype));
    let mut t = child(&app, "event_time");
    t.set_field_by_name("seconds", PValue::I64(T0_S + minutes * 60));
    app.set_field_by_name("event_time", PValue::Message(t));
    let mut person = child(&app, "applicant");
    person.set_field_by_name("last_name", PValue::String(name.into()));
    person.set_field_by_name("birth_date", PValue::String(birth.into()));
    let mut p = child(&person, "phones");
    p.set_field_by_name("number", PValue::String(phone.into()));
    p.set_field_by_name("kind", PValue::EnumNumber(1));
    person.set_field_by_name("phones", PValue::List(vec![PValue::Message(p)]));
    let mut employer = child(&person, "employer");
    employer.set_field_by_name("tax_id", PValue::String("7701".into()));
    person.set_field_by_name("employer", PValue::Message(employer));
    app.set_field_by_name("applicant", PValue::Message(person));
    req.set_field_by_name("application", PValue::Message(app));
    req.encode_to_vec()
}

struct Fixture {
    aggregates: AggregateStore,
    rules: RuleSet,
    lists: ListRegistry,
    index: MatchIndex,
    scorer: Scorer,
}

fn fixture() -> Fixture {
    let defs = json!({
        "time_attr": "common.eventTime",
        "allowed_lateness_seconds": 86400,
        "objects": [
            {"name": "Phone", "key": [{"attr": "consumer.mobile", "kind": "phone"}],
             "elements": [{"name": "names", "kind": "unique", "attr": "consumer.fio",
                           "type": "string", "max_records": 10}]},
            {"name": "Employer", "key": [{"attr": "employer.inn", "kind": "alnum"}],
             "elements": [{"name": "finished", "kind": "date_and_counter", "attr": "common.riskScore",
                           "type": "integer", "max_days": 30,
                           "filter": {"all": [{"attr": "common.subtype", "eq": "LOAN_APP_RESULT"}]}}]}
        ],
        "params": [
            {"name": "names", "fn": "calc_aggregate", "object": "Phone", "element": "names",
             "agg": "unique_count"},
            {"name": "finished", "fn": "calc_aggregate", "object": "Employer", "element": "finished",
             "agg": "sum", "window": {"unit": "days", "last": 30}}
        ]
    });
    let rules = parse_rules(
        &json!([
            {"rule_id": "s02", "status": "WORKING", "event_kind": "APPLICATION", "points": 200,
             "condition": "(params.names ?? 0) > 1"},
            {"rule_id": "t01", "status": "TEST", "event_kind": "APPLICATION", "points": 5,
             "condition": "application.application_id != ''"}
        ])
        .to_string(),
    )
    .unwrap();
    Fixture {
        aggregates: AggregateStore::new(Definitions::from_json(&defs.to_string()).unwrap()),
        rules: RuleSet::compile(rules, 432).unwrap(),
        lists: ListRegistry::new(),
        index: MatchIndex::new(),
        scorer: Scorer::new([("s02".to_owned(), vec!["phone".to_owned()])].into()),
    }
}

fn check(f: &mut Fixture, bytes: &[u8], partner: &str) -> CoreResult<(Scored, Json)> {
    let prepared = prepare(Kind::Application, bytes, NOW_US)?;
    assert!(prepared.violations.is_empty(), "{:?}", prepared.violations);
    let ctx = CheckContext {
        partner_id: partner,
        request_id: &prepared.request_id,
        report_name: "reports/x",
        receive_time_us: NOW_US,
        incident_id: "i1",
        elapsed_ns: 5,
    };
    let state = State {
        aggregates: &f.aggregates,
        rules: &f.rules,
        lists: &f.lists,
        index: &mut f.index,
        revision: "rev",
    };
    let scored = f.scorer.score(&prepared, &ctx, state, None)?;
    let doc = decode_document("lendgate.v1.Report", &scored.report)?;
    Ok((scored, doc))
}

#[test]
fn the_report_decodes_with_the_contract_and_carries_masked_matches() {
    let mut f = fixture();
    let (first, doc) = check(
        &mut f,
        &request("a1", 1, "Ivanov", "+79161234567", "1990-01-01", 0),
        "p1",
    )
    .unwrap();
    assert!(!first.incident);
    assert_eq!(doc["name"], "reports/x");
    assert_eq!(doc["event_kind"], "APPLICATION");
    assert_eq!(doc["application_subtype"], "LOAN_APP_CREATE");
    assert_eq!(doc["zone"], "GREY");
    assert_eq!(doc["recommended_action"], "APPROVE");
    assert_eq!(doc["test_rules"][0]["rule"], "rules/t01");
    assert_eq!(doc["test_rules"][0]["status"], "TEST");
    assert_eq!(doc["provenance"]["rule_pack_revision"], "rev");
    assert_eq!(doc["event_time"], "2025-11-22T08:26:40Z");
    assert!(doc.get("fired_rules").is_none() && doc.get("incident").is_none());

    let (second, doc) = check(
        &mut f,
        &request("b1", 1, "Petrov", "89161234567", "1991-02-02", 1),
        "p2",
    )
    .unwrap();
    assert!(second.incident && second.seq == first.seq + 1);
    assert_eq!(doc["recommended_action"], "REVIEW");
    assert_eq!(doc["incident"], "incidents/i1");
    let rule = &doc["fired_rules"][0];
    assert_eq!(rule["rule"], "rules/s02");
    assert_eq!(rule["status"], "WORKING");
    assert_eq!(
        rule["values"][0],
        json!({"name": "params.names", "value": 2.0})
    );
    let m = &rule["matches"][0];
    assert!(m.get("own_application").is_none() && m.get("application_id").is_none());
    assert_eq!(m["subtype"], "LOAN_APP_CREATE");
    assert_eq!(m["event_time"], "2025-11-22T00:00:00Z");
    assert_eq!(m["fields"][0]["field"], "application.applicant.phones");
    assert_eq!(m["fields"][0]["kind"], "EXACT");
    assert_eq!(m["fields"][0]["historical_value"], "+7******4567");
    assert_eq!(m["fields"][1]["kind"], "CONTRADICTION");
    assert_eq!(m["fields"][1]["historical_value"], "I***");
    assert_eq!(m["fields"][2]["historical_value"], "1990-**-**");
}

#[test]
fn an_event_beyond_the_lateness_changes_nothing() {
    let mut f = fixture();
    check(
        &mut f,
        &request("a1", 1, "A", "+79160000001", "1990-01-01", 60 * 24 * 40),
        "p",
    )
    .unwrap();
    let before = (
        f.index.snapshot().unwrap(),
        f.aggregates.snapshot().unwrap(),
    );
    let err = check(
        &mut f,
        &request("a2", 1, "B", "+79160000001", "1990-01-01", 0),
        "p",
    )
    .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidArgument { field, .. } if field == "application.event_time"),
        "{err:?}"
    );
    assert_eq!(
        before,
        (
            f.index.snapshot().unwrap(),
            f.aggregates.snapshot().unwrap()
        )
    );
}

#[test]
fn a_finish_reported_as_event_and_as_outcome_counts_once() {
    let mut f = fixture();
    let create = request("a1", 1, "A", "+79160000001", "1990-01-01", 0);
    check(&mut f, &create, "p").unwrap();
    check(
        &mut f,
        &request("a1", 4, "A", "+79160000001", "1990-01-01", 1),
        "p",
    )
    .unwrap();
    let t = (T0_S + 120) * 1_000_000;
    f.scorer
        .apply_outcome(&create, "p", t, "REFUSED", "", &f.aggregates, &mut f.index)
        .unwrap();
    // A resent result event does not count again either.
    let (_, _) = check(
        &mut f,
        &request("a1", 4, "A", "+79160000001", "1990-01-01", 3),
        "p",
    )
    .unwrap();
    let probe = aggregate_event(
        &json!({"applicant": {"employer": {"tax_id": "7701"}}, "subtype": "LOAN_APP_CREATE"}),
        "p",
        (T0_S + 240) * 1000,
        true,
    );
    let params = f.aggregates.evaluate_value(&probe).unwrap();
    assert_eq!(params[1].to_json(), json!(1), "{params:?}");
    // An outcome of an application without a result event counts its finish once.
    let other = request("a2", 1, "B", "+79160000002", "1990-01-01", 5);
    check(&mut f, &other, "p").unwrap();
    for _ in 0..2 {
        f.scorer
            .apply_outcome(
                &other,
                "p",
                t + 1,
                "REFUSED",
                "CONFIRMED",
                &f.aggregates,
                &mut f.index,
            )
            .unwrap();
    }
    let params = f.aggregates.evaluate_value(&probe).unwrap();
    assert_eq!(params[1].to_json(), json!(2), "{params:?}");
}

#[test]
fn garbage_and_invalid_events_are_told_apart() {
    assert!(matches!(
        prepare(Kind::Application, b"\x0a\x64\x01", NOW_US),
        Err(CoreError::InvalidArgument { .. })
    ));
    let empty = prepare(Kind::Application, b"", NOW_US).unwrap();
    assert!(empty.event.is_none());
    let future = request("a1", 1, "A", "+7916", "2999-01-01", 0);
    let p = prepare(Kind::Application, &future, NOW_US).unwrap();
    assert_eq!(p.violations[0].field, "application.applicant.birth_date");
    assert_eq!(p.request_id, "r-a1-1");
}

#[test]
fn the_model_sees_the_rules_without_its_score_and_rules_then_see_the_score() {
    let mut f = fixture();
    let rules = parse_rules(
        &json!([
            {"rule_id": "s02", "status": "WORKING", "event_kind": "APPLICATION", "points": 200,
             "condition": "(params.names ?? 0) > 0"},
            {"rule_id": "m01", "status": "WORKING", "event_kind": "APPLICATION", "points": 100,
             "condition": "(model.risk_score ?? 0) >= 900"}
        ])
        .to_string(),
    )
    .unwrap();
    f.rules = RuleSet::compile(rules, 432).unwrap();
    check(
        &mut f,
        &request("a1", 1, "Ivanov", "+79161234567", "1990-01-01", 0),
        "p1",
    )
    .unwrap();
    let bytes = request("a2", 1, "Petrov", "+79161234567", "1990-01-01", 1);
    let prepared = prepare(Kind::Application, &bytes, NOW_US).unwrap();
    let ctx = CheckContext {
        partner_id: "p1",
        request_id: &prepared.request_id,
        report_name: "reports/y",
        receive_time_us: NOW_US,
        incident_id: "",
        elapsed_ns: 0,
    };
    let mut seen = Vec::new();
    let mut model = |_: &Json, _: &ParamValues, rules: &Evaluation| {
        seen.push((
            rules.fraud_score,
            rules
                .fired_rules
                .iter()
                .map(|r| r.rule_id.clone())
                .collect::<Vec<_>>(),
        ));
        Ok(Some(ModelScore {
            risk_score: 950,
            name: "m".into(),
            version: "1".into(),
        }))
    };
    let state = State {
        aggregates: &f.aggregates,
        rules: &f.rules,
        lists: &f.lists,
        index: &mut f.index,
        revision: "rev",
    };
    let scored = f
        .scorer
        .score(&prepared, &ctx, state, Some(&mut model))
        .unwrap();
    // The model saw the verdict without a model score: s02 only.
    assert_eq!(seen, vec![(200, vec!["s02".to_owned()])]);
    // The report's rules saw the score: m01 fired too.
    let doc = decode_document("lendgate.v1.Report", &scored.report).unwrap();
    assert_eq!(doc["fraud_score"], 300);
    assert_eq!(doc["model_risk_score"], 950);
}

#[test]
fn rules_that_never_read_the_model_are_evaluated_once_and_agree() {
    // The fixture's rules read params and the application, not `model.*`: the scorer
    // takes the evaluation without a model score as the answer (no second pass), and
    // the report's verdict is the one of a check without a model at all.
    let mut with_model = fixture();
    let mut without = fixture();
    assert!(!with_model.rules.reads_model());
    for f in [&mut with_model, &mut without] {
        check(
            f,
            &request("a1", 1, "Ivanov", "+79161234567", "1990-01-01", 0),
            "p1",
        )
        .unwrap();
    }
    let bytes = request("a2", 1, "Petrov", "+79161234567", "1990-01-01", 1);
    let (_, plain) = check(&mut without, &bytes, "p1").unwrap();
    let prepared = prepare(Kind::Application, &bytes, NOW_US).unwrap();
    let ctx = CheckContext {
        partner_id: "p1",
        request_id: &prepared.request_id,
        report_name: "reports/x",
        receive_time_us: NOW_US,
        incident_id: "i1",
        elapsed_ns: 5,
    };
    let mut model = |_: &Json, _: &ParamValues, _: &Evaluation| {
        Ok(Some(ModelScore {
            risk_score: 950,
            name: "m".into(),
            version: "1".into(),
        }))
    };
    let state = State {
        aggregates: &with_model.aggregates,
        rules: &with_model.rules,
        lists: &with_model.lists,
        index: &mut with_model.index,
        revision: "rev",
    };
    let scored = with_model
        .scorer
        .score(&prepared, &ctx, state, Some(&mut model))
        .unwrap();
    let doc = decode_document("lendgate.v1.Report", &scored.report).unwrap();
    assert_eq!(doc["model_risk_score"], 950);
    assert_eq!(plain["fraud_score"], 200);
    for field in [
        "fraud_score",
        "zone",
        "fired_rules",
        "test_rules",
        "rule_errors",
    ] {
        assert_eq!(doc[field], plain[field], "{field}");
    }
}

#[test]
fn reading_the_model_is_decided_from_every_enabled_condition() {
    let set = |rules: serde_json::Value| {
        RuleSet::compile(parse_rules(&rules.to_string()).unwrap(), 432).unwrap()
    };
    let rule = |status: &str, condition: &str| {
        json!({"rule_id": "r1", "status": status, "event_kind": "APPLICATION",
               "points": 1, "condition": condition})
    };
    assert!(set(json!([rule("WORKING", "(model.risk_score ?? 0) > 5")])).reads_model());
    assert!(set(json!([rule("TEST", "model.risk_score == null")])).reads_model());
    assert!(set(
        json!([{"rule_id": "r1", "status": "WORKING", "event_kind": "APPLICATION",
        "sub_rules": [{"sub_rule_id": "a", "condition": "true", "points": 1},
                      {"sub_rule_id": "b", "condition": "(model.risk_score ?? 0) > 5",
                       "points": 1}]}])
    )
    .reads_model());
    // Disabled rules are not live; `modelled` and `params.model_x` are other names.
    assert!(!set(json!([rule("DISABLED", "(model.risk_score ?? 0) > 5")])).reads_model());
    assert!(!set(json!([rule("WORKING", "application.modelled == true")])).reads_model());
    assert!(!set(json!([rule("WORKING", "(params.model_x ?? 0) > 1")])).reads_model());
}
