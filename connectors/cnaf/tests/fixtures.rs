//! Fixture tests: each `fixtures/NAME.xml` is read as `passerelle import` reads it,
//! and its JSON Lines and issue lines are compared with `NAME.jsonl` and `NAME.err`
//! (checked in). `UPDATE_FIXTURES=1` rewrites the expected files (review the diff).

use std::path::{Path, PathBuf};

use passerelle_cnaf::Flux;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads a file into (stdout lines, stderr lines) as the import command would.
fn run(path: &Path) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    match Flux::open(path) {
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
