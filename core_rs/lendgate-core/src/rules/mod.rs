//! Scoring rules: a [`RuleSet`] compiled once and evaluated on one event in one call.
//!
//! A rule's condition is an expression (see `expr`) over the event document:
//! `application.*` or `payment.*` (proto field names, enum values without prefix),
//! `params.<aggregate_id>.<element_id>` (aggregate parameters computed for the
//! event by the caller), `model.risk_score`, and `in_list("list_id", value)`. The
//! caller builds that document; the rule engine only reads it.
//!
//! Statuses: WORKING rules count towards the fraud score; TEST and TUNING rules are
//! evaluated and reported separately and never change the score or the zone;
//! DISABLED rules are not evaluated. A rule is evaluated only on events of its kind
//! whose event time lies in `[valid_from, valid_until)`. A composite rule fires when
//! its condition (if any) holds and at least one sub-rule fires; its points are the
//! sum of the fired sub-rules' points. Fired rules are reported in rule-id order
//! with the values each fired condition read (the explanation trace). A rule that
//! fails on an event is reported in that event's errors; the others still run.

mod document;

use std::str::FromStr;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::expr::{Context, Expression, HostFunctions, Options, Read, Value};
use crate::lists::{in_list_function, validate_id, ListRegistry, ListsAt};

/// The default black-zone threshold (seed 001).
pub const DEFAULT_ZONE_THRESHOLD: i64 = 432;

/// Status of a rule (proto `RuleStatus`, names without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleStatus {
    /// Counts towards the fraud score.
    Working,
    /// Evaluated and reported; never changes the score.
    Test,
    /// Being tuned; evaluated and reported like TEST.
    Tuning,
    /// Not evaluated.
    Disabled,
}

/// Kind of event a rule applies to (proto `EventKind`, names without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// A loan application event.
    Application,
    /// A payment event.
    Payment,
}

impl FromStr for EventKind {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "APPLICATION" => Ok(Self::Application),
            "PAYMENT" => Ok(Self::Payment),
            other => Err(CoreError::invalid(
                "event_kind",
                format!("unknown event kind {other:?} (expected APPLICATION or PAYMENT)"),
            )),
        }
    }
}

/// Zone of an event by its fraud score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Zone {
    /// Below the threshold.
    Grey,
    /// At or above the threshold.
    Black,
}

/// A sub-rule of a composite rule (proto `SubRule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRuleDef {
    /// Id within the rule.
    pub sub_rule_id: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// Boolean condition.
    pub condition: String,
    /// Points when it fires (may be negative).
    #[serde(default)]
    pub points: i64,
}

/// A rule as written (proto `Rule`, without the output-only fields but `version`).
/// Times are RFC 3339 strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDef {
    /// 1..64 characters of `[a-z0-9_-]`.
    pub rule_id: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// What the rule detects.
    #[serde(default)]
    pub description: String,
    /// Recommendation for manual verification.
    #[serde(default)]
    pub recommendation: String,
    /// Status.
    pub status: RuleStatus,
    /// Kind of event the rule is evaluated on.
    pub event_kind: EventKind,
    /// Boolean condition; required unless `sub_rules` is set.
    #[serde(default)]
    pub condition: String,
    /// Points of a simple rule.
    #[serde(default)]
    pub points: i64,
    /// Sub-rules of a composite rule.
    #[serde(default)]
    pub sub_rules: Vec<SubRuleDef>,
    /// Start of validity (inclusive); `None` = always.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// End of validity (exclusive); `None` = no end.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Version number, reported with fired rules.
    #[serde(default)]
    pub version: i64,
}

/// A value that took part in firing a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleValue {
    /// Event path (`application.applicant.birth_date`) or host call (`in_list(...)`).
    pub name: String,
    /// The value as evaluated.
    pub value: serde_json::Value,
}

/// A sub-rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredSubRule {
    /// Id within the rule.
    pub sub_rule_id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Points it contributed.
    pub points: i64,
    /// The values its condition read.
    pub values: Vec<RuleValue>,
}

