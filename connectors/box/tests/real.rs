//! The real lists of `tests/real/` (copied from `shared/real/box`, public fixtures of
//! carnet de bord and rdv-insertion, see `shared/real/README.md`) through the mappings
//! shipped in `schemas/mappings/`: records out, and every rejection or dropped value
//! with a reason true of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use passerelle_box::{BrsaReader, MappedRow, Mapping};

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/real")
        .join(name)
}

fn mapping(name: &str) -> Mapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/mappings")
        .join(format!("{name}.toml"));
    Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn read(file: &str, mapping_name: &str) -> Vec<MappedRow> {
    let m = mapping(mapping_name);
    let f = std::fs::File::open(real(file)).unwrap();
    BrsaReader::open(f, file, &m)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .map(|r| r.unwrap())
        .collect()
}

/// `field: reason` → how many rows, for rejections and for warnings.
fn tally(rows: &[MappedRow]) -> (usize, BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut ok = 0;
    let mut rejected = BTreeMap::new();
    let mut warned = BTreeMap::new();
    for r in rows {
        match &r.outcome {
            Ok(_) => ok += 1,
            Err(issues) => {
                for i in issues {
                    *rejected
                        .entry(format!("{}: {}", i.field, i.reason))
                        .or_default() += 1;
                }
            }
        }
        for w in &r.warnings {
            *warned
                .entry(format!("{}: {}", w.field, w.reason))
                .or_default() += 1;
        }
    }
    (ok, rejected, warned)
}

fn ok(rows: &[MappedRow], line: u64) -> &passerelle_model::Jeune {
    let r = rows.iter().find(|r| r.line == line).expect("line");
    r.outcome
        .as_ref()
        .unwrap_or_else(|e| panic!("line {line}: {e:?}"))
}

fn json(j: &passerelle_model::Jeune) -> serde_json::Value {
    serde_json::from_str(&j.to_json_line()).unwrap()
}

const DROPPED_CAF: &str =
    "identifiants.caf.numero_allocataire: must be 7 digits, even normalised; the number is dropped";

#[test]
fn the_drome_style_list_goes_through_with_its_own_ids() {
    let rows = read("fichier_usager_600_lignes.csv", "cd026_usagers");
    let (ok, rejected, warned) = tally(&rows);
    // Every row out: the fake allocataire numbers (CAF + 10 digits that stay 8 or 9
    // digits once normalised) are dropped with a warning, the row goes on by its
    // Iodas id; the 21 that normalise to 7 digits are kept.
    assert_eq!((ok, rejected.len()), (600, 0), "{rejected:?}");
    assert_eq!(warned.get(DROPPED_CAF), Some(&579), "{warned:?}");
    assert_eq!(warned.len(), 1, "{warned:?}");
    let kept = rows
        .iter()
        .filter(|r| {
            r.outcome
                .as_ref()
                .is_ok_and(|j| j.identifiants.caf.is_some())
        })
        .count();
    assert_eq!(kept, 21);
    let j = json(ok_row(&rows, 2));
    assert_eq!(j["sources"][0]["record_id"], "IODAS822920");
    assert_eq!(j["identifiants"]["solis"], "IODAS822920");
    assert_eq!(j["contact"]["adresse"]["code_postal"], "59402");
    assert_eq!(j["contact"]["adresse"]["commune"], "Nice");
    assert_eq!(j["etat_civil"]["date_naissance"], "1952-02-16");
    assert_eq!(j["contact"]["telephones"][0], "+33663603510");
    // Ids are unique in the file: no two rows would overwrite each other.
    let mut ids: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 600);
}

fn ok_row(rows: &[MappedRow], line: u64) -> &passerelle_model::Jeune {
    ok(rows, line)
}

