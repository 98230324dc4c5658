//! The private extension module `lendgate._core`: registration only.
//!
//! Each topic lives in its own module (`rules.rs` ↔ `lendgate/rules.py` and `_core.pyi`); the
//! logic itself lives in the `lendgate-core` crate.

use pyo3::prelude::*;

/// The extension's Rust allocations go to mimalloc (see the `mimalloc` feature).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod aggregates;
mod auction;
mod buffer;
mod document;
mod error;
mod expr;
mod lists;
mod matchkeys;
mod normalize;
mod rules;
mod scoring;
mod strategy;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", lendgate_core::VERSION)?;
    error::register(m)?;
    m.add_function(wrap_pyfunction!(normalize::normalize_key, m)?)?;
    m.add_function(wrap_pyfunction!(matchkeys::key_hash, m)?)?;
    m.add_function(wrap_pyfunction!(matchkeys::key_rows, m)?)?;
    m.add_function(wrap_pyfunction!(document::decode_document, m)?)?;
    m.add_class::<expr::PyCompiledExpression>()?;
    m.add_class::<expr::PyCompiledUnaryExpression>()?;
    m.add_class::<aggregates::PyAggregateStore>()?;
    m.add_class::<strategy::PyCompiledStrategy>()?;
    m.add_function(wrap_pyfunction!(auction::verify_signature, m)?)?;
    m.add_class::<auction::Ed25519Signer>()?;
    m.add_function(wrap_pyfunction!(auction::bid_commitment, m)?)?;
    m.add_function(wrap_pyfunction!(auction::verify_bid_opening, m)?)?;
    m.add_function(wrap_pyfunction!(auction::leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(auction::leaf_hash_from_digest, m)?)?;
    m.add_function(wrap_pyfunction!(auction::pedersen_commitment, m)?)?;
    m.add_function(wrap_pyfunction!(auction::verify_pedersen_opening, m)?)?;
    m.add_function(wrap_pyfunction!(auction::verify_pedersen_openings, m)?)?;
    m.add_function(wrap_pyfunction!(auction::prove_winner_exceeds, m)?)?;
    m.add_function(wrap_pyfunction!(auction::verify_winner_exceeds, m)?)?;
    m.add_function(wrap_pyfunction!(auction::merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(auction::inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(auction::verify_inclusion, m)?)?;
    m.add_class::<lists::PyListRegistry>()?;
    m.add_class::<lists::PyStagedWrite>()?;
    m.add_class::<rules::PyRuleSet>()?;
    m.add_function(wrap_pyfunction!(aggregates::compare_fl, m)?)?;
    m.add_class::<scoring::PyMatchIndex>()?;
    m.add_class::<scoring::PyPreparedCheck>()?;
    m.add_class::<scoring::PyScorer>()?;
    m.add_function(wrap_pyfunction!(scoring::validate_event, m)?)?;
    m.add_function(wrap_pyfunction!(scoring::split_check_stream_item, m)?)?;
    m.add_function(wrap_pyfunction!(scoring::mask_match_value, m)?)?;
    scoring::register_constants(m)?;
    Ok(())
}
