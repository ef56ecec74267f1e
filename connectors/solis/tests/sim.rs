//! The SOLIS simulator: deterministic exports read back by the reader, and the loop
//! import file → simulated SOLIS → ACK file → receipts.

use chrono::NaiveDate;
use passerelle_connector::{Delivery, ReceiptStatus};
use passerelle_model::{
    Accompagnement, Date, Departement, Dispositif, Jeune, ObligationFormation,
    ObligationFormationStatut, Situation, SituationCategorie, SituationEtat, SolisId,
};
use passerelle_solis::sim::{SimOptions, answer_imports, write_export};
use passerelle_solis::{Export, ExportFlux, ImportFlux, SolisConfig, read_ack, write_import};

#[test]
fn same_seed_same_bytes_and_different_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = write_export(a.path(), &SimOptions::new(500, 3)).unwrap();
    let sb = write_export(b.path(), &SimOptions::new(500, 3)).unwrap();
    let sc = write_export(c.path(), &SimOptions::new(500, 4)).unwrap();
    let ba = std::fs::read(&sa.path).unwrap();
    assert_eq!(ba, std::fs::read(&sb.path).unwrap());
    assert_ne!(ba, std::fs::read(&sc.path).unwrap());
    assert_eq!(
        sa.path.file_name().unwrap().to_str().unwrap(),
        "SOLIS_EXPORT_BRSA_059_20261121.xml"
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(a.path()).unwrap().count(), 1);
}

#[test]
fn invalid_share_is_rejected_and_bad_phones_warned() {
    for flux in [ExportFlux::Brsa, ExportFlux::Ase] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = SimOptions::new(2_000, 11);
        opts.flux = flux;
        opts.invalid_share = 0.05;
        opts.bad_phone_share = 0.02;
        let summary = write_export(dir.path(), &opts).unwrap();
        let export = Export::open(&summary.path, &SolisConfig::default()).unwrap();
        let (mut ok, mut rejected, mut warned) = (0u64, 0u64, 0u64);
        let mut corsica = false;
        for item in export.records().unwrap() {
            let item = item.unwrap();
            warned += u64::from(!item.warnings.is_empty());
            match item.outcome {
                Ok(j) => {
                    ok += 1;
                    corsica |= j
                        .identifiants
                        .nir
                        .is_some_and(|n| n.as_str().contains("2A") || n.as_str().contains("2B"));
                }
                Err(_) => rejected += 1,
            }
        }
        assert_eq!(ok + rejected, 2_000);
        assert_eq!(rejected, summary.invalid, "{flux:?}");
        assert_eq!(warned, summary.bad_phones, "{flux:?}");
        assert!((60..=140).contains(&rejected), "{rejected}");
        assert!(corsica, "Corsican NIRs are simulated");
    }
}

#[test]
fn truncated_simulation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(30, 1);
    opts.truncate = true;
    let summary = write_export(dir.path(), &opts).unwrap();
    assert!(Export::open(&summary.path, &SolisConfig::default()).is_err());
}

fn suivi(id: &str) -> Jeune {
    let mut j = Jeune::default();
    j.identifiants.solis = Some(SolisId::parse(id).unwrap());
    j.accompagnement = Some(Accompagnement {
        dispositif: Some(Dispositif::Cej),
        date_debut: Some(Date::parse("2026-03-02").unwrap()),
        date_fin_prevue: Some(Date::parse("2027-03-01").unwrap()),
        ..Accompagnement::default()
    });
    j.situations.push(Situation {
        categorie: SituationCategorie::Formation,
        categorie_source: None,
        etat: Some(SituationEtat::EnCours),
        date_debut: Some(Date::parse("2026-11-02").unwrap()),
        date_fin: None,
        code_rome: None,
    });
    j
}

fn delivery(transfer_id: &str, flow: &str, record: Jeune) -> Delivery {
    Delivery {
        transfer_id: transfer_id.into(),
        flow: flow.into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record,
    }
}

