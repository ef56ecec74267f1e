//! Every file of `../shared/real/cnaf/` (copied into `fixtures/real/`): the records
//! expected, field by field, or the precise reason the file is refused.

use std::path::{Path, PathBuf};

use passerelle_cnaf::Flux;
use passerelle_connector::ConnectorError;
use serde_json::Value;

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

/// What reading a file gives: records (as JSON) and rejection lines.
struct Read {
    records: Vec<Value>,
    rejects: Vec<String>,
    warnings: Vec<String>,
}

fn read(path: &Path) -> Result<Read, ConnectorError> {
    let flux = Flux::open(path)?;
    let mut out = Read {
        records: Vec::new(),
        rejects: Vec::new(),
        warnings: Vec::new(),
    };
    for item in flux.records()? {
        let item = item?;
        out.warnings
            .extend(item.warnings.iter().map(|i| i.to_line()));
        match item.outcome {
            Ok(j) => out
                .records
                .push(serde_json::from_str(&j.to_json_line()).unwrap()),
            Err(issues) => out.rejects.extend(issues.iter().map(|i| i.to_line())),
        }
    }
    Ok(out)
}

fn refusal(name: &str) -> String {
    match read(&real(name)) {
        Err(ConnectorError::FileRefused { file, reason }) => {
            assert!(file.ends_with(name), "{file}");
            reason
        }
        Err(e) => panic!("{name}: {e}"),
        Ok(r) => panic!("{name}: read, {} records", r.records.len()),
    }
}

/// A copy of a real file with its count fixed, to read what it holds.
fn with_count(name: &str, n: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(real(name)).unwrap();
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let fixed = text.replace(
        "<NBTOTDOSRSATRANSM>00000001</NBTOTDOSRSATRANSM>",
        &format!("<NBTOTDOSRSATRANSM>{n:08}</NBTOTDOSRSATRANSM>"),
    );
    assert_ne!(fixed, text);
    let path = dir.path().join(name);
    std::fs::write(&path, fixed.chars().map(|c| c as u8).collect::<Vec<u8>>()).unwrap();
    (dir, path)
}

/// The fields the issue names, for one record: état, CAF number, request number, id.
type KeyFields<'a> = (
    Option<&'a str>,
    Option<(&'a str, &'a str)>,
    Option<&'a str>,
    &'a str,
);

fn key_fields(r: &Value) -> KeyFields<'_> {
    let caf = &r["identifiants"]["caf"];
    (
        r["rsa"]["etat_droit"].as_str(),
        caf["organisme"]
            .as_str()
            .map(|o| (o, caf["numero_allocataire"].as_str().unwrap())),
        r["identifiants"]["numero_demande_rsa"].as_str(),
        r["sources"][0]["record_id"].as_str().unwrap(),
    )
}

#[test]
fn rsabem_ouvert_an_open_dossier() {
    let r = read(&real("RSABEM-ouvert.xml")).unwrap();
    assert!(
        r.rejects.is_empty() && r.warnings.is_empty(),
        "{:?}",
        r.rejects
    );
    assert_eq!(r.records.len(), 1);
    let j = &r.records[0];
    assert_eq!(
        key_fields(j),
        (
            Some("2"),
            Some(("CAF", "2089564")),
            Some("01024041052"),
            "01024041052/4b424c2c7a8a"
        )
    );
    assert_eq!(j["rsa"]["role"], "CJT");
    assert_eq!(j["rsa"]["soumis_droits_devoirs"], true);
    assert_eq!(j["sources"][0]["organisation"], "CAF521");
    assert_eq!(j["identifiants"]["nir"], "273079940407891");
    assert_eq!(j["identifiants"]["france_travail_ide"], "1253359X");
    assert_eq!(j["etat_civil"]["civilite"], "MME");
    assert_eq!(j["contact"]["adresse"]["code_postal"], "92300");
    assert_eq!(j["contact"]["adresse"]["voie"], "RUE HENRI BARBUSSE");
}

