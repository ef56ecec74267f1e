//! Envelope encryption, keyring with rotation, keyed pseudonyms and blind indexes.

pub mod pseudonym;

pub use pseudonym::PseudonymKey;
