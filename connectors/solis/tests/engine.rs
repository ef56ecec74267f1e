//! The engine's view of SOLIS against the simulator: `SolisSink` writes imports, the
//! simulated SOLIS answers them (with faults on demand), `SolisAckSource` turns the
//! answers into receipts; `SolisExportSource` serves exports at least once by file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use passerelle_connector::{
    AckToken, ConnectorError, Delivery, ErrorKind, ReceiptSource, ReceiptStatus, Sink, Source,
    SourceItem,
};
use passerelle_model::{
    Accompagnement, Date, Departement, Dispositif, Jeune, ObligationFormation,
    ObligationFormationStatut, Situation, SituationCategorie, SolisId,
};
use passerelle_solis::acks::{ELEMENT_ABSENT, FILE_KO};
use passerelle_solis::sim::{
    AnswerOptions, SimOptions, answer_imports, answer_imports_with, id_solis, write_export,
};
use passerelle_solis::{
    ExportFlux, SolisAckSource, SolisExportSource, SolisPeerConfig, SolisSink, read_import_refs,
};

const NOM: &str = "Lefèvre-Témoin";
const PRENOM: &str = "Zoéline";

fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 22)
        .unwrap()
        .and_hms_opt(h, m, s)
        .unwrap()
}

/// A sink whose clock never moves: every batch falls in the same second.
fn frozen_sink(dir: &Path) -> SolisSink {
    SolisSink::with_clock(dir, dir, Arc::new(|| at(2, 10, 0)))
}

fn suivi(transfer: &str, id: Option<&str>, recipient: &str) -> Delivery {
    let mut j = Jeune::default();
    j.etat_civil.nom_naissance = Some(NOM.into());
    j.etat_civil.prenoms = vec![PRENOM.into()];
    j.identifiants.solis = id.map(|i| SolisId::parse(i).unwrap());
    j.accompagnement = Some(Accompagnement {
        dispositif: Some(Dispositif::Cej),
        date_debut: Some(Date::parse("02/03/2026").unwrap()),
        ..Accompagnement::default()
    });
    j.situations.push(Situation {
        categorie: SituationCategorie::Formation,
        categorie_source: None,
        etat: None,
        date_debut: Some(Date::parse("02/11/2026").unwrap()),
        date_fin: None,
        code_rome: None,
    });
    Delivery {
        transfer_id: transfer.into(),
        flow: "brsa-suivi".into(),
        sender: "59350S00".into(),
        recipient: recipient.into(),
        record: j,
    }
}

fn signalement(transfer: &str) -> Delivery {
    let mut j = Jeune::default();
    j.etat_civil.nom_naissance = Some(NOM.into());
    j.etat_civil.prenoms = vec![PRENOM.into()];
    j.etat_civil.date_naissance = Some(Date::parse("2009-01-31").unwrap());
    j.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Signale),
        ..ObligationFormation::default()
    });
    Delivery {
        transfer_id: transfer.into(),
        flow: "of-signalement".into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record: j,
    }
}

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

fn assert_no_personal(text: &str) {
    for p in [NOM, PRENOM, "Lefèvre", "2009"] {
        assert!(!text.contains(p), "personal value in {text:?}");
    }
}

