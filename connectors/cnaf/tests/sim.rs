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

/// The simulator's VRSB0801 files pass the schema partners validate against, checked
/// by a real XML schema validator (`xmllint` of libxml2-utils, which `scripts/test`
/// installs).
#[test]
fn vrsb0801_output_is_valid_against_the_schema() {
    let xsd =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/vrsb0801.xsd");
    let dir = tempfile::tempdir().unwrap();
    for (msa, daily, seed) in [
        (false, false, 1),
        (false, true, 2),
        (true, false, 3),
        (true, true, 4),
    ] {
        let mut o = SimOptions::new(400, seed);
        o.msa = msa;
        o.daily = daily;
        o.anomalies = 3;
        let s = write_flux(dir.path(), &o).unwrap();
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&s.path)
            .output()
            .expect(
                "xmllint (libxml2-utils) must be installed: run the tests through scripts/test",
            );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", s.path.display());
        assert!(stderr.contains("validates"), "{stderr}");
        // And the reader takes it: the anomalies sent apart are not a cut.
        let flux = Flux::open(&s.path).unwrap();
        assert_eq!(flux.header.nb_anomalies, 3);
        assert_eq!(flux.header.layout, passerelle_cnaf::Layout::Vrsb0801);
        let items: Vec<_> = flux.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(items.len() as u64, s.records);
        assert!(items.iter().all(|i| i.outcome.is_ok()));
        let name = s.path.file_name().unwrap().to_str().unwrap().to_owned();
        let prefix = match (msa, daily) {
            (false, false) => "RSABEM_",
            (false, true) => "RSABEI_",
            (true, false) => "MSABEM_",
            (true, true) => "MSABEI_",
        };
        assert!(name.starts_with(prefix), "{name}");
        assert!(
            passerelle_cnaf::CnafConfig::new(dir.path())
                .not_read()
                .unwrap()
                .is_empty()
        );
        let first = items[0].outcome.as_ref().unwrap();
        let caf = first.identifiants.caf.as_ref().unwrap();
        assert_eq!(
            caf.numero_allocataire.as_str().len(),
            if msa { 15 } else { 7 }
        );
    }
}

/// VRSD0301 output is read as such and gives the same records count.
#[test]
fn vrsd0301_output_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = SimOptions::new(500, 9);
    o.layout = passerelle_cnaf::Layout::Vrsd0301;
    o.invalid_share = 0.05;
    let s = write_flux(dir.path(), &o).unwrap();
    let flux = Flux::open(&s.path).unwrap();
    assert_eq!(flux.header.layout, passerelle_cnaf::Layout::Vrsd0301);
    let items: Vec<_> = flux.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(items.len() as u64, s.records);
    let rejected = items.iter().filter(|i| i.outcome.is_err()).count() as u64;
    assert_eq!(rejected, s.invalid);
    let ok: Vec<_> = items
        .iter()
        .filter_map(|i| i.outcome.as_ref().ok())
        .collect();
    assert!(ok.iter().any(|j| j.rsa.date_ouverture.is_some()));
    assert!(
        ok.iter()
            .any(|j| j.rsa.entrant_droits_devoirs == Some(true))
    );
    // Every état appears, nested as the schema says.
    let etats: std::collections::BTreeSet<_> = ok.iter().filter_map(|j| j.rsa.etat_droit).collect();
    assert_eq!(etats.len(), 7, "{etats:?}");
}
