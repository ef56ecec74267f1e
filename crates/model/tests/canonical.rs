//! The record against the contract of canonical.md: the example round-trips, the JSON
//! rules hold, and paths, classes and projection behave as policy needs.

use passerelle_model::*;
use serde_json::{Value, json};

const EXAMPLE: &str = r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND0004412"}],
 "identifiants":{"nir":"204035935012349","caf":{"organisme":"CAF","numero_allocataire":"1234567"},"solis":"IND0004412"},
 "etat_civil":{"civilite":"MME","nom_naissance":"Lefèvre","prenoms":["Léa","Marie"],"date_naissance":"2004-03-12"},
 "contact":{"telephones":["+33612345678"],"email":"lea.lefevre@example.org"},
 "rsa":{"role":"DEM","etat_droit":"2","soumis_droits_devoirs":true,"date_ouverture":"2025-09-01"},
 "orientation":{"type":"socio_professionnelle","date":"2026-10-02","organisme":{"type":"ML","code":"59350S00"}}}"#;

fn example() -> Jeune {
    serde_json::from_str(EXAMPLE).expect("the canonical.md example parses")
}

#[test]
fn the_example_round_trips_exactly() {
    let record = example();
    let back: Value = serde_json::from_str(&record.to_json_line()).unwrap();
    let original: Value = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(back, original);
    assert_eq!(record.etat_civil.prenoms, vec!["Léa", "Marie"]);
    assert_eq!(record.rsa.etat_droit, Some(EtatDroit::OuvertVerse));
}

#[test]
fn the_example_is_built_the_same_from_types() {
    let mut j = Jeune::from_source(Source {
        system: SourceSystem::Solis,
        organisation: "CD059".into(),
        record_id: RecordId::parse("IND0004412").unwrap(),
    });
    j.identifiants.nir = Some(Nir::parse("2040359350123").unwrap());
    j.identifiants.caf = Some(Caf {
        organisme: CafOrganisme::Caf,
        numero_allocataire: NumeroAllocataire::parse("1234567").unwrap(),
    });
    j.identifiants.solis = Some(SolisId::parse("IND0004412").unwrap());
    j.etat_civil.civilite = Some(Civilite::from_source("MME").unwrap());
    j.etat_civil.nom_naissance = clean_text("Lefèvre");
    j.etat_civil.prenoms = split_prenoms("Léa Marie");
    j.etat_civil.date_naissance = Some(Date::parse("12/03/2004").unwrap());
    j.contact.telephones = vec![Telephone::parse("06 12 34 56 78").unwrap()];
    j.contact.email = Some(Email::parse("Lea.Lefevre@example.org").unwrap());
    j.rsa = Rsa {
        role: Some(RsaRole::Dem),
        etat_droit: Some(EtatDroit::from_source("2").unwrap()),
        soumis_droits_devoirs: Some(parse_bool("O").unwrap()),
        date_ouverture: Some(Date::parse("01/09/2025").unwrap()),
        ..Rsa::default()
    };
    j.orientation = Some(Orientation {
        kind: Some(OrientationType::from_source("SOCIO_PRO").unwrap()),
        date: Some(Date::parse("02/10/2026").unwrap()),
        organisme: Some(Organisme {
            kind: OrganismeType::Ml,
            code: Some("59350S00".into()),
        }),
        ..Orientation::default()
    });
    assert_eq!(j, example());
}