#[test]
fn rsabei_daily_files_without_prestation_rsa_say_so() {
    // Both daily files hold one household without DonneesAdministratives nor
    // PrestationRSA (the second is the one carnet de bord keeps as XSD-invalid).
    for name in ["RSABEI.xml", "RSABEI_invalid.xml"] {
        let r = read(&real(name)).unwrap();
        assert!(r.rejects.is_empty(), "{name}: {:?}", r.rejects);
        assert_eq!(r.records.len(), 1, "{name}");
        assert_eq!(
            key_fields(&r.records[0]),
            (
                None,
                Some(("CAF", "0346145")),
                Some("01024041052"),
                "01024041052/9de4c6ab68b7"
            ),
            "{name}"
        );
        assert_eq!(
            r.warnings,
            [
                "/Racine/InfosFoyerRSA[1]/Personne[1]: rsa.etat_droit: unknown: the household has no PrestationRSA (at /Racine/InfosFoyerRSA[1])"
            ],
            "{name}"
        );
        assert!(r.records[0]["contact"].get("adresse").is_none());
    }
}

#[test]
fn msabei_a_refused_request_with_a_ten_character_numdemrsa() {
    let r = read(&real("MSABEI.xml")).unwrap();
    assert!(
        r.rejects.is_empty() && r.warnings.is_empty(),
        "{:?}",
        r.rejects
    );
    assert_eq!(r.records.len(), 1);
    let j = &r.records[0];
    assert_eq!(
        key_fields(j),
        (
            Some("1"),
            Some(("MSA", "922021077501688")),
            Some("1235068092"),
            "1235068092/35100eaa25d5"
        )
    );
    assert_eq!(j["rsa"]["motif_cloture"], "DSD");
    assert_eq!(j["rsa"]["date_cloture"], "2021-11-30");
    assert_eq!(j["sources"][0]["organisation"], "MSA751");
    assert_eq!(j["identifiants"]["nir"], "294109202536107");
}

#[test]
fn rsabem_count_that_does_not_match_then_the_records_it_holds() {
    assert_eq!(
        refusal("RSABEM.xml"),
        "count does not match: NBTOTDOSRSATRANSM says 1 households, the file holds 2 InfosFoyerRSA"
    );
    let (_dir, path) = with_count("RSABEM.xml", 2);
    let r = read(&path).unwrap();
    assert!(
        r.rejects.is_empty() && r.warnings.is_empty(),
        "{:?}",
        r.rejects
    );
    let got: Vec<_> = r.records.iter().map(key_fields).collect();
    // Two households share NUMDEMRSA 01024041052: the ids stay unique.
    assert_eq!(
        got,
        [
            (
                Some("5"),
                Some(("CAF", "2055990")),
                Some("01024041052"),
                "01024041052/05e68eb5a2a9"
            ),
            (
                Some("5"),
                Some(("CAF", "2055990")),
                Some("01024041052"),
                "01024041052/c8fe9ec43fab"
            ),
            (
                Some("4"),
                Some(("CAF", "2089564")),
                Some("01024041052"),
                "01024041052/4b424c2c7a8a"
            ),
        ]
    );
    assert_eq!(r.records[0]["rsa"]["motif_cloture"], "PCG");
    assert_eq!(r.records[0]["rsa"]["date_cloture"], "2021-11-30");
    assert_eq!(r.records[2]["rsa"]["motif_suspension"], "06");
    // The same person in the monthly file with one household and in this one: the
    // id does not depend on the household's place in the file.
    let ouvert = read(&real("RSABEM-ouvert.xml")).unwrap();
    assert_eq!(
        ouvert.records[0]["sources"][0]["record_id"],
        r.records[2]["sources"][0]["record_id"]
    );
}

