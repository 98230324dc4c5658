//! Bindings for `lendgate_core::strategy`: compiled JDM graphs, evaluated with the GIL
//! released. Input and output cross the boundary as JSON bytes.

use std::time::{Duration, Instant};

use lendgate_core::expr::{to_json_bytes, Value};
use lendgate_core::strategy::{structpb, EvalOptions, Graph, Host};
use lendgate_core::{CoreError, CoreResult};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::PyCoreError;

/// A compiled decision graph; evaluate it many times, from any thread.
#[pyclass(frozen, name = "CompiledStrategy", module = "lendgate._core")]
pub struct PyCompiledStrategy {
    inner: Graph,
}

/// `(output_json | None, failed_node_id | None, error | None, trace_json, ab_paths)`.
type EvalTuple<'py> = (
    Option<Bound<'py, PyBytes>>,
    Option<String>,
    Option<String>,
    Bound<'py, PyBytes>,
    Vec<(String, String)>,
);

#[pymethods]
impl PyCompiledStrategy {
    /// Compiles JDM JSON; raises `CoreInvalidArgument(field, reason)` naming the node or edge.
    #[staticmethod]
    fn compile(graph_json: &str) -> Result<Self, PyCoreError> {
        Ok(Self {
            inner: Graph::compile(graph_json)?,
        })
    }

    /// Keys of the sub-strategies called by decision nodes.
    fn sub_decisions(&self) -> Vec<String> {
        self.inner.sub_decisions().to_vec()
    }

    /// Kinds of custom nodes the host must provide.
    fn custom_kinds(&self) -> Vec<String> {
        self.inner.custom_kinds()
    }

    /// Cells that never match because they do not compile.
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    /// Evaluates on `input_json` (JSON bytes) with the GIL released; the output is
    /// JSON bytes. The input is parsed straight into the engine's values and the
    /// output written straight from them.
    ///
    /// `host` (optional) has `load(key) -> CompiledStrategy` and
    /// `custom(kind, config_json, input_json, timeout_ms) -> bytes` (`timeout_ms`: the
    /// node's time left, or None); it is called with the GIL.
    #[pyo3(signature = (input_json, *, trace=false, host=None, max_depth=10, timeout_ms=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        input_json: &[u8],
        trace: bool,
        host: Option<Py<PyAny>>,
        max_depth: u8,
        timeout_ms: Option<u64>,
    ) -> PyResult<EvalTuple<'py>> {
        let run = Call {
            trace,
            host: host.map(PyHost),
            max_depth,
            timeout_ms,
        };
        run.go(py, &self.inner, input_json, Format::Json)
    }

    /// Like `evaluate`, with the input and the output as serialized
    /// `google.protobuf.Struct` messages (the gRPC hot path).
    #[pyo3(signature = (input_struct, *, trace=false, host=None, max_depth=10, timeout_ms=None))]
    fn evaluate_struct<'py>(
        &self,
        py: Python<'py>,
        input_struct: &[u8],
        trace: bool,
        host: Option<Py<PyAny>>,
        max_depth: u8,
        timeout_ms: Option<u64>,
    ) -> PyResult<EvalTuple<'py>> {
        let run = Call {
            trace,
            host: host.map(PyHost),
            max_depth,
            timeout_ms,
        };
        run.go(py, &self.inner, input_struct, Format::Struct)
    }
}

/// How input and output cross the boundary.
#[derive(Clone, Copy)]
enum Format {
    Json,
    Struct,
}

/// The options of one `evaluate` call.
struct Call {
    trace: bool,
    host: Option<PyHost>,
    max_depth: u8,
    timeout_ms: Option<u64>,
}

impl Call {
    fn go<'py>(
        self,
        py: Python<'py>,
        graph: &Graph,
        input: &[u8],
        format: Format,
    ) -> PyResult<EvalTuple<'py>> {
        let (eval, out_bytes) = py
            .detach(|| {
                let value: Value = match format {
                    Format::Json => serde_json::from_slice(input)
                        .map_err(|e| format!("input is not valid JSON: {e}"))?,
                    Format::Struct => structpb::decode(input)
                        .map_err(|e| format!("input is not a valid google.protobuf.Struct: {e}"))?,
                };
                let host: &dyn Host = match &self.host {
                    Some(h) => h,
                    None => &lendgate_core::strategy::NoHost,
                };
                let options = EvalOptions {
                    trace: self.trace,
                    max_depth: self.max_depth,
                    deadline: self
                        .timeout_ms
                        .map(|ms| Instant::now() + Duration::from_millis(ms)),
                    host,
                    ..EvalOptions::default()
                };
                let eval = graph.run(&value, &options);
                let bytes = match (&eval.output, format) {
                    (Ok(out), Format::Json) => Some(to_json_bytes(out)),
                    (Ok(out), Format::Struct) => Some(structpb::encode(out)),
                    (Err(_), _) => None,
                };
                Ok::<_, String>((eval, bytes))
            })
            .map_err(PyValueError::new_err)?;
        let trace_bytes = if self.trace {
            let trace_json =
                serde_json::Value::Array(eval.trace.iter().map(|t| t.to_json()).collect());
            PyBytes::new(py, trace_json.to_string().as_bytes())
        } else {
            PyBytes::new(py, b"[]")
        };
        let ab = eval
            .ab_paths
            .into_iter()
            .map(|a| (a.node_id, a.path.to_owned()))
            .collect();
        Ok(match eval.output {
            Ok(_) => (
                out_bytes.map(|b| PyBytes::new(py, &b)),
                None,
                None,
                trace_bytes,
                ab,
            ),
            Err(CoreError::NodeFailed { node_id, reason }) => {
                (None, Some(node_id), Some(reason), trace_bytes, ab)
            }
            Err(other) => (
                None,
                Some(String::new()),
                Some(other.to_string()),
                trace_bytes,
                ab,
            ),
        })
    }
}

/// A Python object serving sub-strategies and custom nodes.
struct PyHost(Py<PyAny>);

impl Host for PyHost {
    fn load(&self, key: &str) -> CoreResult<Graph> {
        Python::attach(|py| {
            let obj =
                self.0
                    .bind(py)
                    .call_method1("load", (key,))
                    .map_err(|e| CoreError::NotFound {
                        kind: "strategy",
                        name: format!("{key} ({e})"),
                    })?;
            let compiled = obj.cast::<PyCompiledStrategy>().map_err(|_| {
                CoreError::invalid("load", "the host's load() must return a CompiledStrategy")
            })?;
            Ok(compiled.get().inner.clone())
        })
    }

    fn custom(
        &self,
        kind: &str,
        config: &serde_json::Value,
        input: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<serde_json::Value, String> {
        // Whole milliseconds, rounded up so that a limit under 1 ms is not "none".
        let timeout_ms =
            timeout.map(|t| u64::try_from(t.as_micros().div_ceil(1000)).unwrap_or(u64::MAX));
        Python::attach(|py| {
            let out = self
                .0
                .bind(py)
                .call_method1(
                    "custom",
                    (
                        kind,
                        PyBytes::new(py, config.to_string().as_bytes()),
                        PyBytes::new(py, input.to_string().as_bytes()),
                        timeout_ms,
                    ),
                )
                .map_err(|e| e.to_string())?;
            let bytes: Vec<u8> = out.extract().map_err(|e: PyErr| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| format!("the node returned bad JSON: {e}"))
        })
    }
}