#[test]
fn the_interview_workbooks_go_through() {
    for (file, records, dropped) in [
        ("fichier_usager_test.xlsx", 1, 1),
        ("fichier_usager_sans_civilite.xlsx", 2, 2),
        ("fichier_usager_test_invalid.xlsx", 2, 2),
        ("new_fichier_usager_test.xlsx", 2, 1),
    ] {
        let rows = read(file, "rdv_insertion_entretiens");
        let (ok, rejected, warned) = tally(&rows);
        assert_eq!((ok, rejected.len()), (records, 0), "{file}: {rejected:?}");
        // `ISQCJQO` is no allocataire number: dropped, the NIR and Iodas id place the row.
        assert_eq!(
            warned.get(DROPPED_CAF),
            Some(&dropped),
            "{file}: {warned:?}"
        );
        let j = json(ok_row(&rows, 2));
        // NIR typed as a number, 13 digits: its key appended.
        assert_eq!(j["identifiants"]["nir"], "180333147687266", "{file}");
        // Excel serial date; the phone's leading 0 restored; `CP Ville` split.
        assert!(
            j["etat_civil"]["date_naissance"]
                .as_str()
                .unwrap()
                .starts_with("198")
        );
        assert_eq!(j["contact"]["adresse"]["code_postal"], "75007");
        assert_eq!(j["contact"]["adresse"]["commune"], "PARIS");
        assert_eq!(j["rsa"]["role"], "DEM");
        if file != "new_fichier_usager_test.xlsx" {
            assert_eq!(j["contact"]["telephones"][0], "+33620022002", "{file}");
        }
    }
    // A row with a name and nothing else: a digest of its identity for an id.
    let rows = read("new_fichier_usager_test.xlsx", "rdv_insertion_entretiens");
    let r = rows.iter().find(|r| r.line == 3).unwrap();
    assert!(r.reference.starts_with("id-"), "{}", r.reference);
    assert!(!r.reference.contains("Vieri"));
}

#[test]
fn the_carnet_de_bord_template_and_its_variants() {
    let fti = "identifiants.france_travail_ide: must be 7 digits followed by a letter";
    let phone = "contact.telephones: is not a French number (0X XX XX XX XX, +33 or 0033)";
    for file in [
        "import_beneficiaires.csv",
        "import_beneficiaires_with_all_date_formats.csv",
    ] {
        let rows = read(file, "carnet_de_bord_beneficiaires");
        let (ok, rejected, warned) = tally(&rows);
        // Line 2: `300000L` is no France Travail id (7 digits and a letter): refused
        // by the canonical rule for identifiers. Line 5 is one field short: read.
        assert_eq!(ok, 3, "{file}");
        assert_eq!(rejected.get(fti), Some(&1), "{file}: {rejected:?}");
        assert!(
            rows.iter().any(|r| r.line == 5 && r.outcome.is_ok()),
            "{file}"
        );
        // `0601234567, 071234567`: the second number is not a French number, dropped.
        assert_eq!(warned.get(phone), Some(&1), "{file}: {warned:?}");
        let j = json(ok_row(&rows, 3));
        assert_eq!(j["sources"][0]["record_id"], "12345");
        assert_eq!(j["etat_civil"]["date_naissance"], "1997-04-22");
        assert_eq!(j["rsa"]["etat_droit"], "2");
        assert_eq!(j["identifiants"]["caf"]["numero_allocataire"], "2055990");
    }
    let rows = read(
        "import_beneficiaires_buggy.csv",
        "carnet_de_bord_beneficiaires",
    );
    let (ok, rejected, _) = tally(&rows);
    assert_eq!(ok, 1);
    assert_eq!(
        rejected.get("etat_civil.date_naissance: matches none of the column's date formats"),
        Some(&1),
        "{rejected:?}"
    );
    let rows = read(
        "import_beneficiaires_partial.csv",
        "carnet_de_bord_beneficiaires",
    );
    let (ok, rejected, _) = tally(&rows);
    // Fake NIRs on purpose: one with 14 characters, one with a bad key.
    assert_eq!(ok, 2);
    assert_eq!(
        rejected.get("identifiants.nir: must have 13 or 15 characters, found 14"),
        Some(&1)
    );
    assert_eq!(
        rejected.get("identifiants.nir: key does not match the number"),
        Some(&1)
    );
}

#[test]
fn the_france_travail_extract() {
    let rows = read(
        "i03300c.j.extract_spie_carnet_spie_carnet_de_bord_principal.csv",
        "france_travail_extract",
    );
    let (ok, rejected, warned) = tally(&rows);
    assert_eq!((ok, rejected.len(), warned.len()), (4, 0, 0));
    let j = json(ok_row(&rows, 2));
    assert_eq!(
        j["sources"][0]["record_id"],
        "71288a46-3c4d-4372-9298-c32936d7e76d"
    );
    assert_eq!(j["etat_civil"]["date_naissance"], "1982-02-01");
    // `NULL` is empty: the join keeps the other lines, no `NULL` text anywhere.
    assert_eq!(
        j["contact"]["adresse"]["complement"],
        "ADRESSE_LIGNE2 1, ADRESSE_LIGNE3 1"
    );
    assert_eq!(j["contact"]["adresse"]["code_postal"], "08300");
    for r in &rows {
        let line = ok_row(&rows, r.line).to_json_line();
        assert!(!line.contains("NULL"), "line {}", r.line);
    }
}

