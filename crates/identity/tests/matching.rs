//! Identity matching across systems: identifiers first, then normalised identity, and
//! review rather than guess when unsure.

use passerelle_crypto::PseudonymKey;
use passerelle_identity::*;
use passerelle_model::Jeune;
use uuid::Uuid;

fn key() -> PseudonymKey {
    PseudonymKey::from_bytes([7; 32])
}

fn record(json: &str) -> Jeune {
    serde_json::from_str(json).expect("fixture record")
}

fn keys(json: &str) -> IdentityKeys {
    IdentityKeys::of(&record(json), &key())
}

/// Hands out 1, 2, 3… as hub ids so that tests read plainly.
struct Ids(u128);
impl Ids {
    fn next(&mut self) -> Uuid {
        self.0 += 1;
        Uuid::from_u128(self.0)
    }
}

const SOLIS: &str = r#"{"schema":"passerelle.jeune/1",
  "sources":[{"system":"solis","organisation":"CD059","record_id":"IND0004412"}],
  "identifiants":{"nir":"204035935012349","caf":{"organisme":"CAF","numero_allocataire":"1234567"},"solis":"IND0004412"},
  "etat_civil":{"nom_naissance":"LEFÈVRE","prenoms":["Léa","Marie"],"date_naissance":"2004-03-12"},
  "rsa":{"role":"DEM"}}"#;

#[test]
fn identifiers_match_across_systems() {
    let mut index = IdentityIndex::new();
    let mut ids = Ids(0);
    let first = index.resolve(&keys(SOLIS), || ids.next());
    assert_eq!(
        first,
        Resolution::New {
            hub_id: Uuid::from_u128(1)
        }
    );
    // CNAF: same CAF number and role, names in capitals without accents.
    let cnaf = r#"{"schema":"passerelle.jeune/1",
      "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"}},
      "etat_civil":{"nom_naissance":"LEFEVRE","prenoms":["LEA"],"date_naissance":"2004-03-12"},
      "rsa":{"role":"DEM"}}"#;
    assert_eq!(
        index.resolve(&keys(cnaf), || ids.next()),
        Resolution::Matched {
            hub_id: Uuid::from_u128(1),
            by: MatchedBy::Identifier(KeyKind::CafRole)
        }
    );
    // The conjoint of the same household is someone else.
    let conjoint = r#"{"schema":"passerelle.jeune/1",
      "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"}},
      "etat_civil":{"nom_naissance":"Benali","prenoms":["Karim"],"date_naissance":"2002-11-30"},
      "rsa":{"role":"CJT"}}"#;
    assert_eq!(
        index.resolve(&keys(conjoint), || ids.next()),
        Resolution::New {
            hub_id: Uuid::from_u128(2)
        }
    );
    assert_eq!(index.len(), 2);
}

#[test]
fn normalised_identity_matches_without_identifiers() {
    let mut index = IdentityIndex::new();
    let mut ids = Ids(0);
    index.resolve(&keys(SOLIS), || ids.next());
    // I-MILO: usage name written otherwise, given names in another order, an
    // identifier the hub did not know yet.
    let imilo = r#"{"schema":"passerelle.jeune/1",
      "identifiants":{"imilo_dossier":"6282"},
      "etat_civil":{"nom_usage":"Lefevre","prenoms":["Marie","Léa"],"date_naissance":"2004-03-12"}}"#;
    assert_eq!(
        index.resolve(&keys(imilo), || ids.next()),
        Resolution::Matched {
            hub_id: Uuid::from_u128(1),
            by: MatchedBy::Identite
        }
    );
    // The dossier id is now attached: it matches by identifier even with another name.
    let renamed = r#"{"schema":"passerelle.jeune/1","identifiants":{"imilo_dossier":"6282"},
      "etat_civil":{"nom_usage":"Martin","prenoms":["Léa"],"date_naissance":"2004-03-12"}}"#;
    assert_eq!(
        index.resolve(&keys(renamed), || ids.next()),
        Resolution::Matched {
            hub_id: Uuid::from_u128(1),
            by: MatchedBy::Identifier(KeyKind::ImiloDossier)
        }
    );
    // Same name and given name, another birth date: someone else.
    let other = r#"{"schema":"passerelle.jeune/1",
      "etat_civil":{"nom_usage":"Lefèvre","prenoms":["Léa"],"date_naissance":"2005-03-12"}}"#;
    assert!(matches!(
        index.resolve(&keys(other), || ids.next()),
        Resolution::New { .. }
    ));
}

#[test]
fn particles_and_birth_name_against_usage_name() {
    let mut index = IdentityIndex::new();
    let mut ids = Ids(0);
    let a = r#"{"schema":"passerelle.jeune/1",
      "etat_civil":{"nom_naissance":"de la Fontaine","nom_usage":"N'Diaye","prenoms":["Jean-Baptiste"],"date_naissance":"2003-01-05"}}"#;
    index.resolve(&keys(a), || ids.next());
    for b in [
        r#"{"schema":"passerelle.jeune/1","etat_civil":{"nom_naissance":"FONTAINE","prenoms":["JEAN BAPTISTE"],"date_naissance":"2003-01-05"}}"#,
        r#"{"schema":"passerelle.jeune/1","etat_civil":{"nom_usage":"NDIAYE","prenoms":["Jean-Baptiste"],"date_naissance":"2003-01-05"}}"#,
    ] {
        assert_eq!(
            index.resolve(&keys(b), || ids.next()),
            Resolution::Matched {
                hub_id: Uuid::from_u128(1),
                by: MatchedBy::Identite
            }
        );
    }
}

