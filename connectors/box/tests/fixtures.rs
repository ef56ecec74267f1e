//! Data-driven mapping tests: every folder under `tests/fixtures/` holds one box file
//! (CSV or XLSX), optionally a `mapping` file naming a mapping in `schemas/mappings/`,
//! and `expected.jsonl`: one line per data row, the canonical record or the rejection,
//! with warnings. `BLESS=1` rewrites the expected files (review the diff!); the harness
//! is `passerelle_testkit::fixtures`.

use std::path::{Path, PathBuf};

use passerelle_box::{BrsaReader, Mapping};
use passerelle_testkit::fixtures::{expect_text, fixtures_dir};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings")
}

/// The expected-output form of one file.
pub fn render(path: &Path, mapping: &Mapping) -> String {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let file = std::fs::File::open(path).unwrap();
    let reader = BrsaReader::open(file, &name, mapping).unwrap();
    let mut out = String::new();
    for row in reader {
        let row = row.unwrap();
        // Written by hand so that records keep their canonical key order.
        out.push_str(&format!(
            "{{\"line\":{},\"ref\":{}",
            row.line,
            json!(row.reference)
        ));
        match row.outcome {
            Ok(j) => out.push_str(&format!(",\"record\":{}", j.to_json_line())),
            Err(issues) => out.push_str(&format!(
                ",\"rejected\":{}",
                serde_json::to_string(&issues).unwrap()
            )),
        }
        if !row.warnings.is_empty() {
            out.push_str(&format!(
                ",\"warnings\":{}",
                serde_json::to_string(&row.warnings).unwrap()
            ));
        }
        out.push_str("}\n");
    }
    out
}

fn check_dir(dir: &Path) -> Vec<Value> {
    let mapping = match std::fs::read_to_string(dir.join("mapping")) {
        Ok(name) => Mapping::load(&mappings().join(name.trim())).unwrap(),
        Err(_) => Mapping::default_brsa(),
    };
    let data = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("csv" | "xlsx")))
        .unwrap_or_else(|| panic!("no data file in {}", dir.display()));
    let got = render(&data, &mapping);
    expect_text(&dir.join("expected.jsonl"), &got);
    got.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_fixture_matches_its_expected_output() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            check_dir(&dir);
            n += 1;
        }
    }
    assert!(n >= 3, "fixtures found: {n}");
}

#[test]
fn the_shared_sample_maps_as_box_md_says() {
    let rows = check_dir(&fixtures().join("sample"));
    assert_eq!(rows.len(), 2);
    let lea = &rows[0]["record"];
    assert_eq!(
        lea["sources"][0],
        json!({"system": "box", "organisation": "CD059", "record_id": "1234567-DEM"})
    );
    assert_eq!(
        lea["identifiants"]["caf"],
        json!({"organisme": "CAF", "numero_allocataire": "1234567"})
    );
    assert_eq!(lea["etat_civil"]["nom_usage"], "LEFÈVRE");
    assert_eq!(lea["etat_civil"]["nom_naissance"], "LEFÈVRE");
    assert_eq!(lea["etat_civil"]["prenoms"], json!(["Léa", "Marie"]));
    assert_eq!(lea["identifiants"]["nir"].as_str().unwrap().len(), 15);
    assert_eq!(lea["contact"]["telephones"], json!(["+33612345678"]));
    assert_eq!(
        lea["rsa"],
        json!({"role": "DEM", "etat_droit": "2", "soumis_droits_devoirs": true, "date_ouverture": "2025-09-01"})
    );
    assert_eq!(lea["orientation"]["type"], "socio_professionnelle");
    assert_eq!(
        lea["orientation"]["organisme"],
        json!({"type": "ML", "code": "59350S00"})
    );
    assert_eq!(
        lea["orientation"]["referent"],
        json!({"nom": "Claire Durand"})
    );
    let karim = &rows[1]["record"];
    assert_eq!(karim["etat_civil"]["civilite"], "M");
    assert!(karim["contact"].get("telephones").is_none());
    assert!(karim["orientation"].get("referent").is_none());
}