#[tokio::test]
async fn sink_writes_one_file_per_flux_departement_and_emitter() {
    let dir = tempfile::tempdir().unwrap();
    let sink = frozen_sink(dir.path());
    let mut other_sender = suivi("t-other-ml", Some("IND0000004"), "CD059");
    other_sender.sender = "59512S00".into();
    let mut unknown_flow = suivi("t-flow", Some("IND0000005"), "CD059");
    unknown_flow.flow = "brsa-orientation".into();
    let batch = vec![
        suivi("t1", Some("IND0000001"), "CD059"),
        suivi("t-no-id", None, "CD059"),
        signalement("t-of"),
        suivi("t2", Some("IND0000002"), "CD59"),
        suivi("t62", Some("IND0000003"), "CD062"),
        other_sender,
        unknown_flow,
        suivi("t-ml", Some("IND0000006"), "59350S00"),
    ];
    let out = sink.deliver_batch(batch).await;
    assert_eq!(out.len(), 8);
    let status = |i: usize| out[i].as_ref().map(|r| r.status.clone());
    for i in [0, 2, 3, 4, 5] {
        assert_eq!(status(i).unwrap(), ReceiptStatus::Delivered, "delivery {i}");
    }
    match status(1).unwrap() {
        ReceiptStatus::Rejected { reasons } => {
            assert!(reasons[0].contains("identifiants.solis"), "{reasons:?}");
            assert_no_personal(&reasons[0]);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    for i in [6, 7] {
        let e = out[i].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_no_personal(&e.to_string());
    }
    assert_eq!(out[1].as_ref().unwrap().transfer_id, "t-no-id");

    // SUIVI/059 from two emitters (two files, the second bumped a second), OF/059,
    // SUIVI/062.
    let names = names_in(dir.path());
    assert_eq!(
        names,
        vec![
            "SOLIS_IMPORT_OF_059_20261122021000.xml",
            "SOLIS_IMPORT_SUIVI_059_20261122021000.xml",
            "SOLIS_IMPORT_SUIVI_059_20261122021001.xml",
            "SOLIS_IMPORT_SUIVI_062_20261122021000.xml",
        ]
    );
    let first = dir.path().join(&names[1]);
    assert_eq!(read_import_refs(&first).unwrap(), vec!["t1", "t2"]);
    let text = std::fs::read(&first).unwrap();
    let text = encoding_rs::WINDOWS_1252.decode(&text).0;
    assert!(text.contains("emetteur=\"59350S00\""));
    assert!(text.contains("nbElements=\"2\""));
    let second = std::fs::read(dir.path().join(&names[2])).unwrap();
    assert!(String::from_utf8_lossy(&second).contains("emetteur=\"59512S00\""));
    for n in &names {
        assert_no_personal(n);
    }

    // A batch nothing of which SOLIS can carry writes no file.
    let out = sink
        .deliver_batch(vec![suivi("t-none", None, "CD059")])
        .await;
    assert!(matches!(
        out[0].as_ref().unwrap().status,
        ReceiptStatus::Rejected { .. }
    ));
    assert_eq!(names_in(dir.path()).len(), 4);
}

#[tokio::test]
async fn batches_in_the_same_second_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let sink = frozen_sink(dir.path());
    for i in 0..3 {
        let r = sink
            .deliver(suivi(&format!("t{i}"), Some("IND0000001"), "CD059"))
            .await
            .unwrap();
        assert_eq!(r.status, ReceiptStatus::Delivered);
    }
    // Another sink on the same folder in the same process shares the stamps.
    let twin = frozen_sink(dir.path());
    twin.deliver(suivi("t3", Some("IND0000001"), "CD059"))
        .await
        .unwrap();
    assert_eq!(
        names_in(dir.path()),
        vec![
            "SOLIS_IMPORT_SUIVI_059_20261122021000.xml",
            "SOLIS_IMPORT_SUIVI_059_20261122021001.xml",
            "SOLIS_IMPORT_SUIVI_059_20261122021002.xml",
            "SOLIS_IMPORT_SUIVI_059_20261122021003.xml",
        ]
    );
    let refs = read_import_refs(&dir.path().join("SOLIS_IMPORT_SUIVI_059_20261122021003.xml"));
    assert_eq!(refs.unwrap(), vec!["t3"]);
}

#[tokio::test]
async fn a_restarted_sink_finds_taken_names_on_disk() {
    // What a previous run left: an import answered and set aside, and its ACK.
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("traites");
    std::fs::create_dir(&done).unwrap();
    std::fs::write(done.join("SOLIS_IMPORT_OF_059_20261122021000.xml"), "").unwrap();
    std::fs::write(
        done.join("SOLIS_ACK_SOLIS_IMPORT_OF_059_20261122021001.xml"),
        "",
    )
    .unwrap();
    frozen_sink(dir.path())
        .deliver(signalement("s1"))
        .await
        .unwrap();
    assert_eq!(
        names_in(dir.path()),
        vec!["SOLIS_IMPORT_OF_059_20261122021002.xml"]
    );
}

/// Writes a BRSA export of `n` records into `dir` (SOLIS knows their idSolis).
fn export(dir: &Path, n: u64) {
    write_export(dir, &SimOptions::new(n, 7)).unwrap();
}

/// Settles every waiting ACK: receipts by transfer id (each must come once), then acks.
async fn settle(acks: &mut SolisAckSource) -> HashMap<String, ReceiptStatus> {
    let mut seen = HashMap::new();
    for group in acks.next_receipts().await.unwrap() {
        for r in group.receipts {
            assert!(
                seen.insert(r.transfer_id.clone(), r.status).is_none(),
                "transfer {} got two receipts",
                r.transfer_id
            );
        }
        acks.ack(&group.ack).await.unwrap();
    }
    seen
}

#[tokio::test]
async fn round_trip_gives_each_transfer_exactly_one_receipt() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), 50);
    let sink = frozen_sink(dir.path());
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let mut sent = Vec::new();
    for b in 0..4 {
        let batch: Vec<Delivery> = (0..25u64)
            .map(|i| {
                let id = if i == 0 {
                    "IND9999999".to_owned() // unknown to SOLIS
                } else {
                    id_solis(ExportFlux::Brsa, i + b)
                };
                suivi(&format!("b{b}-{i}"), Some(&id), "CD059")
            })
            .collect();
        sent.extend(batch.iter().map(|d| d.transfer_id.clone()));
        for r in sink.deliver_batch(batch).await {
            assert_eq!(r.unwrap().status, ReceiptStatus::Delivered);
        }
    }
    let answered = answer_imports_with(
        dir.path(),
        &AnswerOptions {
            seed: 3,
            ko_share: 0.2,
            ..AnswerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(answered.acks.len(), 4);
    assert!(answered.injected_ko > 0);

    // Unacknowledged answers are served again, identically.
    let first = acks.next_receipts().await.unwrap();
    let again = acks.next_receipts().await.unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(
        first.iter().map(|g| g.receipts.clone()).collect::<Vec<_>>(),
        again.iter().map(|g| g.receipts.clone()).collect::<Vec<_>>()
    );

    let seen = settle(&mut acks).await;
    assert_eq!(seen.len(), sent.len());
    let mut business_ko = 0;
    for t in &sent {
        match &seen[t] {
            ReceiptStatus::Applied { peer_ref } => assert!(peer_ref.is_none()),
            ReceiptStatus::Rejected { reasons } if t.ends_with("-0") => {
                // SOLIS's message is free text: its digest and length, never itself.
                assert_eq!(
                    reasons,
                    &vec![format!(
                        "ID_INCONNU: {}",
                        passerelle_connector::redact::free_text("idSolis inconnu")
                    )]
                );
            }
            ReceiptStatus::Rejected { reasons } => {
                assert!(reasons[0].starts_with("REFUS_METIER: "), "{reasons:?}");
                business_ko += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(business_ko, answered.injected_ko);

    // Settled: the ACKs and their imports are set aside, nothing is served again,
    // and SOLIS does not answer twice.
    assert!(acks.next_receipts().await.unwrap().is_empty());
    assert_eq!(
        names_in(dir.path()),
        vec!["SOLIS_EXPORT_BRSA_059_20261121.xml"]
    );
    assert_eq!(names_in(&dir.path().join("traites")).len(), 8);
    assert!(answer_imports(dir.path()).unwrap().is_empty());
    // Acknowledging again is harmless.
    acks.ack(&first[0].ack).await.unwrap();
    let bad = acks
        .ack(&AckToken("../etc/passwd".into()))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn refused_import_rejects_every_element_and_lost_one_gets_no_receipt() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), 10);
    let sink = frozen_sink(dir.path());
    let batch: Vec<Delivery> = (0..5u64)
        .map(|i| {
            suivi(
                &format!("r{i}"),
                Some(&id_solis(ExportFlux::Brsa, i)),
                "CD059",
            )
        })
        .collect();
    sink.deliver_batch(batch).await;
    let answered = answer_imports_with(
        dir.path(),
        &AnswerOptions {
            refuse_share: 1.0,
            ..AnswerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(answered.refused.len(), 1);
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let seen = settle(&mut acks).await;
    assert_eq!(seen.len(), 5);
    for s in seen.values() {
        assert_eq!(
            s,
            &ReceiptStatus::Rejected {
                reasons: vec![FILE_KO.to_owned()]
            }
        );
    }

    // SOLIS never answers this one: no receipt, nothing blocks.
    sink.deliver(suivi("lost", Some("IND0000001"), "CD059"))
        .await
        .unwrap();
    let answered = answer_imports_with(
        dir.path(),
        &AnswerOptions {
            missing_share: 1.0,
            ..AnswerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(answered.missing.len(), 1);
    assert!(answered.acks.is_empty());
    assert!(acks.next_receipts().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_ack_blocks_nothing_and_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), 10);
    let sink = frozen_sink(dir.path());
    sink.deliver(suivi("g1", Some("IND0000001"), "CD059"))
        .await
        .unwrap();
    let garbled = answer_imports_with(
        dir.path(),
        &AnswerOptions {
            garbled_share: 1.0,
            ..AnswerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(garbled.garbled.len(), 1);
    sink.deliver(suivi("g2", Some("IND0000002"), "CD059"))
        .await
        .unwrap();
    assert_eq!(answer_imports(dir.path()).unwrap().len(), 1);

    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let groups = acks.next_receipts().await.unwrap();
    assert_eq!(groups.len(), 2);
    let (bad, good): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.receipts.is_empty());
    assert_eq!(bad.len(), 1);
    assert_eq!(good[0].receipts.len(), 1);
    assert_eq!(good[0].receipts[0].transfer_id, "g2");
    assert_eq!(acks.malformed(), 1);
    acks.ack(&bad[0].ack).await.unwrap();
    acks.ack(&good[0].ack).await.unwrap();
    assert_eq!(
        names_in(&dir.path().join("refuses")),
        vec![bad[0].ack.0.clone()]
    );
    assert!(acks.next_receipts().await.unwrap().is_empty());
}

#[tokio::test]
async fn ack_forgetting_an_element_rejects_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = frozen_sink(dir.path());
    sink.deliver_batch(vec![
        suivi("a", Some("IND0000001"), "CD059"),
        suivi("b", Some("IND0000002"), "CD059"),
    ])
    .await;
    let import = "SOLIS_IMPORT_SUIVI_059_20261122021000.xml";
    std::fs::write(
        dir.path().join(format!("SOLIS_ACK_{import}")),
        format!(
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<AckSolis fichier=\"{import}\" statut=\"OK\">\n  <Element referenceExterne=\"a\" statut=\"OK\" code=\"\" message=\"\"/>\n  <Element referenceExterne=\"zz\" statut=\"OK\" code=\"\" message=\"\"/>\n</AckSolis>\n"
        ),
    )
    .unwrap();
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let seen = settle(&mut acks).await;
    assert_eq!(
        seen.len(),
        2,
        "the stranger zz is not a transfer of this import"
    );
    assert_eq!(seen["a"], ReceiptStatus::Applied { peer_ref: None });
    assert_eq!(
        seen["b"],
        ReceiptStatus::Rejected {
            reasons: vec![ELEMENT_ABSENT.to_owned()]
        }
    );
}

/// Drains a source: items and errors, acknowledging nothing.
async fn drain(source: &mut SolisExportSource) -> (Vec<SourceItem>, Vec<ConnectorError>) {
    let d = passerelle_connector::conformance::drain(source).await;
    assert!(d.batches.iter().all(|&n| n <= 500), "{:?}", d.batches);
    (d.items, d.errors)
}

fn peer(dir: &Path, flux: &[&str]) -> SolisPeerConfig {
    SolisPeerConfig {
        export_dir: Some(dir.to_owned()),
        export_flux: flux.iter().map(|f| (*f).to_owned()).collect(),
        ..SolisPeerConfig::default()
    }
}

#[tokio::test]
async fn export_source_serves_files_at_least_once_and_refuses_truncated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut brsa = SimOptions::new(1_200, 1);
    brsa.invalid_share = 0.05;
    let brsa = write_export(dir.path(), &brsa).unwrap();
    let mut ase = SimOptions::new(300, 2);
    ase.flux = ExportFlux::Ase;
    write_export(dir.path(), &ase).unwrap();
    let mut cut = SimOptions::new(100, 3);
    cut.date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    cut.truncate = true;
    let cut = write_export(dir.path(), &cut).unwrap();
    let cut_name = cut.path.file_name().unwrap().to_string_lossy().into_owned();

    let config = peer(dir.path(), &[]);
    let mut source = config.build_export_source().unwrap();
    let (items, errors) = drain(&mut source).await;
    assert_eq!(items.len(), 1_500);
    let rejected = items.iter().filter(|i| i.outcome.is_err()).count() as u64;
    assert_eq!(rejected, brsa.invalid);
    // The truncated file is reported once, with a kind the caller can count, and set
    // aside; its error names the file and the rule, not a person.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(errors[0], ConnectorError::FileRefused { .. }));
    assert_eq!(errors[0].kind(), ErrorKind::InvalidInput);
    assert!(errors[0].to_string().contains(&cut_name));
    assert!(
        errors[0].to_string().contains("ends early"),
        "{}",
        errors[0]
    );
    assert_eq!(names_in(&dir.path().join("refuses")), vec![cut_name]);
    assert_eq!(source.with_feed(|f| f.refused_files()), 1);

    // A crash before the acks: a new source serves both files again from the start.
    drop(source);
    let mut source = config.build_export_source().unwrap();
    let (again, errors) = drain(&mut source).await;
    assert!(errors.is_empty());
    assert_eq!(again.len(), 1_500);
    let tokens: Vec<AckToken> = again.iter().map(|i| i.ack.clone()).collect();
    // Out of order: a file moves only once every item of it is acknowledged. Files
    // are served by name, so the 300 ASE items come first.
    let (a, b) = tokens.split_at(700);
    source.ack(b).await.unwrap();
    assert!(!dir.path().join("traites").exists(), "no file is whole yet");
    source.ack(&a[..300]).await.unwrap();
    assert_eq!(
        names_in(&dir.path().join("traites")),
        vec!["SOLIS_EXPORT_ASE_059_20261121.xml"]
    );
    source.ack(&a[300..]).await.unwrap();
    assert_eq!(names_in(&dir.path().join("traites")).len(), 2);
    assert_eq!(source.with_feed(|f| f.finished_files()), 2);
    assert!(names_in(dir.path()).is_empty());

    let mut rerun = config.build_export_source().unwrap();
    let (none, errors) = drain(&mut rerun).await;
    assert!(none.is_empty() && errors.is_empty());
}

#[tokio::test]
async fn export_source_filters_by_flux() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &SimOptions::new(40, 1)).unwrap();
    let mut ase = SimOptions::new(30, 2);
    ase.flux = ExportFlux::Ase;
    write_export(dir.path(), &ase).unwrap();
    let mut source = peer(dir.path(), &["ASE"]).build_export_source().unwrap();
    let (items, errors) = drain(&mut source).await;
    assert!(errors.is_empty());
    assert_eq!(items.len(), 30);
    assert!(items.iter().all(|i| {
        i.outcome.as_ref().is_ok_and(|j| {
            j.identifiants
                .solis
                .as_ref()
                .unwrap()
                .as_str()
                .starts_with("ASE")
        })
    }));
    // Tokens name the file and the rank, nothing personal.
    assert_eq!(
        items[0].ack.0,
        "SOLIS_EXPORT_ASE_059_20261121.xml#0".to_owned()
    );
}

#[test]
fn peer_config_builds_check_folders() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let c = SolisPeerConfig {
        import_dir: Some(missing.clone()),
        ..SolisPeerConfig::default()
    };
    c.validate().unwrap();
    assert!(c.build_sink().is_err());
    assert!(c.build_ack_source().is_err());
    assert!(matches!(
        c.build_export_source().unwrap_err(),
        ConnectorError::Config(_)
    ));
    std::fs::create_dir(&missing).unwrap();
    let sink = c.build_sink().unwrap();
    assert_eq!(sink.import_dir(), missing.as_path());
    c.build_ack_source().unwrap();
    let _ = Departement::parse("059").unwrap();
}

#[tokio::test]
async fn redelivery_while_solis_has_not_answered_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), 10);
    let sink = frozen_sink(dir.path());
    let batch = || {
        vec![
            suivi("d1", Some("IND0000001"), "CD059"),
            suivi("d2", Some("IND0000002"), "CD059"),
            suivi("d-bad", None, "CD059"),
        ]
    };
    sink.deliver_batch(batch()).await;
    // The engine crashed before acking: a new sink gets the same batch again, plus
    // one transfer twice in the batch.
    let restarted = frozen_sink(dir.path());
    let mut again = batch();
    again.push(suivi("d3", Some("IND0000003"), "CD059"));
    again.push(suivi("d3", Some("IND0000003"), "CD059"));
    again.push(suivi("d-bad", None, "CD059"));
    let out = restarted.deliver_batch(again).await;
    let statuses: Vec<ReceiptStatus> = out.into_iter().map(|r| r.unwrap().status).collect();
    assert_eq!(statuses[0], ReceiptStatus::Delivered);
    assert_eq!(statuses[1], ReceiptStatus::Delivered);
    assert!(matches!(statuses[2], ReceiptStatus::Rejected { .. }));
    assert_eq!(statuses[3], ReceiptStatus::Delivered);
    assert_eq!(statuses[4], ReceiptStatus::Delivered);
    assert_eq!(statuses[2], statuses[5]);
    let imports: Vec<String> = names_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("SOLIS_IMPORT_"))
        .collect();
    assert_eq!(imports.len(), 2);
    assert_eq!(
        read_import_refs(&dir.path().join(&imports[1])).unwrap(),
        vec!["d3"]
    );
    // Each transfer is answered once.
    answer_imports(dir.path()).unwrap();
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let seen = settle(&mut acks).await;
    assert_eq!(seen.len(), 3);
    assert!(
        seen.values()
            .all(|s| *s == ReceiptStatus::Applied { peer_ref: None })
    );
}

