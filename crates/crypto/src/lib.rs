//! Envelope encryption, keyring with rotation, keyed pseudonyms and blind indexes
