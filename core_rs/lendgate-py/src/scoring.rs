//! Bindings for `lendgate_core::scoring`: one check from request bytes to report bytes,
//! with the GIL released, and the consortium match index.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use lendgate_core::aggregates::ParamValues;
use lendgate_core::rules::Evaluation;
use lendgate_core::scoring::matching::{MatchIndex, DEFAULT_NAME_SIMILARITY};
use lendgate_core::scoring::{self, CheckContext, Kind, ModelScore, Prepared, Scorer, State};
use lendgate_core::{CoreError, CoreResult};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::aggregates::PyAggregateStore;
use crate::buffer::ReadOnlyBytes;
use crate::error::PyCoreError;
use crate::lists::PyListRegistry;
use crate::rules::PyRuleSet;

/// The consortium match index (applications by normalised key), with snapshot/restore.
#[pyclass(frozen, name = "MatchIndex", module = "lendgate._core")]
pub struct PyMatchIndex {
    inner: Mutex<MatchIndex>,
}

impl PyMatchIndex {
    fn lock(&self) -> MutexGuard<'_, MatchIndex> {
        // A panic cannot happen while the index is locked (nothing in it panics on
        // input); should one, the index is still structurally sound.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyMatchIndex {
    /// An empty index.
    #[new]
    fn new() -> Self {
        Self {
            inner: Mutex::new(MatchIndex::new()),
        }
    }

    /// Number of application events held.
    fn __len__(&self) -> usize {
        self.lock().len()
    }

    /// Records that the log holds an event with this request key (`partner/request_id`)
    /// of event time `event_time_us` (µs since the epoch); retention forgets the key
    /// with its newest event.
    fn note_logged(&self, request_key: &str, event_time_us: i64) {
        self.lock().note_logged(request_key, event_time_us);
    }

    /// Number of logged request-key hashes held (retention prunes them).
    fn logged_len(&self) -> usize {
        self.lock().logged_len()
    }

    /// `False` when the log certainly holds no event with this request key; `True`
    /// when it may (ask the store).
    fn maybe_logged(&self, request_key: &str) -> bool {
        self.lock().maybe_logged(request_key)
    }

    /// Forgets every application event older than `before_us` (event time, µs since
    /// the epoch): retention. Returns how many events were dropped. The key lists let
    /// go of dropped entries lazily: `sweep_shards` of their 64 shards are swept per
    /// call, in turn (64: all, as a full pass; answers are the same either way).
    #[pyo3(signature = (before_us, sweep_shards = 64))]
    fn prune(&self, py: Python<'_>, before_us: i64, sweep_shards: usize) -> usize {
        py.detach(|| self.lock().prune_step(before_us, sweep_shards))
    }

    /// The whole index as versioned bytes.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = py.detach(|| self.lock().snapshot()).map_err(PyCoreError)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Replaces the whole index with one `snapshot` produced; another format version
    /// or a foreign snapshot raises `CoreInvalidArgument("snapshot", why)` and changes
    /// nothing. `data` is `bytes` or a read-only memoryview (a part of a larger
    /// snapshot, not copied).
    fn restore(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = ReadOnlyBytes::new(data, "snapshot")?;
        let data = data.as_slice();
        py.detach(|| -> Result<(), PyCoreError> {
            let restored = MatchIndex::restore(data)?;
            *self.lock() = restored;
            Ok(())
        })?;
        Ok(())
    }
}

/// A decoded, validated check request (nothing has changed yet).
#[pyclass(frozen, name = "PreparedCheck", module = "lendgate._core")]
pub struct PyPreparedCheck {
    inner: Prepared,
}

#[pymethods]
impl PyPreparedCheck {
    /// The request's `request_id` (may be empty).
    #[getter]
    fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The `partner_id` the event claims (may be empty).
    #[getter]
    fn claimed_partner_id(&self) -> &str {
        &self.inner.claimed_partner_id
    }

    /// Whether the request carries an event.
    #[getter]
    fn has_event(&self) -> bool {
        self.inner.event.is_some()
    }

    /// Every problem of the event as `(field, description)`; empty when valid.
    #[getter]
    fn violations(&self) -> Vec<(String, String)> {
        self.inner
            .violations
            .iter()
            .map(|v| (v.field.clone(), v.description.clone()))
            .collect()
    }
}

/// `(report bytes, opens an incident, event time µs, event id, [(key kind, value)])`.
type ScoredTuple<'py> = (
    Bound<'py, PyBytes>,
    bool,
    i64,
    String,
    Vec<(String, String)>,
);

/// The scoring path of one rule pack (its rule-to-match-kinds table).
#[pyclass(frozen, name = "Scorer", module = "lendgate._core")]
pub struct PyScorer {
    inner: Scorer,
}

