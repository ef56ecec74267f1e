//! `passerelle demo --once` as a person runs it: one process, simulated peers, a night
//! that moves records, receipts, and an intact journal.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The figures of one line of the summary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    read: u64,
    unrouted: u64,
    sent: u64,
    unchanged: u64,
    applied: u64,
    awaiting: u64,
    rejected: u64,
    dead: u64,
}

/// Runs one demo night on `dir`; returns stdout and the table, per flow.
fn night(dir: &Path) -> (String, BTreeMap<String, Row>) {
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
    let mut table = BTreeMap::new();
    for line in stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Lines after the table (`unrouted: …`, `failed: …`) are not rows.
        if cols.len() != 12 || cols[0].ends_with(':') {
            continue;
        }
        let n: Vec<u64> = cols[1..].iter().map(|x| x.parse().unwrap()).collect();
        table.insert(
            cols[0].to_owned(),
            Row {
                read: n[0],
                unrouted: n[2],
                sent: n[3],
                unchanged: n[4],
                applied: n[5],
                awaiting: n[6],
                rejected: n[7],
                dead: n[8],
            },
        );
    }
    (stdout, table)
}

#[test]
fn demo_nights_move_every_flow_then_the_replies_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, table) = night(dir.path());
    for flow in [
        "brsa-orientation",
        "ase-majorite",
        "of-signalement",
        "of-suivi",
        "faj-demande",
        "faj-decision",
    ] {
        let r = table
            .get(flow)
            .unwrap_or_else(|| panic!("no {flow} line in\n{stdout}"));
        assert!(r.sent > 0, "{flow} moved nothing:\n{stdout}");
        assert_eq!(r.dead, 0, "{flow}:\n{stdout}");
        assert_eq!(
            r.sent,
            r.applied + r.rejected + r.awaiting,
            "{flow}: every transfer has its receipt\n{stdout}"
        );
    }
    let o = table["brsa-orientation"];
    assert!(o.read >= 200 && o.unrouted < o.read, "{stdout}");
    assert_eq!(o.sent, o.applied, "{stdout}");
    assert_eq!(
        table["of-signalement"].sent, table["of-signalement"].awaiting,
        "reports in the box wait for the CD's answer: {stdout}"
    );
    assert!(stdout.contains("chain intact"), "{stdout}");
    for file in ["journal.sqlite", "state.sqlite", "queue.sqlite", "keyring"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }

    // The sender sees its receipts; the bilan counts the same transfers, with no person.
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let receipts = run(&[
        "receipts",
        "--sender",
        "CD059",
        "--flow",
        "brsa-orientation",
        "--status",
        "applied",
        "--format",
        "json",
    ]);
    assert_eq!(receipts.lines().count() as u64, o.applied, "{receipts}");
    let bilan: serde_json::Value =
        serde_json::from_str(&run(&["bilan", "--format", "json"])).unwrap();
    let applied: u64 = bilan["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["flow"] == "brsa-orientation" && l["status"] == "applied")
        .map(|l| l["transfers"].as_u64().unwrap())
        .sum();
    assert_eq!(applied, o.applied, "{bilan}");

    // A second night on the same data folder: the replies move (the ML now has the
    // dossiers of the young people the CD oriented; the CD answered the reports in its
    // box); nothing else is sent again: the SOLIS and CNAF files are read again and
    // found unchanged, the box files and I-MILO dossiers already handled are not even
    // served again (same file, cursor).
    let (stdout, second) = night(dir.path());
    for (flow, r) in &second {
        if flow == "brsa-suivi" || flow == "of-suivi" {
            assert!(r.sent > 0, "second night, no {flow}: {stdout}");
            assert_eq!(r.sent, r.applied, "second night {flow}: {stdout}");
        } else {
            assert_eq!(r.sent, 0, "second night sent {flow} again: {stdout}");
        }
    }
    let (o2, a2) = (second["brsa-orientation"], second["ase-majorite"]);
    assert!(o2.unchanged > 0 && o2.unchanged <= o.sent, "{stdout}");
    assert_eq!(a2.unchanged, table["ase-majorite"].sent, "{stdout}");

    // A third night: nothing at all.
    let (stdout, third) = night(dir.path());
    for (flow, r) in &third {
        assert_eq!(r.sent, 0, "third night sent {flow}: {stdout}");
    }
}