/// A rule that fired (proto `FiredRule`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredRule {
    /// The rule id.
    pub rule_id: String,
    /// Its version.
    pub rule_version: i64,
    /// Human-readable name.
    pub display_name: String,
    /// Its status.
    pub status: RuleStatus,
    /// Points (for composite rules, the sum of the fired sub-rules').
    pub points: i64,
    /// What it detects.
    pub description: String,
    /// Recommendation for manual verification.
    pub recommendation: String,
    /// The values its condition read.
    pub values: Vec<RuleValue>,
    /// Fired sub-rules of a composite rule.
    pub sub_rules: Vec<FiredSubRule>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A rule that failed on the event (proto `RuleError`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    /// The rule id.
    pub rule_id: String,
    /// Its version.
    pub rule_version: i64,
    /// What went wrong.
    pub message: String,
}

/// The result of evaluating a rule set on one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// WORKING rules that fired, by rule id.
    pub fired_rules: Vec<FiredRule>,
    /// TEST and TUNING rules that fired, by rule id.
    pub test_rules: Vec<FiredRule>,
    /// Rules that failed on this event, by rule id.
    pub rule_errors: Vec<RuleError>,
    /// Sum of the points of the fired WORKING rules, at least 0.
    pub fraud_score: i64,
    /// The threshold applied.
    pub zone_threshold: i64,
    /// BLACK when `fraud_score >= zone_threshold`, else GREY.
    pub zone: Zone,
    /// Number of rules evaluated (status, kind and validity matched).
    pub rules_evaluated: usize,
}

#[derive(Debug)]
struct Compiled {
    id: String,
    display_name: String,
    condition: Expression,
}

#[derive(Debug)]
struct CompiledRule {
    def: RuleDef,
    condition: Option<Expression>,
    sub_rules: Vec<(Compiled, i64)>,
    valid_from: i64,
    valid_until: i64,
}

/// Rules compiled once, evaluated on many events from many threads.
#[derive(Debug)]
pub struct RuleSet {
    /// Enabled rules, by rule id.
    rules: Vec<CompiledRule>,
    zone_threshold: i64,
    /// Whether an enabled rule's condition may read `model.*` (see [`RuleSet::reads_model`]).
    reads_model: bool,
}

