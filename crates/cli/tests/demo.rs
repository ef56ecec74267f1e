//! `passerelle demo --once` as a person runs it: one process, simulated peers, a night
//! that moves records, receipts, and an intact journal.

use std::process::Command;

#[test]
fn a_demo_night_moves_records_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
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
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
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
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (read, sent, applied) = (n[0], n[2], n[4]);
    assert_eq!(read, 200);
    assert!(sent > 0, "{line}");
    assert_eq!(sent, applied, "{line}");
    assert!(stdout.contains("chain intact"), "{stdout}");
    for file in ["journal.sqlite", "state.sqlite", "queue.sqlite", "keyring"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }

    // A second night on the same data folder finds nothing new.
    let again = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args([
            "demo",
            "--once",
            "--jeunes",
            "200",
            "--seed",
            "7",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("brsa-orientation"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!((n[2], n[3]), (0, sent), "second night: {line}");
}
