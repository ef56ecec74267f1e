//! The master key of a shared key store: it wraps each stored key (AES-256-GCM, the
//! key's kind, organisation and id bound as associated data), so a database holding
//! the wrapped keys holds nothing usable without it.
//!
//! Each hub instance is given the master key from a file or an environment variable,
//! never from the configuration file. Its id (a keyed fingerprint, 16 hex characters)
//! is stored beside each wrapped key, so that an instance given another master key is
//! told so precisely instead of failing authentication on every key.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CryptoError;

/// Domain of the master key's id: an HMAC of this under the key, so the id says
/// which key it is without saying anything of its bytes.
const ID_DOMAIN: &[u8] = b"passerelle/keystore/master-id/v1";
/// Prefix of the associated data of every wrapped key (the version lets the layout
/// change without old and new wraps ever being confused).
const AAD_PREFIX: &[u8] = b"passerelle/keystore/wrap/v1\0";
const NONCE_LEN: usize = 12;

/// A key wrapped under the master key: what a key store may keep.
#[derive(Clone, PartialEq, Eq)]
pub struct Wrapped {
    pub nonce: [u8; NONCE_LEN],
    /// The 32 key bytes encrypted, then the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Wrapped bytes are safe to show, but a log has no use for them.
        f.debug_struct("Wrapped")
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// The 256-bit master key. Zeroized on drop; `Debug` and `Display` show its id only.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "master key {}", self.id)
    }
}

fn master_error(reason: impl Into<String>) -> CryptoError {
    CryptoError::MasterKey {
        reason: reason.into(),
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(ID_DOMAIN);
        let id = hex::encode(&mac.finalize().into_bytes()[..8]);
        Self { bytes, id }
    }

    /// A fresh random key (for `openssl rand -hex 32`'s equivalent in tests).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.fill(0);
        key
    }

    /// A key from 64 hex characters (surrounding white space ignored); `source` names
    /// where it came from (a file, a variable) in the error, which never quotes it.
    pub fn from_hex(text: &str, source: &str) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut()).map_err(|_| {
            master_error(format!(
                "{source} does not hold a master key: expected 64 hex characters (openssl rand -hex 32)"
            ))
        })?;
        Ok(Self::from_bytes(*bytes))
    }

    /// The key in a file of 64 hex characters, refused when others may read it (a
    /// mounted secret may be group-readable; never world-readable).
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        use std::os::unix::fs::PermissionsExt;
        let source = format!("master key file {}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| CryptoError::io(path, e))?;
        if meta.permissions().mode() & 0o007 != 0 {
            return Err(master_error(format!(
                "{source} can be read by others: make it 0600 or 0640"
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                master_error(format!("{source} is not text"))
            } else {
                CryptoError::io(path, e)
            }
        })?);
        Self::from_hex(&text, &source)
    }

    /// The key in an environment variable of 64 hex characters.
    pub fn from_env(var: &str) -> Result<Self, CryptoError> {
        let source = format!("environment variable {var}");
        let text = Zeroizing::new(
            std::env::var(var)
                .map_err(|_| master_error(format!("{source} is not set (or not UTF-8)")))?,
        );
        Self::from_hex(&text, &source)
    }

    /// Which master key this is: 16 hex characters, stored beside each wrapped key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aad(kind: &str, org: &str, key_id: &str) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        for part in [kind, org, key_id] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }

    /// Wraps 32 key bytes of `kind` (`kek`, `pseudonym`) belonging to `org` under id
    /// `key_id`: moving the wrap onto another row fails to unwrap.
    pub fn wrap(&self, kind: &str, org: &str, key_id: &str, key: &[u8; 32]) -> Wrapped {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(kind, org, key_id);
        let ciphertext = Aes256Gcm::new(&(*self.bytes).into())
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM encrypts 32 bytes"));
        Wrapped { nonce, ciphertext }
    }

    /// Unwraps what [`wrap`](Self::wrap) made for the same kind, organisation and id;
    /// an authentication error when the key, the row or its place differ.
    pub fn unwrap(
        &self,
        kind: &str,
        org: &str,
        key_id: &str,
        wrapped: &Wrapped,
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let aad = Self::aad(kind, org, key_id);
        let plain = Zeroizing::new(
            Aes256Gcm::new(&(*self.bytes).into())
                .decrypt(
                    &Nonce::from(wrapped.nonce),
                    Payload {
                        msg: &wrapped.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| CryptoError::Authentication)?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(CryptoError::Malformed("a wrapped key is not 32 bytes"));
        }
        out.copy_from_slice(&plain);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrap_opens_only_with_its_key_and_its_place() {
        let m = MasterKey::generate();
        let key = [7u8; 32];
        let w = m.wrap("kek", "CD059", "CD059-k1-aa", &key);
        assert!(!w.ciphertext.windows(32).any(|s| s == key));
        assert_eq!(*m.unwrap("kek", "CD059", "CD059-k1-aa", &w).unwrap(), key);
        for (kind, org, id) in [
            ("pseudonym", "CD059", "CD059-k1-aa"),
            ("kek", "CD062", "CD059-k1-aa"),
            ("kek", "CD059", "CD059-k2-aa"),
        ] {
            assert_eq!(
                m.unwrap(kind, org, id, &w).unwrap_err().kind(),
                crate::CryptoErrorKind::Authentication
            );
        }
        let other = MasterKey::generate();
        assert_ne!(other.id(), m.id());
        assert!(other.unwrap("kek", "CD059", "CD059-k1-aa", &w).is_err());
    }

    #[test]
    fn the_id_is_stable_and_nothing_shows_the_bytes() {
        let hexkey = "11".repeat(32);
        let a = MasterKey::from_hex(&hexkey, "test").unwrap();
        let b = MasterKey::from_hex(&format!(" {hexkey}\n"), "test").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        for shown in [format!("{a:?}"), a.to_string()] {
            assert!(!shown.contains(&hexkey[..16]), "{shown}");
            assert!(shown.contains(a.id()), "{shown}");
        }
        let e = MasterKey::from_hex("not-a-key-but-a-secret", "variable X").unwrap_err();
        assert!(e.to_string().contains("variable X"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(e.kind(), crate::CryptoErrorKind::MasterKey);
    }
}
