//! Hash commitments to bid amounts.
//!
//! `C = SHA-256("lendgate.v1.BidCommitment" || 0x00 || amount_minor (u64 BE) ||
//! lp(currency) || nonce (32 bytes) || lp(bidder) || lp(auction))`, where `lp(x)` is
//! the 4-byte big-endian length of `x` followed by `x`. The 32-byte random nonce hides
//! the amount (SHA-256 as a random oracle); collision resistance binds the bidder to
//! one amount; naming the bidder and the auction inside stops a bid being copied to
//! another bidder or auction.

use crate::{CoreError, CoreResult};
use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"lendgate.v1.BidCommitment\0";

/// Largest accepted amount in minor units (2^62), so sums of bids cannot overflow.
pub const MAX_AMOUNT_MINOR: u64 = 1 << 62;

/// What a commitment commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidOpening<'a> {
    /// Amount in minor units, 1..=2^62.
    pub amount_minor: u64,
    /// ISO 4217 currency code.
    pub currency: &'a str,
    /// 32 random bytes chosen by the bidder.
    pub nonce: &'a [u8],
    /// The bidder, "participants/{id}".
    pub bidder: &'a str,
    /// The auction, "auctions/{id}".
    pub auction: &'a str,
}

fn push_lp(buf: &mut Vec<u8>, part: &[u8]) -> CoreResult<()> {
    let len = u32::try_from(part.len()).map_err(|_| CoreError::invalid("opening", "too long"))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(part);
    Ok(())
}

/// Computes the 32-byte commitment to `opening`; rejects amounts outside 1..=2^62 and
/// nonces that are not 32 bytes.
pub fn bid_commitment(opening: &BidOpening<'_>) -> CoreResult<[u8; 32]> {
    if opening.amount_minor == 0 || opening.amount_minor > MAX_AMOUNT_MINOR {
        return Err(CoreError::invalid(
            "amount.amount_minor",
            "must be in 1..=2^62",
        ));
    }
    if opening.nonce.len() != 32 {
        return Err(CoreError::invalid("nonce", "must be 32 bytes"));
    }
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(DOMAIN);
    buf.extend_from_slice(&opening.amount_minor.to_be_bytes());
    push_lp(&mut buf, opening.currency.as_bytes())?;
    buf.extend_from_slice(opening.nonce);
    push_lp(&mut buf, opening.bidder.as_bytes())?;
    push_lp(&mut buf, opening.auction.as_bytes())?;
    Ok(Sha256::digest(&buf).into())
}

/// Returns whether `opening` opens `commitment`. An opening that cannot be valid (zero
/// amount, short nonce) opens nothing.
pub fn verify_bid_opening(commitment: &[u8], opening: &BidOpening<'_>) -> bool {
    match bid_commitment(opening) {
        // Not secret-dependent: both values are public once the opening is revealed.
        Ok(computed) => commitment == computed.as_slice(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opening(amount: u64) -> BidOpening<'static> {
        BidOpening {
            amount_minor: amount,
            currency: "RUB",
            nonce: &[9u8; 32],
            bidder: "participants/mfo-1",
            auction: "auctions/a1",
        }
    }

    #[test]
    fn opens_only_with_the_committed_values() {
        let c = bid_commitment(&opening(50_000)).expect("valid");
        assert!(verify_bid_opening(&c, &opening(50_000)));
        assert!(!verify_bid_opening(&c, &opening(50_001)));
        let other_bidder = BidOpening {
            bidder: "participants/mfo-2",
            ..opening(50_000)
        };
        assert!(!verify_bid_opening(&c, &other_bidder));
        let other_auction = BidOpening {
            auction: "auctions/a2",
            ..opening(50_000)
        };
        assert!(!verify_bid_opening(&c, &other_auction));
    }

    #[test]
    fn rejects_absurd_amounts() {
        assert!(bid_commitment(&opening(0)).is_err());
        assert!(bid_commitment(&opening(MAX_AMOUNT_MINOR + 1)).is_err());
        assert!(!verify_bid_opening(&[0u8; 32], &opening(0)));
    }
}
