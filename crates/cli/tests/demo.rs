//! `passerelle demo --once` as a person runs it: one process, simulated peers, a night
//! that moves records, receipts, and an intact journal.

use std::path::Path;
use std::process::Command;

/// Runs one demo night on `dir`; returns stdout and the figures of the
/// brsa-orientation line (read, refused, sent, unchanged, applied, rejected, denied, review).
fn night(dir: &Path) -> (String, Vec<u64>) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args([
            "demo",
            "--once",
            "--jeunes",
            "200",
            "--seed",
            "7",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("brsa-orientation"))
        .unwrap_or_else(|| panic!("no brsa-orientation line in\n{stdout}"));
    let figures = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    (stdout, figures)
}

#[test]
fn a_demo_night_moves_records_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, n) = night(dir.path());
    let (read, sent, applied) = (n[0], n[2], n[4]);
    assert_eq!(read, 200);
    assert!(sent > 0, "{stdout}");
    assert_eq!(sent, applied, "{stdout}");
    assert!(stdout.contains("chain intact"), "{stdout}");
    for file in ["journal.sqlite", "state.sqlite", "queue.sqlite", "keyring"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }

    // A second night on the same data folder finds nothing new.
    let (stdout, again) = night(dir.path());
    assert_eq!((again[2], again[3]), (0, sent), "second night: {stdout}");
}
