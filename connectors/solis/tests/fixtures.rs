//! Fixture tests: each `fixtures/NAME.xml` is read as `passerelle import` reads it,
//! and its JSON Lines and issue lines are compared with `NAME.jsonl` and `NAME.err`
//! (checked in). `UPDATE_FIXTURES=1` rewrites the expected files (review the diff).

use std::path::{Path, PathBuf};

use passerelle_solis::{Export, SolisConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads a file into (stdout lines, stderr lines) as the import command would.
fn run(path: &Path) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    match Export::open(path, &SolisConfig::default()) {
        Err(e) => {
            let msg = e.to_string().replace(&path.display().to_string(), "FILE");
            err.push_str(&format!("refused: {msg}\n"));
        }
        Ok(export) => {
            for item in export.records().unwrap() {
                let item = item.unwrap();
                for w in &item.warnings {
                    err.push_str(&format!("warning: {}\n", w.to_line()));
                }
                match item.outcome {
                    Ok(j) => {
                        out.push_str(&j.to_json_line());
                        out.push('\n');
                    }
                    Err(issues) => {
                        for i in issues {
                            err.push_str(&format!("rejected: {}\n", i.to_line()));
                        }
                    }
                }
            }
        }
    }
    (out, err)
}

fn check(name: &str) {
    let path = fixtures().join(format!("{name}.xml"));
    let (out, err) = run(&path);
    let jsonl = fixtures().join(format!("{name}.jsonl"));
    let errf = fixtures().join(format!("{name}.err"));
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&jsonl, &out).unwrap();
        std::fs::write(&errf, &err).unwrap();
    }
    let want_out = std::fs::read_to_string(&jsonl).unwrap_or_default();
    let want_err = std::fs::read_to_string(&errf).unwrap_or_default();
    assert_eq!(out, want_out, "stdout of {name}");
    assert_eq!(err, want_err, "stderr of {name}");
    // Every output line is a valid canonical record.
    for line in out.lines() {
        let j: passerelle_model::Jeune = serde_json::from_str(line).unwrap();
        assert_eq!(j.to_json_line(), line);
    }
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
