//! The rule pack, lists and event of the rules benches, shared with
//! `examples/rules_profile.rs` (callgrind).

use lendgate_core::lists::{Entry, EntryKind, ListRegistry, ListType, WriteMode};
use lendgate_core::rules::{EventKind, RuleDef, RuleStatus, SubRuleDef};
use serde_json::json;

pub const AT: i64 = 1_767_225_600_000; // 2026-01-01

/// An application event as rule conditions see it (proto field names).
pub fn document() -> serde_json::Value {
    json!({
        "application": {
            "application_id": "a-1",
            "subtype": "LOAN_APP_CREATE",
            "event_time": "2026-01-01T10:00:00Z",
            "product": "PAYDAY",
            "amount": {"amount_minor": 3_000_000, "currency": "RUB"},
            "term_days": 30,
            "channel": "ONLINE",
            "ip_address": "10.20.30.40",
            "device_id": "dev-7731",
            "applicant": {
                "last_name": "Petrov", "first_name": "Ivan", "birth_date": "2005-03-01",
                "tax_id": "770123456789",
                "passport": {"number": "4506123456", "issue_date": "2020-03-10", "issuing_region": "77"},
                "phones": [{"number": "79123456789", "kind": "MOBILE"}],
                "email": "ivan@example.com",
                "employer": {"tax_id": "7701234567", "name": "Romashka", "phone": "74951234567"},
                "monthly_income": {"amount_minor": 4_500_000, "currency": "RUB"},
                "registration_address": {"region": "77", "city": "Moscow"},
                "actual_address": {"region": "50", "city": "Khimki"}
            },
            "attributes": {"partner_segment": "new"}
        },
        "params": {
            "PhoneAndName": {"uniqueBirthDates": 2, "countToday": 1},
            "Passport": {"uniqueBirthDates": 1, "uniqueNames": 1, "requests30d": 4},
            "EmployerINNAndIP": {"countToday": 6},
            "Device": {"uniqueApplicants30d": 3},
            "IP": {"uniqueApplicantsToday": 2, "uniqueRegionsToday": 1},
            "EmployerPhone": {"uniqueEmployerINNs": 2}
        },
        "model": {"risk_score": 640}
    })
}

