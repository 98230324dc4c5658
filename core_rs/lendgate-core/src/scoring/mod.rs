//! One check of the scoring service, from request bytes to report bytes.
//!
//! Python routes bytes; this module decodes, validates, computes and encodes:
//!
//! 1. [`prepare`] decodes a `Check{Application,Payment}Request` (prost-reflect, the
//!    document convention of `crate::document`) and validates the event completely,
//!    naming each problem by the request's proto path. Nothing changes.
//! 2. [`Scorer::score`] applies the event to the aggregates at its event time, runs the
//!    rules on `{application|payment, params, model}`, collects the consortium matches
//!    of the fired rules, indexes the application, and encodes the `Report`. The
//!    aggregates are applied entirely or not at all, and before anything else changes,
//!    so an error leaves the state as it was.
//! 3. [`Scorer::replay`] and [`Scorer::apply_outcome`] are the same state changes for
//!    a stored event (restart) and for an outcome.

pub mod event;
pub mod growth;
pub mod matching;
pub mod report;
pub mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value as Json;

use crate::aggregates::{AggregateStore, ParamValues};
use crate::document::decode_document;
use crate::error::{CoreError, CoreResult};
use crate::expr::{map_with_capacity, Value};
use crate::lists::ListRegistry;
use crate::rules::{Evaluation, EventKind, RuleSet};
use event::{aggregate_event, match_keys, outcome_events, parse_time_us, text, validate};
pub use event::{Kind, Violation};
use matching::{MatchIndex, Record};

/// A model's answer for one event: risk score 0..1000, model name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelScore {
    /// Risk score 0..1000.
    pub risk_score: i32,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
}

/// A decoded, validated request, ready to score.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The kind of event.
    pub kind: Kind,
    /// `request_id` of the request (may be empty).
    pub request_id: String,
    /// `partner_id` the event claims (may be empty).
    pub claimed_partner_id: String,
    /// The event document, `None` when the request carries no event.
    pub event: Option<Json>,
    /// Every problem of the event; empty when it may be scored.
    pub violations: Vec<Violation>,
    /// Event time (µs); the receive time when the event has none (then it is invalid).
    pub event_time_us: i64,
}

/// Decodes and validates one serialized request of `kind` received at
/// `receive_time_us`. Bytes that are not the request message are an
/// `InvalidArgument` error (field `request`); problems of the event are returned in
/// [`Prepared::violations`].
pub fn prepare(kind: Kind, request: &[u8], receive_time_us: i64) -> CoreResult<Prepared> {
    let mut doc = decode_document(kind.request_type(), request)?;
    let request_id = text(&doc, "request_id").to_owned();
    let event = doc
        .get_mut(kind.field())
        .map(Json::take)
        .filter(|e| e.as_object().is_some_and(|o| !o.is_empty()));
    let (claimed_partner_id, violations, event_time_us) = match &event {
        None => (String::new(), Vec::new(), receive_time_us),
        Some(e) => (
            text(e, "partner_id").to_owned(),
            validate(kind, e, receive_time_us),
            parse_time_us(e.get("event_time")).unwrap_or(receive_time_us),
        ),
    };
    Ok(Prepared {
        kind,
        request_id,
        claimed_partner_id,
        event,
        violations,
        event_time_us,
    })
}

/// Who checks, and what the report states besides the evaluation.
#[derive(Debug, Clone)]
pub struct CheckContext<'a> {
    /// The caller's partner id.
    pub partner_id: &'a str,
    /// The request id (the caller's, or a fresh one).
    pub request_id: &'a str,
    /// `reports/{id}`.
    pub report_name: &'a str,
    /// Receive time, µs since the epoch.
    pub receive_time_us: i64,
    /// The incident id the report names when its action is not APPROVE.
    pub incident_id: &'a str,
    /// Time spent before this call (ns), counted in the report's processing time.
    pub elapsed_ns: u64,
}

/// What one scored check leaves for the caller to persist.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The serialized `Report`.
    pub report: Vec<u8>,
    /// Whether the report opens an incident (action not APPROVE).
    pub incident: bool,
    /// Event time, µs since the epoch.
    pub event_time_us: i64,
    /// Application or payment id.
    pub event_id: String,
    /// Match keys of the event (kind, normalised value), for the store.
    pub keys: Vec<(String, String)>,
    /// The sequence number the check took.
    pub seq: u64,
}

