//! The compact index against the plain one it replaced (kept here as a reference
//! model, strings and B-tree sets): on any sequence of resolutions and settlements
//! both give the same answers, entries and reviews.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use passerelle_identity::*;
use proptest::prelude::*;
use uuid::Uuid;

/// The index as it was before it was made compact (same rules, simplest storage).
#[derive(Default)]
struct Reference {
    by_key: HashMap<String, BTreeSet<Uuid>>,
    identifiers_of: HashMap<Uuid, BTreeMap<KeyKind, BTreeSet<String>>>,
    reviews: Vec<(ReviewReason, Vec<Uuid>, IdentityKeys)>,
}

impl Reference {
    fn entries(&self) -> Vec<IndexEntry> {
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

    fn resolve(&mut self, keys: &IdentityKeys, new_id: impl FnOnce() -> Uuid) -> Resolution {
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
            1 if self.conflicts(candidates[0], keys) => Resolution::Review {
                reason: ReviewReason::ConflictingIdentifier,
                candidates,
            },
            1 => Resolution::Matched {
                hub_id: candidates[0],
                by,
            },
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
            Resolution::Review { reason, candidates } => {
                self.reviews
                    .push((*reason, candidates.clone(), keys.clone()))
            }
        }
        resolution
    }

    fn settle(&mut self, review: usize, hub_id: Uuid) -> Option<IdentityKeys> {
        if review >= self.reviews.len() {
            return None;
        }
        let (_, _, keys) = self.reviews.remove(review);
        self.attach(hub_id, &keys);
        Some(keys)
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

    fn conflicts(&self, hub_id: Uuid, keys: &IdentityKeys) -> bool {
        let Some(known) = self.identifiers_of.get(&hub_id) else {
            return false;
        };
        keys.identifiers.iter().any(|(kind, key)| {
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

/// A small pool, so that keys recur: blind-index-like keys and a few that are not.
fn key_pool() -> Vec<String> {
    let mut pool: Vec<String> = (0u8..6)
        .map(|i| format!("{:02x}", i * 37 + 1).repeat(32))
        .collect();
    pool.push("AB".repeat(32));
    pool.push("not-a-blind-index".into());
    pool
}

const KINDS: [KeyKind; 4] = [
    KeyKind::Nir,
    KeyKind::CafRole,
    KeyKind::Ine,
    KeyKind::ImiloDossier,
];

#[derive(Debug, Clone)]
enum Op {
    Resolve {
        identifiers: Vec<(usize, usize)>,
        identites: Vec<usize>,
    },
    Settle {
        review: usize,
        hub: u128,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::collection::vec((0..KINDS.len(), 0..8usize), 0..3),
            prop::collection::vec(0..8usize, 0..3),
        )
            .prop_map(|(identifiers, identites)| Op::Resolve {
                identifiers,
                identites
            }),
        1 => (0..4usize, 1..12u128).prop_map(|(review, hub)| Op::Settle { review, hub }),
    ]
}

proptest! {
    #[test]
    fn the_compact_index_answers_as_the_plain_one(ops in prop::collection::vec(op(), 1..40)) {
        let pool = key_pool();
        let mut compact = IdentityIndex::new();
        let mut reference = Reference::default();
        let mut next = 100u128;
        for op in ops {
            match op {
                Op::Resolve { identifiers, identites } => {
                    let keys = IdentityKeys {
                        identifiers: identifiers
                            .iter()
                            .map(|(k, i)| (KINDS[*k], pool[*i].clone()))
                            .collect(),
                        identites: identites.iter().map(|i| pool[*i].clone()).collect(),
                    };
                    next += 1;
                    let id = Uuid::from_u128(next);
                    prop_assert_eq!(compact.resolve(&keys, || id), reference.resolve(&keys, || id));
                }
                Op::Settle { review, hub } => {
                    let hub = Uuid::from_u128(hub);
                    prop_assert_eq!(
                        compact.settle(review, hub).map(|r| r.keys),
                        reference.settle(review, hub)
                    );
                }
            }
            prop_assert_eq!(compact.entries(), reference.entries());
            prop_assert_eq!(compact.len(), reference.identifiers_of.len());
            let reviews: Vec<_> = compact
                .reviews()
                .iter()
                .map(|r| (r.reason, r.candidates.clone(), r.keys.clone()))
                .collect();
            prop_assert_eq!(&reviews, &reference.reviews);
        }
        let reloaded = IdentityIndex::from_entries(compact.entries());
        prop_assert_eq!(reloaded.entries(), compact.entries());
    }
}
