//! The private extension module `lendgate._core`: registration only.
//!
//! Each topic lives in its own module (`normalize.rs`, `expr.rs` ↔ `lendgate/_core.pyi`); the
//! logic itself lives in the `lendgate-core` crate.

use pyo3::prelude::*;

mod aggregates;
mod document;
mod error;
mod expr;
mod normalize;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", lendgate_core::VERSION)?;
    error::register(m)?;
    m.add_function(wrap_pyfunction!(normalize::normalize_key, m)?)?;
    m.add_function(wrap_pyfunction!(document::decode_document, m)?)?;
    m.add_class::<expr::PyCompiledExpression>()?;
    m.add_class::<expr::PyCompiledUnaryExpression>()?;
    m.add_class::<aggregates::PyAggregateStore>()?;
    m.add_function(wrap_pyfunction!(aggregates::compare_fl, m)?)?;
    Ok(())
}
