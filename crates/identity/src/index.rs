//! The identity index: blind indexes → hub ids, and the resolution of a record's keys
//! to a hub id, a new hub id, or a review.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::keys::{IdentityKeys, KeyKind};

/// How a record was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "kind")]
pub enum MatchedBy {
    /// An identifier both records carry (the first found, in `KeyKind` order).
    Identifier(KeyKind),
    /// Normalised family name, given name and birth date.
    Identite,
}

/// Why a record was sent to review instead of being matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Its identifiers point at two or more known people.
    IdentifiersDisagree,
    /// Its identity matches two or more known people.
    SeveralCandidates,
    /// It matches one person, but carries an identifier of a kind that person already
    /// has with another value (two NIRs, two SOLIS ids).
    ConflictingIdentifier,
}

/// The outcome of resolving one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A known person.
    Matched { hub_id: Uuid, by: MatchedBy },
    /// Nobody known: a new hub id was given.
    New { hub_id: Uuid },
    /// Uncertain: queued for a person to decide; the record gets no hub id yet.
    Review {
        reason: ReviewReason,
        candidates: Vec<Uuid>,
    },
}

impl Resolution {
    /// The hub id, unless the record went to review.
    pub fn hub_id(&self) -> Option<Uuid> {
        match self {
            Self::Matched { hub_id, .. } | Self::New { hub_id } => Some(*hub_id),
            Self::Review { .. } => None,
        }
    }
}

/// One stored association, for persisting the index (all values are blind indexes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub hub_id: Uuid,
    pub kind: KeyKind,
    pub key: String,
}

/// A queued uncertain match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub reason: ReviewReason,
    pub candidates: Vec<Uuid>,
    pub keys: IdentityKeys,
}

/// A blind index as held in memory: the 32 bytes its 64 lowercase hex characters
/// stand for. Half the size of the text, and no allocation of its own.
type Key = [u8; 32];

/// Domain of the SHA-256 that gives a key which is not a blind index (not 64 lowercase
/// hex characters) its 32 bytes, so that it cannot take the place of a real one.
const OTHER_KEY_DOMAIN: &[u8] = b"passerelle-identity/other-key\0";

/// The 32 bytes of a key: decoded when it is a blind index as `PseudonymKey` writes
/// them, a hash of it otherwise (such keys are remembered in full by `attach_one`, to
/// be given back as they came).
fn key_bytes(key: &str) -> (Key, bool) {
    let mut out = [0u8; 32];
    let canonical = key.len() == 64
        && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(key, &mut out).is_ok();
    if canonical {
        (out, true)
    } else {
        let mut h = Sha256::new();
        h.update(OTHER_KEY_DOMAIN);
        h.update(key.as_bytes());
        (h.finalize().into(), false)
    }
}

/// Inserts into a sorted boxed slice sized to its content (a person holds a handful of
/// keys, so copying on insert costs less than a vector's spare capacity).
fn insert_sorted<T: Ord + Copy>(slice: &mut Box<[T]>, item: T) -> bool {
    match slice.binary_search(&item) {
        Ok(_) => false,
        Err(pos) => {
            let mut v = Vec::with_capacity(slice.len() + 1);
            v.extend_from_slice(slice);
            v.insert(pos, item);
            *slice = v.into_boxed_slice();
            true
        }
    }
}

/// Blind indexes of identifiers and identities, each pointing at the hub ids that
/// carry it.
///
/// Kept compact because it holds every known person in memory: keys as 32 bytes, the
/// common key with one hub id in a map of its own with no room for more, each person's
/// keys in one exact-size slice.
///
/// Invariant: a key is in at most one of `single` and `shared`, and `shared` holds
/// two hub ids or more, sorted.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    /// Keys carried by one hub id: nearly all of them.
    single: HashMap<Key, Uuid>,
    /// Keys carried by several hub ids (a household's, a disputed one).
    shared: HashMap<Key, Box<[Uuid]>>,
    /// For each person, the keys of each kind, sorted by (kind, key): a second,
    /// different value of an identifier kind is a conflict worth a human look.
    identifiers_of: HashMap<Uuid, Box<[(KeyKind, Key)]>>,
    /// The keys given that were not blind indexes, by their hash, to give them back as
    /// they came (none in the hub, whose keys all come from `PseudonymKey`).
    other_keys: HashMap<Key, Box<str>>,
    reviews: Vec<Review>,
}

