//! Keyed pseudonyms and blind indexes: HMAC-SHA-256 with a domain-separation prefix,
//! so the audit journal and the identity index can name a person without holding
//! anything that reads back to them without the key.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// Prefix of pseudonyms of a hub id; the version lets the scheme change without two
/// schemes ever producing comparable values.
pub const PSEUDONYM_DOMAIN: &[u8] = b"passerelle/pseudonym/v1\0";
/// Prefix of blind indexes (searchable keyed hashes of normalised identifiers).
pub const BLIND_INDEX_DOMAIN: &[u8] = b"passerelle/blind-index/v1\0";

/// A 256-bit secret for pseudonyms and blind indexes. Zeroized on drop; `Debug` shows
/// only a fingerprint-free placeholder.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    /// Wraps existing key bytes (read from the keyring or a secret file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from 64 hex characters (a secret file or environment variable); the error
    /// never quotes the input.
    pub fn from_hex(text: &str) -> Result<Self, crate::CryptoError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
            crate::CryptoError::Malformed("pseudonym key must be 64 hex characters")
        })?;
        Ok(Self(bytes))
    }

    /// A fresh random key from the operating system's CSPRNG (via rand's thread RNG,
    /// which is seeded from it and reseeds).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key bytes, for storing in the keyring; never for logging.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// The pseudonym of a hub id: lowercase hex of
    /// HMAC-SHA-256(key, "passerelle/pseudonym/v1\0" ‖ hub_id), 64 characters.
    pub fn pseudonym(&self, hub_id: &str) -> String {
        let mut mac = self.mac();
        mac.update(PSEUDONYM_DOMAIN);
        mac.update(hub_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A blind index of an already normalised value of some kind (`nir`, `caf`,
    /// `nom-prenom-naissance`…): lowercase hex of
    /// HMAC-SHA-256(key, "passerelle/blind-index/v1\0" ‖ kind ‖ "\0" ‖ value).
    /// The kind is part of the input so equal strings of two kinds never collide.
    pub fn blind_index(&self, kind: &str, normalised_value: &str) -> String {
        let mut mac = self.mac();
        mac.update(BLIND_INDEX_DOMAIN);
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(normalised_value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonym_is_stable_keyed_and_hex() {
        let k = PseudonymKey::from_bytes([7; 32]);
        let p = k.pseudonym("0190c0de-0000-7000-8000-000000000001");
        assert_eq!(p.len(), 64);
        assert!(
            p.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(p, k.pseudonym("0190c0de-0000-7000-8000-000000000001"));
        assert_ne!(p, k.pseudonym("0190c0de-0000-7000-8000-000000000002"));
        let other = PseudonymKey::from_bytes([8; 32]);
        assert_ne!(p, other.pseudonym("0190c0de-0000-7000-8000-000000000001"));
    }

    #[test]
    fn pseudonym_matches_hmac_definition() {
        let k = PseudonymKey::from_bytes([1; 32]);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&[1; 32]).unwrap();
        mac.update(b"passerelle/pseudonym/v1\0abc");
        assert_eq!(k.pseudonym("abc"), hex::encode(mac.finalize().into_bytes()));
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&[1; 32]).unwrap();
        mac.update(b"passerelle/blind-index/v1\0nir\x00123");
        assert_eq!(
            k.blind_index("nir", "123"),
            hex::encode(mac.finalize().into_bytes())
        );
    }

    #[test]
    fn blind_index_separates_kinds_and_domains() {
        let k = PseudonymKey::from_bytes([3; 32]);
        assert_ne!(
            k.blind_index("nir", "1234567"),
            k.blind_index("caf", "1234567")
        );
        // "a\0b" as value of kind "x" vs kind "x\0a" value "b" is the only ambiguity the
        // separator leaves; kinds are fixed identifiers without NUL, so it cannot occur.
        assert_ne!(k.blind_index("nir", "x"), k.pseudonym("nir\0x"));
    }

    #[test]
    fn from_hex_reads_64_hex_characters_only() {
        let k = PseudonymKey::from_hex(&"0a".repeat(32)).unwrap();
        assert_eq!(k, PseudonymKey::from_bytes([10; 32]));
        assert!(PseudonymKey::from_hex("0a0a").is_err());
        let e = PseudonymKey::from_hex(&"zz".repeat(32))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("zz"), "{e}");
    }

    #[test]
    fn generated_keys_differ_and_debug_is_redacted() {
        let a = PseudonymKey::generate();
        let b = PseudonymKey::generate();
        assert_ne!(a, b);
        let shown = format!("{a:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(a.expose_bytes())[..8]));
    }
}
