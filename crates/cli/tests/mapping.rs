//! `passerelle mapping draft` and `check` on a real département list: a draft that
//! loads and binds the list, a report with counts and reasons, and no value printed.

use std::path::Path;
use std::process::Command;

fn real(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connectors/box/tests/real")
        .join(name)
}

fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn draft_then_check_a_real_list_without_printing_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let list = real("fichier_usager_600_lignes.csv");
    let draft = dir.path().join("cd026.toml");
    let (_, notes) = run(&[
        "mapping",
        "draft",
        "--file",
        list.to_str().unwrap(),
        "--out",
        draft.to_str().unwrap(),
    ]);
    assert!(!notes.contains("required"), "{notes}");
    let text = std::fs::read_to_string(&draft).unwrap();
    assert!(text.contains("\"CP Ville\" = { split"), "{text}");
    assert!(
        text.contains("\"ID Iodas\" = \"identifiants.solis\""),
        "{text}"
    );
    let (report, _) = run(&[
        "mapping",
        "check",
        "--file",
        list.to_str().unwrap(),
        "--mapping",
        draft.to_str().unwrap(),
    ]);
    assert!(
        report.contains("600 rows, 600 records, 0 rejected"),
        "{report}"
    );
    assert!(
        report.contains("N° CAF | identifiants.caf.numero_allocataire | 600 | 579 | 0"),
        "{report}"
    );
    assert!(report.contains("first records as the hub would send them"));
    // No cell of the list is printed, by the draft or by the check.
    let data = std::fs::read_to_string(&list).unwrap();
    for cell in data
        .lines()
        .skip(1)
        .flat_map(|l| l.split(';'))
        .filter(|c| c.len() > 3)
    {
        assert!(!report.contains(cell), "the report prints a value");
        assert!(!text.contains(cell), "the draft prints a value");
        assert!(!notes.contains(cell));
    }
}

#[test]
fn draft_reads_a_workbook_sheet() {
    let list = real("fichier_usager_test.xlsx");
    let (text, _) = run(&[
        "mapping",
        "draft",
        "--file",
        list.to_str().unwrap(),
        "--sheet",
        "ENTRETIENS PHYSIQUES",
    ]);
    assert!(text.contains("sheet = \"ENTRETIENS PHYSIQUES\""));
    assert!(text.contains("\"NIR\" = \"identifiants.nir\""), "{text}");
}