#[test]
fn import_ack_loop_turns_elements_into_receipts() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &SimOptions::new(20, 5)).unwrap();
    let dept = Departement::parse("059").unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 11, 22)
        .unwrap()
        .and_hms_opt(2, 10, 0)
        .unwrap();
    let mut no_id = suivi("IND0000001");
    no_id.identifiants.solis = None;
    let deliveries = vec![
        delivery("t-known", "brsa-suivi", suivi("IND0000003")),
        delivery("t-unknown", "brsa-suivi", suivi("IND9999999")),
        delivery("t-noid", "brsa-suivi", no_id),
    ];
    let written = write_import(
        dir.path(),
        ImportFlux::Suivi,
        &dept,
        "59350S00",
        &deliveries,
        at,
    )
    .unwrap();
    assert_eq!(
        written.path.file_name().unwrap().to_str().unwrap(),
        "SOLIS_IMPORT_SUIVI_059_20261122021000.xml"
    );
    assert_eq!(written.written, ["t-known", "t-unknown"]);
    assert_eq!(written.skipped.len(), 1);
    let text = std::fs::read_to_string(&written.path).unwrap();
    assert!(text.contains("nbElements=\"2\""), "{text}");
    assert!(text.contains("referenceExterne=\"t-known\""));
    assert!(text.contains("dispositif=\"CEJ\" dateDebut=\"02/03/2026\""));

    // OF: a signalement with accents and an apostrophe, escaped and in windows-1252.
    let mut of = Jeune::default();
    of.etat_civil.nom_naissance = Some("N'Diaye & Lefèvre".into());
    of.etat_civil.prenoms = vec!["Zoé".into(), "Œnone".into()];
    of.etat_civil.date_naissance = Some(Date::parse("2009-01-31").unwrap());
    of.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Injoignable),
        date_signalement: Some(Date::parse("2026-11-20").unwrap()),
        ..ObligationFormation::default()
    });
    let mut bad_of = of.clone();
    bad_of.identifiants.solis = Some(SolisId::parse("IND7777777").unwrap());
    let at2 = at + chrono::Duration::seconds(1);
    let written_of = write_import(
        dir.path(),
        ImportFlux::Of,
        &dept,
        "59350S00",
        &[
            delivery("t-of", "of-signalement", of),
            delivery("t-of-bad", "of-signalement", bad_of),
        ],
        at2,
    )
    .unwrap();
    let raw = std::fs::read(&written_of.path).unwrap();
    assert!(
        raw.windows(3).any(|w| w == b"\x8Cno"),
        "Œ is one windows-1252 byte"
    );
    assert!(String::from_utf8_lossy(&raw).contains("N&apos;Diaye &amp; Lef"));

    let acks = answer_imports(dir.path()).unwrap();
    assert_eq!(acks.len(), 2);
    // Answering again writes nothing new.
    assert!(answer_imports(dir.path()).unwrap().is_empty());

    let ack = read_ack(&acks[0]).unwrap();
    assert!(ack.ok);
    assert_eq!(ack.fichier, "SOLIS_IMPORT_OF_059_20261122021001.xml");
    assert_eq!(ack.receipts.len(), 2);
    assert_eq!(ack.receipts[0].transfer_id, "t-of");
    assert_eq!(
        ack.receipts[0].status,
        ReceiptStatus::Applied { peer_ref: None }
    );
    assert!(
        matches!(&ack.receipts[1].status, ReceiptStatus::Rejected { reasons } if reasons[0].starts_with("ID_INCONNU"))
    );

    let ack = read_ack(&acks[1]).unwrap();
    assert_eq!(ack.receipts[0].transfer_id, "t-known");
    assert_eq!(
        ack.receipts[0].status,
        ReceiptStatus::Applied { peer_ref: None }
    );
    assert_eq!(ack.receipts[1].transfer_id, "t-unknown");
    assert!(
        matches!(&ack.receipts[1].status, ReceiptStatus::Rejected { reasons } if reasons[0].starts_with("ID_INCONNU"))
    );
}

#[test]
fn invalid_import_data_is_rejected_by_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &SimOptions::new(5, 5)).unwrap();
    let name = "SOLIS_IMPORT_SUIVI_059_20261122021000.xml";
    std::fs::write(
        dir.path().join(name),
        "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<ImportSolis departement=\"059\" flux=\"SUIVI\" nbElements=\"2\">\n<Suivi referenceExterne=\"a\" idSolis=\"IND0000001\"><Accompagnement dispositif=\"XYZ\"/></Suivi>\n<Suivi referenceExterne=\"b\" idSolis=\"IND0000002\"><Situation categorie=\"FORMATION\" dateDebut=\"31/02/2026\"/></Suivi>\n</ImportSolis>\n",
    )
    .unwrap();
    let acks = answer_imports(dir.path()).unwrap();
    let ack = read_ack(&acks[0]).unwrap();
    assert_eq!(ack.receipts.len(), 2);
    for r in &ack.receipts {
        assert!(
            matches!(&r.status, ReceiptStatus::Rejected { reasons } if reasons[0].starts_with("DONNEE_INVALIDE")),
            "{r:?}"
        );
    }
    // A count mismatch makes the whole file KO.
    let name = "SOLIS_IMPORT_SUIVI_059_20261122021001.xml";
    std::fs::write(
        dir.path().join(name),
        "<ImportSolis departement=\"059\" flux=\"SUIVI\" nbElements=\"3\"><Suivi referenceExterne=\"a\" idSolis=\"IND0000001\"/></ImportSolis>",
    )
    .unwrap();
    let acks = answer_imports(dir.path()).unwrap();
    let ack = read_ack(&acks[0]).unwrap();
    assert!(!ack.ok);
    assert!(ack.receipts.is_empty());
}
