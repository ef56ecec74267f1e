//! `CnafFluxSource` against the simulator: every record of every whole file once per
//! run, files set aside only when acknowledged whole, refused files reported once and
//! moved to `refuses/` without blocking the others.

use std::path::Path;

use chrono::NaiveDate;
use passerelle_cnaf::CnafConfig;
use passerelle_cnaf::sim::{SimOptions, write_flux};
use passerelle_connector::{AckToken, ConnectorError, ErrorKind, Source, SourceItem};

fn names_in(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

async fn drain<S: Source>(source: &mut S) -> (Vec<SourceItem>, Vec<ConnectorError>) {
    let d = passerelle_connector::conformance::drain(source).await;
    assert!(d.batches.iter().all(|&n| n <= 200), "{:?}", d.batches);
    (d.items, d.errors)
}

fn on(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, day).unwrap()
}

#[tokio::test]
async fn flux_source_serves_whole_files_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = SimOptions::new(300, 1);
    a.date = on(30);
    a.invalid_share = 0.05;
    let a = write_flux(dir.path(), &a).unwrap();
    let mut b = SimOptions::new(120, 2);
    b.date = on(31);
    let b = write_flux(dir.path(), &b).unwrap();
    let mut cut = SimOptions::new(80, 3);
    cut.date = on(15);
    cut.truncate = true;
    let cut = write_flux(dir.path(), &cut).unwrap();
    let cut_name = cut.path.file_name().unwrap().to_string_lossy().into_owned();
    // Not a CNAF file name: left alone.
    std::fs::write(dir.path().join("notes.xml"), "<x/>").unwrap();
    // A file of the right name but not VRSB0801: refused too.
    std::fs::write(dir.path().join("RSABEM_059_20261001.xml"), "<Autre/>").unwrap();

    let config = CnafConfig {
        batch_size: 200,
        ..CnafConfig::new(dir.path())
    };
    let mut source = config.build().unwrap();
    let (items, errors) = drain(&mut source).await;
    let expected = a.records + b.records;
    assert_eq!(items.len() as u64, expected);
    let rejected = items.iter().filter(|i| i.outcome.is_err()).count() as u64;
    assert_eq!(rejected, a.invalid + b.invalid);
    assert!(a.invalid > 0);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(matches!(e, ConnectorError::FileRefused { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(
        names_in(&dir.path().join("refuses")),
        vec!["RSABEM_059_20261001.xml".to_owned(), cut_name]
    );
    assert_eq!(source.with_feed(|f| f.refused_files()), 2);
    // Tokens name a file and a rank: nothing personal, nothing of the household.
    assert!(items[0].ack.0.starts_with("RSABEM_059_20261030.xml#"));

    // Crash before the acks: everything is served again from the start.
    drop(source);
    let mut source = config.build().unwrap();
    let (again, errors) = drain(&mut source).await;
    assert!(errors.is_empty());
    assert_eq!(again.len() as u64, expected);
    let tokens: Vec<AckToken> = again.iter().map(|i| i.ack.clone()).collect();
    let (first, rest) = tokens.split_at(1);
    source.ack(rest).await.unwrap();
    assert_eq!(
        source.with_feed(|f| f.finished_files()),
        1,
        "the second file only"
    );
    source.ack(first).await.unwrap();
    assert_eq!(names_in(&dir.path().join("traites")).len(), 2);
    assert_eq!(names_in(dir.path()), vec!["notes.xml"]);

    let mut rerun = config.build().unwrap();
    let (none, errors) = drain(&mut rerun).await;
    assert!(none.is_empty() && errors.is_empty());
}

#[tokio::test]
async fn a_file_arriving_later_is_served_on_a_later_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = CnafConfig::new(dir.path()).build().unwrap();
    assert!(source.next_batch().await.unwrap().is_empty());
    let written = write_flux(dir.path(), &SimOptions::new(10, 4)).unwrap();
    let batch = source.next_batch().await.unwrap();
    assert_eq!(batch.len() as u64, written.records);
    let tokens: Vec<AckToken> = batch.iter().map(|i| i.ack.clone()).collect();
    source.ack(&tokens).await.unwrap();
    assert!(source.next_batch().await.unwrap().is_empty());
    assert_eq!(names_in(&dir.path().join("traites")).len(), 1);
    // A token this source never gave is an error the caller sees.
    let e = source
        .ack(&[AckToken("nonsense".into())])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// Real names of every kind are read; what matches no pattern is listed as not read.
#[tokio::test]
async fn real_names_are_read_and_the_others_listed_as_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
    for (from, to) in [
        ("RSABEM-ouvert.xml", "RSABEM_052_20220305.xml"),
        ("RSABEI.xml", "RSABEI_052_20211224.xml"),
        ("MSABEI.xml", "MSABEI_092_20211231.xml"),
        ("RSABEM-ouvert.xml", "NRSACGIM_RSABEM_20220305_A0407584.RCV"),
    ] {
        std::fs::copy(real.join(from), dir.path().join(to)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    std::fs::write(dir.path().join("RSABEM-ouvert.xml"), "x").unwrap();
    std::fs::write(dir.path().join(".RSABEM_052_20220306.xml.part"), "x").unwrap();
    let config = CnafConfig::new(dir.path());
    assert_eq!(
        config.not_read().unwrap(),
        ["RSABEM-ouvert.xml", "notes.txt"]
    );
    let mut source = config.build().unwrap();
    let (items, errors) = drain(&mut source).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i.outcome.is_ok()));
}
