//! Verification side of the sealed-bid auction protocol (docs/AUCTION_PROTOCOL.md).
//!
//! Everything a party checks on the hot path lives here: Ed25519 signatures over
//! typed payloads, hash commitments to bid amounts, and the RFC 6962 Merkle tree over
//! the bids of one auction. Signing and encryption stay with the key holders (the
//! Python nodes); this crate only verifies and hashes, so it holds no secrets.

pub mod commitment;
pub mod merkle;
pub mod signature;

pub use commitment::{bid_commitment, verify_bid_opening, BidOpening};
pub use merkle::{inclusion_proof, leaf_hash, merkle_root, verify_inclusion, EMPTY_ROOT_LEN};
pub use signature::verify_signature;
