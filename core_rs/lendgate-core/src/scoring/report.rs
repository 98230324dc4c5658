//! The `lendgate.v1.Report` of one check, encoded with prost.
//!
//! The messages below mirror the fields of `scoring.proto` the check sets (a test
//! decodes the bytes with the contract's descriptors and compares field by field);
//! enums travel as their numbers, looked up by name in the embedded descriptors.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::Value as Json;

use super::matching::{FieldMatch, Match};
use crate::document::pool;
use crate::error::{CoreError, CoreResult};
use crate::rules::{Evaluation, FiredRule, RuleStatus, RuleValue, Zone};

/// Fraud score at or above which a grey-zone report is sent to REVIEW.
pub const REVIEW_THRESHOLD: i64 = 100;
/// Model score at or above which a report is sent to REVIEW.
pub const MODEL_REVIEW_SCORE: i32 = 700;
/// Model score at or above which a report is declined.
pub const MODEL_DECLINE_SCORE: i32 = 900;

/// `RecommendedAction` numbers.
pub const ACTION_APPROVE: i32 = 1;
const ACTION_REVIEW: i32 = 2;
const ACTION_DECLINE: i32 = 3;

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub(crate) fn from_us(us: i64) -> Self {
        Self {
            seconds: us.div_euclid(1_000_000),
            nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbValue {
    #[prost(oneof = "PbKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<PbKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum PbKind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Str(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(PbStruct),
    #[prost(message, tag = "6")]
    List(PbList),
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbStruct {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, PbValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<PbValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbRuleValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PbValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbMatchedField {
    #[prost(string, tag = "1")]
    pub field: String,
    #[prost(int32, tag = "2")]
    pub kind: i32,
    #[prost(string, tag = "3")]
    pub current_value: String,
    #[prost(string, tag = "4")]
    pub historical_value: String,
    #[prost(double, optional, tag = "5")]
    pub similarity: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbHistoricalMatch {
    #[prost(string, tag = "1")]
    pub match_ref: String,
    #[prost(bool, tag = "2")]
    pub own_application: bool,
    #[prost(string, tag = "3")]
    pub application_id: String,
    #[prost(message, optional, tag = "4")]
    pub event_time: Option<Timestamp>,
    #[prost(int32, tag = "5")]
    pub subtype: i32,
    #[prost(message, repeated, tag = "6")]
    pub fields: Vec<PbMatchedField>,
    #[prost(int32, tag = "7")]
    pub result: i32,
    #[prost(int32, tag = "8")]
    pub fraud_status: i32,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbFiredSubRule {
    #[prost(string, tag = "1")]
    pub sub_rule_id: String,
    #[prost(string, tag = "2")]
    pub display_name: String,
    #[prost(int64, tag = "3")]
    pub points: i64,
    #[prost(message, repeated, tag = "4")]
    pub values: Vec<PbRuleValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbFiredRule {
    #[prost(string, tag = "1")]
    pub rule: String,
    #[prost(int64, tag = "2")]
    pub rule_version: i64,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(int64, tag = "5")]
    pub points: i64,
    #[prost(string, tag = "6")]
    pub description: String,
    #[prost(string, tag = "7")]
    pub recommendation: String,
    #[prost(message, repeated, tag = "8")]
    pub values: Vec<PbRuleValue>,
    #[prost(message, repeated, tag = "9")]
    pub sub_rules: Vec<PbFiredSubRule>,
    #[prost(message, repeated, tag = "10")]
    pub matches: Vec<PbHistoricalMatch>,
    #[prost(string, repeated, tag = "11")]
    pub tags: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbRuleError {
    #[prost(string, tag = "1")]
    pub rule: String,
    #[prost(int64, tag = "2")]
    pub rule_version: i64,
    #[prost(string, tag = "3")]
    pub message: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbProvenance {
    #[prost(string, tag = "1")]
    pub rule_pack_revision: String,
    #[prost(string, tag = "5")]
    pub model_name: String,
    #[prost(string, tag = "6")]
    pub model_version: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbReport {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub event_kind: i32,
    #[prost(string, tag = "3")]
    pub event_id: String,
    #[prost(int32, tag = "4")]
    pub application_subtype: i32,
    #[prost(string, tag = "5")]
    pub request_id: String,
    #[prost(message, optional, tag = "6")]
    pub event_time: Option<Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub receive_time: Option<Timestamp>,
    #[prost(message, repeated, tag = "8")]
    pub fired_rules: Vec<PbFiredRule>,
    #[prost(int64, tag = "9")]
    pub fraud_score: i64,
    #[prost(int64, tag = "10")]
    pub zone_threshold: i64,
    #[prost(int32, tag = "11")]
    pub zone: i32,
    #[prost(int32, optional, tag = "12")]
    pub model_risk_score: Option<i32>,
    #[prost(int32, tag = "14")]
    pub recommended_action: i32,
    #[prost(message, repeated, tag = "15")]
    pub test_rules: Vec<PbFiredRule>,
    #[prost(message, repeated, tag = "16")]
    pub rule_errors: Vec<PbRuleError>,
    #[prost(message, optional, tag = "18")]
    pub processing_time: Option<Duration>,
    #[prost(message, optional, tag = "19")]
    pub provenance: Option<PbProvenance>,
    #[prost(string, tag = "20")]
    pub incident: String,
}

/// The number of `{ENUM_PREFIX}_{name}` in enum `enum_name` of the contract; an empty
/// or unknown name is 0 (UNSPECIFIED).
pub(crate) fn enum_number(enum_name: &str, prefix: &str, name: &str) -> CoreResult<i32> {
    if name.is_empty() {
        return Ok(0);
    }
    let e = pool()?
        .get_enum_by_name(enum_name)
        .ok_or_else(|| CoreError::Internal {
            reason: format!("enum {enum_name} missing from the descriptors"),
        })?;
    Ok(e.get_value_by_name(&format!("{prefix}_{name}"))
        .map_or(0, |v| v.number()))
}

/// DECLINE in the black zone or on a very high model score; REVIEW from
/// [`REVIEW_THRESHOLD`] points or a high model score; else APPROVE.
pub fn recommended_action(zone: Zone, fraud_score: i64, model: Option<i32>) -> i32 {
    if zone == Zone::Black || model.is_some_and(|m| m >= MODEL_DECLINE_SCORE) {
        ACTION_DECLINE
    } else if fraud_score >= REVIEW_THRESHOLD || model.is_some_and(|m| m >= MODEL_REVIEW_SCORE) {
        ACTION_REVIEW
    } else {
        ACTION_APPROVE
    }
}

fn value(x: &Json) -> PbValue {
    let kind = match x {
        Json::Null => PbKind::Null(0),
        Json::Bool(b) => PbKind::Bool(*b),
        Json::Number(n) => PbKind::Number(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => PbKind::Str(s.clone()),
        Json::Array(items) => PbKind::List(PbList {
            values: items.iter().map(value).collect(),
        }),
        Json::Object(map) => PbKind::Struct(PbStruct {
            fields: map.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
        }),
    };
    PbValue { kind: Some(kind) }
}

fn values(items: &[RuleValue]) -> Vec<PbRuleValue> {
    items
        .iter()
        .map(|v| PbRuleValue {
            name: v.name.clone(),
            value: Some(value(&v.value)),
        })
        .collect()
}

fn status_number(s: RuleStatus) -> i32 {
    match s {
        RuleStatus::Working => 1,
        RuleStatus::Test => 2,
        RuleStatus::Tuning => 3,
        RuleStatus::Disabled => 4,
    }
}

fn historical(m: &Match) -> CoreResult<PbHistoricalMatch> {
    Ok(PbHistoricalMatch {
        match_ref: m.match_ref.clone(),
        own_application: m.own_application,
        application_id: m.application_id.clone(),
        event_time: Some(Timestamp {
            seconds: m.event_day_s,
            nanos: 0,
        }),
        subtype: enum_number(
            "lendgate.v1.ApplicationSubtype",
            "APPLICATION_SUBTYPE",
            &m.subtype,
        )?,
        fields: m
            .fields
            .iter()
            .map(|f| PbMatchedField {
                field: f.field.to_owned(),
                kind: match f.kind {
                    FieldMatch::Exact => 1,
                    FieldMatch::Fuzzy(_) => 2,
                    FieldMatch::Contradiction => 3,
                },
                current_value: f.current_value.clone(),
                historical_value: f.historical_value.clone(),
                similarity: match f.kind {
                    FieldMatch::Fuzzy(sim) => Some(sim),
                    _ => None,
                },
            })
            .collect(),
        result: enum_number("lendgate.v1.CheckResult", "CHECK_RESULT", &m.result)?,
        fraud_status: enum_number("lendgate.v1.FraudStatus", "FRAUD_STATUS", &m.fraud_status)?,
    })
}

fn fired(rule: &FiredRule, matches: &[Match]) -> CoreResult<PbFiredRule> {
    Ok(PbFiredRule {
        rule: format!("rules/{}", rule.rule_id),
        rule_version: rule.rule_version,
        display_name: rule.display_name.clone(),
        status: status_number(rule.status),
        points: rule.points,
        description: rule.description.clone(),
        recommendation: rule.recommendation.clone(),
        values: values(&rule.values),
        sub_rules: rule
            .sub_rules
            .iter()
            .map(|s| PbFiredSubRule {
                sub_rule_id: s.sub_rule_id.clone(),
                display_name: s.display_name.clone(),
                points: s.points,
                values: values(&s.values),
            })
            .collect(),
        matches: matches.iter().map(historical).collect::<CoreResult<_>>()?,
        tags: rule.tags.clone(),
    })
}

/// What a report states besides the evaluation.
pub struct Facts<'a> {
    /// `reports/{id}`.
    pub name: &'a str,
    /// `EventKind` number.
    pub event_kind: i32,
    /// Application or payment id.
    pub event_id: &'a str,
    /// Subtype name of an application, else empty.
    pub subtype: &'a str,
    /// The caller's request id.
    pub request_id: &'a str,
    /// Event time, µs since the epoch.
    pub event_time_us: i64,
    /// Receive time, µs since the epoch.
    pub receive_time_us: i64,
    /// Model score and the model's name and version, when a model is active.
    pub model: Option<&'a super::ModelScore>,
    /// Provenance: the rule pack revision.
    pub rule_pack_revision: &'a str,
    /// The incident id opened when the action is not APPROVE.
    pub incident_id: &'a str,
    /// Processing time so far, ns.
    pub processing_ns: u64,
}

/// The report's bytes and its recommended action.
pub fn encode(
    facts: &Facts<'_>,
    evaluation: &Evaluation,
    matches: &[(usize, Vec<Match>)],
) -> CoreResult<(Vec<u8>, i32)> {
    let model = facts.model.map(|m| m.risk_score);
    let action = recommended_action(evaluation.zone, evaluation.fraud_score, model);
    let mut fired_rules = Vec::with_capacity(evaluation.fired_rules.len());
    for (i, rule) in evaluation.fired_rules.iter().enumerate() {
        let found = matches
            .iter()
            .find(|(at, _)| *at == i)
            .map_or(&[][..], |(_, m)| m.as_slice());
        fired_rules.push(fired(rule, found)?);
    }
    let report = PbReport {
        name: facts.name.to_owned(),
        event_kind: facts.event_kind,
        event_id: facts.event_id.to_owned(),
        application_subtype: enum_number(
            "lendgate.v1.ApplicationSubtype",
            "APPLICATION_SUBTYPE",
            facts.subtype,
        )?,
        request_id: facts.request_id.to_owned(),
        event_time: Some(Timestamp::from_us(facts.event_time_us)),
        receive_time: Some(Timestamp::from_us(facts.receive_time_us)),
        fired_rules,
        fraud_score: evaluation.fraud_score,
        zone_threshold: evaluation.zone_threshold,
        zone: match evaluation.zone {
            Zone::Grey => 1,
            Zone::Black => 2,
        },
        model_risk_score: model,
        recommended_action: action,
        test_rules: evaluation
            .test_rules
            .iter()
            .map(|r| fired(r, &[]))
            .collect::<CoreResult<_>>()?,
        rule_errors: evaluation
            .rule_errors
            .iter()
            .map(|e| PbRuleError {
                rule: format!("rules/{}", e.rule_id),
                rule_version: e.rule_version,
                message: e.message.clone(),
            })
            .collect(),
        processing_time: Some(Duration {
            seconds: (facts.processing_ns / 1_000_000_000) as i64,
            nanos: (facts.processing_ns % 1_000_000_000) as i32,
        }),
        provenance: Some(PbProvenance {
            rule_pack_revision: facts.rule_pack_revision.to_owned(),
            model_name: facts.model.map(|m| m.name.clone()).unwrap_or_default(),
            model_version: facts.model.map(|m| m.version.clone()).unwrap_or_default(),
        }),
        incident: if action == ACTION_APPROVE {
            String::new()
        } else {
            format!("incidents/{}", facts.incident_id)
        },
    };
    Ok((report.encode_to_vec(), action))
}
