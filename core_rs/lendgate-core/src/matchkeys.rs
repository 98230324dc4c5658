//! The 64-bit index value of a match key (the store's `event_keys.key_hash`).
//!
//! SipHash-1-3 with fixed keys over `kind`, a 0x1F separator and `value`: stable across
//! processes, machines and versions (it is stored on disk). Look-ups filter the rows they
//! find by the exact keys, so a collision costs a wasted row read, never a wrong answer.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

const K0: u64 = 0x6c65_6e64_6761_7465; // "lendgate"
const K1: u64 = 0x6d61_7463_686b_6579; // "matchkey"

/// The signed 64-bit index value of one key.
pub fn key_hash(kind: &str, value: &str) -> i64 {
    let mut hasher = SipHasher13::new_with_keys(K0, K1);
    hasher.write(kind.as_bytes());
    hasher.write(&[0x1f]);
    hasher.write(value.as_bytes());
    hasher.finish() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separated() {
        assert_eq!(
            key_hash("phone", "79991234567"),
            key_hash("phone", "79991234567")
        );
        assert_ne!(key_hash("phone", "1"), key_hash("phon", "e1"));
        // Pinned: the value is stored in databases, it must never change.
        assert_eq!(key_hash("phone", "79991234567"), PINNED);
    }

    const PINNED: i64 = 373_014_592_069_461_715;
}
