//! Bindings for `lendgate_core::aggregates`: the `AggregateStore` class.
//!
//! Python passes events and definitions as JSON bytes; all store work runs with the
//! GIL released, so two Python threads apply events on two cores at once.

use crate::buffer::ReadOnlyBytes;
use crate::error::PyCoreError;
use lendgate_core::aggregates::{AggregateStore, Definitions, ParamValues, Scalar};
use lendgate_core::expr_filter::ExprFilters;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// Keyed, time-windowed aggregates over JSON events.
#[pyclass(frozen, name = "AggregateStore", module = "lendgate._core")]
pub struct PyAggregateStore {
    pub(crate) inner: AggregateStore,
    pub(crate) names: Vec<String>,
}

impl PyAggregateStore {
    fn wrap(inner: AggregateStore) -> Self {
        let names = inner
            .definitions()
            .param_names()
            .map(str::to_owned)
            .collect();
        Self { inner, names }
    }

    fn results<'py>(&self, py: Python<'py>, values: ParamValues) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, v) in self.names.iter().zip(values) {
            match v {
                Scalar::Null => out.set_item(name, py.None())?,
                Scalar::Bool(b) => out.set_item(name, b)?,
                Scalar::Int(i) => out.set_item(name, i)?,
                Scalar::Num(x) => out.set_item(name, x)?,
                Scalar::Str(s) => out.set_item(name, &*s)?,
            }
        }
        Ok(out)
    }
}

#[pymethods]
impl PyAggregateStore {
    /// Compiles JSON definitions into an empty store.
    #[new]
    fn new(py: Python<'_>, definitions: &[u8]) -> Result<Self, PyCoreError> {
        let store = py.detach(|| -> Result<_, PyCoreError> {
            Ok(AggregateStore::new(compile(definitions)?))
        })?;
        Ok(Self::wrap(store))
    }

    /// Rebuilds a store from a snapshot taken with definitions of the same layout
    /// (`bytes`, or a read-only memoryview: a part of a larger snapshot, not copied).
    #[staticmethod]
    fn restore(py: Python<'_>, definitions: &[u8], snapshot: &Bound<'_, PyAny>) -> PyResult<Self> {
        let snapshot = ReadOnlyBytes::new(snapshot, "snapshot")?;
        let data = snapshot.as_slice();
        let store = py.detach(|| -> Result<_, PyCoreError> {
            Ok(AggregateStore::restore(compile(definitions)?, data)?)
        })?;
        Ok(Self::wrap(store))
    }

    /// Parameter names, in output order.
    fn param_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Applies one JSON event and returns every parameter's value for it.
    fn apply<'py>(&self, py: Python<'py>, event: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let values = py.detach(|| self.inner.apply(event)).map_err(PyCoreError)?;
        self.results(py, values)
    }

    /// The values `apply` would return for this event, without changing the state.
    fn evaluate<'py>(&self, py: Python<'py>, event: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let values = py
            .detach(|| self.inner.evaluate(event))
            .map_err(PyCoreError)?;
        self.results(py, values)
    }

    /// Applies one serialized `lendgate.v1` message of type `message_type`, decoded in
    /// Rust (no Python objects on the way), and returns every parameter's value.
    fn apply_proto<'py>(
        &self,
        py: Python<'py>,
        message_type: &str,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyDict>> {
        let values = py
            .detach(|| self.inner.apply_proto(message_type, data))
            .map_err(PyCoreError)?;
        self.results(py, values)
    }

    /// The values `apply_proto` would return, without changing the state.
    fn evaluate_proto<'py>(
        &self,
        py: Python<'py>,
        message_type: &str,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyDict>> {
        let values = py
            .detach(|| self.inner.evaluate_proto(message_type, data))
            .map_err(PyCoreError)?;
        self.results(py, values)
    }

    /// Drops expired data from up to `max_shards` shards; returns
    /// `(shards_visited, keys_dropped, pass_complete)`.
    fn expire_step(&self, py: Python<'_>, max_shards: usize) -> (usize, usize, bool) {
        let p = py.detach(|| self.inner.expire_step(max_shards));
        (p.shards, p.keys_dropped, p.pass_complete)
    }

    /// The whole state as versioned bytes.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = py.detach(|| self.inner.snapshot()).map_err(PyCoreError)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Number of keys per object name.
    fn key_counts(&self, py: Python<'_>) -> Vec<(String, usize)> {
        py.detach(|| self.inner.key_counts())
    }

    /// The newest event time applied (epoch ms), or None.
    fn watermark(&self) -> Option<i64> {
        self.inner.watermark()
    }
}

fn compile(definitions: &[u8]) -> Result<Definitions, PyCoreError> {
    let text = std::str::from_utf8(definitions).map_err(|e| {
        PyCoreError(lendgate_core::CoreError::invalid(
            "definitions",
            format!("not UTF-8: {e}"),
        ))
    })?;
    // Element filters may be expressions (`filter_expr`), compiled by the expression engine.
    Ok(Definitions::from_json_with(text, Some(&ExprFilters))?)
}

/// Jaro–Winkler mismatch percentage `(1 - jw) * 100` of two strings (seed `CompareFL`).
#[pyfunction]
pub fn compare_fl(a: &str, b: &str) -> f64 {
    lendgate_core::aggregates::query::compare_fl(a, b)
}
