//! Pedersen commitments to bid amounts and the losers' zero-knowledge proof that the
//! winning bid exceeds theirs (Bulletproofs range proof over Ristretto255).
//!
//! Every sealed bid carries, next to its hash commitment, a Pedersen commitment
//! `P = v·B + r·B̃` (the `PedersenGens` of the `bulletproofs` crate: `B` the Ristretto
//! base point, `B̃` a hash-to-group point with no known discrete log relative to `B`).
//! The blinding `r` is not a new secret: it is derived from the bid's 32-byte
//! commitment nonce, the bidder and the auction ([`pedersen_blinding`]), so the bid's
//! opening stays `(amount, nonce)` and the coordinator learns `r` when it opens the bid.
//!
//! After the decision a loser with commitment `P_L` receives a range proof that
//! `D = P_W − P_L − k·B` commits to a value in `[0, 2^64)`, where `P_W` is the winning
//! bid's commitment (under the signed Merkle root) and `k` encodes the fixed tie rule:
//! `k = 1` when the loser's leaf index is below the winner's (it must be strictly
//! outbid), `k = 0` when it is above (an equal amount loses to the earlier receipt).
//! Amounts are at most 2^62, so `W − L − k` is in range exactly when `W ≥ L + k`: a
//! wrap-around modulo the group order is impossible. The coordinator knows `W − L − k`
//! and `r_W − r_L`; the loser learns nothing of `W` beyond the inequality (the proof
//! is zero-knowledge and `P_W` is perfectly hiding).
//!
//! The Merlin transcript is bound to the auction, the signed Merkle root and both leaf
//! indexes, so a proof cannot be replayed for another auction, bid set or bid.

use std::sync::LazyLock;

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use merlin::Transcript;
use sha2::{Digest, Sha512};

use crate::{CoreError, CoreResult};

use super::commitment::MAX_AMOUNT_MINOR;

/// Bits of the range proof: the difference of two amounts ≤ 2^62 fits in 64 bits.
const RANGE_BITS: usize = 64;
const BLINDING_DOMAIN: &[u8] = b"lendgate.v1.PedersenBlinding\0";
const TRANSCRIPT_LABEL: &[u8] = b"lendgate.v1.WinnerExceedsLoser";

static PC_GENS: LazyLock<PedersenGens> = LazyLock::new(PedersenGens::default);
static BP_GENS: LazyLock<BulletproofGens> = LazyLock::new(|| BulletproofGens::new(RANGE_BITS, 1));

/// The public context a loser proof is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofContext<'a> {
    /// The auction, "auctions/{id}".
    pub auction: &'a str,
    /// The signed Merkle root of the bid set (32 bytes).
    pub merkle_root: &'a [u8],
    /// Leaf index of the winning bid.
    pub winner_leaf: u64,
    /// Leaf index of the losing bid.
    pub loser_leaf: u64,
}

impl ProofContext<'_> {
    /// `k` of the module comment: 1 when the loser must be strictly outbid.
    fn offset(&self) -> u64 {
        u64::from(self.loser_leaf < self.winner_leaf)
    }

    fn transcript(&self) -> CoreResult<Transcript> {
        if self.merkle_root.len() != 32 {
            return Err(CoreError::invalid("merkle_root", "must be 32 bytes"));
        }
        if self.winner_leaf == self.loser_leaf {
            return Err(CoreError::invalid(
                "loser_leaf",
                "the winner does not lose to itself",
            ));
        }
        let mut t = Transcript::new(TRANSCRIPT_LABEL);
        t.append_message(b"auction", self.auction.as_bytes());
        t.append_message(b"merkle_root", self.merkle_root);
        t.append_u64(b"winner_leaf", self.winner_leaf);
        t.append_u64(b"loser_leaf", self.loser_leaf);
        Ok(t)
    }
}

