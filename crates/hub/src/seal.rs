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

/// A sealer over the keyring (under `--data-dir`, or the key store shared by several
/// instances): each recipient organisation has its key-encryption keys there
/// (`passerelle keys generate --org CODE`).
pub struct KeyringSealer {
    keyring: Keyring,
    /// Keys read once per organisation: the keyring is on disk and a night seals
    /// thousands of messages for the same few recipients.
    cache: Mutex<HashMap<String, OrgKeys>>,
}

impl std::fmt::Debug for KeyringSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringSealer")
            .field("store", &self.keyring.to_string())
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

    /// The keys of `org` able to open a message wrapped under `key_id`: read again
    /// from the store when the cached ones lack it (the key was added by a rotation
    /// since, possibly on another instance sharing the store).
    fn keys_with(&self, org: &str, key_id: &str) -> Result<OrgKeys, SealError> {
        let keys = self.keys(org)?;
        if keys.get(key_id).is_some() {
            return Ok(keys);
        }
        let fresh = self.keyring.open_for(org)?;
        self.cache
            .lock()
            .map_err(|_| SealError("key cache poisoned".into()))?
            .insert(org.to_owned(), fresh.clone());
        Ok(fresh)
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
        let keys = self.keys_with(&inner.recipient, &inner.key_id)?;
        Ok(passerelle_crypto::open(&envelope, &keys)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use passerelle_crypto::FolderStore;

    use super::*;

    fn header() -> Header {
        Header {
            transfer_id: uuid::Uuid::new_v4(),
            flow: "brsa-orientation".into(),
            sender: "CD059".into(),
            recipient: "59350S00".into(),
            ordering_key: None,
            headers: Default::default(),
        }
    }

    /// A hub instance over the shared folder `keys`.
    fn instance(keys: &std::path::Path) -> (tempfile::TempDir, KeyringSealer) {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(FolderStore::shared(keys).unwrap());
        let ring = Keyring::shared(data.path(), store).unwrap();
        (data, KeyringSealer::new(ring))
    }

    #[test]
    fn an_instance_opens_what_another_sealed_after_a_rotation_it_had_not_seen() {
        let root = tempfile::tempdir().unwrap();
        let keys = root.path().join("keys");
        let op_data = tempfile::tempdir().unwrap();
        let operator = Keyring::shared(
            op_data.path(),
            Arc::new(FolderStore::shared_for_writing(&keys).unwrap()),
        )
        .unwrap();
        operator.generate("59350S00").unwrap();

        let (_a_dir, a) = instance(&keys);
        let (_b_dir, b) = instance(&keys);
        let h = header();
        let old = a.seal(&h, b"old").unwrap();
        // B reads (and caches) the keys as they are before the rotation.
        assert_eq!(&**b.open(&h, &old).unwrap(), b"old");

        operator.rotate("59350S00").unwrap();
        let (_c_dir, c) = instance(&keys);
        let h2 = header();
        let new = c.seal(&h2, b"new").unwrap();
        assert_eq!(&**b.open(&h2, &new).unwrap(), b"new");
        assert_eq!(&**b.open(&h, &old).unwrap(), b"old");
        assert!(format!("{b:?}").contains("shared key folder"));
    }
}