/// Whether a condition's source names the identifier `model` anywhere (as a path root,
/// a quoted key, inside a string...). Conservative by design: a false "yes" only costs
/// the scorer a second rule evaluation, a false "no" would drop the model score.
fn mentions_model(source: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    source.match_indices("model").any(|(i, m)| {
        let before = source[..i].chars().next_back();
        let after = source[i + m.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn parse_time(field: &str, value: Option<&str>, default: i64) -> CoreResult<i64> {
    match value {
        None | Some("") => Ok(default),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|e| CoreError::invalid(field, format!("invalid RFC 3339 time {t:?}: {e}"))),
    }
}

/// The options every condition is compiled with: `in_list` is available.
pub fn condition_options() -> Options {
    Options {
        host_functions: HostFunctions::new(vec![in_list_function()]),
        ..Options::default()
    }
}

fn compile_condition(field: &str, rule_id: &str, source: &str) -> CoreResult<Expression> {
    Expression::compile_with(source, condition_options()).map_err(|e| match e {
        CoreError::ExpressionSyntax { position, reason } => CoreError::invalid(
            field,
            format!("rule `{rule_id}`: syntax error at position {position}: {reason}"),
        ),
        other => other,
    })
}

/// Compiles and checks one rule; the error names the field and, for syntax errors,
/// the character position and reason.
fn compile_rule(def: RuleDef) -> CoreResult<CompiledRule> {
    validate_id(&def.rule_id).map_err(|_| {
        CoreError::invalid(
            "rule.rule_id",
            format!("{:?} is not 1..64 characters of [a-z0-9_-]", def.rule_id),
        )
    })?;
    let id = def.rule_id.clone();
    let condition = if def.condition.trim().is_empty() {
        if def.sub_rules.is_empty() {
            return Err(CoreError::invalid(
                "rule.condition",
                format!("rule `{id}`: a condition or sub-rules are required"),
            ));
        }
        None
    } else {
        Some(compile_condition("rule.condition", &id, &def.condition)?)
    };
    let mut sub_rules = Vec::with_capacity(def.sub_rules.len());
    for (i, s) in def.sub_rules.iter().enumerate() {
        if sub_rules
            .iter()
            .any(|(c, _): &(Compiled, i64)| c.id == s.sub_rule_id)
        {
            return Err(CoreError::invalid(
                format!("rule.sub_rules[{i}].sub_rule_id"),
                format!("rule `{id}`: duplicate sub-rule `{}`", s.sub_rule_id),
            ));
        }
        let field = format!("rule.sub_rules[{i}].condition");
        let condition = compile_condition(&field, &id, &s.condition)?;
        sub_rules.push((
            Compiled {
                id: s.sub_rule_id.clone(),
                display_name: s.display_name.clone(),
                condition,
            },
            s.points,
        ));
    }
    let valid_from = parse_time("rule.valid_from", def.valid_from.as_deref(), i64::MIN)?;
    let valid_until = parse_time("rule.valid_until", def.valid_until.as_deref(), i64::MAX)?;
    if valid_from >= valid_until {
        return Err(CoreError::invalid(
            "rule.valid_until",
            format!("rule `{id}`: valid_until must be after valid_from"),
        ));
    }
    Ok(CompiledRule {
        def,
        condition,
        sub_rules,
        valid_from,
        valid_until,
    })
}

/// Checks that one rule compiles, without building a set (for create/update).
pub fn validate_rule(def: &RuleDef) -> CoreResult<()> {
    compile_rule(def.clone()).map(|_| ())
}

fn values(reads: Vec<Read>) -> Vec<RuleValue> {
    reads
        .into_iter()
        .map(|r| RuleValue {
            name: r.path,
            value: r.value.to_json(),
        })
        .collect()
}

/// Evaluates a condition to a bool; `Ok(None)` when false.
fn test(e: &Expression, doc: &Value, host: &ListsAt<'_>) -> CoreResult<Option<Vec<RuleValue>>> {
    let ctx = Context {
        host: Some(host),
        reads: None,
    };
    match e.evaluate_in(doc, ctx)? {
        Value::Bool(false) => Ok(None),
        Value::Bool(true) => {
            // Evaluate again recording what was read: only fired conditions pay
            // for the trace. Evaluation is deterministic, so it reads the same.
            let mut reads = Vec::new();
            let ctx = Context {
                host: Some(host),
                reads: Some(&mut reads),
            };
            e.evaluate_in(doc, ctx)?;
            Ok(Some(values(reads)))
        }
        other => Err(CoreError::ExpressionEvaluation {
            reason: format!("a condition must give a bool, got {}", other.type_name()),
        }),
    }
}

fn error_text(field: &str, e: &CoreError) -> String {
    match e {
        CoreError::ExpressionEvaluation { reason } => format!("{field}: {reason}"),
        other => format!("{field}: {other}"),
    }
}

impl RuleSet {
    /// Compiles `rules`. If any rule is invalid (bad id, duplicate id, a condition
    /// that does not compile, bad validity window), returns its error — naming the
    /// field, the rule and, for syntax errors, the position — and nothing is built.
    pub fn compile(rules: Vec<RuleDef>, zone_threshold: i64) -> CoreResult<Self> {
        if zone_threshold < 1 {
            return Err(CoreError::invalid(
                "zone_threshold",
                format!("must be at least 1, got {zone_threshold}"),
            ));
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for def in rules {
            compiled.push(compile_rule(def)?);
        }
        compiled.sort_by(|a, b| a.def.rule_id.cmp(&b.def.rule_id));
        if let Some(w) = compiled
            .windows(2)
            .find(|w| w[0].def.rule_id == w[1].def.rule_id)
        {
            return Err(CoreError::invalid(
                "rule.rule_id",
                format!("duplicate rule id `{}`", w[0].def.rule_id),
            ));
        }
        compiled.retain(|r| r.def.status != RuleStatus::Disabled);
        let reads_model = compiled.iter().any(|r| {
            mentions_model(&r.def.condition)
                || r.def.sub_rules.iter().any(|s| mentions_model(&s.condition))
        });
        Ok(Self {
            rules: compiled,
            zone_threshold,
            reads_model,
        })
    }

    /// Number of enabled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is enabled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether an enabled rule (working, test or tuning) may read `model.*`, decided at
    /// compile time from the condition texts. When none does, an evaluation without a
    /// model score is the evaluation with one, and the scorer evaluates the rules once.
    pub fn reads_model(&self) -> bool {
        self.reads_model
    }

    /// Evaluates every enabled rule of `kind` valid at `at` (event time, ms since
    /// the epoch) on `document`, with `lists` as of `at`.
    pub fn evaluate(
        &self,
        document: &Value,
        kind: EventKind,
        at: i64,
        lists: &ListRegistry,
    ) -> Evaluation {
        let host = ListsAt { lists, at };
        let mut out = Evaluation {
            fired_rules: Vec::new(),
            test_rules: Vec::new(),
            rule_errors: Vec::new(),
            fraud_score: 0,
            zone_threshold: self.zone_threshold,
            zone: Zone::Grey,
            rules_evaluated: 0,
        };
        for rule in &self.rules {
            let def = &rule.def;
            if def.event_kind != kind || at < rule.valid_from || at >= rule.valid_until {
                continue;
            }
            out.rules_evaluated += 1;
            match self.fire(rule, document, &host) {
                Ok(None) => {}
                Ok(Some(fired)) => {
                    if def.status == RuleStatus::Working {
                        out.fraud_score = out.fraud_score.saturating_add(fired.points);
                        out.fired_rules.push(fired);
                    } else {
                        out.test_rules.push(fired);
                    }
                }
                Err(message) => out.rule_errors.push(RuleError {
                    rule_id: def.rule_id.clone(),
                    rule_version: def.version,
                    message,
                }),
            }
        }
        out.fraud_score = out.fraud_score.max(0);
        if out.fraud_score >= self.zone_threshold {
            out.zone = Zone::Black;
        }
        out
    }

    fn fire(
        &self,
        rule: &CompiledRule,
        doc: &Value,
        host: &ListsAt<'_>,
    ) -> Result<Option<FiredRule>, String> {
        let values = match &rule.condition {
            Some(c) => match test(c, doc, host).map_err(|e| error_text("condition", &e))? {
                None => return Ok(None),
                Some(v) => v,
            },
            None => Vec::new(),
        };
        let def = &rule.def;
        let mut points = def.points;
        let mut sub_rules = Vec::new();
        if !rule.sub_rules.is_empty() {
            points = 0;
            for (sub, sub_points) in &rule.sub_rules {
                // The field name is only built for an error, not on every evaluation.
                if let Some(values) = test(&sub.condition, doc, host)
                    .map_err(|e| error_text(&format!("sub-rule `{}`", sub.id), &e))?
                {
                    points = points.saturating_add(*sub_points);
                    sub_rules.push(FiredSubRule {
                        sub_rule_id: sub.id.clone(),
                        display_name: sub.display_name.clone(),
                        points: *sub_points,
                        values,
                    });
                }
            }
            if sub_rules.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(FiredRule {
            rule_id: def.rule_id.clone(),
            rule_version: def.version,
            display_name: def.display_name.clone(),
            status: def.status,
            points,
            description: def.description.clone(),
            recommendation: def.recommendation.clone(),
            values,
            sub_rules,
            tags: def.tags.clone(),
        }))
    }
}

/// Parses a JSON array of rules (the [`RuleDef`] fields).
pub fn parse_rules(json: &str) -> CoreResult<Vec<RuleDef>> {
    serde_json::from_str(json).map_err(|e| CoreError::invalid("rules", e.to_string()))
}

/// Parses an event document from JSON text.
pub fn parse_document(json: &[u8]) -> CoreResult<Value> {
    serde_json::from_slice::<document::Document>(json)
        .map(|d| d.0)
        .map_err(|e| CoreError::invalid("document", e.to_string()))
}

#[cfg(test)]
mod tests;