/// The rule-to-match-kinds table of a rule pack: fired rules named here get the
/// consortium matches sharing one of the kinds (`phone`, `passport`...,
/// [`matching::SIMILAR_PERSON`] for the fuzzy ones); and the name similarity from which
/// two applicants with one birth date are taken as the same person.
#[derive(Debug, Clone)]
pub struct Scorer {
    matches: HashMap<String, Vec<String>>,
    name_similarity: f64,
}

impl Default for Scorer {
    fn default() -> Self {
        Self::new(HashMap::new())
    }
}

/// What scoring reads and changes: the state of one scoring service.
pub struct State<'a> {
    /// The aggregates (applied at the event time).
    pub aggregates: &'a AggregateStore,
    /// The compiled rules.
    pub rules: &'a RuleSet,
    /// The lists `in_list` reads.
    pub lists: &'a ListRegistry,
    /// The consortium match index.
    pub index: &'a mut MatchIndex,
    /// The rule pack revision the report states.
    pub revision: &'a str,
}

/// A model scorer: (event, parameter values, the rules' evaluation without a model
/// score) → score, or `None` when no model is active or it gives no score.
pub type ModelFn<'m> =
    dyn FnMut(&Json, &ParamValues, &Evaluation) -> CoreResult<Option<ModelScore>> + 'm;

fn params_value(names: &[Arc<str>], values: &ParamValues) -> Value {
    let mut map = map_with_capacity(names.len());
    for (name, v) in names.iter().zip(values) {
        map.insert(name.clone(), Value::from(&v.to_json()));
    }
    Value::object(map)
}

fn event_time_field(kind: Kind, err: CoreError) -> CoreError {
    // The aggregates name their own attribute (`common.eventTime`); the client knows
    // the request's field.
    match err {
        CoreError::InvalidArgument { reason, .. } => {
            CoreError::invalid(format!("{}.event_time", kind.field()), reason)
        }
        other => other,
    }
}

fn is_finish(event: &Json) -> bool {
    text(event, "subtype") == "LOAN_APP_RESULT"
}

impl Scorer {
    /// A scorer for a pack whose rules name match kinds (`rule_id → [kind, ...]`), with
    /// the default name similarity ([`matching::DEFAULT_NAME_SIMILARITY`]).
    pub fn new(matches: HashMap<String, Vec<String>>) -> Self {
        Self {
            matches,
            name_similarity: matching::DEFAULT_NAME_SIMILARITY,
        }
    }

