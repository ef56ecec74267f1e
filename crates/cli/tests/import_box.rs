//! `passerelle import --connector box` and `passerelle simulate box` run as processes:
//! the shared sample, rejections with line numbers, mappings, XLSX, refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors/box/tests/fixtures")
}

fn data_file(case: &str) -> PathBuf {
    std::fs::read_dir(fixtures().join(case))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .unwrap()
}

fn passerelle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn import(file: &Path, mapping: Option<&Path>, report: &Path) -> Output {
    let mut args = vec![
        "import",
        "--connector",
        "box",
        "--file",
        file.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    if let Some(m) = mapping {
        args.extend(["--mapping", m.to_str().unwrap()]);
    }
    passerelle(&args)
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The records the fixture expects, in order.
fn expected_records(case: &str) -> Vec<Value> {
    std::fs::read_to_string(fixtures().join(case).join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| v.get("record").cloned())
        .collect()
}

fn stdout_records(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_shared_sample_is_accepted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let out = import(&data_file("sample"), None, &rep);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_records(&out), expected_records("sample"));
    let r = report(&rep);
    assert_eq!(
        (r["status"].as_str(), r["read"].as_u64(), r["ok"].as_u64()),
        (Some("accepted"), Some(2), Some(2))
    );
}

#[test]
fn rejected_rows_name_their_line_and_field_but_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let out = import(&data_file("default_variants"), None, &rep);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_records(&out), expected_records("default_variants"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("rejected: ligne-5 (line 5): ligne: line 5 has 7 columns, expected 19"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected: ligne-6 (line 6): identifiants.nir:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: ligne-3 (line 3): contact.email:"),
        "{stderr}"
    );
    // Rows are named by their line: a CAF number is personal data.
    assert!(
        !stderr.contains("5678901") && !stderr.contains("2345678"),
        "{stderr}"
    );
    for personal in [
        "Bernard",
        "Chloé",
        "204035935012300",
        "pas-un-email",
        "06.12.34.56",
        "Martin",
        "12345",
    ] {
        assert!(!stderr.contains(personal), "stderr holds a personal value");
    }
    let r = report(&rep);
    assert_eq!(r["read"], 9);
    assert_eq!(r["ok"], 5);
    assert_eq!(r["rejected"].as_array().unwrap().len(), 5);
    assert_eq!(r["warnings"].as_array().unwrap().len(), 3);
    assert_eq!(r["rejected"][0]["line"], 5);
}

#[test]
fn a_mapping_file_renames_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let mapping =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings/cd062_brsa.toml");
    let out = import(&data_file("cd062"), Some(&mapping), &rep);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_records(&out), expected_records("cd062"));
    // Without it, the default columns do not fit: the file is refused, naming a column
    // by its number (never by its header: a file without one would have data quoted).
    let out = import(&data_file("cd062"), None, &rep);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let r = report(&rep);
    assert_eq!(r["status"], "refused");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("column 1 of the header"),
        "{r}"
    );
    // A broken mapping is a usage error naming the mapping.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[columns]\n\"A\" = \"nope\"\n").unwrap();
    let out = import(&data_file("cd062"), Some(&bad), &rep);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown path nope"));
}

#[test]
fn xlsx_workbooks_are_read_with_excel_dates() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let people = passerelle_box::sim::population(3, 4);
    let (bytes, _) = passerelle_box::sim::brsa_xlsx(&people).unwrap();
    // The extension says nothing: content sniffing finds the workbook.
    let file = dir.path().join("BRSA_LISTE_080_CD080_20261121230000.dat");
    std::fs::write(&file, bytes).unwrap();
    let out = import(&file, None, &rep);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = stdout_records(&out);
    assert_eq!(records.len(), 4);
    let (d, m, y) = people[0].naissance;
    assert_eq!(
        records[0]["etat_civil"]["date_naissance"],
        format!("{y}-{m:02}-{d:02}")
    );
    assert_eq!(
        records[0]["rsa"]["date_ouverture"], "2025-09-01",
        "from a bare serial number"
    );
    assert_eq!(
        records[0]["identifiants"]["caf"]["numero_allocataire"],
        people[0].caf
    );
    assert_eq!(records[0]["sources"][0]["organisation"], "CD080");
}

#[test]
fn a_cut_file_is_refused_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let file = dir.path().join("liste.csv");
    std::fs::write(&file, "N° CAF;Nom\n1234567;Premier\n7654321;\"Coupé\n").unwrap();
    let out = import(&file, None, &rep);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(report(&rep)["status"], "refused");
    let file = dir.path().join("fake.xlsx");
    std::fs::write(&file, "N° CAF;Nom\n").unwrap();
    assert_eq!(import(&file, None, &rep).status.code(), Some(2));
}

#[test]
fn simulate_box_drops_files_and_checks_acks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = passerelle(&[
        "simulate",
        "box",
        "--dir",
        d,
        "--seed",
        "3",
        "--jeunes",
        "5",
        "--faults",
        "checksum,no-sentinel,duplicate,malformed,xlsx",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let depot = dir.path().join("59350S00/depot");
    let names: Vec<String> = std::fs::read_dir(&depot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".ok")).count(),
        5,
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".xlsx")).count(), 1);
    // The same seed drops the same bytes.
    let again = tempfile::tempdir().unwrap();
    passerelle(&[
        "simulate",
        "box",
        "--dir",
        again.path().to_str().unwrap(),
        "--seed",
        "3",
        "--jeunes",
        "5",
        "--faults",
        "checksum,no-sentinel,duplicate,malformed,xlsx",
    ]);
    for n in names.iter().filter(|n| n.ends_with(".csv")) {
        assert_eq!(
            std::fs::read(depot.join(n)).unwrap(),
            std::fs::read(again.path().join("59350S00/depot").join(n)).unwrap()
        );
    }
    // No hub has answered: --check lists every missing ACK and fails.
    let out = passerelle(&["simulate", "box", "--dir", d, "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("discrepancy")
            .count(),
        5
    );
    // The hub answers; now the check passes.
    let folder = std::sync::Arc::new(passerelle_box::folder::LocalFolder::new(dir.path()));
    let mut hub = passerelle_box::protocol::BoxHub::new(
        folder,
        "59350S00",
        passerelle_box::state::MemoryState::default(),
        passerelle_box::Mapping::default_brsa(),
    );
    hub.poll(&mut |_, _| {}).unwrap();
    let out = passerelle(&["simulate", "box", "--dir", d, "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