#[test]
fn msabem_matricules_whole_and_the_stub_household_reported() {
    assert_eq!(
        refusal("MSABEM.xml"),
        "count does not match: NBTOTDOSRSATRANSM says 1 households, the file holds 2 InfosFoyerRSA"
    );
    let (_dir, path) = with_count("MSABEM.xml", 2);
    let r = read(&path).unwrap();
    assert_eq!(r.records.len(), 1);
    let j = &r.records[0];
    assert_eq!(
        key_fields(j),
        (
            Some("4"),
            Some(("MSA", "922016057501584")),
            Some("01020570016"),
            "01020570016/0531132f9e93"
        )
    );
    assert_eq!(j["etat_civil"]["prenoms"].as_array().unwrap().len(), 3);
    assert_eq!(j["contact"]["adresse"]["complement"], "APPARTEMENT 13");
    assert_eq!(
        r.rejects,
        [
            "/Racine/InfosFoyerRSA[2]: sources[]: household without Personne: no person to read (at /Racine/InfosFoyerRSA[2])"
        ]
    );
}

#[test]
fn the_instruction_toy_file_is_refused_naming_it() {
    assert_eq!(
        refusal("analyse-flux-insertion_test-cnaf.xml"),
        "unknown flux (APPLIEME NRA, NUMVERSIONAPPLIEME 0366): not a CAF (CRI) or MSA (AGO) bénéficiaire flux"
    );
}

/// Every real file is covered above, and each one read yields, for each of its
/// persons, a record or a reason (never a silent nothing).
#[test]
fn every_real_file_is_covered_and_no_person_vanishes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "MSABEI.xml",
            "MSABEM.xml",
            "RSABEI.xml",
            "RSABEI_invalid.xml",
            "RSABEM-ouvert.xml",
            "RSABEM.xml",
            "analyse-flux-insertion_test-cnaf.xml"
        ]
    );
    for name in &names {
        let Ok(r) = read(&dir.join(name)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(name)).unwrap()).into_owned();
        let persons = text.matches("<Personne>").count();
        assert!(
            persons == 0 || !r.records.is_empty() || !r.rejects.is_empty(),
            "{name}: {persons} Personne, nothing read"
        );
    }
}

fn layouts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layouts")
        .join(name)
}

/// A copy of a fixture with one text replaced.
fn edited(path: &Path, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from}");
    let out = dir.path().join(path.file_name().unwrap());
    std::fs::write(&out, text.replace(from, to)).unwrap();
    (dir, out)
}

#[test]
fn vrsd0301_is_detected_and_maps_to_the_same_record() {
    let path = layouts("vrsd0301.xml");
    let flux = Flux::open(&path).unwrap();
    assert_eq!(flux.header.layout, passerelle_cnaf::Layout::Vrsd0301);
    // Two households of three went to the anomaly flux: not a cut file.
    assert_eq!((flux.header.nb_foyers, flux.header.nb_anomalies), (3, 2));
    let r = read(&path).unwrap();
    assert!(
        r.rejects.is_empty() && r.warnings.is_empty(),
        "{:?}",
        r.rejects
    );
    // The second BEN left the household on 2022-01-31, before DTREF: not emitted.
    assert_eq!(r.records.len(), 1);
    let j = &r.records[0];
    let vrsb = read(&real("RSABEM-ouvert.xml")).unwrap();
    // Same person, same id and numbers whatever the layout.
    assert_eq!(
        key_fields(j),
        (
            Some("3"),
            Some(("CAF", "2089564")),
            Some("01024041052"),
            key_fields(&vrsb.records[0]).3
        )
    );
    assert_eq!(
        j["identifiants"]["nir"],
        vrsb.records[0]["identifiants"]["nir"]
    );
    // BEN does not tell DEM from CJT: no role rather than a guess.
    assert!(j["rsa"].get("role").is_none());
    assert_eq!(j["rsa"]["soumis_droits_devoirs"], true);
    assert_eq!(j["rsa"]["entrant_droits_devoirs"], true);
    assert_eq!(j["rsa"]["date_ouverture"], "2018-08-01");
    assert_eq!(j["rsa"]["motif_suspension"], "DA");
    assert_eq!(
        j["etat_civil"]["prenoms"],
        serde_json::json!(["ETA", "MARIE", "LOUISE"])
    );
    // RGADR 01 wins over the address listed first.
    assert_eq!(j["contact"]["adresse"]["code_postal"], "92300");
}

