//! The Merkle tree over the bids of one auction: RFC 6962 / RFC 9162 section 2.1 with
//! SHA-256 (leaf hash `H(0x00 || leaf)`, node hash `H(0x01 || left || right)`).
//!
//! A bid's leaf is `commitment (32 bytes) || SHA-256(encrypted_opening) || Pedersen
//! commitment (32 bytes)`, so the root signed at the deadline fixes what each bid
//! committed to (twice: hash and Pedersen) and the ciphertext the seller will unseal.

use crate::{CoreError, CoreResult};
use sha2::{Digest, Sha256};

/// Length of every hash in the tree.
pub const EMPTY_ROOT_LEN: usize = 32;

type Hash = [u8; 32];

/// The leaf hash of a bid: `SHA-256(0x00 || commitment || SHA-256(encrypted_opening) ||
/// pedersen_commitment)`.
pub fn leaf_hash(
    commitment: &[u8],
    encrypted_opening: &[u8],
    pedersen_commitment: &[u8],
) -> CoreResult<Hash> {
    leaf_hash_from_digest(
        commitment,
        &Sha256::digest(encrypted_opening),
        pedersen_commitment,
    )
}

/// [`leaf_hash`] from the SHA-256 of the encrypted opening rather than the opening
/// itself: what a loser gets to recompute the winning leaf without its ciphertext.
pub fn leaf_hash_from_digest(
    commitment: &[u8],
    opening_digest: &[u8],
    pedersen_commitment: &[u8],
) -> CoreResult<Hash> {
    if commitment.len() != 32 {
        return Err(CoreError::invalid("commitment", "must be 32 bytes"));
    }
    if opening_digest.len() != 32 {
        return Err(CoreError::invalid("opening_digest", "must be 32 bytes"));
    }
    if pedersen_commitment.len() != 32 {
        return Err(CoreError::invalid(
            "pedersen_commitment",
            "must be 32 bytes",
        ));
    }
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(commitment);
    h.update(opening_digest);
    h.update(pedersen_commitment);
    Ok(h.finalize().into())
}

fn node(left: &[u8], right: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn as_hashes(leaf_hashes: &[Vec<u8>]) -> CoreResult<Vec<Hash>> {
    leaf_hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.as_slice()
                .try_into()
                .map_err(|_| CoreError::invalid(format!("leaf_hashes[{i}]"), "must be 32 bytes"))
        })
        .collect()
}

/// The root over `leaf_hashes` (in leaf order); SHA-256 of the empty string when empty.
pub fn merkle_root(leaf_hashes: &[Vec<u8>]) -> CoreResult<Hash> {
    Ok(mth(&as_hashes(leaf_hashes)?))
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(mth(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(mth(&leaves[..k]));
    }
}

/// The audit path of leaf `index` (siblings from the leaf up to the root).
pub fn inclusion_proof(leaf_hashes: &[Vec<u8>], index: usize) -> CoreResult<Vec<Hash>> {
    let leaves = as_hashes(leaf_hashes)?;
    if index >= leaves.len() {
        return Err(CoreError::invalid("leaf_index", "not below the leaf count"));
    }
    let mut out = Vec::new();
    path(index, &leaves, &mut out);
    Ok(out)
}

/// Returns whether `audit_path` proves `leaf_hash` at `index` in a tree of `size`
/// leaves with root `root` (the algorithm of RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    audit_path: &[Vec<u8>],
    root: &[u8],
) -> bool {
    if index >= size || leaf_hash.len() != 32 || root.len() != 32 {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r: Hash = match leaf_hash.try_into() {
        Ok(h) => h,
        Err(_) => return false,
    };
    for p in audit_path {
        if p.len() != 32 || snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r.as_slice() == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                leaf_hash(&[i as u8; 32], &[i as u8], &[i as u8; 32])
                    .expect("32 bytes")
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn every_leaf_of_every_size_proves_and_nothing_else_does() {
        for n in 1..=17 {
            let ls = leaves(n);
            let root = merkle_root(&ls).expect("root");
            for i in 0..n {
                let proof: Vec<Vec<u8>> = inclusion_proof(&ls, i)
                    .expect("proof")
                    .iter()
                    .map(|h| h.to_vec())
                    .collect();
                assert!(verify_inclusion(&ls[i], i as u64, n as u64, &proof, &root));
                // Wrong index or wrong leaf: both fail. (The size is signed with the
                // root, so a proof is only ever checked against the signed size.)
                assert!(
                    !verify_inclusion(
                        &ls[i],
                        (i as u64 + 1) % (n as u64 + 1),
                        n as u64,
                        &proof,
                        &root
                    ) || n == 1
                );
                assert!(
                    !verify_inclusion(&ls[(i + 1) % n], i as u64, n as u64, &proof, &root)
                        || n == 1
                );
            }
        }
    }

    #[test]
    fn matches_rfc6962_shape_for_three_leaves() {
        let ls = leaves(3);
        let l: Vec<Hash> = as_hashes(&ls).expect("hashes");
        let expected = node(&node(&l[0], &l[1]), &l[2]);
        assert_eq!(merkle_root(&ls).expect("root"), expected);
        let empty: Hash = Sha256::digest([]).into();
        assert_eq!(merkle_root(&[]).expect("root"), empty);
    }
}