#[test]
fn default_variants_cover_the_rules() {
    let rows = check_dir(&fixtures().join("default_variants"));
    let by_line = |n: u64| {
        rows.iter()
            .find(|r| r["line"] == n)
            .unwrap_or_else(|| panic!("line {n}"))
    };
    let r2 = &by_line(2)["record"];
    assert_eq!(r2["etat_civil"]["civilite"], "MME");
    assert_eq!(r2["etat_civil"]["nom_naissance"], "Ngô");
    assert_eq!(
        r2["contact"]["adresse"]["voie"],
        "Résidence \"Les Lilas\"; bât. B"
    );
    assert_eq!(r2["contact"]["email"], "anais.ngo@example.org");
    assert_eq!(r2["rsa"]["soumis_droits_devoirs"], true);
    assert_eq!(
        r2["orientation"]["organisme"],
        json!({"type": "AUTRE", "code": "CCAS Tourcoing"})
    );
    let r3 = &by_line(3);
    assert_eq!(r3["record"]["rsa"]["role"], "CJT");
    assert_eq!(r3["ref"], "2345678-CJT");
    assert_eq!(r3["record"]["rsa"]["soumis_droits_devoirs"], false);
    assert_eq!(
        r3["record"]["orientation"]["organisme"],
        json!({"type": "ML", "code": "59350S00"})
    );
    let fields: Vec<&str> = r3["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["contact.telephones", "contact.email"]);
    assert_eq!(
        by_line(4)["record"]["etat_civil"]["date_naissance"],
        "2004-02-29"
    );
    assert_eq!(
        by_line(5)["rejected"][0]["reason"],
        "line 5 has 7 columns, expected 19"
    );
    let bad = by_line(6)["rejected"].as_array().unwrap();
    let fields: Vec<&str> = bad.iter().map(|w| w["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["identifiants.nir", "etat_civil.date_naissance"]);
    assert_eq!(
        by_line(7)["record"]["rsa"]["role"],
        "DEM",
        "translated by the mapping"
    );
    assert_eq!(
        by_line(7)["record"]["orientation"]["type"],
        "professionnelle"
    );
    assert_eq!(
        by_line(8)["record"]["contact"]["adresse"]["voie"],
        "12 rue Pasteur\nAppartement 3"
    );
    assert!(
        by_line(10)["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("20 columns")
    );
    assert_eq!(by_line(11)["rejected"][0]["field"], "identifiants");
    assert_eq!(rows.len(), 9, "blank and separator-only lines are not rows");
}

#[test]
fn the_cd062_variant_maps_its_own_spellings() {
    let rows = check_dir(&fixtures().join("cd062"));
    let lea = &rows[0]["record"];
    assert_eq!(lea["sources"][0]["organisation"], "CD062");
    assert_eq!(lea["rsa"]["role"], "DEM");
    assert_eq!(lea["etat_civil"]["civilite"], "MME");
    assert_eq!(lea["etat_civil"]["nom_naissance"], "Carpentier");
    assert_eq!(lea["etat_civil"]["prenoms"], json!(["Léa", "Marie"]));
    assert_eq!(lea["contact"]["adresse"]["complement"], "Bât. C");
    assert_eq!(lea["orientation"]["type"], "socio_professionnelle");
    assert_eq!(lea["orientation"]["date"], "2025-09-15");
    assert_eq!(rows[1]["record"]["rsa"]["role"], "CJT");
    assert_eq!(
        rows[1]["record"]["orientation"]["organisme"]["type"],
        "AUTRE"
    );
    assert_eq!(
        rows[2]["rejected"][0]["field"], "etat_civil.date_naissance",
        "1/2/2005 is not DD/MM/YYYY"
    );
}
