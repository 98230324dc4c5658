use serde_json::json;

use super::*;
use crate::lists::{Entry, EntryKind, ListType, WriteMode};

const T0: i64 = 1_700_000_000_000;

fn rule(id: &str, status: RuleStatus, condition: &str, points: i64) -> RuleDef {
    RuleDef {
        rule_id: id.to_string(),
        display_name: format!("Rule {id}"),
        description: String::new(),
        recommendation: String::new(),
        status,
        event_kind: EventKind::Application,
        condition: condition.to_string(),
        points,
        sub_rules: Vec::new(),
        valid_from: None,
        valid_until: None,
        tags: Vec::new(),
        version: 1,
    }
}

fn doc() -> Value {
    Value::from(&json!({
        "application": {
            "amount": 50000,
            "applicant": {"inn": "770123456789", "age": 19},
            "ip_address": "10.1.2.3"
        },
        "params": {"PhoneName": {"uniqueBirthDates": 3}},
        "model": {"risk_score": 910}
    }))
}

fn lists() -> ListRegistry {
    let r = ListRegistry::new();
    r.create("bad-inn", EntryKind::TaxId, ListType::Black)
        .unwrap()
        .write(
            vec![Entry {
                value: "770123456789".to_string(),
                expire_time: Some(T0 + 1000),
                comment: String::new(),
                create_time: 0,
                author: "t".to_string(),
            }],
            WriteMode::Merge,
        );
    r
}

fn run(rules: Vec<RuleDef>) -> Evaluation {
    RuleSet::compile(rules, DEFAULT_ZONE_THRESHOLD)
        .unwrap()
        .evaluate(&doc(), EventKind::Application, T0, &lists())
}

#[test]
fn statuses_decide_what_counts() {
    let out = run(vec![
        rule("w", RuleStatus::Working, "application.amount > 1000", 100),
        rule("t", RuleStatus::Test, "true", 500),
        rule("u", RuleStatus::Tuning, "true", 500),
        rule("d", RuleStatus::Disabled, "true", 500),
    ]);
    assert_eq!(out.fraud_score, 100);
    assert_eq!(out.zone, Zone::Grey);
    let ids = |v: &[FiredRule]| v.iter().map(|r| r.rule_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&out.fired_rules), ["w"]);
    assert_eq!(ids(&out.test_rules), ["t", "u"]);
    assert_eq!(out.rules_evaluated, 3);
}

#[test]
fn black_zone_at_threshold_and_order_by_id() {
    let out = run(vec![
        rule("r2", RuleStatus::Working, "model.risk_score >= 900", 232),
        rule(
            "r1",
            RuleStatus::Working,
            "params.PhoneName.uniqueBirthDates > 2",
            200,
        ),
        rule("r0", RuleStatus::Working, "false", 1000),
    ]);
    assert_eq!(out.fraud_score, 432);
    assert_eq!(out.zone, Zone::Black);
    assert_eq!(out.fired_rules[0].rule_id, "r1");
    assert_eq!(out.fired_rules[1].rule_id, "r2");
    assert_eq!(
        out.fired_rules[0].values,
        vec![RuleValue {
            name: "params.PhoneName.uniqueBirthDates".to_string(),
            value: json!(3)
        }]
    );
}

#[test]
fn composite_rules_sum_fired_sub_rules() {
    let mut r = rule("c", RuleStatus::Working, "application.amount > 0", 999);
    let sub = |id: &str, cond: &str, points| SubRuleDef {
        sub_rule_id: id.to_string(),
        display_name: id.to_string(),
        condition: cond.to_string(),
        points,
    };
    r.sub_rules = vec![
        sub("young", "application.applicant.age < 21", 50),
        sub("big", "application.amount > 10000", 70),
        sub("never", "false", 1000),
        sub("offset", "true", -20),
    ];
    let out = run(vec![r.clone()]);
    assert_eq!(out.fraud_score, 100);
    let fired = &out.fired_rules[0];
    assert_eq!(fired.points, 100);
    let subs: Vec<&str> = fired
        .sub_rules
        .iter()
        .map(|s| s.sub_rule_id.as_str())
        .collect();
    assert_eq!(subs, ["young", "big", "offset"]);
    assert_eq!(
        fired.sub_rules[0].values[0].name,
        "application.applicant.age"
    );
    // No sub-rule fires: the rule does not fire.
    r.sub_rules.retain(|s| s.sub_rule_id == "never");
    assert!(run(vec![r]).fired_rules.is_empty());
}