impl IdentityIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an index from stored entries.
    pub fn from_entries(entries: impl IntoIterator<Item = IndexEntry>) -> Self {
        let mut index = Self::new();
        for e in entries {
            index.insert(&e);
        }
        index
    }

    /// Adds one stored association (to rebuild the index row by row, without holding
    /// the stored rows in memory beside it).
    pub fn insert(&mut self, e: &IndexEntry) {
        self.attach_one(e.hub_id, e.kind, &e.key);
    }

    /// `resolve`, also giving the associations this call added: the keys the index did
    /// not yet hold for that hub id, which the caller must store.
    pub fn resolve_new(
        &mut self,
        keys: &IdentityKeys,
        new_id: impl FnOnce() -> Uuid,
    ) -> (Resolution, Vec<IndexEntry>) {
        let mut added = Vec::new();
        let r = self.resolve_into(keys, new_id, Some(&mut added));
        (r, added)
    }

    /// Every association, for storage.
    pub fn entries(&self) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for (hub_id, keys) in &self.identifiers_of {
            for (kind, key) in keys.iter() {
                out.push(IndexEntry {
                    hub_id: *hub_id,
                    kind: *kind,
                    key: self.key_text(key),
                });
            }
        }
        out.sort_by(|a, b| (a.hub_id, a.kind, &a.key).cmp(&(b.hub_id, b.kind, &b.key)));
        out
    }

    /// The number of known people.
    pub fn len(&self) -> usize {
        self.identifiers_of.len()
    }

    /// Whether nobody is known.
    pub fn is_empty(&self) -> bool {
        self.identifiers_of.is_empty()
    }

    /// The queued reviews, oldest first.
    pub fn reviews(&self) -> &[Review] {
        &self.reviews
    }

    /// Resolves a record's keys. On a match or a new person the keys are attached to
    /// the hub id, so the next record carrying any of them resolves the same way.
    /// `new_id` is called only when a new hub id is needed.
    pub fn resolve(&mut self, keys: &IdentityKeys, new_id: impl FnOnce() -> Uuid) -> Resolution {
        self.resolve_into(keys, new_id, None)
    }

    fn resolve_into(
        &mut self,
        keys: &IdentityKeys,
        new_id: impl FnOnce() -> Uuid,
        added: Option<&mut Vec<IndexEntry>>,
    ) -> Resolution {
        let by_identifier = self.candidates(keys.identifiers.iter().map(|(_, k)| k));
        let (candidates, by) = if by_identifier.is_empty() {
            (self.candidates(keys.identites.iter()), MatchedBy::Identite)
        } else {
            let kind = keys
                .identifiers
                .iter()
                .filter(|(_, k)| !self.hub_ids(&key_bytes(k).0).is_empty())
                .map(|(kind, _)| *kind)
                .min()
                .unwrap_or(KeyKind::Nir);
            (by_identifier, MatchedBy::Identifier(kind))
        };
        let resolution = match candidates.len() {
            0 => Resolution::New { hub_id: new_id() },
            1 => {
                let hub_id = candidates[0];
                if self.conflicts(hub_id, keys) {
                    Resolution::Review {
                        reason: ReviewReason::ConflictingIdentifier,
                        candidates,
                    }
                } else {
                    Resolution::Matched { hub_id, by }
                }
            }
            _ => Resolution::Review {
                reason: match by {
                    MatchedBy::Identifier(_) => ReviewReason::IdentifiersDisagree,
                    MatchedBy::Identite => ReviewReason::SeveralCandidates,
                },
                candidates,
            },
        };
        match &resolution {
            Resolution::Matched { hub_id, .. } | Resolution::New { hub_id } => {
                self.attach(*hub_id, keys, added)
            }
            Resolution::Review { reason, candidates } => self.reviews.push(Review {
                reason: *reason,
                candidates: candidates.clone(),
                keys: keys.clone(),
            }),
        }
        resolution
    }

    /// A person's decision on a review: the record is this hub id (one of the
    /// candidates, or a new one). Removes the review from the queue.
    pub fn settle(&mut self, review: usize, hub_id: Uuid) -> Option<Review> {
        if review >= self.reviews.len() {
            return None;
        }
        let r = self.reviews.remove(review);
        self.attach(hub_id, &r.keys, None);
        Some(r)
    }

    /// The hub ids carrying any of the keys, sorted, each once.
    fn candidates<'a>(&self, keys: impl Iterator<Item = &'a String>) -> Vec<Uuid> {
        let mut out = Vec::new();
        for k in keys {
            out.extend_from_slice(self.hub_ids(&key_bytes(k).0));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether the record carries a value of an identifier kind the person already has
    /// with another value. Identities are not compared: names change.
    fn conflicts(&self, hub_id: Uuid, keys: &IdentityKeys) -> bool {
        let Some(known) = self.identifiers_of.get(&hub_id) else {
            return false;
        };
        keys.identifiers.iter().any(|(kind, key)| {
            // A young person may have several I-MILO dossiers or CAF roles over time;
            // one NIR, one INE and one France Travail id.
            let single = matches!(kind, KeyKind::Nir | KeyKind::Ine | KeyKind::FranceTravailId);
            single
                && known.iter().any(|(k, _)| k == kind)
                && known.binary_search(&(*kind, key_bytes(key).0)).is_err()
        })
    }

    fn attach(
        &mut self,
        hub_id: Uuid,
        keys: &IdentityKeys,
        mut added: Option<&mut Vec<IndexEntry>>,
    ) {
        let all = keys
            .identifiers
            .iter()
            .map(|(kind, key)| (*kind, key))
            .chain(keys.identites.iter().map(|k| (KeyKind::Identite, k)));
        for (kind, key) in all {
            if self.attach_one(hub_id, kind, key)
                && let Some(out) = added.as_deref_mut()
            {
                out.push(IndexEntry {
                    hub_id,
                    kind,
                    key: key.clone(),
                });
            }
        }
        self.identifiers_of.entry(hub_id).or_default();
    }

    /// Attaches one key; returns whether the person did not hold it yet.
    fn attach_one(&mut self, hub_id: Uuid, kind: KeyKind, key: &str) -> bool {
        let (bytes, canonical) = key_bytes(key);
        if !canonical {
            self.other_keys.entry(bytes).or_insert_with(|| key.into());
        }
        if let Some(ids) = self.shared.get_mut(&bytes) {
            let _ = insert_sorted(ids, hub_id);
        } else {
            match self.single.entry(bytes) {
                Entry::Vacant(e) => {
                    e.insert(hub_id);
                }
                Entry::Occupied(e) if *e.get() != hub_id => {
                    let first = e.remove();
                    let mut ids = [first, hub_id];
                    ids.sort_unstable();
                    self.shared.insert(bytes, Box::new(ids));
                }
                Entry::Occupied(_) => {}
            }
        }
        insert_sorted(
            self.identifiers_of.entry(hub_id).or_default(),
            (kind, bytes),
        )
    }

    /// The hub ids that carry a key, sorted.
    fn hub_ids(&self, key: &Key) -> &[Uuid] {
        match self.single.get(key) {
            Some(id) => std::slice::from_ref(id),
            None => self.shared.get(key).map_or(&[], |ids| ids),
        }
    }

    /// A key as it was given: the hex of a blind index, or the text of another key.
    fn key_text(&self, key: &Key) -> String {
        match self.other_keys.get(key) {
            Some(text) => text.to_string(),
            None => hex::encode(key),
        }
    }
}