#[test]
fn the_cnaf_contact_file() {
    let rows = read("fichier_contact_test.csv", "cnaf_fichier_contact");
    let (_, rejected, warned) = tally(&rows);
    assert_eq!(warned.get(DROPPED_CAF), Some(&1), "{warned:?}");
    // `1013473008` has 10 characters: the row follows the model's rule for RSA
    // request numbers, whichever it is.
    match passerelle_model::NumeroDemandeRsa::parse("1013473008") {
        Ok(_) => {
            let j = json(ok_row(&rows, 2));
            assert_eq!(j["identifiants"]["numero_demande_rsa"], "1013473008");
            assert_eq!(j["contact"]["telephones"][0], "+33698943255");
        }
        Err(e) => assert_eq!(
            rejected.get(&format!("identifiants.numero_demande_rsa: {e}")),
            Some(&1)
        ),
    }
    let rows = read(
        "fichier_contact_test_priorite_nir.csv",
        "cnaf_fichier_contact",
    );
    let (ok, rejected, _) = tally(&rows);
    // Both NIRs carry a bad key on purpose.
    assert_eq!(ok, 0);
    assert_eq!(
        rejected.get("identifiants.nir: key does not match the number"),
        Some(&2)
    );
}

#[test]
fn issues_never_hold_values() {
    for (file, m) in [
        ("fichier_usager_600_lignes.csv", "cd026_usagers"),
        (
            "import_beneficiaires_buggy.csv",
            "carnet_de_bord_beneficiaires",
        ),
        (
            "fichier_contact_test_priorite_nir.csv",
            "cnaf_fichier_contact",
        ),
    ] {
        let text = std::fs::read_to_string(real(file)).unwrap();
        let cells: Vec<&str> = text
            .lines()
            .skip(1)
            .flat_map(|l| l.split(';'))
            .filter(|c| c.len() > 4)
            .collect();
        for r in read(file, m) {
            let issues = r.outcome.err().unwrap_or_default();
            for i in issues.iter().chain(&r.warnings) {
                for c in &cells {
                    assert!(!i.reason.contains(c), "{file} line {}", r.line);
                }
            }
        }
    }
}

/// The records a poll of the box hands out, by `record_id`.
fn poll(
    hub: &mut passerelle_box::BoxHub<passerelle_box::state::MemoryState>,
) -> BTreeMap<String, String> {
    let mut got = BTreeMap::new();
    hub.poll(&mut |_, item| {
        if let passerelle_box::protocol::Received::Brsa(row) = item
            && let Ok(j) = &row.outcome
        {
            let id = j.sources[0].record_id.as_str().to_owned();
            assert!(
                got.insert(id, j.to_json_line()).is_none(),
                "one id, one row"
            );
        }
    })
    .unwrap();
    got
}

#[test]
fn the_same_list_next_month_rows_reordered_gives_the_same_ids_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let folder = std::sync::Arc::new(passerelle_box::folder::LocalFolder::new(dir.path()));
    let mut hub = passerelle_box::BoxHub::new(
        folder.clone(),
        "26000S00",
        passerelle_box::state::MemoryState::default(),
        mapping("cd026_usagers"),
    );
    let text = std::fs::read_to_string(real("fichier_usager_600_lignes.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let drop = |name: &str, bytes: &[u8]| {
        passerelle_box::sim::drop_file(&*folder, "26000S00", name, bytes, Default::default())
            .unwrap()
    };
    drop("BRSA_LISTE_026_CD026_20261101230000.csv", text.as_bytes());
    let first = poll(&mut hub);
    assert_eq!(first.len(), 600);
    // Next month: same people, another order (the header stays first).
    lines[1..].reverse();
    lines[1..].rotate_left(17);
    let reordered = lines.join("\r\n");
    assert_ne!(reordered, text);
    drop(
        "BRSA_LISTE_026_CD026_20261201230000.csv",
        reordered.as_bytes(),
    );
    let second = poll(&mut hub);
    // Same ids and the same record under each: the hub's transfer id is derived from
    // the record's content and its identity, so nothing new is sent.
    assert_eq!(first, second);
}
