//! Fixture tests: each `fixtures/NAME.xml` is read as `passerelle import` reads it,
//! and its JSON Lines and issue lines are compared with `NAME.jsonl` and `NAME.err`
//! (checked in). `BLESS=1` rewrites the expected files (review the diff); the harness is
//! `passerelle_testkit::fixtures`.

use std::path::{Path, PathBuf};

use passerelle_solis::{Export, SolisConfig};
use passerelle_testkit::fixtures::{check_import, fixtures_dir, import_lines};

fn fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a file into (stdout lines, stderr lines) as the import command would.
fn run(path: &Path) -> (String, String) {
    import_lines(
        Export::open(path, &SolisConfig::default()).map(|f| f.records().unwrap()),
        path,
    )
}

fn check(name: &str) {
    check_import(&fixtures(), name, run);
}

#[test]
fn sample_brsa() {
    check("sample_brsa");
}

#[test]
fn mapping_rules() {
    check("mapping_rules");
}

#[test]
fn ase_flux() {
    check("ase_flux");
}

#[test]
fn invalid_records_are_rejected_alone() {
    check("invalid_records");
    let (out, _) = run(&fixtures().join("invalid_records.xml"));
    assert_eq!(out.lines().count(), 1, "only the valid record goes through");
    assert!(out.contains("OK00000003"));
}

#[test]
fn encoding_windows_1252_and_utf8_read_alike() {
    check("encoding_cp1252");
    check("encoding_utf8_bom");
    let (a, _) = run(&fixtures().join("encoding_cp1252.xml"));
    let (b, _) = run(&fixtures().join("encoding_utf8_bom.xml"));
    assert_eq!(a, b);
    for c in ["Œ", "œ", "’", "€", "é", "—"] {
        assert!(a.contains(c), "{c} lost");
    }
}

#[test]
fn truncated_and_malformed_files_are_refused_whole() {
    for name in [
        "truncated_count",
        "truncated_cut",
        "truncated_no_root_end",
        "malformed",
        "unknown_format",
    ] {
        check(name);
        let (out, err) = run(&fixtures().join(format!("{name}.xml")));
        assert!(out.is_empty(), "{name}: nothing on stdout");
        assert!(err.starts_with("refused: "), "{name}: {err}");
    }
}

#[test]
fn aliases_come_from_configuration() {
    // With `Courriel` only, the `Email`/`Mail` aliases of the mapping fixture are ignored.
    let config = SolisConfig::from_toml("[elements]\ncourriel = [\"Courriel\"]\n").unwrap();
    let export = Export::open(&fixtures().join("mapping_rules.xml"), &config).unwrap();
    let first = export.records().unwrap().next().unwrap().unwrap();
    let j = first.outcome.unwrap();
    assert!(j.contact.email.is_none());
    let export = Export::open(
        &fixtures().join("mapping_rules.xml"),
        &SolisConfig::default(),
    )
    .unwrap();
    let first = export.records().unwrap().next().unwrap().unwrap();
    assert!(first.outcome.unwrap().contact.email.is_some());
}

/// Personal values of the fixtures must never appear in issue lines.
#[test]
fn issue_lines_hold_no_personal_value() {
    let mut all = String::new();
    for name in [
        "invalid_records",
        "mapping_rules",
        "truncated_count",
        "truncated_cut",
    ] {
        all.push_str(&run(&fixtures().join(format!("{name}.xml"))).1);
    }
    assert!(!all.is_empty());
    for value in [
        "Secret",
        "204035935012300",
        "31/02/2004",
        "1850775123",
        "12345",
        "12 34",
        "pas-une-adresse",
        "chloe",
        "5900",
        "fontaine",
        "Fontaine",
        "Jean",
        "765",
        "2004/03/12",
        "XXX",
        "VIP",
        "PERDU",
        "peut-être",
    ] {
        assert!(!all.contains(value), "issue lines leak {value:?}:\n{all}");
    }
}
