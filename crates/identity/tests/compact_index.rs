//! The compact in-memory form of the index: what goes in comes back out unchanged, and
//! keys carried by several hub ids behave as before.

use passerelle_crypto::PseudonymKey;
use passerelle_identity::*;
use uuid::Uuid;

fn blind(kind: KeyKind, value: &str) -> String {
    PseudonymKey::from_bytes([5; 32]).blind_index(kind.as_str(), value)
}

fn entry(hub: u128, kind: KeyKind, key: &str) -> IndexEntry {
    IndexEntry {
        hub_id: Uuid::from_u128(hub),
        kind,
        key: key.to_string(),
    }
}

#[test]
fn entries_round_trip_exactly_with_blind_and_other_keys() {
    let nir = blind(KeyKind::Nir, "1");
    let upper = blind(KeyKind::Ine, "2").to_uppercase();
    let lower_of_upper = upper.to_lowercase();
    let mut given = vec![
        entry(1, KeyKind::Nir, &nir),
        entry(1, KeyKind::Identite, &blind(KeyKind::Identite, "a")),
        entry(1, KeyKind::Identite, &blind(KeyKind::Identite, "b")),
        // The same key under two kinds stays two entries.
        entry(2, KeyKind::Solis, &nir),
        entry(2, KeyKind::Nir, &nir),
        // Keys that are not 64 lowercase hex characters come back as they came, and an
        // upper-case key stays apart from its lower-case spelling.
        entry(3, KeyKind::Ine, &upper),
        entry(3, KeyKind::Ine, &lower_of_upper),
        entry(3, KeyKind::CafRole, "short"),
        entry(3, KeyKind::CafRole, ""),
        entry(4, KeyKind::ImiloDossier, &"é".repeat(32)),
    ];
    // A duplicate entry is kept once, as before.
    let mut with_duplicate = given.clone();
    with_duplicate.push(entry(1, KeyKind::Nir, &nir));
    with_duplicate.reverse();

    let index = IdentityIndex::from_entries(with_duplicate);
    given.sort_by(|a, b| (a.hub_id, a.kind, &a.key).cmp(&(b.hub_id, b.kind, &b.key)));
    assert_eq!(index.entries(), given);
    assert_eq!(index.len(), 4);
    let again = IdentityIndex::from_entries(index.entries());
    assert_eq!(again.entries(), given);
    assert_eq!(again.len(), index.len());

    // The other keys still match on their exact text only.
    let mut index = again;
    let short = IdentityKeys {
        identifiers: vec![(KeyKind::CafRole, "short".into())],
        identites: vec![],
    };
    assert_eq!(
        index.resolve(&short, || Uuid::from_u128(99)),
        Resolution::Matched {
            hub_id: Uuid::from_u128(3),
            by: MatchedBy::Identifier(KeyKind::CafRole)
        }
    );
    let shouted = IdentityKeys {
        identifiers: vec![(KeyKind::CafRole, "SHORT".into())],
        identites: vec![],
    };
    assert_eq!(
        index.resolve(&shouted, || Uuid::from_u128(99)),
        Resolution::New {
            hub_id: Uuid::from_u128(99)
        }
    );
}

#[test]
fn a_key_carried_by_several_hub_ids_lists_them_all() {
    let household = blind(KeyKind::CafRole, "CAF/1234567/ENF");
    let identite = blind(KeyKind::Identite, "MARTIN|LEA|2004-03-12");
    let mut index = IdentityIndex::from_entries([
        entry(30, KeyKind::CafRole, &household),
        entry(10, KeyKind::CafRole, &household),
        entry(20, KeyKind::CafRole, &household),
        entry(10, KeyKind::CafRole, &household),
        entry(10, KeyKind::Nir, &blind(KeyKind::Nir, "10")),
        entry(40, KeyKind::Identite, &identite),
        entry(50, KeyKind::Identite, &identite),
    ]);
    assert_eq!(index.len(), 5);
    let shared: Vec<u128> = index
        .entries()
        .iter()
        .filter(|e| e.key == household)
        .map(|e| e.hub_id.as_u128())
        .collect();
    assert_eq!(shared, [10, 20, 30]);

    // Identifiers pointing at three people: review, candidates sorted, each once.
    let by_household = IdentityKeys {
        identifiers: vec![
            (KeyKind::CafRole, household.clone()),
            (KeyKind::Nir, blind(KeyKind::Nir, "10")),
        ],
        identites: vec![identite.clone()],
    };
    let ids = |v: &[u128]| v.iter().map(|n| Uuid::from_u128(*n)).collect::<Vec<_>>();
    assert_eq!(
        index.resolve(&by_household, || panic!("no new id on a review")),
        Resolution::Review {
            reason: ReviewReason::IdentifiersDisagree,
            candidates: ids(&[10, 20, 30]),
        }
    );
    // An identity shared by two people, without identifiers: review as well.
    let by_identite = IdentityKeys {
        identifiers: vec![],
        identites: vec![identite.clone()],
    };
    assert_eq!(
        index.resolve(&by_identite, || panic!("no new id on a review")),
        Resolution::Review {
            reason: ReviewReason::SeveralCandidates,
            candidates: ids(&[40, 50]),
        }
    );
    assert_eq!(index.reviews().len(), 2);

    // Settling the first review on a fourth person adds it to every key it carries.
    let settled = index.settle(0, Uuid::from_u128(60)).expect("a review");
    assert_eq!(settled.keys, by_household);
    assert_eq!(
        index.resolve(&by_identite, || panic!("no new id on a review")),
        Resolution::Review {
            reason: ReviewReason::SeveralCandidates,
            candidates: ids(&[40, 50, 60]),
        }
    );
    let household_ids: Vec<u128> = index
        .entries()
        .iter()
        .filter(|e| e.key == household)
        .map(|e| e.hub_id.as_u128())
        .collect();
    assert_eq!(household_ids, [10, 20, 30, 60]);
    assert!(index.settle(5, Uuid::from_u128(1)).is_none());
}
