//! Bindings for `lendgate_core::rules`: events and results cross as JSON bytes.

use lendgate_core::rules::{self, EventKind, RuleSet};
use lendgate_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::PyCoreError;
use crate::lists::PyListRegistry;

/// A compiled rule set; evaluate it on many events, from any thread.
#[pyclass(frozen, name = "RuleSet", module = "lendgate._core")]
pub struct PyRuleSet {
    pub(crate) inner: RuleSet,
}

fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, PyCoreError> {
    serde_json::to_vec(value).map_err(|e| PyCoreError(CoreError::invalid("result", e.to_string())))
}

#[pymethods]
impl PyRuleSet {
    /// Compiles a JSON array of rules; raises `CoreInvalidArgument` naming the
    /// field, the rule and the position of a syntax error. Nothing is built then.
    #[staticmethod]
    fn compile(py: Python<'_>, rules_json: &str, zone_threshold: i64) -> Result<Self, PyCoreError> {
        let defs = rules::parse_rules(rules_json)?;
        let inner = py.detach(|| RuleSet::compile(defs, zone_threshold))?;
        Ok(Self { inner })
    }

    /// Checks one rule (a JSON object) without building a set.
    #[staticmethod]
    fn validate(rule_json: &str) -> Result<(), PyCoreError> {
        let def = serde_json::from_str(rule_json)
            .map_err(|e| CoreError::invalid("rule", e.to_string()))?;
        Ok(rules::validate_rule(&def)?)
    }

    /// Number of enabled rules.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Evaluates on one event document (JSON bytes); returns the result as JSON
    /// bytes. The GIL is released for parsing, evaluation and encoding.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        document: &[u8],
        event_kind: &str,
        event_time_ms: i64,
        lists: &PyListRegistry,
    ) -> Result<Bound<'py, PyBytes>, PyCoreError> {
        let kind: EventKind = event_kind.parse()?;
        let out = py.detach(|| {
            let doc = rules::parse_document(document)?;
            encode(&self.inner.evaluate(&doc, kind, event_time_ms, &lists.inner)).map_err(|e| e.0)
        })?;
        Ok(PyBytes::new(py, &out))
    }

    /// Evaluates on many events of one kind in one call (`documents[i]` at
    /// `event_times_ms[i]`); returns one JSON result per event.
    fn evaluate_batch<'py>(
        &self,
        py: Python<'py>,
        documents: Vec<Bound<'py, PyBytes>>,
        event_kind: &str,
        event_times_ms: Vec<i64>,
        lists: &PyListRegistry,
    ) -> Result<Vec<Bound<'py, PyBytes>>, PyCoreError> {
        let kind: EventKind = event_kind.parse()?;
        if documents.len() != event_times_ms.len() {
            return Err(CoreError::invalid(
                "event_times_ms",
                "one event time per document is required",
            )
            .into());
        }
        let documents: Vec<&[u8]> = documents.iter().map(|d| d.as_bytes()).collect();
        let out = py.detach(|| {
            documents
                .iter()
                .zip(&event_times_ms)
                .map(|(d, at)| {
                    let doc = rules::parse_document(d)?;
                    encode(&self.inner.evaluate(&doc, kind, *at, &lists.inner)).map_err(|e| e.0)
                })
                .collect::<Result<Vec<_>, CoreError>>()
        })?;
        Ok(out.iter().map(|b| PyBytes::new(py, b)).collect())
    }
}
