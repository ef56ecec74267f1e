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
