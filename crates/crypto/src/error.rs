//! Errors of sealing, opening and key storage. Messages name keys and files, never key
//! bytes or payload content.

use std::path::PathBuf;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoErrorKind {
    /// Authentication failed: the envelope was altered, or the key is not the one.
    Authentication,
    /// The bytes are not an envelope of a known version.
    Malformed,
    /// The keyring has no key with that id for that organisation.
    UnknownKey,
    /// The envelope is addressed to another organisation.
    WrongRecipient,
    /// The keyring on disk is unusable (permissions, format, missing organisation).
    Keyring,
    /// A file could not be read or written.
    Io,
    /// A shared key store lacks a key the hub needs; hub instances sharing keys never
    /// generate one (`passerelle keys generate` does, against the store).
    Missing,
    /// The master key of a shared key store is malformed, unreadable or not the one
    /// its keys are wrapped under.
    MasterKey,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Deliberately says nothing about which part failed: a padding/tag oracle is
    /// of no use to anyone but an attacker.
    #[error("envelope cannot be opened: authentication failed")]
    Authentication,
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    #[error("no key `{key_id}` for organisation `{org}` in the keyring")]
    UnknownKey { org: String, key_id: String },
    #[error("envelope is addressed to `{recipient}`, not to `{org}`")]
    WrongRecipient { recipient: String, org: String },
    #[error("keyring {}: {reason}", path.display())]
    Keyring { path: PathBuf, reason: String },
    #[error("keyring {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `store` says where (a folder, a table on a server), never a password.
    #[error("key store {store}: {reason}")]
    Store { store: String, reason: String },
    #[error(
        "organisation `{org}` has no keys in the key store {store}: run `passerelle keys generate --org {org}` against this key store (hub instances sharing their keys never generate them)"
    )]
    NoOrgKeys { org: String, store: String },
    #[error(
        "the key store {store} holds no pseudonym key: run `passerelle keys generate --org <code>` against this key store, which creates it with an organisation's first key (hub instances sharing their keys never generate them)"
    )]
    NoPseudonymKey { store: String },
    #[error("master key: {reason}")]
    MasterKey { reason: String },
}

impl CryptoError {
    pub fn kind(&self) -> CryptoErrorKind {
        match self {
            Self::Authentication => CryptoErrorKind::Authentication,
            Self::Malformed(_) => CryptoErrorKind::Malformed,
            Self::UnknownKey { .. } => CryptoErrorKind::UnknownKey,
            Self::WrongRecipient { .. } => CryptoErrorKind::WrongRecipient,
            Self::Keyring { .. } => CryptoErrorKind::Keyring,
            Self::Io { .. } => CryptoErrorKind::Io,
            Self::Store { .. } => CryptoErrorKind::Keyring,
            Self::NoOrgKeys { .. } | Self::NoPseudonymKey { .. } => CryptoErrorKind::Missing,
            Self::MasterKey { .. } => CryptoErrorKind::MasterKey,
        }
    }

    /// An error of a key store outside this crate (PostgreSQL's), naming the store.
    pub fn store(store: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::Store {
            store: store.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn keyring(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Keyring {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