    /// The same scorer with another name similarity threshold (Jaro–Winkler, in
    /// (0, 1]); anything else is an `InvalidArgument` on `name_similarity`.
    pub fn with_name_similarity(mut self, threshold: f64) -> CoreResult<Self> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(CoreError::invalid(
                "name_similarity",
                format!("{threshold} is not in (0, 1]"),
            ));
        }
        self.name_similarity = threshold;
        Ok(self)
    }

    /// The name similarity threshold of fuzzy matching.
    pub fn name_similarity(&self) -> f64 {
        self.name_similarity
    }

    /// Applies the event to the aggregates and the match index, without rules (a
    /// stored event, logged under `request_key`, replayed at restart). Returns the
    /// sequence number it took.
    #[allow(clippy::too_many_arguments)]
    pub fn replay(
        &self,
        kind: Kind,
        request: &[u8],
        request_key: &str,
        partner_id: &str,
        fallback_time_us: i64,
        aggregates: &AggregateStore,
        index: &mut MatchIndex,
    ) -> CoreResult<u64> {
        let prepared = prepare(kind, request, fallback_time_us)?;
        let event = prepared.event.unwrap_or(Json::Null);
        let t = parse_time_us(event.get("event_time")).unwrap_or(fallback_time_us);
        let count_finish = self.count_finish(kind, &event, partner_id, index);
        let agg = aggregate_event(&event, partner_id, t.div_euclid(1000), count_finish);
        aggregates
            .apply_value(&agg)
            .map_err(|e| event_time_field(kind, e))?;
        let seq = index.take_seq();
        index.note_logged(request_key, t);
        if kind == Kind::Application {
            self.index_application(&event, partner_id, t, seq, index, count_finish)?;
        }
        Ok(seq)
    }

    fn count_finish(&self, kind: Kind, event: &Json, partner: &str, index: &MatchIndex) -> bool {
        kind != Kind::Application
            || !is_finish(event)
            || !index.finish_counted(partner, text(event, "application_id"))
    }

    fn index_application(
        &self,
        event: &Json,
        partner: &str,
        t: i64,
        seq: u64,
        index: &mut MatchIndex,
        count_finish: bool,
    ) -> CoreResult<Vec<(String, String)>> {
        let keys = match_keys(event);
        let record = record(seq, partner, event, t);
        if is_finish(event) && count_finish {
            index.set_finish_counted(partner, &record.application_id);
        }
        index.add(record, &keys)?;
        Ok(keys)
    }

    /// Scores a prepared, valid event: aggregates, model, rules, matches, index, report.
    /// An error (an event time beyond the aggregates' allowed lateness, a failing
    /// model) leaves every state as it was.
    pub fn score(
        &self,
        prepared: &Prepared,
        ctx: &CheckContext<'_>,
        state: State<'_>,
        model: Option<&mut ModelFn<'_>>,
    ) -> CoreResult<Scored> {
        let started = Instant::now();
        let kind = prepared.kind;
        let event = prepared
            .event
            .as_ref()
            .ok_or_else(|| CoreError::invalid(kind.field(), "required"))?;
        if !prepared.violations.is_empty() {
            return Err(CoreError::invalid(
                prepared.violations[0].field.clone(),
                prepared.violations[0].description.clone(),
            ));
        }
        let partner = ctx.partner_id;
        let t = prepared.event_time_us;
        let count_finish = self.count_finish(kind, event, partner, state.index);
        let agg = aggregate_event(event, partner, t.div_euclid(1000), count_finish);
        let names: Vec<Arc<str>> = state
            .aggregates
            .definitions()
            .param_names()
            .map(Arc::from)
            .collect();
        // Fuzzy consortium facts the rules may read (`consortium.*`): earlier
        // applications with this birth date and a similar, not identical, name.
        let similar = if kind == Kind::Application {
            let current = record(0, partner, event, t);
            state.index.similar(&current, partner, self.name_similarity)
        } else {
            Vec::new()
        };
        let similar_names = similar.iter().filter(|s| s.name_differs).count();
        let similar_other_documents = similar
            .iter()
            .filter(|s| s.name_differs && s.other_documents)
            .count();
        let event_kind = match kind {
            Kind::Application => EventKind::Application,
            Kind::Payment => EventKind::Payment,
        };
        let evaluate = |params: &ParamValues, model_score: Option<&ModelScore>| {
            let mut doc = map_with_capacity(4);
            doc.insert(Arc::from(kind.field()), Value::from(event));
            doc.insert(Arc::from("params"), params_value(&names, params));
            let mut m = map_with_capacity(1);
            m.insert(
                Arc::from("risk_score"),
                model_score.map_or(Value::Null, |s| Value::Number(s.risk_score.into())),
            );
            doc.insert(Arc::from("model"), Value::object(m));
            let mut c = map_with_capacity(2);
            c.insert(
                Arc::from("similar_name_applications"),
                Value::Number(similar_names.into()),
            );
            c.insert(
                Arc::from("similar_name_other_documents"),
                Value::Number(similar_other_documents.into()),
            );
            doc.insert(Arc::from("consortium"), Value::object(c));
            state.rules.evaluate(
                &Value::object(doc),
                event_kind,
                t.div_euclid(1000),
                state.lists,
            )
        };
        // With a model: the rules run first without a model score (what the model sees
        // of them), then the model, on the parameters before the state changes, so a
        // failing model changes nothing (the apply below gives the same values). When
        // the model gives a score and an enabled rule reads `model.*` (decided when the
        // rules were compiled) the rules run again with it; otherwise the first
        // evaluation is the answer: no condition can tell the two documents apart.
        let (model_score, first) = match model {
            Some(f) => {
                let params = state
                    .aggregates
                    .evaluate_value(&agg)
                    .map_err(|e| event_time_field(kind, e))?;
                let first = evaluate(&params, None);
                (f(event, &params, &first)?, Some(first))
            }
            None => (None, None),
        };
        let params = state
            .aggregates
            .apply_value(&agg)
            .map_err(|e| event_time_field(kind, e))?;
        let evaluation = match first {
            Some(first) if model_score.is_none() || !state.rules.reads_model() => first,
            _ => evaluate(&params, model_score.as_ref()),
        };
        let seq = state.index.take_seq();
        state
            .index
            .note_logged(&format!("{partner}/{}", ctx.request_id), t);
        let (keys, matches) = if kind == Kind::Application {
            let keys = match_keys(event);
            let current = record(seq, partner, event, t);
            let mut found = Vec::new();
            for (i, rule) in evaluation.fired_rules.iter().enumerate() {
                if let Some(kinds) = self.matches.get(&rule.rule_id).filter(|k| !k.is_empty()) {
                    let m = state.index.matches(
                        kinds,
                        &keys,
                        &similar,
                        &current,
                        partner,
                        ctx.report_name,
                    );
                    found.push((i, m));
                }
            }
            self.index_application(event, partner, t, seq, state.index, count_finish)?;
            (keys, found)
        } else {
            (Vec::new(), Vec::new())
        };
        let event_id = text(event, kind.id_field()).to_owned();
        let subtype = if kind == Kind::Application {
            text(event, "subtype")
        } else {
            ""
        };
        let facts = report::Facts {
            name: ctx.report_name,
            event_kind: if kind == Kind::Application { 1 } else { 2 },
            event_id: &event_id,
            subtype,
            request_id: ctx.request_id,
            event_time_us: t,
            receive_time_us: ctx.receive_time_us,
            model: model_score.as_ref(),
            rule_pack_revision: state.revision,
            incident_id: ctx.incident_id,
            processing_ns: ctx
                .elapsed_ns
                .saturating_add(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)),
        };
        let (report, action) = report::encode(&facts, &evaluation, &matches)?;
        Ok(Scored {
            report,
            incident: action != report::ACTION_APPROVE,
            event_time_us: t,
            event_id,
            keys,
            seq,
        })
    }

    /// Feeds an outcome of a stored application (its request bytes) to the aggregates
    /// and the match index: a decision `APPROVED`/`REFUSED` counts as the application's
    /// finish unless that was already counted (a `LOAN_APP_RESULT` event or an earlier
    /// decision); a fraud status marks the employer, passport and phone.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_outcome(
        &self,
        application_request: &[u8],
        partner_id: &str,
        event_time_us: i64,
        decision: &str,
        fraud_status: &str,
        aggregates: &AggregateStore,
        index: &mut MatchIndex,
    ) -> CoreResult<()> {
        let prepared = prepare(Kind::Application, application_request, event_time_us)?;
        let app = prepared.event.unwrap_or(Json::Null);
        let app_id = text(&app, "application_id");
        let finishes = matches!(decision, "APPROVED" | "REFUSED");
        let count_finish = finishes && !index.finish_counted(partner_id, app_id);
        let events = outcome_events(
            &app,
            partner_id,
            event_time_us.div_euclid(1000),
            decision,
            fraud_status,
            count_finish,
        );
        // Each event is checked by the aggregates before it changes anything; the
        // first is the only one that can fail on time (they share one time).
        for agg in &events {
            aggregates.apply_value(agg)?;
        }
        if count_finish {
            index.set_finish_counted(partner_id, app_id);
        }
        let result = match decision {
            "APPROVED" => "APPROVED",
            "REFUSED" => "REJECTED",
            "CANCELLED" => "CANCELLED",
            _ => "",
        };
        let fraud = if fraud_status == "UNSPECIFIED" {
            ""
        } else {
            fraud_status
        };
        index.mark(partner_id, app_id, result, fraud);
        Ok(())
    }
}

fn record(seq: u64, partner: &str, event: &Json, t: i64) -> Record {
    let applicant = event.get("applicant");
    Record {
        seq,
        partner_id: partner.to_owned(),
        application_id: text(event, "application_id").to_owned(),
        subtype: text(event, "subtype").to_owned(),
        event_time_us: t,
        phone: event::mobile(applicant),
        name: event::full_name(applicant),
        birth_date: applicant.map_or("", |a| text(a, "birth_date")).to_owned(),
        passport: event::passport_number(applicant),
        result: text(event, "result").to_owned(),
        fraud_status: String::new(),
    }
}

#[cfg(test)]
mod tests;
