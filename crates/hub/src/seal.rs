//! Sealing payloads for their recipient: the engine's view of envelope encryption,
//! implemented over the crypto crate's keyring.

use std::collections::HashMap;
use std::sync::Mutex;

use passerelle_crypto::{Envelope, Keyring, OrgKeys, Route};
use passerelle_model::SCHEMA;
use passerelle_transport::Header;
use zeroize::Zeroizing;

/// Why a payload could not be sealed or opened (names keys and rules, never data).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

impl From<passerelle_crypto::CryptoError> for SealError {
    fn from(e: passerelle_crypto::CryptoError) -> Self {
        Self(e.to_string())
    }
}

/// Seals a payload for the recipient named in the header, binding the whole header;
/// opens what was sealed for an organisation whose keys this hub holds.
pub trait Sealer: Send + Sync {
    fn seal(&self, header: &Header, plaintext: &[u8]) -> Result<Vec<u8>, SealError>;
    fn open(&self, header: &Header, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError>;
}

/// A sealer over the keyring under `--data-dir`: each recipient organisation has its
/// key-encryption keys there (`passerelle keys generate --org CODE`).
pub struct KeyringSealer {
    keyring: Keyring,
    /// Keys read once per organisation: the keyring is on disk and a night seals
    /// thousands of messages for the same few recipients.
    cache: Mutex<HashMap<String, OrgKeys>>,
}

impl std::fmt::Debug for KeyringSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringSealer")
            .field("dir", &self.keyring.dir())
            .finish()
    }
}

impl KeyringSealer {
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, org: &str) -> Result<OrgKeys, SealError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| SealError("key cache poisoned".into()))?;
        if let Some(k) = cache.get(org) {
            return Ok(k.clone());
        }
        let keys = self.keyring.open_for(org)?;
        cache.insert(org.to_owned(), keys.clone());
        Ok(keys)
    }
}

impl Sealer for KeyringSealer {
    fn seal(&self, header: &Header, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let route = Route {
            transfer_id: header.transfer_id,
            flow: &header.flow,
            sender: &header.sender,
            schema: SCHEMA,
        };
        let keys = self.keys(&header.recipient)?;
        Ok(passerelle_crypto::seal(&route, &keys, plaintext)?.to_bytes())
    }

    fn open(&self, header: &Header, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let envelope = Envelope::from_bytes(sealed)?;
        let inner = envelope.header();
        // The transport header is clear and unauthenticated: it must say what the
        // authenticated envelope header says, or someone moved one onto the other.
        if inner.transfer_id != header.transfer_id
            || inner.flow != header.flow
            || inner.sender != header.sender
            || inner.recipient != header.recipient
        {
            return Err(SealError(
                "transport header does not match the sealed header".into(),
            ));
        }
        let keys = self.keys(&inner.recipient)?;
        Ok(passerelle_crypto::open(&envelope, &keys)?)
    }
}
