//! Envelope encryption, keyring with rotation, keyed pseudonyms and blind indexes.
//!
//! - [`envelope`]: AES-256-GCM with a fresh data key per message, wrapped under the
//!   recipient organisation's key; the header is bound as associated data.
//! - [`keyring`]: the keys the hub works with, generate and rotate, over a
//!   [`store::KeyStore`]: [`folder`] (the data directory's owner-only files, or a
//!   shared folder mounted on every instance); PostgreSQL's is in `passerelle-keystore`.
//! - [`master`]: the master key that wraps keys kept in a shared database.
//! - [`anchor`]: the hub's Ed25519 key that signs the audit journal's head.
//! - [`pseudonym`]: keyed HMAC-SHA-256 pseudonyms of hub ids and blind indexes.

pub mod anchor;
pub mod envelope;
pub mod error;
pub mod folder;
pub mod key;
pub mod keyring;
pub mod master;
pub mod pseudonym;
pub mod store;

pub use anchor::{AnchorKey, verify_signature};
pub use envelope::{Envelope, Header, Route, open, seal};
pub use error::{CryptoError, CryptoErrorKind};
pub use folder::FolderStore;
pub use key::{Kek, OrgKeys};
pub use keyring::{KeyInfo, Keyring};
pub use master::{MasterKey, Wrapped};
pub use pseudonym::PseudonymKey;
pub use store::KeyStore;
