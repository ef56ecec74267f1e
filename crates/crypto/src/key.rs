//! Key-encryption keys (one organisation's long-lived AES-256 keys) and the set of
//! them an organisation holds, newest last.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::RngCore;
use zeroize::Zeroizing;

/// One key-encryption key: wraps the per-message data keys sent to its organisation.
/// The bytes are zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct Kek {
    id: String,
    created: DateTime<Utc>,
    bytes: Zeroizing<[u8; 32]>,
}

impl Kek {
    /// A fresh random key.
    pub fn generate(id: impl Into<String>) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self {
            id: id.into(),
            created: Utc::now(),
            bytes,
        }
    }

    /// A key from stored bytes.
    pub fn from_bytes(id: impl Into<String>, created: DateTime<Utc>, bytes: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            created,
            bytes: Zeroizing::new(bytes),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key bytes, for wrapping into a key store; never for logging.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("created", &self.created)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// The keys of one organisation. New messages use the newest (`current`); older keys
/// stay to open the messages sealed before a rotation.
#[derive(Clone, Debug)]
pub struct OrgKeys {
    org: String,
    /// Oldest first; never empty.
    keys: Vec<Kek>,
}

impl OrgKeys {
    /// The keys of `org`, oldest first; `None` when `keys` is empty.
    pub fn new(org: impl Into<String>, keys: Vec<Kek>) -> Option<Self> {
        (!keys.is_empty()).then(|| Self {
            org: org.into(),
            keys,
        })
    }

    /// The keys of an organisation that has just its first one.
    pub fn first(org: impl Into<String>, kek: Kek) -> Self {
        Self {
            org: org.into(),
            keys: vec![kek],
        }
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    /// The key new messages are sealed with.
    pub fn current(&self) -> &Kek {
        // Construction guarantees at least one key.
        &self.keys[self.keys.len() - 1]
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Kek> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[Kek] {
        &self.keys
    }

    pub(crate) fn push(&mut self, kek: Kek) {
        self.keys.push(kek);
    }
}
