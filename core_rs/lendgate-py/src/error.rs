//! The one mapping from `CoreError` to Python exceptions.

use lendgate_core::CoreError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;

create_exception!(
    _core,
    CoreInvalidArgument,
    PyException,
    "Invalid input rejected by the Rust core; args are (field, reason)."
);
create_exception!(
    _core,
    CoreNotFound,
    PyException,
    "A named object was not found by the Rust core; args are (kind, name)."
);

create_exception!(
    _core,
    CoreEvaluationError,
    PyException,
    "An expression failed at run time (type mismatch, limit); args are (field, reason)."
);

/// Adds the exception types to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoreInvalidArgument", py.get_type::<CoreInvalidArgument>())?;
    m.add("CoreNotFound", py.get_type::<CoreNotFound>())?;
    m.add("CoreEvaluationError", py.get_type::<CoreEvaluationError>())?;
    Ok(())
}

/// Newtype so that `?` converts core errors into Python exceptions.
pub struct PyCoreError(pub CoreError);

impl From<CoreError> for PyCoreError {
    fn from(err: CoreError) -> Self {
        Self(err)
    }
}

impl From<PyCoreError> for PyErr {
    fn from(err: PyCoreError) -> Self {
        match err.0 {
            CoreError::InvalidArgument { field, reason } => {
                CoreInvalidArgument::new_err((field, reason))
            }
            CoreError::NotFound { kind, name } => CoreNotFound::new_err((kind, name)),
            err @ CoreError::ExpressionSyntax { .. } => {
                CoreInvalidArgument::new_err(("expression", err.to_string()))
            }
            CoreError::ExpressionEvaluation { reason } => {
                CoreEvaluationError::new_err(("expression", reason))
            }
            CoreError::NodeFailed { node_id, reason } => {
                CoreEvaluationError::new_err((node_id, reason))
            }
            // A defect of lendgate: the server reports it as INTERNAL with an incident id.
            err @ CoreError::Internal { .. } => PyRuntimeError::new_err(err.to_string()),
        }
    }
}
