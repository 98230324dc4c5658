//! Strict Ed25519 verification of typed payloads.
//!
//! The signed bytes are `type_name || 0x00 || payload`: the type name separates the
//! domains, so a signature over one message type never verifies as another.

use crate::{CoreError, CoreResult};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Returns whether `signature` is a valid strict Ed25519 signature by `public_key` over
/// `type_name || 0x00 || payload`.
///
/// Strict means RFC 8032 plus the `verify_strict` checks of ed25519-dalek: non-canonical
/// encodings and small-order keys or `R` values are rejected, so a signature cannot be
/// malleated into a second valid one. Malformed keys or signatures (wrong length, not
/// a curve point) are errors naming the field; a well-formed but wrong signature is
/// `Ok(false)`.
pub fn verify_signature(
    public_key: &[u8],
    type_name: &str,
    payload: &[u8],
    signature: &[u8],
) -> CoreResult<bool> {
    let key: [u8; 32] = public_key
        .try_into()
        .map_err(|_| CoreError::invalid("public_key", "must be 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| CoreError::invalid("public_key", "not a valid Ed25519 public key"))?;
    if key.is_weak() {
        return Err(CoreError::invalid("public_key", "small-order Ed25519 key"));
    }
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| CoreError::invalid("signature", "must be 64 bytes"))?;
    let sig = Signature::from_bytes(&sig);
    if type_name.is_empty() || type_name.as_bytes().contains(&0) {
        return Err(CoreError::invalid(
            "type_name",
            "must be non-empty without NUL",
        ));
    }
    let mut message = Vec::with_capacity(type_name.len() + 1 + payload.len());
    message.extend_from_slice(type_name.as_bytes());
    message.push(0);
    message.extend_from_slice(payload);
    Ok(key.verify_strict(&message, &sig).is_ok())
}

/// An Ed25519 signing key that signs typed payloads (`type_name || 0x00 || payload`),
/// held by the coordinator for its receipts, roots and results. Deterministic (RFC 8032):
/// the same signatures as any other Ed25519 implementation; the key is zeroized on drop.
pub struct TypedSigner(SigningKey);

impl TypedSigner {
    /// The signer of the 32-byte Ed25519 seed `seed` (the raw private key).
    pub fn from_seed(seed: &[u8]) -> CoreResult<Self> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| CoreError::invalid("seed", "must be 32 bytes"))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The 64-byte signature over `type_name || 0x00 || payload`.
    pub fn sign(&self, type_name: &str, payload: &[u8]) -> CoreResult<[u8; 64]> {
        if type_name.is_empty() || type_name.as_bytes().contains(&0) {
            return Err(CoreError::invalid(
                "type_name",
                "must be non-empty without NUL",
            ));
        }
        let mut message = Vec::with_capacity(type_name.len() + 1 + payload.len());
        message.extend_from_slice(type_name.as_bytes());
        message.push(0);
        message.extend_from_slice(payload);
        Ok(self.0.sign(&message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(type_name: &str, payload: &[u8]) -> (SigningKey, Vec<u8>) {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut msg = type_name.as_bytes().to_vec();
        msg.push(0);
        msg.extend_from_slice(payload);
        let sig = key.sign(&msg).to_bytes().to_vec();
        (key, sig)
    }

    #[test]
    fn accepts_a_good_signature_and_rejects_any_change() {
        let (key, sig) = signed("lendgate.v1.SealedBid", b"bid");
        let pk = key.verifying_key().to_bytes();
        assert_eq!(
            verify_signature(&pk, "lendgate.v1.SealedBid", b"bid", &sig),
            Ok(true)
        );
        assert_eq!(
            verify_signature(&pk, "lendgate.v1.SealedBid", b"bie", &sig),
            Ok(false)
        );
        // The same bytes under another type name do not verify (domain separation).
        assert_eq!(
            verify_signature(&pk, "lendgate.v1.BidReceipt", b"bid", &sig),
            Ok(false)
        );
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert_eq!(
            verify_signature(&pk, "lendgate.v1.SealedBid", b"bid", &bad),
            Ok(false)
        );
    }

    #[test]
    fn typed_signer_signs_what_verify_accepts() {
        let signer = TypedSigner::from_seed(&[7u8; 32]).unwrap();
        let (_, expected) = signed("lendgate.v1.BidReceipt", b"receipt");
        let sig = signer.sign("lendgate.v1.BidReceipt", b"receipt").unwrap();
        assert_eq!(sig.to_vec(), expected); // deterministic: same key, same signature
        assert_eq!(
            verify_signature(
                &signer.public_key(),
                "lendgate.v1.BidReceipt",
                b"receipt",
                &sig
            ),
            Ok(true)
        );
        assert!(signer.sign("", b"x").is_err());
        assert!(TypedSigner::from_seed(&[1u8; 31]).is_err());
    }

    #[test]
    fn rejects_malformed_and_weak_keys() {
        let (_, sig) = signed("T", b"x");
        assert!(verify_signature(&[0u8; 31], "T", b"x", &sig).is_err());
        assert!(verify_signature(&[0u8; 32], "T", b"x", &sig[..63]).is_err());
        // The identity point encoding is a small-order key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(verify_signature(&identity, "T", b"x", &sig).is_err());
    }
}