pub fn rule(id: &str, condition: &str, points: i64) -> RuleDef {
    RuleDef {
        rule_id: id.to_string(),
        display_name: id.to_string(),
        description: String::new(),
        recommendation: String::new(),
        status: RuleStatus::Working,
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

/// Thirty rules of the kinds seed 003 describes: parameter thresholds, list
/// membership, field contradictions, model score, two composites.
pub fn pack() -> Vec<RuleDef> {
    let a = "application";
    let mut rules = vec![
        rule("r01", "params.PhoneAndName.uniqueBirthDates > 1", 150),
        rule("r02", "params.Passport.uniqueBirthDates > 1", 200),
        rule("r03", "params.Passport.uniqueNames > 1", 150),
        rule("r04", "params.EmployerINNAndIP.countToday >= 5", 100),
        rule("r05", "params.Device.uniqueApplicants30d >= 3", 120),
        rule("r06", "params.IP.uniqueApplicantsToday >= 5", 80),
        rule("r07", "params.IP.uniqueRegionsToday > 2", 60),
        rule("r08", "params.EmployerPhone.uniqueEmployerINNs > 1", 90),
        rule("r09", &format!("in_list('one-day-companies', {a}.applicant.employer.tax_id)"), 300),
        rule("r10", &format!("in_list('invalid-passports', {a}.applicant.passport.number)"), 432),
        rule("r11", &format!("in_list('bad-phones', {a}.applicant.phones[0].number)"), 200),
        rule("r12", &format!("in_list('bad-ips', {a}.ip_address)"), 150),
        rule("r13", &format!("in_list('bad-devices', {a}.device_id)"), 150),
        rule("r14", "model.risk_score >= 900", 200),
        rule("r15", &format!("{a}.amount.amount_minor > {a}.applicant.monthly_income.amount_minor * 3"), 50),
        rule("r16", &format!("{a}.applicant.registration_address.region != {a}.applicant.passport.issuing_region"), 20),
        rule("r17", &format!("{a}.applicant.actual_address.region not in ['77', '50', '78']"), 30),
        rule("r18", &format!("{a}.product == 'PAYDAY' and {a}.term_days < 7"), 40),
        rule("r19", &format!("{a}.channel == 'ONLINE' and {a}.attributes.partner_segment == 'new' and {a}.amount.amount_minor > 5000000"), 60),
        rule("r20", &format!("endsWith({a}.applicant.email, '@tempmail.io')"), 70),
        rule("r21", &format!("some({a}.applicant.phones, #.kind == 'MOBILE' and startsWith(#.number, '7999'))"), 40),
        rule("r22", &format!("{a}.applicant.employer.phone == {a}.applicant.phones[0].number"), 120),
        rule("r23", &format!("d({a}.applicant.passport.issue_date).diff(d({a}.event_time), 'day') > -30"), 80),
        rule("r24", &format!("d({a}.applicant.birth_date).diff(d({a}.event_time), 'year') < -70"), 30),
        rule("r25", &format!("params.Passport.requests30d > 10 and {a}.subtype == 'LOAN_APP_CREATE'"), 90),
        rule("r26", &format!("len({a}.applicant.last_name) < 2"), 50),
        rule("r27", &format!("{a}.applicant.first_name == {a}.applicant.last_name"), 60),
        rule("r28", "params.PhoneAndName.countToday > 3", 50),
    ];
    let mut c1 = rule("r29", "", 0);
    c1.sub_rules = vec![
        SubRuleDef {
            sub_rule_id: "young".into(),
            display_name: String::new(),
            condition:
                "d(application.applicant.birth_date).diff(d(application.event_time), 'year') > -21"
                    .into(),
            points: 40,
        },
        SubRuleDef {
            sub_rule_id: "big".into(),
            display_name: String::new(),
            condition: "application.amount.amount_minor > 2000000".into(),
            points: 30,
        },
        SubRuleDef {
            sub_rule_id: "night".into(),
            display_name: String::new(),
            condition: "d(application.event_time).hour() < 6".into(),
            points: 20,
        },
    ];
    let mut c2 = rule("r30", "application.channel == 'ONLINE'", 0);
    c2.sub_rules = vec![
        SubRuleDef {
            sub_rule_id: "dev".into(),
            display_name: String::new(),
            condition: "params.Device.uniqueApplicants30d > 1".into(),
            points: 25,
        },
        SubRuleDef {
            sub_rule_id: "ip".into(),
            display_name: String::new(),
            condition: "params.IP.uniqueApplicantsToday > 1".into(),
            points: 25,
        },
    ];
    rules.push(c1);
    rules.push(c2);
    rules
}

/// Five lists of 100,000 entries each.
pub fn registry() -> ListRegistry {
    let r = ListRegistry::new();
    let specs = [
        ("one-day-companies", EntryKind::TaxId, "77{:08}"),
        ("invalid-passports", EntryKind::Passport, "45{:08}"),
        ("bad-phones", EntryKind::Phone, "7900{:07}"),
        ("bad-ips", EntryKind::Ip, "ip"),
        ("bad-devices", EntryKind::Device, "dev-x{}"),
    ];
    for (id, kind, pattern) in specs {
        let list = r.create(id, kind, ListType::Black).expect("new list");
        let entries = (0..100_000u32)
            .map(|i| Entry {
                value: match pattern {
                    "77{:08}" => format!("77{i:08}"),
                    "45{:08}" => format!("45{i:08}"),
                    "7900{:07}" => format!("7900{i:07}"),
                    "ip" => format!("172.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    _ => format!("dev-x{i}"),
                },
                expire_time: None,
                comment: String::new(),
                create_time: 0,
                author: "bench".into(),
            })
            .collect();
        list.write(entries, WriteMode::Replace);
    }
    r
}
