//! Bindings for `lendgate_core::matchkeys`: the store's writer hashes a batch's keys at once.

use lendgate_core::matchkeys;
use pyo3::prelude::*;

/// The signed 64-bit index value of one match key.
#[pyfunction]
pub fn key_hash(kind: &str, value: &str) -> i64 {
    matchkeys::key_hash(kind, value)
}

/// `(key_hash, seq)` index rows for one event's keys, without duplicate keys.
#[pyfunction]
pub fn key_rows(seq: i64, keys: Vec<(String, String)>) -> Vec<(i64, i64)> {
    let mut rows: Vec<(i64, i64)> = Vec::with_capacity(keys.len());
    for (i, (kind, value)) in keys.iter().enumerate() {
        if keys[..i].iter().any(|(k, v)| k == kind && v == value) {
            continue;
        }
        rows.push((matchkeys::key_hash(kind, value), seq));
    }
    rows
}