/// The Pedersen blinding of a bid: `Scalar::from_hash(SHA-512(domain || nonce ||
/// lp(bidder) || lp(auction)))`, a uniform scalar as long as the nonce is secret.
pub fn pedersen_blinding(nonce: &[u8], bidder: &str, auction: &str) -> CoreResult<Scalar> {
    if nonce.len() != 32 {
        return Err(CoreError::invalid("nonce", "must be 32 bytes"));
    }
    let mut h = Sha512::new();
    h.update(BLINDING_DOMAIN);
    h.update(nonce);
    for part in [bidder.as_bytes(), auction.as_bytes()] {
        let len =
            u32::try_from(part.len()).map_err(|_| CoreError::invalid("opening", "too long"))?;
        h.update(len.to_be_bytes());
        h.update(part);
    }
    Ok(Scalar::from_hash(h))
}

fn check_amount(amount_minor: u64) -> CoreResult<()> {
    if amount_minor == 0 || amount_minor > MAX_AMOUNT_MINOR {
        return Err(CoreError::invalid(
            "amount.amount_minor",
            "must be in 1..=2^62",
        ));
    }
    Ok(())
}

/// The 32-byte compressed Pedersen commitment to a bid of `amount_minor` whose
/// commitment nonce is `nonce`.
pub fn pedersen_commitment(
    amount_minor: u64,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> CoreResult<[u8; 32]> {
    check_amount(amount_minor)?;
    let r = pedersen_blinding(nonce, bidder, auction)?;
    Ok(PC_GENS
        .commit(Scalar::from(amount_minor), r)
        .compress()
        .to_bytes())
}

/// Whether `(amount_minor, nonce)` opens the Pedersen commitment `commitment`.
pub fn verify_pedersen_opening(
    commitment: &[u8],
    amount_minor: u64,
    nonce: &[u8],
    bidder: &str,
    auction: &str,
) -> bool {
    match pedersen_commitment(amount_minor, nonce, bidder, auction) {
        Ok(c) => commitment == c.as_slice(),
        Err(_) => false,
    }
}

/// One claimed opening of a Pedersen commitment, for [`verify_pedersen_openings`].
#[derive(Debug, Clone, Copy)]
pub struct PedersenOpening<'a> {
    /// The compressed commitment (32 bytes).
    pub commitment: &'a [u8],
    /// The claimed amount in minor units.
    pub amount_minor: u64,
    /// The bid's 32-byte commitment nonce (the blinding is derived from it).
    pub nonce: &'a [u8],
    /// The bidder, "participants/{id}".
    pub bidder: &'a str,
}

const BATCH_DOMAIN: &[u8] = b"lendgate.v1.PedersenOpeningBatch\0";

