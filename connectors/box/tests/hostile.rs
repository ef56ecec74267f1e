//! Hostile partners of a box (issue 16), each a regression test: links planted in
//! `retour/`, a FIFO as checksum, names the hub cannot write back, formulas and line
//! breaks meant to reach the hub's own CSV files.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_box::Mapping;
use passerelle_box::folder::{BoxFolder, LocalFolder};
use passerelle_box::of::Signalement;
use passerelle_box::protocol::{BoxHub, FileOutcome};
use passerelle_box::sim::{self, DropOptions};
use passerelle_box::state::MemoryState;
use passerelle_model::{Jeune, ObligationFormation, ObligationFormationStatut};

const P: &str = "59350S00";

fn hub(root: &Path) -> BoxHub<MemoryState> {
    let folder: Arc<dyn BoxFolder> = Arc::new(LocalFolder::new(root));
    BoxHub::new(folder, P, MemoryState::default(), Mapping::default_brsa())
}

fn poll(hub: &mut BoxHub<MemoryState>) -> Vec<FileOutcome> {
    hub.poll(&mut |_, _| {}).unwrap()
}

fn list_bytes() -> Vec<u8> {
    sim::brsa_csv(&sim::population(1, 2), false).0
}

/// Hostile case 1: a link planted at `retour/ACK_….csv` made the hub overwrite a file
/// outside its folders; a `retour/` replaced by a link sent every write elsewhere.
#[test]
fn acks_are_never_written_through_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("box");
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    let folder = LocalFolder::new(&root);
    let name = "BRSA_LISTE_059_CD059_20261121230000.csv";
    sim::drop_file(&folder, P, name, &list_bytes(), DropOptions::default()).unwrap();
    let ack = root
        .join(P)
        .join("retour/ACK_BRSA_LISTE_059_CD059_20261121230000.csv");
    symlink(&outside, &ack).unwrap();
    symlink(
        &outside,
        root.join(P)
            .join("retour/.ACK_BRSA_LISTE_059_CD059_20261121230000.csv.tmp"),
    )
    .unwrap();
    let mut h = hub(&root);
    let o = poll(&mut h);
    assert!(
        matches!(&o[..], [FileOutcome::Read { rows: 2, .. }]),
        "{o:?}"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert!(
        !std::fs::symlink_metadata(&ack)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&ack)
            .unwrap()
            .contains("ligne;statut")
    );

    // `retour/` itself replaced by a link to elsewhere: the write fails, nothing lands
    // outside.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_dir_all(root.join(P).join("retour")).unwrap();
    symlink(&elsewhere, root.join(P).join("retour")).unwrap();
    let again = "BRSA_LISTE_059_CD059_20261122230000.csv";
    std::fs::write(root.join(P).join("depot").join(again), b"x").unwrap();
    std::fs::write(root.join(P).join("depot").join(format!("{again}.ok")), b"").unwrap();
    assert!(h.poll(&mut |_, _| {}).is_err());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Hostile case 5: a FIFO named `X.sha256` hung the night for ever. Now the file has
/// no readable checksum and is refused; the poll returns at once.
#[test]
fn a_fifo_checksum_refuses_its_file_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let folder = LocalFolder::new(dir.path());
    let name = "BRSA_LISTE_059_CD059_20261121230000.csv";
    sim::drop_file(&folder, P, name, &list_bytes(), DropOptions::default()).unwrap();
    let sum = dir
        .path()
        .join(P)
        .join("depot")
        .join(format!("{name}.sha256"));
    std::fs::remove_file(&sum).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&sum)
        .status()
        .unwrap();
    assert!(made.success());
    let t0 = Instant::now();
    let o = poll(&mut hub(dir.path()));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&o[..], [FileOutcome::Refused { reason, .. }] if reason.contains("no readable .sha256")),
        "{o:?}"
    );
}

/// Hostile case 5: one oddly named file (`"`, `[`, `*`, `\`, bytes that are not UTF-8)
/// stopped the night for every remaining flow. Now it is refused alone, left where it
/// is (no ACK can carry its name), and the other files are read.
#[test]
fn odd_names_are_refused_alone_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let folder = LocalFolder::new(dir.path());
    let good = "BRSA_LISTE_059_CD059_20261121230000.csv";
    sim::drop_file(&folder, P, good, &list_bytes(), DropOptions::default()).unwrap();
    let depot = dir.path().join(P).join("depot");
    for odd in ["A\"B.csv", "A[1].csv", "A*.csv", "A\\B.csv"] {
        std::fs::write(depot.join(odd), b"x").unwrap();
        std::fs::write(depot.join(format!("{odd}.ok")), b"").unwrap();
    }
    {
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"BRSA_\xe9.csv");
        std::fs::write(depot.join(raw), b"x").unwrap();
        let ok = std::ffi::OsStr::from_bytes(b"BRSA_\xe9.csv.ok");
        std::fs::write(depot.join(ok), b"").unwrap();
    }
    let o = poll(&mut hub(dir.path()));
    let read: Vec<_> = o
        .iter()
        .filter(|x| matches!(x, FileOutcome::Read { .. }))
        .collect();
    assert_eq!(read.len(), 1, "{o:?}");
    let refused = o
        .iter()
        .filter(
            |x| matches!(x, FileOutcome::Refused { reason, .. } if reason.starts_with("not read")),
        )
        .count();
    assert_eq!(refused, 5, "{o:?}");
    // The odd files are still there (nothing written in their name), the good one is gone.
    assert!(depot.join("A\"B.csv").is_file());
    assert!(!depot.join(good).exists());
}

/// Hostile cases 1 and 6: a quoted line break in a CSV header was copied into the
/// ACK; the `JEUNES_OF` file the hub writes neutralised no formula.
#[test]
fn the_hubs_csv_files_carry_no_formula_and_no_peer_header() {
    let dir = tempfile::tempdir().unwrap();
    let folder = LocalFolder::new(dir.path());
    let name = "BRSA_LISTE_059_CD059_20261121230000.csv";
    let hostile = b"N\xB0 CAF;\"Nom\r\n=cmd|'/c calc'!A0\"\r\n1;2\r\n";
    sim::drop_file(&folder, P, name, hostile, DropOptions::default()).unwrap();
    let o = poll(&mut hub(dir.path()));
    assert!(matches!(&o[..], [FileOutcome::Refused { .. }]), "{o:?}");
    let ack = std::fs::read_to_string(
        dir.path()
            .join(P)
            .join("retour/ACK_BRSA_LISTE_059_CD059_20261121230000.csv"),
    )
    .unwrap();
    assert!(!ack.contains("=cmd") && !ack.contains("calc"), "{ack}");
    assert!(ack.contains("column 2 of the header"), "{ack}");

    let mut j = Jeune::default();
    j.etat_civil.nom_usage = Some("=HYPERLINK(\"http://evil\",\"Dupont\")".into());
    j.etat_civil.prenoms = vec!["@SUM(1+1)".into()];
    j.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Signale),
        ..ObligationFormation::default()
    });
    let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
        .unwrap()
        .and_hms_opt(23, 0, 0)
        .unwrap();
    let h = hub(dir.path());
    let file = h
        .send_jeunes_of(
            "059",
            P,
            at,
            &[Signalement {
                reference: "T-1",
                structure: P,
                record: &j,
            }],
        )
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join(P).join("retour").join(file)).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.contains(";\"'=HYPERLINK(\"\"http://evil\"\",\"\"Dupont\"\")\";"),
        "{line}"
    );
    assert!(line.contains(";'@SUM(1+1);"), "{line}");
}
