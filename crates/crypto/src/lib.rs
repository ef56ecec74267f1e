//! Envelope encryption, keyring with rotation, keyed pseudonyms and blind indexes.
//!
//! - [`envelope`]: AES-256-GCM with a fresh data key per message, wrapped under the
//!   recipient organisation's key; the header is bound as associated data.
//! - [`keyring`]: organisation keys on disk (owner-only files), generate and rotate.
//! - [`anchor`]: the hub's Ed25519 key that signs the audit journal's head.
//! - [`pseudonym`]: keyed HMAC-SHA-256 pseudonyms of hub ids and blind indexes.

pub mod anchor;
pub mod envelope;
pub mod error;
pub mod key;
pub mod keyring;
pub mod pseudonym;

pub use anchor::{AnchorKey, verify_signature};
pub use envelope::{Envelope, Header, Route, open, seal};
pub use error::{CryptoError, CryptoErrorKind};
pub use key::{Kek, OrgKeys};
pub use keyring::{KeyInfo, Keyring};
pub use pseudonym::PseudonymKey;
