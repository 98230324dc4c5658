//! Bindings for `lendgate_core::document`.

use crate::error::PyCoreError;
use lendgate_core::document;
use pyo3::prelude::*;

/// Decodes a serialized message of the contract and returns its document as JSON text.
#[pyfunction]
pub fn decode_document(
    py: Python<'_>,
    message_type: &str,
    data: &[u8],
) -> Result<String, PyCoreError> {
    let json = py.detach(|| document::decode_document(message_type, data))?;
    Ok(json.to_string())
}
