//! Fixture tests of the mapping: each `fixtures/dossier_*.json` (an I-MILO dossier)
//! against `*.expected.json` (canonical record and issues), each `*.input.json` (a
//! delivery) against the body I-MILO gets. `BLESS=1` rewrites expected files
//! (review the diff before committing); the harness is `passerelle_testkit::fixtures`.

use std::path::{Path, PathBuf};

use passerelle_connector::Delivery;
use passerelle_imilo::wire::Dossier;
use passerelle_imilo::{dossier_to_jeune, evenement_request, orientation_request};
use passerelle_model::{Date, Jeune};
use passerelle_testkit::fixtures::{expect_json, fixtures_dir};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR"))
}

fn check(expected_path: &Path, actual: &Value) {
    expect_json(expected_path, actual);
}

fn inputs(prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with(prefix) && n.ends_with(suffix) && !n.ends_with(".expected.json")
        })
        .collect();
    v.sort();
    v
}

fn expected_of(input: &Path) -> PathBuf {
    let name = input.file_name().unwrap().to_str().unwrap();
    let stem = name.trim_end_matches(".json").trim_end_matches(".input");
    input.with_file_name(format!("{stem}.expected.json"))
}

#[test]
fn dossiers_map_to_expected_canonical_records() {
    let files = inputs("dossier_", ".json");
    assert!(files.len() >= 4, "fixtures missing: {files:?}");
    for input in files {
        let dossier: Dossier =
            serde_json::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
        let m = dossier_to_jeune(&dossier);
        let actual = json!({
            "record": m.record.as_ref().map(|r| serde_json::to_value(r).unwrap()),
            "rejects": m.rejects,
            "warnings": m.warnings,
        });
        check(&expected_of(&input), &actual);
        // Every accepted record is valid canonical JSON: it reads back identical.
        if let Some(r) = m.record {
            let back: Jeune = serde_json::from_str(&r.to_json_line()).unwrap();
            assert_eq!(back, r);
        }
    }
}

#[derive(serde::Deserialize)]
struct DeliveryFixture {
    transfer_id: String,
    flow: String,
    recipient: String,
    record: Jeune,
}

#[test]
fn deliveries_map_to_expected_bodies() {
    let files = inputs("", ".input.json");
    assert!(files.len() >= 5, "fixtures missing: {files:?}");
    let today = Date::parse("2026-11-30").unwrap();
    for input in files {
        let f: DeliveryFixture =
            serde_json::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
        let d = Delivery {
            transfer_id: f.transfer_id,
            flow: f.flow,
            sender: "CD059".into(),
            recipient: f.recipient,
            record: f.record,
        };
        let actual = match d.flow.as_str() {
            "brsa-orientation" | "ase-majorite" => match orientation_request(&d) {
                Ok(body) => json!({"endpoint": "/partenaires/orientations", "body": body}),
                Err(reasons) => json!({"rejected": reasons}),
            },
            _ => match evenement_request(&d, today) {
                Ok((id, body)) => {
                    json!({"endpoint": format!("/partenaires/dossiers/{id}/evenements"), "body": body})
                }
                Err(reasons) => json!({"rejected": reasons}),
            },
        };
        check(&expected_of(&input), &actual);
    }
}

#[test]
fn mapping_issues_carry_no_personal_values() {
    let text = std::fs::read_to_string(fixtures().join("dossier_pacea.json")).unwrap();
    let m = dossier_to_jeune(&serde_json::from_str(&text).unwrap());
    let all = format!("{:?} {:?}", m.rejects, m.warnings);
    for value in [
        "pas-une-adresse",
        "12 34",
        "NV9",
        "EN_ATTENTE",
        "Côté",
        "Noé",
    ] {
        assert!(!all.contains(value), "issue text holds {value:?}: {all}");
    }
    let rejected = std::fs::read_to_string(fixtures().join("dossier_rejete.json")).unwrap();
    let m = dossier_to_jeune(&serde_json::from_str(&rejected).unwrap());
    assert!(m.record.is_none());
    let all = format!("{:?}", m.rejects);
    assert!(
        !all.contains("31/02/2005") && !all.contains("ABC") && !all.contains("Müller"),
        "{all}"
    );
    // Debug of a dossier shows its id only.
    let d: Dossier = serde_json::from_str(&text).unwrap();
    assert_eq!(format!("{d:?}"), "Dossier { id_dossier: 77, .. }");
}

/// The files of `../shared/real/imilo/` (copied into `fixtures/real/`), as the CEJ
/// back end receives them from the real API.
#[test]
fn real_dossier_and_event_decode() {
    use passerelle_imilo::wire::Event;
    let real = fixtures().join("real");
    let dossier: Dossier =
        serde_json::from_str(&std::fs::read_to_string(real.join("dossierDto.json")).unwrap())
            .unwrap();
    let m = dossier_to_jeune(&dossier);
    assert!(m.rejects.is_empty(), "{:?}", m.rejects);
    let j = serde_json::to_value(m.record.unwrap()).unwrap();
    assert_eq!(j["identifiants"]["imilo_dossier"], "6282");
    assert_eq!(j["identifiants"]["france_travail_ide"], "4053956Z");
    assert_eq!(j["sources"][0]["system"], "imilo");
    assert_eq!(j["sources"][0]["organisation"], "65440S00");
    assert_eq!(j["sources"][0]["record_id"], "6282");
    assert!(j["identifiants"].get("caf").is_none());
    assert!(j.get("rsa").is_none());
    assert_eq!(j["etat_civil"]["date_naissance"], "1997-05-08");
    assert_eq!(j["contact"]["adresse"]["commune"], "Beyrède-Jumet-Camous");
    // `"numero": ""` is absent, never an empty string.
    assert!(j["contact"]["adresse"].get("numero").is_none());
    assert_eq!(j["situations"][0]["categorie"], "demandeur_emploi");

    // idDossier and idType are numbers in the real API.
    let e: Event = serde_json::from_str(
        &std::fs::read_to_string(real.join("unEvenementMiloDto.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(e.id_dossier, Some(1_234_567));
    assert_eq!(e.id_type.as_deref(), Some("34"));
    assert_eq!((e.kind.as_str(), e.action.as_str()), ("RDV", "CREATE"));
    // The strings of the examples are read the same.
    let s: Event = serde_json::from_str(
        r#"{"identifiant":"x","idDossier":"1234567","type":"DOSSIER","action":"UPDATE","idType":"34"}"#,
    )
    .unwrap();
    assert_eq!(
        (s.id_dossier, s.id_type.as_deref()),
        (Some(1_234_567), Some("34"))
    );
    let d: Dossier = serde_json::from_str(r#"{"idDossier":"6282"}"#).unwrap();
    assert_eq!(d.id_dossier, 6282);
    assert!(
        serde_json::from_str::<Event>(
            r#"{"identifiant":"x","idDossier":"12a","type":"DOSSIER","action":"UPDATE"}"#
        )
        .is_err()
    );
}
