//! Hostile SOLIS peers (issue 16), each a regression test: links planted in the import
//! folder, an export that used to overflow the stack, free text in ACK messages, a
//! second ACK for a settled import, odd entries in the export folder.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use passerelle_connector::{ConnectorError, Delivery, ReceiptSource, ReceiptStatus, Sink, Source};
use passerelle_model::{Accompagnement, Date, Dispositif, Jeune, SolisId};
use passerelle_solis::sim::{SimOptions, write_export};
use passerelle_solis::{SolisAckSource, SolisPeerConfig, SolisSink};

fn suivi(transfer: &str) -> Delivery {
    let mut j = Jeune::default();
    j.etat_civil.nom_naissance = Some("Lefèvre".into());
    j.identifiants.solis = Some(SolisId::parse("IND0000001").unwrap());
    j.accompagnement = Some(Accompagnement {
        dispositif: Some(Dispositif::Cej),
        date_debut: Some(Date::parse("02/03/2026").unwrap()),
        ..Accompagnement::default()
    });
    Delivery {
        transfer_id: transfer.into(),
        flow: "brsa-suivi".into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record: j,
    }
}

fn sink(dir: &Path) -> SolisSink {
    let at = NaiveDate::from_ymd_opt(2026, 11, 22)
        .unwrap()
        .and_hms_opt(2, 10, 0)
        .unwrap();
    SolisSink::with_clock(dir, dir, Arc::new(move || at))
}

const IMPORT: &str = "SOLIS_IMPORT_SUIVI_059_20261122021000.xml";

/// Hostile case 1: a link planted where the hub writes an import (or its `.part`
/// temporary name) made it write personal data into a file outside its folders.
#[tokio::test]
async fn an_import_is_never_written_through_a_planted_link() {
    let root = tempfile::tempdir().unwrap();
    let imports = root.path().join("imports");
    std::fs::create_dir(&imports).unwrap();
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    symlink(&outside, imports.join(IMPORT)).unwrap();
    symlink(&outside, imports.join(format!(".{IMPORT}.part"))).unwrap();
    let out = sink(&imports).deliver_batch(vec![suivi("t1")]).await;
    assert!(out[0].is_ok(), "{:?}", out[0]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    // The import went somewhere of its own, private, and holds the transfer.
    let written: Vec<_> = std::fs::read_dir(&imports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !std::fs::symlink_metadata(p)
                .unwrap()
                .file_type()
                .is_symlink()
        })
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let mode = std::fs::metadata(&written[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        passerelle_solis::read_import_refs(&written[0]).unwrap(),
        ["t1"]
    );
}

fn ack_body(import: &str, transfer: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AckSolis fichier=\"{import}\" statut=\"OK\">\n  <Element referenceExterne=\"{transfer}\" statut=\"KO\" code=\"REFUS_METIER\" message=\"{message}\"/>\n</AckSolis>\n"
    )
}

/// Hostile case 6: a SOLIS ACK message holding a name and a NIR was stored in the
/// journal in clear (through the receipt's reason); a second ACK for a settled import
/// added contradicting entries.
#[tokio::test]
async fn ack_messages_are_digested_and_a_second_ack_settles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    sink(dir.path()).deliver_batch(vec![suivi("t1")]).await;
    let ack = format!("SOLIS_ACK_{IMPORT}");
    let message = "M. DUPONT Jean, NIR 1 85 05 59 350 123 45, inconnu";
    std::fs::write(dir.path().join(&ack), ack_body(IMPORT, "t1", message)).unwrap();
    let mut acks = SolisAckSource::new(dir.path(), dir.path());
    let groups = acks.next_receipts().await.unwrap();
    assert_eq!(groups.len(), 1);
    let ReceiptStatus::Rejected { reasons } = &groups[0].receipts[0].status else {
        panic!("{:?}", groups[0].receipts[0].status);
    };
    assert_eq!(
        reasons,
        &[format!(
            "REFUS_METIER: {}",
            passerelle_connector::redact::free_text(message)
        )]
    );
    assert!(!format!("{reasons:?}").contains("DUPONT") && !reasons[0].contains("350"));
    acks.ack(&groups[0].ack).await.unwrap();

    // SOLIS answers the same import again, differently.
    std::fs::write(
        dir.path().join(&ack),
        ack_body(IMPORT, "t1", "").replace("statut=\"KO\"", "statut=\"OK\""),
    )
    .unwrap();
    let groups = acks.next_receipts().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert!(groups[0].receipts.is_empty(), "{:?}", groups[0].receipts);
    acks.ack(&groups[0].ack).await.unwrap();
    assert!(dir.path().join("refuses").join(&ack).is_file());
    assert!(dir.path().join("traites").join(&ack).is_file());
    assert!(acks.next_receipts().await.unwrap().is_empty());
}

/// Hostile case 2: a 71 KB export with 8,000 nested elements in one record aborted the
/// process; it was never moved aside, so every night crashed again on it. Now it is
/// refused with its limit, moved to `refuses/`, and the next export is read.
/// Hostile case 5: odd entries (a FIFO, a link, a name that is not UTF-8) are refused
/// alone, the same way.
#[tokio::test]
async fn hostile_exports_are_refused_alone_and_the_folder_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut deep = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ExportSolis departement=\"059\" flux=\"BRSA\" nbIndividus=\"1\"><Individu>",
    );
    deep.push_str(&"<a>".repeat(8000));
    deep.push_str(&"</a>".repeat(8000));
    deep.push_str("</Individu></ExportSolis>");
    std::fs::write(d.join("SOLIS_EXPORT_BRSA_059_20261101.xml"), &deep).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(d.join("SOLIS_EXPORT_BRSA_059_20261102.xml"))
        .status()
        .unwrap();
    assert!(fifo.success());
    symlink("/etc/passwd", d.join("SOLIS_EXPORT_BRSA_059_20261103.xml")).unwrap();
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = std::ffi::OsStr::from_bytes(b"SOLIS_EXPORT_BRSA_059_2026\xe9.xml");
        std::fs::write(d.join(odd), "x").unwrap();
    }
    let good = write_export(d, &SimOptions::new(3, 7)).unwrap();
    let config = SolisPeerConfig {
        export_dir: Some(d.to_owned()),
        ..SolisPeerConfig::default()
    };
    let mut source = config.build_export_source().unwrap();
    let mut refused = Vec::new();
    let mut records = 0;
    for _ in 0..20 {
        match source.next_batch().await {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => {
                records += batch.len();
                let tokens: Vec<_> = batch.into_iter().map(|i| i.ack).collect();
                source.ack(&tokens).await.unwrap();
            }
            Err(ConnectorError::FileRefused { file, reason }) => refused.push((file, reason)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(records, 3);
    assert_eq!(refused.len(), 4, "{refused:?}");
    let reasons: String = refused.iter().map(|(f, r)| format!("{f}: {r}\n")).collect();
    assert!(reasons.contains("nested deeper than 64"), "{reasons}");
    assert!(reasons.contains("fifo"), "{reasons}");
    assert!(reasons.contains("symbolic link"), "{reasons}");
    assert!(
        reasons.contains("2026\\xe9.xml: not read: the name is not valid utf-8"),
        "{reasons}"
    );
    assert!(
        d.join("traites")
            .join(good.path.file_name().unwrap())
            .is_file()
    );
    assert_eq!(std::fs::read_dir(d.join("refuses")).unwrap().count(), 4);
    // /etc/passwd is where it was: the link itself was moved.
    assert!(Path::new("/etc/passwd").is_file());
}