fn kind(text: &str) -> Result<Kind, PyCoreError> {
    Kind::parse(text).ok_or_else(|| {
        PyCoreError(CoreError::invalid(
            "kind",
            format!("unknown event kind {text:?} (application or payment)"),
        ))
    })
}

/// Calls the Python model scorer `(event: dict, params: dict, rules: dict) -> (score,
/// name, version) | None` with the GIL held; `rules` is the evaluation without a model
/// score: `{"fraud_score": int, "fired": [rule_id, ...]}` (working rules only).
fn call_model(
    model: &Py<PyAny>,
    names: &[String],
    event: &serde_json::Value,
    params: &ParamValues,
    rules: &Evaluation,
) -> CoreResult<Option<ModelScore>> {
    Python::attach(|py| -> PyResult<Option<ModelScore>> {
        let json = py.import("json")?;
        let event = json.call_method1("loads", (event.to_string(),))?;
        let values = PyDict::new(py);
        for (name, v) in names.iter().zip(params) {
            values.set_item(
                name,
                json.call_method1("loads", (v.to_json().to_string(),))?,
            )?;
        }
        let verdict = PyDict::new(py);
        verdict.set_item("fraud_score", rules.fraud_score)?;
        let fired: Vec<&str> = rules
            .fired_rules
            .iter()
            .map(|r| r.rule_id.as_str())
            .collect();
        verdict.set_item("fired", fired)?;
        let out = model.bind(py).call1((event, values, verdict))?;
        if out.is_none() {
            return Ok(None);
        }
        let (risk_score, name, version): (i32, String, String) = out.extract()?;
        Ok(Some(ModelScore {
            risk_score,
            name,
            version,
        }))
    })
    .map_err(|e| CoreError::Internal {
        reason: format!("the model scorer failed: {e}"),
    })
}

#[pymethods]
impl PyScorer {
    /// A scorer whose fired rules named in `matches` (`rule_id → [match kind]`) carry
    /// the consortium matches of those kinds; `name_similarity` is the Jaro–Winkler
    /// threshold (0, 1] of fuzzy name + birth date matching.
    #[new]
    #[pyo3(signature = (matches, name_similarity = DEFAULT_NAME_SIMILARITY))]
    fn new(
        matches: HashMap<String, Vec<String>>,
        name_similarity: f64,
    ) -> Result<Self, PyCoreError> {
        Ok(Self {
            inner: Scorer::new(matches).with_name_similarity(name_similarity)?,
        })
    }

    /// Decodes and validates one serialized `Check{Application,Payment}Request`;
    /// raises `CoreInvalidArgument("request", why)` for bytes that are not one. Tens
    /// of microseconds: the GIL is kept (a release and re-acquire would cost more).
    fn prepare(
        &self,
        kind_name: &str,
        request: &[u8],
        receive_time_us: i64,
    ) -> Result<PyPreparedCheck, PyCoreError> {
        let kind = kind(kind_name)?;
        let inner = scoring::prepare(kind, request, receive_time_us)?;
        Ok(PyPreparedCheck { inner })
    }

