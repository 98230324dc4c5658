//! Bindings for `lendgate_core::normalize`.

use crate::error::PyCoreError;
use lendgate_core::normalize::{self, KeyKind};
use pyo3::prelude::*;

/// Normalises a key value of the given kind ("text" or "phone").
#[pyfunction]
pub fn normalize_key(kind: &str, value: &str) -> Result<String, PyCoreError> {
    let kind: KeyKind = kind.parse()?;
    Ok(normalize::normalize_key(kind, value)?)
}
