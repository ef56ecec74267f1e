//! Where the organisation keys and the pseudonym key live: a small trait with three
//! stores, the data directory's keyring folder (one machine, the default), a shared
//! folder mounted on every instance, and PostgreSQL with each key wrapped under a
//! master key (in crate `passerelle-keystore`, so that this crate needs no database
//! driver).
//!
//! The hub only loads. Storing is for `passerelle keys` (and for the one-machine
//! keyring, which creates what is missing on first use, as it always has).

use std::fmt;

use crate::error::CryptoError;
use crate::key::OrgKeys;
use crate::pseudonym::PseudonymKey;

/// A place keys are loaded from. `Display` says where (a folder, a table on a server),
/// never a password or a key; `Debug` shows no key bytes either.
pub trait KeyStore: Send + Sync + fmt::Debug + fmt::Display {
    /// The keys of `org`, oldest first; `None` when it has none.
    fn load_org(&self, org: &str) -> Result<Option<OrgKeys>, CryptoError>;

    /// The hub's pseudonym key; `None` when there is none yet.
    fn load_pseudonym(&self) -> Result<Option<PseudonymKey>, CryptoError>;

    /// The organisations that have keys, sorted.
    fn orgs(&self) -> Result<Vec<String>, CryptoError>;

    /// For `passerelle keys` only: reads the keys of `org`, lets `change` decide the
    /// new set and stores it, all under the store's lock, so two commands at once
    /// never lose a key. Keys are only ever added (older ones open older envelopes).
    fn update_org(
        &self,
        org: &str,
        change: &mut (dyn FnMut(Option<OrgKeys>) -> Result<OrgKeys, CryptoError> + Send),
    ) -> Result<OrgKeys, CryptoError>;

    /// For `passerelle keys` only: stores `fresh` as the pseudonym key unless there is
    /// one; returns the stored key and whether it was `fresh`.
    fn init_pseudonym(&self, fresh: PseudonymKey) -> Result<(PseudonymKey, bool), CryptoError>;
}