#[test]
fn absent_values_are_omitted_and_null_is_refused() {
    let j = Jeune::default();
    assert_eq!(j.to_json_line(), r#"{"schema":"passerelle.jeune/1"}"#);
    let with_null = r#"{"schema":"passerelle.jeune/1","hub_id":null}"#;
    // `null` for an optional reads as absent, and is never written back.
    let j: Jeune = serde_json::from_str(with_null).unwrap();
    assert_eq!(j.to_json_line(), r#"{"schema":"passerelle.jeune/1"}"#);
    assert!(serde_json::from_str::<Jeune>(r#"{"schema":"passerelle.jeune/2"}"#).is_err());
    assert!(serde_json::from_str::<Jeune>(r#"{"schema":"passerelle.jeune/1","nom":"x"}"#).is_err());
}

#[test]
fn invalid_values_are_refused_when_read() {
    let bad_key = EXAMPLE.replace("204035935012349", "204035935012350");
    let err = serde_json::from_str::<Jeune>(&bad_key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key does not match"), "{err}");
    assert!(
        !err.contains("2040359350123"),
        "the error must not echo the NIR: {err}"
    );
    let bad_date = EXAMPLE.replace("2004-03-12", "2004-02-30");
    assert!(serde_json::from_str::<Jeune>(&bad_date).is_err());
    let bad_code = EXAMPLE.replace("socio_professionnelle", "SOCIO_PRO");
    assert!(serde_json::from_str::<Jeune>(&bad_code).is_err());
}

#[test]
fn debug_shows_paths_not_values() {
    let dbg = format!("{:?}", example());
    assert!(dbg.contains("identifiants.nir"));
    for secret in [
        "Lefèvre",
        "Léa",
        "204035935012349",
        "lea.lefevre",
        "+33612345678",
        "1234567",
    ] {
        assert!(!dbg.contains(secret), "Debug leaks {secret}: {dbg}");
    }
}

#[test]
fn paths_and_classes_of_the_example() {
    let record = example();
    assert_eq!(
        record.paths(),
        vec![
            "schema",
            "sources[]",
            "identifiants.nir",
            "identifiants.caf",
            "identifiants.solis",
            "etat_civil.civilite",
            "etat_civil.nom_naissance",
            "etat_civil.prenoms",
            "etat_civil.date_naissance",
            "contact.telephones[]",
            "contact.email",
            "rsa.role",
            "rsa.etat_droit",
            "rsa.soumis_droits_devoirs",
            "rsa.date_ouverture",
            "orientation.type",
            "orientation.date",
            "orientation.organisme",
        ]
    );
    let classes = record.classes();
    assert!(classes.contains(&FieldClass::Nir));
    assert!(!classes.contains(&FieldClass::Art9));
}

#[test]
fn every_path_has_a_class_and_no_path_prefixes_another() {
    for (path, class) in FIELDS {
        assert_eq!(class_of(path), Some(*class));
        assert_eq!(class_of(&path.replace("[]", "")), Some(*class));
        for (other, _) in FIELDS {
            let (a, b) = (path.replace("[]", ""), other.replace("[]", ""));
            assert!(
                a == b || !b.starts_with(&format!("{a}.")),
                "{path} prefixes {other}"
            );
        }
    }
    assert_eq!(class_of("contact.adresse.voie"), Some(FieldClass::Contact));
    assert_eq!(class_of("sensible.rqth"), Some(FieldClass::Art9));
    assert_eq!(
        class_of("sensible.situation_penitentiaire"),
        Some(FieldClass::Art10)
    );
    assert_eq!(
        class_of("contact.sans_domicile_fixe"),
        Some(FieldClass::Social)
    );
    assert_eq!(class_of("nom"), None);
    assert_eq!(severity_of("contact.telephones[]"), Severity::Drop);
    assert_eq!(severity_of("contact.email"), Severity::Drop);
    assert_eq!(severity_of("identifiants.nir"), Severity::Reject);
    assert_eq!(severity_of("etat_civil.date_naissance"), Severity::Reject);
}

#[test]
fn projection_keeps_allowed_paths_and_lists_dropped_ones() {
    let mut record = example();
    record.sensible.rqth = Some(true);
    record.sensible.commentaires = vec!["texte libre".into()];
    let p = record.project(&["identifiants.caf", "sources"], &[FieldClass::Identite]);
    let json: Value = serde_json::to_value(&p.record).unwrap();
    assert_eq!(
        json,
        json!({"schema":"passerelle.jeune/1",
               "sources":[{"system":"solis","organisation":"CD059","record_id":"IND0004412"}],
               "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"}},
               "etat_civil":{"civilite":"MME","nom_naissance":"Lefèvre","prenoms":["Léa","Marie"],"date_naissance":"2004-03-12"}})
    );
    assert!(p.dropped.contains(&"identifiants.nir"));
    assert!(p.dropped.contains(&"sensible.rqth"));
    assert!(p.dropped.contains(&"sensible.commentaires"));
    assert!(p.dropped.contains(&"contact.email"));
    // Dropped and kept partition what the record held.
    let mut all: Vec<&str> = p.record.paths();
    all.extend(&p.dropped);
    all.sort();
    let mut held = record.paths();
    held.sort();
    assert_eq!(all, held);
}

#[test]
fn projection_onto_everything_is_the_identity() {
    let record = example();
    let p = record.project(&[], FieldClass::ALL);
    assert_eq!(p.record, record);
    assert!(p.dropped.is_empty());
}

#[test]
fn issues_sort_rejections_from_warnings() {
    let mut issues = Issues::default();
    let tel = issues.take("contact.telephones[]", Telephone::parse("+44 20 7946 0958"));
    assert!(tel.is_none());
    assert!(!issues.is_rejected());
    assert_eq!(issues.warnings.len(), 1);
    let nir = issues.opt("identifiants.nir", Some("1850775123456 00"), Nir::parse);
    assert!(nir.is_none());
    assert!(issues.is_rejected());
    assert_eq!(issues.rejects[0].path, "identifiants.nir");
    assert_eq!(issues.opt("identifiants.nir", Some("  "), Nir::parse), None);
    assert_eq!(issues.rejects.len(), 1);
    assert_eq!(
        issues.rejects[0].to_string(),
        "identifiants.nir: key does not match the number"
    );
}
