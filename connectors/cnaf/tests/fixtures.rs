//! Fixture tests: each `fixtures/NAME.xml` is read as `passerelle import` reads it,
//! and its JSON Lines and issue lines are compared with `NAME.jsonl` and `NAME.err`
//! (checked in). `BLESS=1` rewrites the expected files (review the diff); the harness is
//! `passerelle_testkit::fixtures`.

use std::path::{Path, PathBuf};

use passerelle_cnaf::Flux;
use passerelle_testkit::fixtures::{check_import, fixtures_dir, import_lines};

fn fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a file into (stdout lines, stderr lines) as the import command would.
fn run(path: &Path) -> (String, String) {
    import_lines(Flux::open(path).map(|f| f.records().unwrap()), path)
}

fn check(name: &str) {
    check_import(&fixtures(), name, run);
}

#[test]
fn sample() {
    check("sample");
}

#[test]
fn roles_ages_and_fields() {
    check("roles_and_fields");
    let (out, _) = run(&fixtures().join("roles_and_fields.xml"));
    // DEM, CJT, two ENF aged 16-25 from the first household; DEM of the second.
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            let j: passerelle_model::Jeune = serde_json::from_str(l).unwrap();
            j.sources[0].record_id.to_string()
        })
        .collect();
    let numdem: Vec<&str> = ids.iter().map(|i| i.split('/').next().unwrap()).collect();
    assert_eq!(
        numdem,
        [
            "59087654321",
            "59087654321",
            "59087654321",
            "59087654321",
            "2A012345678"
        ]
    );
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn invalid_records_are_rejected_alone() {
    check("invalid_records");
    let (out, _) = run(&fixtures().join("invalid_records.xml"));
    assert_eq!(out.lines().count(), 1, "only the valid record goes through");
    assert!(out.contains("\"record_id\":\"59012345679/"));
}

#[test]
fn truncated_files_are_refused_whole() {
    for name in [
        "truncated_count",
        "truncated_cut",
        "truncated_no_transmission",
    ] {
        check(name);
        let (out, err) = run(&fixtures().join(format!("{name}.xml")));
        assert!(out.is_empty(), "{name}: nothing on stdout");
        assert!(err.starts_with("refused: "), "{name}: {err}");
    }
}

/// Personal values of the fixtures must never appear in issue lines.
#[test]
fn issue_lines_hold_no_personal_value() {
    let mut all = String::new();
    for name in ["invalid_records", "truncated_count", "truncated_cut"] {
        all.push_str(&run(&fixtures().join(format!("{name}.xml"))).1);
    }
    assert!(!all.is_empty());
    for value in [
        "SECRET",
        "ANNE",
        "PAUL",
        "2004-02-30",
        "204035935012300",
        "12345670000000",
        "ABC",
        "59012345678",
        "2040359350123",
    ] {
        assert!(!all.contains(value), "issue lines leak {value:?}:\n{all}");
    }
}
