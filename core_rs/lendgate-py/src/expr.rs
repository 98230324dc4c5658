//! Bindings for `lendgate_core::expr`: compiled expressions and unary tests.

use std::sync::Arc;

use lendgate_core::expr::{map_with_capacity, Expression, UnaryExpression, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

use crate::error::PyCoreError;

/// A compiled ZEN expression; evaluate it many times, from any thread.
#[pyclass(frozen, name = "CompiledExpression", module = "lendgate._core")]
pub struct PyCompiledExpression {
    inner: Expression,
}

#[pymethods]
impl PyCompiledExpression {
    /// Compiles `source`; raises `CoreInvalidArgument` with the position on a syntax error.
    #[staticmethod]
    fn compile(source: &str) -> Result<Self, PyCoreError> {
        Ok(Self {
            inner: Expression::compile(source)?,
        })
    }

    /// The source text.
    #[getter]
    fn source(&self) -> &str {
        self.inner.source()
    }

    /// Evaluates against `context` (a dict, or None); the GIL is released meanwhile.
    #[pyo3(signature = (context=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        context: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = match context {
            Some(c) => to_value(c, 0)?,
            None => Value::Null,
        };
        let out = py
            .detach(|| self.inner.evaluate_value(&input))
            .map_err(PyCoreError)?;
        to_py(py, &out)
    }
}

/// A compiled unary test (a decision-table cell) over the subject `$`.
#[pyclass(frozen, name = "CompiledUnaryExpression", module = "lendgate._core")]
pub struct PyCompiledUnaryExpression {
    inner: UnaryExpression,
}

#[pymethods]
impl PyCompiledUnaryExpression {
    /// Compiles a unary test; raises `CoreInvalidArgument` with the position on a syntax error.
    #[staticmethod]
    fn compile(source: &str) -> Result<Self, PyCoreError> {
        Ok(Self {
            inner: UnaryExpression::compile(source)?,
        })
    }

    /// The source text.
    #[getter]
    fn source(&self) -> &str {
        self.inner.source()
    }

    /// Tests `context`, a dict whose `$` key holds the subject.
    fn evaluate(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<bool> {
        let input = to_value(context, 0)?;
        Ok(py
            .detach(|| self.inner.evaluate_value(&input))
            .map_err(PyCoreError)?)
    }
}

const MAX_NESTING: usize = 256;

/// Converts a JSON-like Python object (dict, list, tuple, str, int, float, bool, None).
fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_NESTING {
        return Err(PyTypeError::new_err("input nested too deeply"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Value::Number(v.into()));
        }
        if let Ok(v) = i.extract::<u64>() {
            return Ok(Value::Number(v.into()));
        }
        let text = i.str()?.to_cow()?.into_owned();
        return Ok(text.parse::<Decimal>().map_or(Value::Null, Value::Number));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Decimal::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::str(&s.to_cow()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = map_with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("object keys must be strings"))?;
            map.insert(Arc::from(key.to_cow()?.as_ref()), to_value(&v, depth + 1)?);
        }
        return Ok(Value::object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let items = l
            .iter()
            .map(|v| to_value(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(Value::array(items));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let items = t
            .iter()
            .map(|v| to_value(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(Value::array(items));
    }
    Err(PyTypeError::new_err(format!(
        "unsupported input type {}",
        obj.get_type().name()?
    )))
}

/// Converts a result to Python: integral numbers as int, others as float.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            let n = n.normalize();
            match (n.scale(), n.to_i64()) {
                (0, Some(i)) => i.into_pyobject(py)?.into_any(),
                // Via the decimal text, as ZEN does, so both round to the same float.
                _ => n
                    .to_string()
                    .parse::<f64>()
                    .ok()
                    .or_else(|| n.to_f64())
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any(),
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items.iter() {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map.iter() {
                dict.set_item(k.as_ref(), to_py(py, v)?)?;
            }
            dict.into_any()
        }
        Value::Date(d) => PyString::new(py, &d.to_string()).into_any(),
        Value::Interval(i) => PyString::new(py, &i.to_string()).into_any(),
    })
}
