//! Verification side of the sealed-bid auction protocol (docs/AUCTION_PROTOCOL.md).
//!
//! Everything a party checks on the hot path lives here: Ed25519 signatures over
//! typed payloads, hash and Pedersen commitments to bid amounts, the losers' Bulletproofs range proof,
//! and the RFC 6962 Merkle tree over
//! the bids of one auction. Encryption stays with the key holders (the Python nodes);
//! this crate verifies, hashes and proves, and signs only with a key handed to a
//! [`TypedSigner`] (the coordinator's, for its receipts and results on the hot path).

pub mod commitment;
pub mod merkle;
pub mod signature;
pub mod zk;

pub use commitment::{bid_commitment, verify_bid_opening, BidOpening};
pub use merkle::{
    inclusion_proof, leaf_hash, leaf_hash_from_digest, merkle_root, verify_inclusion,
    EMPTY_ROOT_LEN,
};
pub use signature::{verify_signature, TypedSigner};
pub use zk::{
    check_pedersen_commitment, pedersen_blinding, pedersen_commitment, prove_winner_exceeds,
    verify_pedersen_opening, verify_pedersen_openings, verify_winner_exceeds, PedersenOpening,
    ProofContext, Secret,
};
