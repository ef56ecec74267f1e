//! `passerelle import` run as a process: stdout JSON Lines, stderr lines, exit codes
//! 0/1/2 and the `--report` JSON, on the SOLIS and CNAF fixtures and simulations.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(connector: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connectors")
        .join(connector)
        .join("tests/fixtures")
        .join(name)
}

fn passerelle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn import(connector: &str, file: &Path, report: &Path) -> Output {
    passerelle(&[
        "import",
        "--connector",
        connector,
        "--file",
        file.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ])
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn all_accepted_exits_0_with_json_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let file = fixture("solis", "sample_brsa.xml");
    let out = import("solis", &file, &rep);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        std::fs::read_to_string(fixture("solis", "sample_brsa.jsonl")).unwrap()
    );
    let r = report(&rep);
    assert_eq!(r["status"], "accepted");
    assert_eq!((r["read"].as_u64(), r["ok"].as_u64()), (Some(2), Some(2)));
    assert_eq!(r["rejected"].as_array().unwrap().len(), 0);
    assert!(r.get("reason").is_none());

    let out = import("cnaf", &fixture("cnaf", "sample.xml"), &rep);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(fixture("cnaf", "sample.jsonl")).unwrap()
    );
}

#[test]
fn some_rejected_exits_1_with_lines_on_stderr_and_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let out = import("solis", &fixture("solis", "invalid_records.xml"), &rep);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("BAD0000001: identifiants.nir: key does not match the number"));
    // The summary the operator is left with, its counts those of the report.
    let counts = report(&rep);
    let (read, ok) = (
        counts["read"].as_u64().unwrap(),
        counts["ok"].as_u64().unwrap(),
    );
    assert!(read > ok, "{counts}");
    let summary = format!(
        "{read} records read, {ok} accepted, {} rejected,",
        read - ok
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("import: ") && last.contains(&summary),
        "{last}"
    );
    assert!(stderr.contains("/ExportSolis/Individu[2]/EtatCivil/DateNaissance"));
    for value in [
        "Secret",
        "204035935012300",
        "31/02/2004",
        "XXX",
        "peut-être",
    ] {
        assert!(!stderr.contains(value), "stderr leaks {value}");
    }
    let r = report(&rep);
    assert_eq!(r["status"], "accepted");
    assert_eq!((r["read"].as_u64(), r["ok"].as_u64()), (Some(7), Some(1)));
    assert_eq!(r["rejected"][0]["ref"], "BAD0000001");
    assert_eq!(r["rejected"][0]["field"], "identifiants.nir");

    // Warnings (dropped contact values) are reported but do not change the status.
    let out = import("solis", &fixture("solis", "mapping_rules.xml"), &rep);
    assert_eq!(out.status.code(), Some(0));
    let r = report(&rep);
    assert_eq!(r["warnings"].as_array().unwrap().len(), 4);
    assert!(!String::from_utf8(out.stderr).unwrap().contains("12 34"));

    let out = import("cnaf", &fixture("cnaf", "invalid_records.xml"), &rep);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("SECRET") && !stderr.contains("59012345678"));
}

#[test]
fn refused_file_exits_2_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    for (connector, name) in [
        ("solis", "truncated_count.xml"),
        ("solis", "truncated_cut.xml"),
        ("solis", "unknown_format.xml"),
        ("cnaf", "truncated_count.xml"),
        ("cnaf", "truncated_cut.xml"),
        ("cnaf", "../fixtures/sample.jsonl"),
    ] {
        let out = import(connector, &fixture(connector, name), &rep);
        assert_eq!(out.status.code(), Some(2), "{connector} {name}");
        assert!(out.stdout.is_empty(), "{connector} {name}");
        let r = report(&rep);
        assert_eq!(r["status"], "refused");
        assert!(r["reason"].as_str().unwrap().contains("refused"), "{r}");
        assert_eq!(r["ok"], 0);
    }
    let out = import("solis", &dir.path().join("missing.xml"), &rep);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn mapping_file_sets_solis_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    std::fs::write(&mapping, "[elements]\ncourriel = [\"Courriel\"]\n").unwrap();
    let file = fixture("solis", "mapping_rules.xml");
    let out = passerelle(&[
        "import",
        "--connector",
        "solis",
        "--file",
        file.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let first = String::from_utf8(out.stdout).unwrap();
    assert!(!first.lines().next().unwrap().contains("\"email\""));
    std::fs::write(&mapping, "[elements]\nnope = [\"X\"]\n").unwrap();
    let out = passerelle(&[
        "import",
        "--connector",
        "solis",
        "--file",
        file.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

#[test]
fn simulated_files_round_trip_through_import() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = passerelle(&[
        "simulate",
        "solis",
        "--jeunes",
        "300",
        "--seed",
        "9",
        "--dir",
        d,
        "--invalid-share",
        "0.1",
        "--date",
        "2026-11-21",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("SOLIS_EXPORT_BRSA_059_20261121.xml");
    let rep = dir.path().join("r.json");
    let out = import("solis", &file, &rep);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&rep);
    assert_eq!(r["read"], 300);
    let ok = r["ok"].as_u64().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count() as u64,
        ok
    );
    assert!((240..300).contains(&ok), "{ok}");

    let out = passerelle(&[
        "simulate",
        "cnaf",
        "--jeunes",
        "100",
        "--seed",
        "9",
        "--dir",
        d,
        "--date",
        "2026-10-31",
    ]);
    assert!(out.status.success());
    let out = import("cnaf", &dir.path().join("RSABEM_059_20261031.xml"), &rep);
    assert_eq!(out.status.code(), Some(0));
    assert!(report(&rep)["ok"].as_u64().unwrap() >= 100);

    let out = passerelle(&[
        "simulate",
        "cnaf",
        "--jeunes",
        "100",
        "--seed",
        "9",
        "--dir",
        d,
        "--date",
        "2026-10-30",
        "--truncate",
    ]);
    assert!(out.status.success());
    let out = import("cnaf", &dir.path().join("RSABEM_059_20261030.xml"), &rep);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    let out = passerelle(&["simulate", "solis", "--dir", d, "--answer-imports"]);
    assert!(out.status.success());
}
