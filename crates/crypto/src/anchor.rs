//! The hub's anchor key: an Ed25519 key that signs the journal's head at each anchor
//! and checkpoint, so that someone who can write the journal's database (but not the
//! keyring) cannot move the head, cut the tail or rewrite the chain without the
//! signatures failing.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use zeroize::Zeroizing;

/// The hub's signing key. `Debug` shows the public key only.
#[derive(Clone)]
pub struct AnchorKey(SigningKey);

impl AnchorKey {
    /// A fresh key from the operating system's CSPRNG (via rand's thread RNG).
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(seed.as_mut());
        Self(SigningKey::from_bytes(&seed))
    }

    /// Wraps a stored 32-byte seed.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        Self(SigningKey::from_bytes(&seed))
    }

    /// The seed, for storing in the keyring; never for logging.
    pub fn expose_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key, lowercase hex (64 characters): print it, publish it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// The signature of `message`, lowercase hex (128 characters).
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchorKey(public {})", self.public_hex())
    }
}

/// Whether `signature_hex` is a valid Ed25519 signature of `message` by the public key
/// `public_hex`. Malformed hex or keys are simply not valid.
pub fn verify_signature(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let mut pk = [0u8; 32];
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(public_hex, &mut pk).is_err()
        || hex::decode_to_slice(signature_hex, &mut sig).is_err()
    {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    // Strict verification refuses malleable and small-order signatures.
    key.verify_strict(message, &Signature::from_bytes(&sig))
        .is_ok()
        && key.verify(message, &Signature::from_bytes(&sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let k = AnchorKey::generate();
        let s = k.sign_hex(b"head 12");
        assert!(verify_signature(&k.public_hex(), b"head 12", &s));
        assert!(!verify_signature(&k.public_hex(), b"head 13", &s));
        let other = AnchorKey::generate();
        assert!(!verify_signature(&other.public_hex(), b"head 12", &s));
        assert!(!verify_signature("zz", b"head 12", &s));
        let again = AnchorKey::from_bytes(*k.expose_bytes());
        assert_eq!(again.public_hex(), k.public_hex());
        assert!(!format!("{k:?}").contains(&hex::encode(*k.expose_bytes())));
    }
}