#[tokio::test]
async fn mixed_faults_from_a_seed_settle_every_answered_transfer_once() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), 200);
    let sink = frozen_sink(dir.path());
    // 30 imports of 10 transfers; the file holding a transfer is found from its refs.
    let mut file_of = HashMap::new();
    for f in 0..30u64 {
        let batch: Vec<Delivery> = (0..10u64)
            .map(|i| {
                suivi(
                    &format!("m{f}-{i}"),
                    Some(&id_solis(ExportFlux::Brsa, (f * 10 + i) % 200)),
                    "CD059",
                )
            })
            .collect();
        sink.deliver_batch(batch).await;
    }
    for name in names_in(dir.path()) {
        if name.starts_with("SOLIS_IMPORT_") {
            for t in read_import_refs(&dir.path().join(&name)).unwrap() {
                file_of.insert(t, name.clone());
            }
        }
    }
    assert_eq!(file_of.len(), 300);
    let opts = AnswerOptions {
        seed: 42,
        ko_share: 0.1,
        refuse_share: 0.15,
        missing_share: 0.15,
        garbled_share: 0.15,
        ..AnswerOptions::default()
    };
    let answered = answer_imports_with(dir.path(), &opts).unwrap();
    // The seed decides the same faults again, and an answered import is not redone.
    let again = answer_imports_with(dir.path(), &opts).unwrap();
    assert!(again.acks.is_empty());
    assert_eq!(again.missing, answered.missing);
    for list in [&answered.refused, &answered.missing, &answered.garbled] {
        assert!(!list.is_empty(), "seed 42 should inject every fault");
    }

    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let seen = settle(&mut acks).await;
    let mut ko = 0;
    for (t, file) in &file_of {
        let got = seen.get(t);
        if answered.missing.contains(file) || answered.garbled.contains(file) {
            assert!(got.is_none(), "{t} in an unanswered import got a receipt");
        } else if answered.refused.contains(file) {
            assert_eq!(
                got,
                Some(&ReceiptStatus::Rejected {
                    reasons: vec![FILE_KO.to_owned()]
                })
            );
        } else {
            match got {
                Some(ReceiptStatus::Applied { .. }) => {}
                Some(ReceiptStatus::Rejected { reasons }) => {
                    assert!(reasons[0].starts_with("REFUS_METIER"), "{reasons:?}");
                    ko += 1;
                }
                other => panic!("{t}: {other:?}"),
            }
        }
    }
    assert_eq!(ko, answered.injected_ko);
    assert_eq!(
        names_in(&dir.path().join("refuses")).len(),
        answered.garbled.len()
    );
    // Only the unanswered imports (and the export) stay in the folder.
    assert_eq!(
        names_in(dir.path()).len(),
        1 + answered.missing.len() + answered.garbled.len()
    );
}
