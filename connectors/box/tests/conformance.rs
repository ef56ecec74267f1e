//! The connector conformance suite (`passerelle_connector::conformance`) on the box:
//! `BoxSource` over a simulated département's drops (a file failing its checksum and
//! the box lost for a while as faults; the refusal is told to the département in an
//! ACK file, not to the engine) and `BoxOfSink` writing `JEUNES_OF` files (the box lost
//! for a while; a record the file cannot carry refused for good). Twice: with the
//! state and ledger in JSON files under `state_dir`, and in a `PeerStore` (as the hub
//! keeps them, in its state).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use passerelle_box::folder::{BoxFolder, LocalFolder};
use passerelle_box::sim::{DropOptions, SimConfig, brsa_csv, drop_file, population};
use passerelle_box::{BoxConfig, BoxOfSink, BoxSource};
use passerelle_connector::conformance::{SinkHarness, SourceHarness, folder_outage};
use passerelle_connector::{Delivery, Sink, Source, connector_conformance_tests};
use passerelle_model::{Date, Jeune, ObligationFormation, ObligationFormationStatut};

const ML: &str = "59350S00";

struct BoxPeer {
    _root: tempfile::TempDir,
    /// The box itself (the département's side).
    root: PathBuf,
    /// The hub's state: what it read, what it wrote.
    state: PathBuf,
    /// Where the hub keeps what it read and wrote instead of `state`, when it does.
    peers: Option<passerelle_connector::MemoryPeerStore>,
    next: AtomicUsize,
}

async fn harness() -> BoxPeer {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("box");
    let state = tmp.path().join("state");
    std::fs::create_dir(&root).unwrap();
    let folder = LocalFolder::new(&root);
    passerelle_box::sim::Departement {
        folder: &folder,
        config: SimConfig {
            partenaire: ML.into(),
            seed: 42,
            jeunes: 6,
            ..SimConfig::default()
        },
    }
    .play()
    .unwrap();
    BoxPeer {
        _root: tmp,
        root,
        state,
        peers: None,
        next: AtomicUsize::new(0),
    }
}

/// The same peer, the hub's memory of it in a `PeerStore` that outlives each source
/// and sink (the hub's state across restarts).
async fn shared_harness() -> BoxPeer {
    BoxPeer {
        peers: Some(passerelle_connector::MemoryPeerStore::new()),
        ..harness().await
    }
}

impl BoxPeer {
    fn config(&self) -> BoxConfig {
        BoxConfig {
            url: format!("file://{}", self.root.display()),
            partenaire: ML.into(),
            state_dir: self.state.clone(),
            mapping: None,
            sftp: None,
            reading: Default::default(),
        }
    }

    fn files_in(&self, dir: &str, prefix: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.root.join(ML).join(dir)) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(prefix) && n.ends_with(".csv")
            })
            .collect()
    }
}

#[async_trait]
impl SourceHarness for BoxPeer {
    async fn source(&self) -> Box<dyn Source> {
        match &self.peers {
            None => Box::new(BoxSource::new(self.config().build().unwrap())),
            Some(p) => Box::new(BoxSource::new(
                self.config()
                    .build_shared(Arc::new(p.clone()))
                    .await
                    .unwrap(),
            )),
        }
    }

    async fn plant_refused_file(&self) {
        let (bytes, _, _) = brsa_csv(&population(7, 3), false);
        let opts = DropOptions {
            bad_checksum: true,
            ..DropOptions::default()
        };
        let folder = LocalFolder::new(&self.root);
        let name = "BRSA_LISTE_059_CD059_20261122230000.csv";
        drop_file(&folder, ML, name, &bytes, opts).unwrap();
    }

    async fn refusals_told_to_peer(&self) -> Option<usize> {
        let refused = self
            .files_in("retour", "ACK_")
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .contains("FICHIER_REFUSE")
            })
            .count();
        Some(refused)
    }

    async fn transient_fault(&self, on: bool) {
        folder_outage(&self.root, on);
    }
}

fn signalement(n: usize) -> Delivery {
    let mut j = Jeune::default();
    j.etat_civil.nom_usage = Some("Témoin".into());
    j.etat_civil.prenoms = vec!["Zoé".into()];
    j.obligation_formation = Some(ObligationFormation {
        statut: Some(ObligationFormationStatut::Signale),
        date_signalement: Some(Date::parse("2026-11-20").unwrap()),
        motif: None,
        suite: None,
    });
    Delivery {
        transfer_id: format!("conformance-{n}"),
        flow: "of-signalement".into(),
        sender: ML.into(),
        recipient: "CD059".into(),
        record: j,
    }
}

#[async_trait]
impl SinkHarness for BoxPeer {
    async fn sink(&self) -> Box<dyn Sink> {
        let c = self.config();
        let folder: Arc<dyn BoxFolder> = c.folder().unwrap();
        let ledger = match &self.peers {
            None => c.sent_ledger("CD059").unwrap(),
            Some(p) => c
                .sent_ledger_shared("CD059", Arc::new(p.clone()))
                .await
                .unwrap(),
        };
        let sink = BoxOfSink::new(ledger).with_box("CD059", folder).unwrap();
        Box::new(sink)
    }

    fn deliveries(&self, n: usize) -> Vec<Delivery> {
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        (first..first + n).map(signalement).collect()
    }

    async fn permanent_fault(&self, mut d: Delivery) -> Delivery {
        // `JEUNES_OF` cannot carry a record without its obligation de formation.
        d.record.obligation_formation = None;
        d
    }

    async fn transient_fault(&self, on: bool) {
        folder_outage(&self.root, on);
    }

    async fn held(&self) -> Vec<String> {
        let mut refs = Vec::new();
        for path in self.files_in("retour", "JEUNES_OF_") {
            let text = std::fs::read_to_string(path).unwrap();
            // The header first; each row starts with its `Référence`, the transfer id.
            for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
                let reference = line.split(';').next().unwrap().trim_matches('"');
                refs.push(passerelle_box::of::split_reference(reference).0.to_owned());
            }
        }
        refs
    }
}

connector_conformance_tests!(harness(); file_source, sink);

mod in_a_peer_store {
    use super::*;
    connector_conformance_tests!(shared_harness(); file_source, sink);
}