#[test]
fn uncertain_matches_go_to_review() {
    let mut index = IdentityIndex::new();
    let mut ids = Ids(0);
    index.resolve(&keys(SOLIS), || ids.next());
    // Same identity, but another NIR: not guessed.
    let other_nir = r#"{"schema":"passerelle.jeune/1","identifiants":{"nir":"1850775123456"},
      "etat_civil":{"nom_naissance":"Lefèvre","prenoms":["Léa"],"date_naissance":"2004-03-12"}}"#;
    let r = index.resolve(&keys(other_nir), || ids.next());
    assert_eq!(
        r,
        Resolution::Review {
            reason: ReviewReason::ConflictingIdentifier,
            candidates: vec![Uuid::from_u128(1)]
        }
    );
    assert_eq!(r.hub_id(), None);
    assert_eq!(index.reviews().len(), 1);

    // Two known people with the same identity: an identity-only record is ambiguous.
    let twin = r#"{"schema":"passerelle.jeune/1","identifiants":{"nir":"2040359350456"},
      "etat_civil":{"nom_naissance":"Lefèvre","prenoms":["Léa"],"date_naissance":"2004-03-12"}}"#;
    // The twin carries a NIR the hub does not know and an identity it does: review too.
    assert!(matches!(
        index.resolve(&keys(twin), || ids.next()),
        Resolution::Review { .. }
    ));
    let settled = index
        .settle(1, Uuid::from_u128(9))
        .expect("review 1 exists");
    assert_eq!(settled.reason, ReviewReason::ConflictingIdentifier);
    let bare = r#"{"schema":"passerelle.jeune/1",
      "etat_civil":{"nom_naissance":"LEFEVRE","prenoms":["LEA"],"date_naissance":"2004-03-12"}}"#;
    assert_eq!(
        index.resolve(&keys(bare), || ids.next()),
        Resolution::Review {
            reason: ReviewReason::SeveralCandidates,
            candidates: vec![Uuid::from_u128(1), Uuid::from_u128(9)]
        }
    );

    // Identifiers pointing at two people.
    let both = r#"{"schema":"passerelle.jeune/1","identifiants":{"nir":"204035935012349","france_travail_ide":"4053956Z"}}"#;
    let ft_only =
        r#"{"schema":"passerelle.jeune/1","identifiants":{"france_travail_ide":"4053956Z"}}"#;
    index.resolve(&keys(ft_only), || Uuid::from_u128(20));
    assert_eq!(
        index.resolve(&keys(both), || ids.next()),
        Resolution::Review {
            reason: ReviewReason::IdentifiersDisagree,
            candidates: vec![Uuid::from_u128(1), Uuid::from_u128(20)]
        }
    );
}

#[test]
fn a_partial_identity_never_matches() {
    let mut index = IdentityIndex::new();
    let no_date = r#"{"schema":"passerelle.jeune/1","etat_civil":{"nom_naissance":"Lefèvre","prenoms":["Léa"]}}"#;
    let k = keys(no_date);
    assert!(k.identites.is_empty());
    index.resolve(&k, || Uuid::from_u128(1));
    assert!(matches!(
        index.resolve(&k, || Uuid::from_u128(2)),
        Resolution::New { .. }
    ));
}

#[test]
fn the_index_holds_no_clear_value_and_reloads() {
    let mut index = IdentityIndex::new();
    index.resolve(&keys(SOLIS), || Uuid::from_u128(1));
    let entries = index.entries();
    let dump = serde_json::to_string(&entries).unwrap();
    for clear in [
        "204035935012349",
        "1234567",
        "IND0004412",
        "LEFEVRE",
        "Lefèvre",
        "LEA",
        "2004-03-12",
    ] {
        assert!(!dump.contains(clear), "the index holds {clear} in clear");
    }
    let mut reloaded = IdentityIndex::from_entries(entries.clone());
    assert_eq!(reloaded.entries(), entries);
    assert_eq!(
        reloaded.resolve(&keys(SOLIS), || Uuid::from_u128(2)),
        Resolution::Matched {
            hub_id: Uuid::from_u128(1),
            by: MatchedBy::Identifier(KeyKind::Nir)
        }
    );
    // Another key gives other blind indexes: nothing matches.
    let other = IdentityKeys::of(&record(SOLIS), &PseudonymKey::from_bytes([8; 32]));
    assert!(matches!(
        reloaded.resolve(&other, || Uuid::from_u128(3)),
        Resolution::New { .. }
    ));
}

#[test]
fn a_record_read_again_finds_its_person_by_its_source_id_but_never_by_a_line_number() {
    // An OF_SUIVI answer carries no identifier but its reference in the CD's box.
    let answer = r#"{"schema":"passerelle.jeune/1",
      "sources":[{"system":"box","organisation":"CD059","record_id":"8c5e0d2a-0000-8000-8000-000000000001"}],
      "obligation_formation":{"statut":"solution_trouvee"}}"#;
    let mut index = IdentityIndex::new();
    let mut ids = Ids(0);
    let first = index.resolve(&keys(answer), || ids.next());
    let again = index.resolve(&keys(answer), || ids.next());
    assert_eq!(first.hub_id(), again.hub_id());
    assert!(matches!(
        again,
        Resolution::Matched {
            by: MatchedBy::Identifier(KeyKind::SourceRecord),
            ..
        }
    ));

    // Row 3 of one file and row 3 of another are different people.
    let row = r#"{"schema":"passerelle.jeune/1",
      "sources":[{"system":"box","organisation":"CD059","record_id":"ligne-3"}]}"#;
    assert!(keys(row).identifiers.is_empty());
    let a = index.resolve(&keys(row), || ids.next());
    let b = index.resolve(&keys(row), || ids.next());
    assert_ne!(a.hub_id(), b.hub_id());
}
