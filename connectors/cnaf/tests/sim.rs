//! The CNAF simulator: deterministic from its seed, read back whole by the reader,
//! with the chosen share of invalid records rejected and truncation refused.

use passerelle_cnaf::Flux;
use passerelle_cnaf::sim::{SimOptions, write_flux};

#[test]
fn same_seed_same_bytes_and_different_seed_differs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let sa = write_flux(a.path(), &SimOptions::new(300, 7)).unwrap();
    let sb = write_flux(b.path(), &SimOptions::new(300, 7)).unwrap();
    let sc = write_flux(c.path(), &SimOptions::new(300, 8)).unwrap();
    let (ba, bb, bc) = (
        std::fs::read(&sa.path).unwrap(),
        std::fs::read(&sb.path).unwrap(),
        std::fs::read(&sc.path).unwrap(),
    );
    assert_eq!(ba, bb);
    assert_ne!(ba, bc);
    assert_eq!(
        sa.path.file_name().unwrap().to_str().unwrap(),
        "RSABEM_059_20261031.xml"
    );
    // windows-1252 on disk: é is one byte 0xE9, never the UTF-8 pair.
    assert!(!ba.windows(2).any(|w| w == [0xC3, 0xA9]));
}

#[test]
fn reader_reads_every_selected_person_and_rejects_the_invalid_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(2_000, 42);
    opts.invalid_share = 0.05;
    let summary = write_flux(dir.path(), &opts).unwrap();
    let flux = Flux::open(&summary.path).unwrap();
    assert_eq!(flux.header.nb_foyers, 2_000);
    let (mut ok, mut rejected) = (0u64, 0u64);
    for item in flux.records().unwrap() {
        match item.unwrap().outcome {
            Ok(_) => ok += 1,
            Err(_) => rejected += 1,
        }
    }
    assert_eq!(ok + rejected, summary.records);
    assert_eq!(rejected, summary.invalid);
    // About 5 % of 2,000 households.
    assert!((60..=140).contains(&rejected), "{rejected}");
}

#[test]
fn truncated_simulation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(50, 1);
    opts.truncate = true;
    let summary = write_flux(dir.path(), &opts).unwrap();
    let err = Flux::open(&summary.path).unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}
