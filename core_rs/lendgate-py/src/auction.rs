//! Bindings for `lendgate_core::auction` (↔ `lendgate/auction/crypto.py`).

use crate::error::PyCoreError;
use lendgate_core::auction::{self, BidOpening};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Strict Ed25519 check of `signature` over `type_name || 0x00 || payload`.
#[pyfunction]
pub fn verify_signature(
    py: Python<'_>,
    public_key: &[u8],
    type_name: &str,
    payload: &[u8],
    signature: &[u8],
) -> Result<bool, PyCoreError> {
    let (pk, p, s) = (public_key.to_vec(), payload.to_vec(), signature.to_vec());
    let name = type_name.to_owned();
    Ok(py.detach(move || auction::verify_signature(&pk, &name, &p, &s))?)
}

/// The 32-byte hash commitment to a bid.
#[pyfunction]
pub fn bid_commitment<'py>(
    py: Python<'py>,
    amount_minor: u64,
    currency: &str,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    let opening = BidOpening {
        amount_minor,
        currency,
        nonce,
        bidder,
        auction,
    };
    Ok(PyBytes::new(py, &auction::bid_commitment(&opening)?))
}

/// Whether the opening opens `commitment`.
#[pyfunction]
pub fn verify_bid_opening(
    commitment: &[u8],
    amount_minor: u64,
    currency: &str,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> bool {
    let opening = BidOpening {
        amount_minor,
        currency,
        nonce,
        bidder,
        auction,
    };
    auction::verify_bid_opening(commitment, &opening)
}

/// The Merkle leaf hash of a bid.
#[pyfunction]
pub fn leaf_hash<'py>(
    py: Python<'py>,
    commitment: &[u8],
    encrypted_opening: &[u8],
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    Ok(PyBytes::new(
        py,
        &auction::leaf_hash(commitment, encrypted_opening)?,
    ))
}

/// The RFC 6962 root over leaf hashes.
#[pyfunction]
pub fn merkle_root<'py>(
    py: Python<'py>,
    leaf_hashes: Vec<Vec<u8>>,
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    Ok(PyBytes::new(py, &auction::merkle_root(&leaf_hashes)?))
}

/// The audit path of leaf `index`.
#[pyfunction]
pub fn inclusion_proof<'py>(
    py: Python<'py>,
    leaf_hashes: Vec<Vec<u8>>,
    index: usize,
) -> Result<Vec<Bound<'py, PyBytes>>, PyCoreError> {
    Ok(auction::inclusion_proof(&leaf_hashes, index)?
        .iter()
        .map(|h| PyBytes::new(py, h))
        .collect())
}

/// Whether `audit_path` proves `leaf_hash` at `index` under `root` of `size` leaves.
#[pyfunction]
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    audit_path: Vec<Vec<u8>>,
    root: &[u8],
) -> bool {
    auction::verify_inclusion(leaf_hash, index, size, &audit_path, root)
}
