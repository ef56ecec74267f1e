//! The identity index: blind indexes → hub ids, and the resolution of a record's keys
//! to a hub id, a new hub id, or a review.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
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

/// Blind indexes of identifiers and identities, each pointing at the hub ids that
/// carry it.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    by_key: HashMap<String, BTreeSet<Uuid>>,
    /// For each person, the identifier keys of each kind: a second, different value of
    /// a kind is a conflict worth a human look.
    identifiers_of: HashMap<Uuid, BTreeMap<KeyKind, BTreeSet<String>>>,
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
            index.attach_one(e.hub_id, e.kind, e.key);
        }
        index
    }

    /// Every association, for storage.
    pub fn entries(&self) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for (hub_id, kinds) in &self.identifiers_of {
            for (kind, keys) in kinds {
                for key in keys {
                    out.push(IndexEntry {
                        hub_id: *hub_id,
                        kind: *kind,
                        key: key.clone(),
                    });
                }
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
        let by_identifier = self.candidates(keys.identifiers.iter().map(|(_, k)| k));
        let (candidates, by) = if by_identifier.is_empty() {
            (self.candidates(keys.identites.iter()), MatchedBy::Identite)
        } else {
            let kind = keys
                .identifiers
                .iter()
                .filter(|(_, k)| self.by_key.contains_key(k))
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
                self.attach(*hub_id, keys)
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
        self.attach(hub_id, &r.keys);
        Some(r)
    }

    fn candidates<'a>(&self, keys: impl Iterator<Item = &'a String>) -> Vec<Uuid> {
        let mut set = BTreeSet::new();
        for k in keys {
            if let Some(ids) = self.by_key.get(k) {
                set.extend(ids.iter().copied());
            }
        }
        set.into_iter().collect()
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
            single && known.get(kind).is_some_and(|ks| !ks.contains(key))
        })
    }

    fn attach(&mut self, hub_id: Uuid, keys: &IdentityKeys) {
        for (kind, key) in &keys.identifiers {
            self.attach_one(hub_id, *kind, key.clone());
        }
        for key in &keys.identites {
            self.attach_one(hub_id, KeyKind::Identite, key.clone());
        }
        self.identifiers_of.entry(hub_id).or_default();
    }

    fn attach_one(&mut self, hub_id: Uuid, kind: KeyKind, key: String) {
        self.by_key.entry(key.clone()).or_default().insert(hub_id);
        self.identifiers_of
            .entry(hub_id)
            .or_default()
            .entry(kind)
            .or_default()
            .insert(key);
    }
}