#[test]
fn the_vrsd0301_shape_without_versionflux_is_detected_too() {
    let (_d, path) = edited(
        &layouts("vrsd0301.xml"),
        "<VERSIONFLUX>VRSD0301</VERSIONFLUX>",
        "",
    );
    assert_eq!(
        Flux::open(&path).unwrap().header.layout,
        passerelle_cnaf::Layout::Vrsd0301
    );
    assert_eq!(read(&path).unwrap().records.len(), 1);
}

#[test]
fn unknown_layouts_are_refused_with_their_name_and_version() {
    let reason = |path: &Path| match Flux::open(path) {
        Err(ConnectorError::FileRefused { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    let (_d, p) = edited(
        &layouts("vrsd0301.xml"),
        "<VERSIONFLUX>VRSD0301</VERSIONFLUX>",
        "<VERSIONFLUX>VRSD0402</VERSIONFLUX>",
    );
    assert_eq!(
        reason(&p),
        "unknown layout: VERSIONFLUX VRSD0402 (APPLIEME CRI, NUMVERSIONAPPLIEME 6300); this reader maps VRSB0801 and VRSD0301"
    );
    let (_d, p) = edited(
        &layouts("vrsd0301.xml"),
        "<VERSIONFLUX>VRSD0301</VERSIONFLUX>",
        "<VERSIONFLUX>VRSB0801</VERSIONFLUX>",
    );
    assert_eq!(
        reason(&p),
        "layout does not match: IdentificationFlux names VRSB0801 (APPLIEME CRI, NUMVERSIONAPPLIEME 6300), /Racine/InfosFoyerRSA[1] is laid out as VRSD0301"
    );
    // Persons in neither layout would yield nothing without a word.
    let (_d, p) = edited(&real("RSABEI.xml"), "Prestations>", "Autre>");
    assert_eq!(
        reason(&p),
        "unknown layout (APPLIEME CRI, NUMVERSIONAPPLIEME 6200): /Racine/InfosFoyerRSA[1]/Personne has neither Prestations (VRSB0801) nor FonctionPersonneRSA (VRSD0301)"
    );
    let (_d, p) = edited(
        &real("RSABEI.xml"),
        "<NATFLUX>D</NATFLUX>",
        "<NATFLUX>I</NATFLUX>",
    );
    assert_eq!(
        reason(&p),
        "NATFLUX I (instruction) is not a bénéficiaire flux (D) (APPLIEME CRI, NUMVERSIONAPPLIEME 6200)"
    );
}

#[test]
fn the_count_rule_counts_anomalies_sent_apart() {
    let base = layouts("vrsd0301.xml");
    let reason = |from: &str, to: &str| {
        let (_d, p) = edited(&base, from, to);
        match Flux::open(&p) {
            Err(ConnectorError::FileRefused { reason, .. }) => Some(reason),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        }
    };
    let ano = "<NBTOTDOSRSATRANSMANO>00000002</NBTOTDOSRSATRANSMANO>";
    assert_eq!(
        reason(ano, "<NBTOTDOSRSATRANSMANO>00000001</NBTOTDOSRSATRANSMANO>").as_deref(),
        Some(
            "truncated: NBTOTDOSRSATRANSM says 3 households (1 of them sent apart as anomalies), the file holds 1 InfosFoyerRSA"
        )
    );
    assert_eq!(
        reason(ano, "<NBTOTDOSRSATRANSMANO>00000004</NBTOTDOSRSATRANSMANO>").as_deref(),
        Some("count does not match: NBTOTDOSRSATRANSMANO 4 exceeds NBTOTDOSRSATRANSM 3")
    );
    assert_eq!(
        reason(ano, "").as_deref(),
        Some(
            "truncated: NBTOTDOSRSATRANSM says 3 households (0 of them sent apart as anomalies), the file holds 1 InfosFoyerRSA"
        )
    );
    assert_eq!(
        reason(ano, "<NBTOTDOSRSATRANSMANO>00000002</NBTOTDOSRSATRANSMANO>"),
        None
    );
}