    /// Scores a prepared, valid check: aggregates, model, rules, matches, index and
    /// the encoded `Report`, in one call with the GIL released (held again only to
    /// call `model`). An error leaves every state as it was.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (prepared, *, partner_id, request_id, report_name, receive_time_us,
                        incident_id, elapsed_ns, aggregates, rules, lists, index, revision,
                        model=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        prepared: &PyPreparedCheck,
        partner_id: &str,
        request_id: &str,
        report_name: &str,
        receive_time_us: i64,
        incident_id: &str,
        elapsed_ns: u64,
        aggregates: &PyAggregateStore,
        rules: &PyRuleSet,
        lists: &PyListRegistry,
        index: &PyMatchIndex,
        revision: &str,
        model: Option<Py<PyAny>>,
    ) -> Result<ScoredTuple<'py>, PyCoreError> {
        let ctx = CheckContext {
            partner_id,
            request_id,
            report_name,
            receive_time_us,
            incident_id,
            elapsed_ns,
        };
        let names = aggregates.names.clone();
        let scored = py.detach(|| {
            let mut guard = index.lock();
            let state = State {
                aggregates: &aggregates.inner,
                rules: &rules.inner,
                lists: &lists.inner,
                index: &mut guard,
                revision,
            };
            match &model {
                None => self.inner.score(&prepared.inner, &ctx, state, None),
                Some(m) => {
                    let mut f =
                        |event: &serde_json::Value, params: &ParamValues, rules: &Evaluation| {
                            call_model(m, &names, event, params, rules)
                        };
                    self.inner.score(&prepared.inner, &ctx, state, Some(&mut f))
                }
            }
        })?;
        Ok((
            PyBytes::new(py, &scored.report),
            scored.incident,
            scored.event_time_us,
            scored.event_id,
            scored.keys,
        ))
    }

    /// Applies a stored check (its request bytes) to the aggregates and the index,
    /// without rules (restart).
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &self,
        py: Python<'_>,
        kind_name: &str,
        request: &[u8],
        request_key: &str,
        partner_id: &str,
        fallback_time_us: i64,
        aggregates: &PyAggregateStore,
        index: &PyMatchIndex,
    ) -> Result<u64, PyCoreError> {
        let kind = kind(kind_name)?;
        Ok(py.detach(|| {
            self.inner.replay(
                kind,
                request,
                request_key,
                partner_id,
                fallback_time_us,
                &aggregates.inner,
                &mut index.lock(),
            )
        })?)
    }

    /// Feeds an outcome (decision and fraud status names without prefix) of a stored
    /// application (its `CheckApplicationRequest` bytes) to the aggregates and index.
    #[allow(clippy::too_many_arguments)]
    fn apply_outcome(
        &self,
        py: Python<'_>,
        application_request: &[u8],
        partner_id: &str,
        event_time_us: i64,
        decision: &str,
        fraud_status: &str,
        aggregates: &PyAggregateStore,
        index: &PyMatchIndex,
    ) -> Result<(), PyCoreError> {
        Ok(py.detach(|| {
            self.inner.apply_outcome(
                application_request,
                partner_id,
                event_time_us,
                decision,
                fraud_status,
                &aggregates.inner,
                &mut index.lock(),
            )
        })?)
    }
}

/// One serialized `CheckStreamRequest` taken apart without decoding its event:
/// `(correlation_id, kind, unary_request)`, where `kind` is `application`, `payment` or
/// empty (no event, and then `unary_request` is empty too) and `unary_request` is the
/// serialized `Check{Application,Payment}Request` the item stands for (its
/// `request_id` included). Bytes that are not a `CheckStreamRequest` raise
/// `CoreInvalidArgument("request", why)`. Microseconds: the GIL is kept.
#[pyfunction]
pub fn split_check_stream_item<'py>(
    py: Python<'py>,
    raw: &[u8],
) -> Result<(String, &'static str, Bound<'py, PyBytes>), PyCoreError> {
    let item = scoring::stream::split_stream_item(raw)?;
    Ok((
        item.correlation_id.to_owned(),
        item.kind.map_or("", Kind::field),
        PyBytes::new(py, &item.unary),
    ))
}

/// Every problem of one event document (JSON text of the `document` convention) of
/// `kind_name` received at `now_us`, as `(field, description)`.
#[pyfunction]
pub fn validate_event(
    kind_name: &str,
    event_json: &str,
    now_us: i64,
) -> Result<Vec<(String, String)>, PyCoreError> {
    let kind = kind(kind_name)?;
    let event: serde_json::Value = serde_json::from_str(event_json)
        .map_err(|e| CoreError::invalid("event", format!("not JSON: {e}")))?;
    Ok(scoring::event::validate(kind, &event, now_us)
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect())
}

/// A historical value masked by the disclosure policy: `field` is `phone`, `name`,
/// `passport` or `birth_date`.
#[pyfunction]
pub fn mask_match_value(field: &str, value: &str) -> Result<String, PyCoreError> {
    use lendgate_core::scoring::matching as m;
    Ok(match field {
        "phone" => m::mask_phone(value),
        "name" => m::mask_name(value),
        "passport" => m::mask_passport(value),
        "birth_date" => m::mask_birth_date(value),
        other => {
            return Err(PyCoreError(CoreError::invalid(
                "field",
                format!("no mask for {other:?} (phone, name, passport, birth_date)"),
            )))
        }
    })
}

/// The action thresholds the report applies (``REVIEW_THRESHOLD`` points,
/// ``MODEL_REVIEW_SCORE`` / ``MODEL_DECLINE_SCORE`` on the 0..1000 model scale) and the
/// default fuzzy name similarity (``DEFAULT_NAME_SIMILARITY``), so Python reads the
/// same numbers the Rust scorer uses.
pub fn register_constants(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use lendgate_core::scoring::report;
    m.add("REVIEW_THRESHOLD", report::REVIEW_THRESHOLD)?;
    m.add("MODEL_REVIEW_SCORE", report::MODEL_REVIEW_SCORE)?;
    m.add("MODEL_DECLINE_SCORE", report::MODEL_DECLINE_SCORE)?;
    m.add("DEFAULT_NAME_SIMILARITY", DEFAULT_NAME_SIMILARITY)?;
    Ok(())
}
