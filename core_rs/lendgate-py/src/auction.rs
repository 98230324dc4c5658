//! Bindings for `lendgate_core::auction` (↔ `lendgate/auction/crypto.py`).

use crate::error::PyCoreError;
use lendgate_core::auction::{self, BidOpening, TypedSigner};
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

/// An Ed25519 key signing typed payloads (the coordinator's, on the hot path).
#[pyclass(frozen, name = "Ed25519Signer", module = "lendgate._core")]
pub struct Ed25519Signer(TypedSigner);

#[pymethods]
impl Ed25519Signer {
    /// The signer of a 32-byte Ed25519 seed (the raw private key).
    #[new]
    fn new(seed: &[u8]) -> Result<Self, PyCoreError> {
        Ok(Self(TypedSigner::from_seed(seed)?))
    }

    /// The 32-byte public key.
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public_key())
    }

    /// The signature over `type_name || 0x00 || payload`.
    fn sign<'py>(
        &self,
        py: Python<'py>,
        type_name: &str,
        payload: &[u8],
    ) -> Result<Bound<'py, PyBytes>, PyCoreError> {
        Ok(PyBytes::new(py, &self.0.sign(type_name, payload)?))
    }
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
    pedersen_commitment: &[u8],
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    Ok(PyBytes::new(
        py,
        &auction::leaf_hash(commitment, encrypted_opening, pedersen_commitment)?,
    ))
}

/// The Merkle leaf hash of a bid from the SHA-256 of its encrypted opening.
#[pyfunction]
pub fn leaf_hash_from_digest<'py>(
    py: Python<'py>,
    commitment: &[u8],
    opening_digest: &[u8],
    pedersen_commitment: &[u8],
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    Ok(PyBytes::new(
        py,
        &auction::leaf_hash_from_digest(commitment, opening_digest, pedersen_commitment)?,
    ))
}

/// The 32-byte Pedersen commitment to a bid (blinding derived from its nonce).
#[pyfunction]
pub fn pedersen_commitment<'py>(
    py: Python<'py>,
    amount_minor: u64,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    let (n, b, a) = (nonce.to_vec(), bidder.to_owned(), auction.to_owned());
    let c = py.detach(move || auction::pedersen_commitment(amount_minor, &n, &b, &a))?;
    Ok(PyBytes::new(py, &c))
}

/// Whether `(amount_minor, nonce)` opens the Pedersen `commitment`.
#[pyfunction]
pub fn verify_pedersen_opening(
    py: Python<'_>,
    commitment: &[u8],
    amount_minor: u64,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> bool {
    let (c, n, b, a) = (
        commitment.to_vec(),
        nonce.to_vec(),
        bidder.to_owned(),
        auction.to_owned(),
    );
    py.detach(move || auction::verify_pedersen_opening(&c, amount_minor, &n, &b, &a))
}

/// For each `(commitment, amount_minor, nonce, bidder)` of one auction's bids, whether
/// the opening opens the Pedersen commitment: one batched check (GIL released).
#[pyfunction]
pub fn verify_pedersen_openings(
    py: Python<'_>,
    auction: &str,
    openings: Vec<(Vec<u8>, u64, Vec<u8>, String)>,
) -> Vec<bool> {
    let a = auction.to_owned();
    py.detach(move || {
        let items: Vec<auction::PedersenOpening<'_>> = openings
            .iter()
            .map(|(c, v, n, b)| auction::PedersenOpening {
                commitment: c,
                amount_minor: *v,
                nonce: n,
                bidder: b,
            })
            .collect();
        auction::verify_pedersen_openings(&a, &items)
    })
}

/// The coordinator's range proof that the winning bid exceeds a losing one (see
/// `lendgate_core::auction::zk`); an error when it does not.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn prove_winner_exceeds<'py>(
    py: Python<'py>,
    auction: &str,
    merkle_root: &[u8],
    winner_leaf: u64,
    winner_amount_minor: u64,
    winner_nonce: &[u8],
    winner_bidder: &str,
    loser_leaf: u64,
    loser_amount_minor: u64,
    loser_nonce: &[u8],
    loser_bidder: &str,
) -> Result<Bound<'py, PyBytes>, PyCoreError> {
    let (a, root) = (auction.to_owned(), merkle_root.to_vec());
    let (wn, wb) = (winner_nonce.to_vec(), winner_bidder.to_owned());
    let (ln, lb) = (loser_nonce.to_vec(), loser_bidder.to_owned());
    let proof = py.detach(move || {
        let winner = auction::Secret {
            amount_minor: winner_amount_minor,
            blinding: auction::pedersen_blinding(&wn, &wb, &a)?,
        };
        let loser = auction::Secret {
            amount_minor: loser_amount_minor,
            blinding: auction::pedersen_blinding(&ln, &lb, &a)?,
        };
        let ctx = auction::ProofContext {
            auction: &a,
            merkle_root: &root,
            winner_leaf,
            loser_leaf,
        };
        auction::prove_winner_exceeds(winner, loser, &ctx)
    })?;
    Ok(PyBytes::new(py, &proof))
}

/// The loser's check of a proof from `prove_winner_exceeds` against the two public
/// Pedersen commitments.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn verify_winner_exceeds(
    py: Python<'_>,
    auction: &str,
    merkle_root: &[u8],
    winner_leaf: u64,
    winner_commitment: &[u8],
    loser_leaf: u64,
    loser_commitment: &[u8],
    proof: &[u8],
) -> Result<bool, PyCoreError> {
    let (a, root) = (auction.to_owned(), merkle_root.to_vec());
    let (wc, lc, p) = (
        winner_commitment.to_vec(),
        loser_commitment.to_vec(),
        proof.to_vec(),
    );
    Ok(py.detach(move || {
        let ctx = auction::ProofContext {
            auction: &a,
            merkle_root: &root,
            winner_leaf,
            loser_leaf,
        };
        auction::verify_winner_exceeds(&wc, &lc, &ctx, &p)
    })?)
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