#[test]
fn negative_totals_are_clamped_to_zero() {
    let out = run(vec![rule("neg", RuleStatus::Working, "true", -50)]);
    assert_eq!(out.fraud_score, 0);
}

#[test]
fn validity_window_uses_event_time() {
    let mut r = rule("v", RuleStatus::Working, "true", 10);
    r.valid_from = Some("2023-11-14T22:13:20Z".to_string()); // == T0
    r.valid_until = Some("2023-11-14T22:13:21Z".to_string()); // T0 + 1 s
    let set = RuleSet::compile(vec![r], DEFAULT_ZONE_THRESHOLD).unwrap();
    let at = |t| {
        set.evaluate(&doc(), EventKind::Application, t, &lists())
            .fraud_score
    };
    assert_eq!(at(T0 - 1), 0);
    assert_eq!(at(T0), 10);
    assert_eq!(at(T0 + 999), 10);
    assert_eq!(at(T0 + 1000), 0);
}

#[test]
fn event_kind_filters_rules() {
    let mut r = rule("p", RuleStatus::Working, "true", 10);
    r.event_kind = EventKind::Payment;
    assert_eq!(run(vec![r]).rules_evaluated, 0);
}

#[test]
fn in_list_uses_event_time_and_shows_in_trace() {
    let r = rule(
        "l",
        RuleStatus::Working,
        "in_list('bad-inn', application.applicant.inn)",
        300,
    );
    let set = RuleSet::compile(vec![r], DEFAULT_ZONE_THRESHOLD).unwrap();
    let l = lists();
    let out = set.evaluate(&doc(), EventKind::Application, T0, &l);
    assert_eq!(out.fraud_score, 300);
    let names: Vec<&str> = out.fired_rules[0]
        .values
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "application.applicant.inn",
            "in_list(\"bad-inn\", \"770123456789\")"
        ]
    );
    let later = set.evaluate(&doc(), EventKind::Application, T0 + 1000, &l);
    assert_eq!(later.fraud_score, 0);
}

#[test]
fn runtime_errors_are_isolated_per_rule() {
    let out = run(vec![
        rule(
            "a-type",
            RuleStatus::Working,
            "application.amount + 'x' > 1",
            10,
        ),
        rule(
            "b-list",
            RuleStatus::Working,
            "in_list('nope', application.ip_address)",
            10,
        ),
        rule("c-notbool", RuleStatus::Working, "application.amount", 10),
        rule("d-ok", RuleStatus::Working, "true", 7),
    ]);
    assert_eq!(out.fraud_score, 7);
    let errors: Vec<(&str, &str)> = out
        .rule_errors
        .iter()
        .map(|e| (e.rule_id.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors[0].1.contains("not supported"), "{errors:?}");
    assert!(errors[1].1.contains("unknown list `nope`"), "{errors:?}");
    assert!(errors[2].1.contains("must give a bool"), "{errors:?}");
}

#[test]
fn compile_errors_name_rule_field_and_position() {
    let bad = rule("bad", RuleStatus::Working, "application.amount > ", 1);
    let err = RuleSet::compile(
        vec![rule("ok", RuleStatus::Working, "true", 1), bad],
        DEFAULT_ZONE_THRESHOLD,
    )
    .unwrap_err();
    match err {
        CoreError::InvalidArgument { field, reason } => {
            assert_eq!(field, "rule.condition");
            assert!(
                reason.starts_with("rule `bad`: syntax error at position 21"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let dup = vec![
        rule("x", RuleStatus::Working, "true", 1),
        rule("x", RuleStatus::Test, "true", 1),
    ];
    assert!(RuleSet::compile(dup, DEFAULT_ZONE_THRESHOLD).is_err());
    let unknown = rule("f", RuleStatus::Working, "in_lst('a', 1)", 1);
    assert!(validate_rule(&unknown).is_err());
    let mut window = rule("w", RuleStatus::Working, "true", 1);
    window.valid_from = Some("2024-01-02T00:00:00Z".to_string());
    window.valid_until = Some("2024-01-01T00:00:00Z".to_string());
    assert!(validate_rule(&window).is_err());
}

#[test]
fn rules_parse_from_json() {
    let rules = parse_rules(
        r#"[{"rule_id": "r1", "status": "WORKING", "event_kind": "APPLICATION",
             "condition": "true", "points": 5, "tags": ["seed-003"]}]"#,
    )
    .unwrap();
    assert_eq!(rules[0].tags, ["seed-003"]);
    assert!(parse_rules(r#"[{"rule_id": "r1", "status": "ON"}]"#).is_err());
}
