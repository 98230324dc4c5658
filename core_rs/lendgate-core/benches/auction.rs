//! Throughput of bid verification: signature, commitment opening, Merkle inclusion, and
//! the losers' range proof (prove and verify).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey};
use lendgate_core::auction::{
    bid_commitment, inclusion_proof, leaf_hash, merkle_root, pedersen_blinding,
    pedersen_commitment, prove_winner_exceeds, verify_bid_opening, verify_inclusion,
    verify_pedersen_opening, verify_signature, verify_winner_exceeds, BidOpening, ProofContext,
    Secret,
};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let pk = key.verifying_key().to_bytes();
    let payload = vec![5u8; 300];
    let mut msg = b"lendgate.v1.SealedBid\0".to_vec();
    msg.extend_from_slice(&payload);
    let sig = key.sign(&msg).to_bytes();
    let opening = BidOpening {
        amount_minor: 50_000,
        currency: "RUB",
        nonce: &[1u8; 32],
        bidder: "participants/mfo-1",
        auction: "auctions/0123456789abcdef",
    };
    let commitment = bid_commitment(&opening).expect("valid opening");
    let leaves: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            leaf_hash(&[i; 32], &[i; 200], &[i; 32])
                .expect("leaf")
                .to_vec()
        })
        .collect();
    let root = merkle_root(&leaves).expect("root");
    let proof: Vec<Vec<u8>> = inclusion_proof(&leaves, 13)
        .expect("proof")
        .iter()
        .map(|h| h.to_vec())
        .collect();

    let (auction, w, l) = (
        "auctions/0123456789abcdef",
        "participants/w",
        "participants/l",
    );
    let secret = |amount: u64, nonce: &[u8; 32], who: &str| Secret {
        amount_minor: amount,
        blinding: pedersen_blinding(nonce, who, auction).expect("nonce"),
    };
    let (ws, ls) = (secret(90_000, &[1; 32], w), secret(70_000, &[2; 32], l));
    let pw = pedersen_commitment(90_000, &[1; 32], w, auction).expect("amount");
    let pl = pedersen_commitment(70_000, &[2; 32], l, auction).expect("amount");
    let ctx = ProofContext {
        auction,
        merkle_root: &root,
        winner_leaf: 3,
        loser_leaf: 1,
    };
    let range_proof = prove_winner_exceeds(ws, ls, &ctx).expect("winner exceeds");

    let mut group = c.benchmark_group("auction");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_signature", |b| {
        b.iter(|| verify_signature(&pk, "lendgate.v1.SealedBid", black_box(&payload), &sig))
    });
    group.bench_function("verify_bid_opening", |b| {
        b.iter(|| verify_bid_opening(black_box(&commitment), &opening))
    });
    group.bench_function("verify_inclusion_20", |b| {
        b.iter(|| verify_inclusion(black_box(&leaves[13]), 13, 20, &proof, &root))
    });
    group.bench_function("merkle_root_20", |b| {
        b.iter(|| merkle_root(black_box(&leaves)))
    });
    group.bench_function("verify_pedersen_opening", |b| {
        b.iter(|| verify_pedersen_opening(black_box(&pw), 90_000, &[1; 32], w, auction))
    });
    group.bench_function("prove_winner_exceeds", |b| {
        b.iter(|| prove_winner_exceeds(black_box(ws), ls, &ctx))
    });
    group.bench_function("verify_winner_exceeds", |b| {
        b.iter(|| verify_winner_exceeds(black_box(&pw), &pl, &ctx, &range_proof))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
