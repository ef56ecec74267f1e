//! Identity matching: gives records from different systems about the same young
//! person one hub id, deterministically on identifiers first, then on normalised
//! identity plus birth date; an uncertain match goes to a review queue instead of
//! being guessed.
//!
//! The index holds only blind indexes (keyed hashes) of identifiers and identities,
//! never a value in clear, so it can be stored beside the journal without becoming a
//! second register of personal data.

mod index;
mod keys;

pub use index::{IdentityIndex, IndexEntry, MatchedBy, Resolution, ReviewReason};
pub use keys::{IdentityKeys, KeyKind};