/// Whether each opening opens its commitment, for all the bids of one auction at once:
/// the same answers as [`verify_pedersen_opening`] one by one, at the cost of one
/// multiscalar multiplication instead of two scalar multiplications per bid.
///
/// The batch equation is `Σ zᵢ·(Cᵢ − vᵢ·B − rᵢ·B̃) = 0` with weights `zᵢ` derived by
/// hashing every commitment, amount and blinding of the batch (Fiat–Shamir): a wrong
/// opening makes its term non-zero before the weights are known, so the sum vanishes
/// only with probability ≈ 2⁻¹²⁸. When the batch equation fails, each opening is checked
/// on its own, so an invalid bid is found without penalising the valid ones.
pub fn verify_pedersen_openings(auction: &str, openings: &[PedersenOpening<'_>]) -> Vec<bool> {
    let mut ok = vec![false; openings.len()];
    let mut index = Vec::with_capacity(openings.len());
    let mut points = Vec::with_capacity(openings.len());
    let mut values = Vec::with_capacity(openings.len());
    let mut blindings = Vec::with_capacity(openings.len());
    let mut seed = Sha512::new();
    seed.update(BATCH_DOMAIN);
    seed.update(auction.as_bytes());
    for (i, o) in openings.iter().enumerate() {
        if check_amount(o.amount_minor).is_err() {
            continue;
        }
        let Ok(r) = pedersen_blinding(o.nonce, o.bidder, auction) else {
            continue;
        };
        let Ok(c) = point(o.commitment, "pedersen_commitment") else {
            continue;
        };
        seed.update(o.commitment);
        seed.update(o.amount_minor.to_be_bytes());
        seed.update(r.as_bytes());
        index.push(i);
        points.push(c);
        values.push(Scalar::from(o.amount_minor));
        blindings.push(r);
    }
    if index.is_empty() {
        return ok;
    }
    let seed = seed.finalize();
    // 128-bit weights (soundness 2^-128) halve the multiscalar work of full scalars.
    let weights: Vec<Scalar> = (0..index.len() as u64)
        .map(|j| {
            let mut h = Sha512::new();
            h.update(seed);
            h.update(j.to_be_bytes());
            let mut wide = [0u8; 32];
            wide[..16].copy_from_slice(&h.finalize()[..16]);
            Scalar::from_bytes_mod_order(wide)
        })
        .collect();
    let v: Scalar = weights.iter().zip(&values).map(|(z, v)| z * v).sum();
    let r: Scalar = weights.iter().zip(&blindings).map(|(z, r)| z * r).sum();
    let scalars = weights.iter().copied().chain([-v, -r]);
    let bases = points
        .iter()
        .copied()
        .chain([PC_GENS.B, PC_GENS.B_blinding]);
    if RistrettoPoint::vartime_multiscalar_mul(scalars, bases).is_identity() {
        for &i in &index {
            ok[i] = true;
        }
    } else {
        for (j, &i) in index.iter().enumerate() {
            ok[i] = PC_GENS.commit(values[j], blindings[j]) == points[j];
        }
    }
    ok
}

/// A decompressed, valid Ristretto point, or an error naming `field`.
fn point(bytes: &[u8], field: &str) -> CoreResult<curve25519_dalek::ristretto::RistrettoPoint> {
    CompressedRistretto::from_slice(bytes)
        .ok()
        .and_then(|c| c.decompress())
        .ok_or_else(|| CoreError::invalid(field, "not a valid Ristretto255 point"))
}

/// Checks that `bytes` is a valid compressed Pedersen commitment (a Ristretto point).
pub fn check_pedersen_commitment(bytes: &[u8]) -> CoreResult<()> {
    point(bytes, "pedersen_commitment").map(|_| ())
}

/// One side of a proof: an amount and the bid's Pedersen blinding scalar.
#[derive(Debug, Clone, Copy)]
pub struct Secret {
    /// Amount in minor units.
    pub amount_minor: u64,
    /// The Pedersen blinding ([`pedersen_blinding`]).
    pub blinding: Scalar,
}

/// Proves (as the coordinator) that the winner's amount exceeds the loser's under the
/// tie rule of `context`. Fails when it does not: a false claim has no proof.
pub fn prove_winner_exceeds(
    winner: Secret,
    loser: Secret,
    context: &ProofContext<'_>,
) -> CoreResult<Vec<u8>> {
    check_amount(winner.amount_minor)?;
    check_amount(loser.amount_minor)?;
    let difference = winner
        .amount_minor
        .checked_sub(loser.amount_minor)
        .and_then(|d| d.checked_sub(context.offset()))
        .ok_or_else(|| {
            CoreError::invalid(
                "winner",
                "the winning amount does not exceed the losing one",
            )
        })?;
    let mut transcript = context.transcript()?;
    let blinding = winner.blinding - loser.blinding;
    let (proof, _) = RangeProof::prove_single(
        &BP_GENS,
        &PC_GENS,
        &mut transcript,
        difference,
        &blinding,
        RANGE_BITS,
    )
    .map_err(|e| CoreError::invalid("range_proof", e.to_string()))?;
    Ok(proof.to_bytes())
}

/// Verifies (as the loser) a proof from [`prove_winner_exceeds`] against the two
/// public Pedersen commitments. Malformed commitments are errors naming the field; a
/// well-formed proof that does not verify is `Ok(false)`.
pub fn verify_winner_exceeds(
    winner_commitment: &[u8],
    loser_commitment: &[u8],
    context: &ProofContext<'_>,
    proof: &[u8],
) -> CoreResult<bool> {
    let pw = point(winner_commitment, "winner_commitment")?;
    let pl = point(loser_commitment, "loser_commitment")?;
    let mut transcript = context.transcript()?;
    let Ok(proof) = RangeProof::from_bytes(proof) else {
        return Ok(false);
    };
    let difference = pw - pl - PC_GENS.B * Scalar::from(context.offset());
    Ok(proof
        .verify_single(
            &BP_GENS,
            &PC_GENS,
            &mut transcript,
            &difference.compress(),
            RANGE_BITS,
        )
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUCTION: &str = "auctions/a1";
    const ROOT: [u8; 32] = [7u8; 32];

    fn bid(amount: u64, who: &str, seed: u8) -> (Secret, [u8; 32]) {
        let nonce = [seed; 32];
        let blinding = pedersen_blinding(&nonce, who, AUCTION).expect("nonce");
        let c = pedersen_commitment(amount, &nonce, who, AUCTION).expect("amount");
        (
            Secret {
                amount_minor: amount,
                blinding,
            },
            c,
        )
    }

    fn ctx(winner_leaf: u64, loser_leaf: u64) -> ProofContext<'static> {
        ProofContext {
            auction: AUCTION,
            merkle_root: &ROOT,
            winner_leaf,
            loser_leaf,
        }
    }

    #[test]
    fn batch_of_openings_agrees_with_one_by_one() {
        let who: Vec<String> = (0..20).map(|i| format!("participants/b{i}")).collect();
        let nonces: Vec<[u8; 32]> = (0..20u8).map(|i| [i + 1; 32]).collect();
        let commitments: Vec<[u8; 32]> = (0..20)
            .map(|i| pedersen_commitment(1_000 + i as u64, &nonces[i], &who[i], AUCTION).unwrap())
            .collect();
        let openings = |amounts: &[u64]| -> Vec<PedersenOpening<'_>> {
            (0..20)
                .map(|i| PedersenOpening {
                    commitment: &commitments[i],
                    amount_minor: amounts[i],
                    nonce: &nonces[i],
                    bidder: &who[i],
                })
                .collect()
        };
        let honest: Vec<u64> = (0..20).map(|i| 1_000 + i as u64).collect();
        assert!(verify_pedersen_openings(AUCTION, &openings(&honest))
            .iter()
            .all(|&ok| ok));
        // One wrong amount fails alone; another auction fails all.
        let mut lying = honest.clone();
        lying[7] += 1;
        let got = verify_pedersen_openings(AUCTION, &openings(&lying));
        let expected: Vec<bool> = (0..20).map(|i| i != 7).collect();
        assert_eq!(got, expected);
        for (i, o) in openings(&lying).iter().enumerate() {
            let one =
                verify_pedersen_opening(o.commitment, o.amount_minor, o.nonce, o.bidder, AUCTION);
            assert_eq!(one, got[i]);
        }
        assert!(
            verify_pedersen_openings("auctions/other", &openings(&honest))
                .iter()
                .all(|&ok| !ok)
        );
        // Malformed items are false, not errors; an empty batch is empty.
        let mut bad = openings(&honest);
        bad[3].commitment = &[0xff; 32];
        bad[4].nonce = &[1; 5];
        bad[5].amount_minor = 0;
        let got = verify_pedersen_openings(AUCTION, &bad);
        assert_eq!(got.iter().filter(|&&ok| !ok).count(), 3);
        assert!(verify_pedersen_openings(AUCTION, &[]).is_empty());
    }

    #[test]
    fn commitment_opens_only_with_its_values() {
        let c = pedersen_commitment(500, &[1; 32], "participants/b", AUCTION).expect("ok");
        assert!(verify_pedersen_opening(
            &c,
            500,
            &[1; 32],
            "participants/b",
            AUCTION
        ));
        assert!(!verify_pedersen_opening(
            &c,
            501,
            &[1; 32],
            "participants/b",
            AUCTION
        ));
        assert!(!verify_pedersen_opening(
            &c,
            500,
            &[2; 32],
            "participants/b",
            AUCTION
        ));
        assert!(!verify_pedersen_opening(
            &c,
            500,
            &[1; 32],
            "participants/c",
            AUCTION
        ));
        assert!(pedersen_commitment(0, &[1; 32], "p", AUCTION).is_err());
        assert!(pedersen_commitment(MAX_AMOUNT_MINOR + 1, &[1; 32], "p", AUCTION).is_err());
    }

    #[test]
    fn honest_proof_verifies_and_is_bound_to_its_context() {
        let (w, pw) = bid(90_000, "participants/w", 1);
        let (l, pl) = bid(70_000, "participants/l", 2);
        let proof = prove_winner_exceeds(w, l, &ctx(3, 1)).expect("winner exceeds");
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(3, 1), &proof),
            Ok(true)
        );
        // Another auction, root or leaf: the transcript differs.
        let other = ProofContext {
            auction: "auctions/a2",
            ..ctx(3, 1)
        };
        assert_eq!(verify_winner_exceeds(&pw, &pl, &other, &proof), Ok(false));
        let root = [8u8; 32];
        let other = ProofContext {
            merkle_root: &root,
            ..ctx(3, 1)
        };
        assert_eq!(verify_winner_exceeds(&pw, &pl, &other, &proof), Ok(false));
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(3, 0), &proof),
            Ok(false)
        );
        // Swapped commitments, or a corrupted proof, do not verify.
        assert_eq!(
            verify_winner_exceeds(&pl, &pw, &ctx(3, 1), &proof),
            Ok(false)
        );
        let mut bad = proof.clone();
        bad[40] ^= 1;
        assert_eq!(verify_winner_exceeds(&pw, &pl, &ctx(3, 1), &bad), Ok(false));
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(3, 1), b"junk"),
            Ok(false)
        );
    }

    #[test]
    fn the_tie_rule_is_part_of_the_statement() {
        let (w, pw) = bid(50_000, "participants/w", 1);
        let (l, pl) = bid(50_000, "participants/l", 2);
        // The winner came first (leaf 0): a tie loses, provably.
        let proof = prove_winner_exceeds(w, l, &ctx(0, 4)).expect("tie, earlier wins");
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(0, 4), &proof),
            Ok(true)
        );
        // The loser came first: an equal amount must not lose, so no proof exists.
        assert!(prove_winner_exceeds(w, l, &ctx(4, 0)).is_err());
    }

    #[test]
    fn a_lying_coordinator_cannot_prove_a_lower_winner() {
        let (w, pw) = bid(40_000, "participants/w", 1);
        let (l, pl) = bid(60_000, "participants/l", 2);
        assert!(prove_winner_exceeds(w, l, &ctx(0, 1)).is_err());
        // Lying about the loser's amount gives a proof about another commitment.
        let fake_loser = Secret {
            amount_minor: 30_000,
            ..l
        };
        let proof = prove_winner_exceeds(w, fake_loser, &ctx(0, 1)).expect("for the lie");
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(0, 1), &proof),
            Ok(false)
        );
        // Lying about the winner's amount, likewise.
        let fake_winner = Secret {
            amount_minor: 80_000,
            ..w
        };
        let proof = prove_winner_exceeds(fake_winner, l, &ctx(0, 1)).expect("for the lie");
        assert_eq!(
            verify_winner_exceeds(&pw, &pl, &ctx(0, 1), &proof),
            Ok(false)
        );
    }

    #[test]
    fn malformed_points_are_errors() {
        let (_, pl) = bid(1, "participants/l", 2);
        assert!(verify_winner_exceeds(&[0xff; 32], &pl, &ctx(0, 1), b"").is_err());
        assert!(verify_winner_exceeds(&pl, &[1; 31], &ctx(0, 1), b"").is_err());
        assert!(check_pedersen_commitment(&[0xff; 32]).is_err());
        assert!(check_pedersen_commitment(&pl).is_ok());
    }
}
