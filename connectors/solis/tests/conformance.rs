//! The connector conformance suite (`passerelle_connector::conformance`) on SOLIS:
//! `SolisExportSource` over simulated export files (a truncated export and the folder
//! lost for a while as faults) and `SolisSink` writing imports (the import folder lost
//! for a while; a recipient that is no département refused for good).
//!
//! `SolisAckSource` is a `ReceiptSource`, outside this suite; `tests/engine.rs` checks
//! that its answers are served again until acknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::NaiveDate;
use passerelle_connector::conformance::{SinkHarness, SourceHarness, folder_outage};
use passerelle_connector::{Delivery, Sink, Source, connector_conformance_tests};
use passerelle_model::{Accompagnement, Date, Dispositif, Jeune, SolisId};
use passerelle_solis::sim::{SimOptions, id_solis, write_export};
use passerelle_solis::{ExportFlux, SolisPeerConfig, read_import_refs};

struct Solis {
    _root: tempfile::TempDir,
    export: PathBuf,
    import: PathBuf,
    next: AtomicUsize,
}

async fn harness() -> Solis {
    let root = tempfile::tempdir().unwrap();
    let export = root.path().join("export");
    let import = root.path().join("import");
    std::fs::create_dir(&export).unwrap();
    std::fs::create_dir(&import).unwrap();
    for (day, seed) in [(20, 1), (21, 2)] {
        let mut o = SimOptions::new(15, seed);
        o.date = NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        o.invalid_share = 0.1;
        write_export(&export, &o).unwrap();
    }
    Solis {
        _root: root,
        export,
        import,
        next: AtomicUsize::new(0),
    }
}

impl Solis {
    fn peer(&self) -> SolisPeerConfig {
        SolisPeerConfig {
            export_dir: Some(self.export.clone()),
            import_dir: Some(self.import.clone()),
            batch_size: 8,
            ..SolisPeerConfig::default()
        }
    }
}

#[async_trait]
impl SourceHarness for Solis {
    async fn source(&self) -> Box<dyn Source> {
        Box::new(self.peer().build_export_source().unwrap())
    }

    async fn plant_refused_file(&self) {
        let mut o = SimOptions::new(20, 9);
        o.date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        o.truncate = true;
        write_export(&self.export, &o).unwrap();
    }

    async fn transient_fault(&self, on: bool) {
        folder_outage(&self.export, on);
    }
}

/// A `brsa-suivi` for the CD, about a person SOLIS knows by its id.
fn suivi(n: usize) -> Delivery {
    let mut j = Jeune::default();
    j.etat_civil.nom_naissance = Some("Témoin".into());
    j.etat_civil.prenoms = vec!["Zoé".into()];
    j.identifiants.solis = Some(SolisId::parse(&id_solis(ExportFlux::Brsa, n as u64)).unwrap());
    j.accompagnement = Some(Accompagnement {
        dispositif: Some(Dispositif::Cej),
        date_debut: Some(Date::parse("02/03/2026").unwrap()),
        ..Accompagnement::default()
    });
    Delivery {
        transfer_id: format!("conformance-{n}"),
        flow: "brsa-suivi".into(),
        sender: "59350S00".into(),
        recipient: "CD059".into(),
        record: j,
    }
}

#[async_trait]
impl SinkHarness for Solis {
    async fn sink(&self) -> Box<dyn Sink> {
        Box::new(self.peer().build_sink().unwrap())
    }

    fn deliveries(&self, n: usize) -> Vec<Delivery> {
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        (first..first + n).map(suivi).collect()
    }

    async fn permanent_fault(&self, mut d: Delivery) -> Delivery {
        // A SOLIS import names a département; an ML is none, whatever the retries.
        d.recipient = "59350S00".into();
        d
    }

    async fn transient_fault(&self, on: bool) {
        folder_outage(&self.import, on);
    }

    async fn held(&self) -> Vec<String> {
        let mut refs = Vec::new();
        for entry in std::fs::read_dir(&self.import).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("SOLIS_IMPORT_") && name.ends_with(".xml") {
                refs.extend(read_import_refs(&path).unwrap());
            }
        }
        refs
    }
}

connector_conformance_tests!(harness(); file_source, sink);
