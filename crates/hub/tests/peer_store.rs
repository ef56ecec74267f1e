//! `HubState` as the connectors' `PeerStore`: the one suite of
//! `passerelle_connector::peer_conformance` on SQLite (a temporary file, each handle a
//! pool of its own on it) and on PostgreSQL (a fresh database on
//! `PASSERELLE_TEST_PG_URL`, each handle its own `HubState`: two handles are two hub
//! instances; under `CI` a missing PostgreSQL fails the test).

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_connector::PeerStore;
use passerelle_connector::peer_conformance::PeerStoreHarness;
use passerelle_hub::HubState;

mod common;

/// Handles on one SQLite state file.
struct Sqlite {
    _dir: tempfile::TempDir,
    url: String,
}

#[async_trait]
impl PeerStoreHarness for Sqlite {
    async fn store(&self) -> Arc<dyn PeerStore> {
        Arc::new(
            HubState::connect(&self.url)
                .await
                .expect("open sqlite state"),
        )
    }
}

async fn sqlite() -> Option<Sqlite> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("state.sqlite").display());
    Some(Sqlite { _dir: dir, url })
}

/// Instances on one PostgreSQL database.
struct Postgres(common::PgDatabase);

#[async_trait]
impl PeerStoreHarness for Postgres {
    async fn store(&self) -> Arc<dyn PeerStore> {
        Arc::new(self.0.state().await)
    }
    async fn finish(&self) {
        self.0.drop_database().await;
    }
}

async fn postgres() -> Option<Postgres> {
    common::PgDatabase::new("peerstore").await.map(Postgres)
}

mod on_sqlite {
    use super::*;
    passerelle_connector::peer_store_conformance_tests!(sqlite());
}

mod on_postgres {
    use super::*;
    passerelle_connector::peer_store_conformance_tests!(postgres());
}

// --- The connectors' state across two instances ----------------------------------
//
// Two handles on one state are two hub instances: what one connector instance
// remembers (box files read, transfers written into box files, FAJ events done), the
// other knows. On PostgreSQL (the multi-instance setup) and on SQLite (two pools on one
// file, as two processes on one data folder).

mod across_instances {
    use std::sync::Arc;

    use passerelle_box::folder::{BoxFolder, LocalFolder};
    use passerelle_box::protocol::FileOutcome;
    use passerelle_box::sink::BoxOfSink;
    use passerelle_box::{BoxConfig, sim};
    use passerelle_connector::{Delivery, PeerStore, ReceiptStatus, Sink};
    use passerelle_faj::{PeerSeenStore, Reservation, SeenStore};
    use passerelle_model::{Date, Jeune, ObligationFormation, ObligationFormationStatut};

    use super::*;

    const PARTENAIRE: &str = "59350S00";

    fn config(dir: &std::path::Path, state: &str) -> BoxConfig {
        BoxConfig {
            url: format!("file://{}/box", dir.display()),
            partenaire: PARTENAIRE.into(),
            // Each instance has its own data folder: nothing is shared through it.
            state_dir: dir.join(state),
            mapping: None,
            sftp: None,
            reading: Default::default(),
        }
    }

    fn signalement(tid: &str, nom: &str) -> Delivery {
        let mut j = Jeune::default();
        j.etat_civil.nom_usage = Some(nom.into());
        j.etat_civil.prenoms = vec!["Karim".into()];
        j.obligation_formation = Some(ObligationFormation {
            statut: Some(ObligationFormationStatut::Signale),
            date_signalement: Some(Date::parse("2026-11-20").unwrap()),
            motif: None,
            suite: None,
        });
        Delivery {
            transfer_id: tid.to_owned(),
            flow: "of-signalement".to_owned(),
            sender: PARTENAIRE.to_owned(),
            recipient: "CD059".to_owned(),
            record: j,
        }
    }

    fn jeunes_of_files(folder: &dyn BoxFolder) -> Vec<String> {
        folder
            .list(&format!("{PARTENAIRE}/retour"))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with("JEUNES_OF_") && n.ends_with(".csv"))
            .collect()
    }

    /// Polls a box on a blocking thread, as `BoxSource` does: the rows read and what
    /// became of each file.
    async fn poll(cfg: &BoxConfig, store: Arc<dyn PeerStore>) -> (usize, Vec<FileOutcome>) {
        let mut hub = cfg.build_shared(store).await.expect("box over the state");
        tokio::task::spawn_blocking(move || {
            let mut rows = 0;
            let outcomes = hub.poll(&mut |_, _| rows += 1).expect("poll");
            (rows, outcomes)
        })
        .await
        .unwrap()
    }

    /// Everything the connectors left in the state, to search for personal values.
    async fn everything(store: &dyn PeerStore) -> String {
        let mut text = String::new();
        for ns in [
            "box/seen/59350S00".to_owned(),
            "box/sent/CD059".to_owned(),
            passerelle_faj::seen::seen_namespace("FAJ059"),
        ] {
            for (k, v) in store.list(&ns, "").await.unwrap() {
                text.push_str(&format!("{ns} {k} {v}\n"));
            }
        }
        text
    }

    async fn scenario(a: Arc<dyn PeerStore>, b: Arc<dyn PeerStore>) {
        let dir = tempfile::tempdir().unwrap();
        let folder = LocalFolder::new(dir.path().join("box"));
        std::fs::create_dir_all(dir.path().join("box")).unwrap();
        let people = sim::population(7, 3);
        let (bytes, _, _) = sim::brsa_csv(&people, false);

        // Box files: read by A, seen by B (same content under another name: a
        // duplicate naming A's file; nothing read twice).
        let first = "BRSA_LISTE_059_CD059_20261121230000.csv";
        sim::drop_file(&folder, PARTENAIRE, first, &bytes, Default::default()).unwrap();
        let (rows, _) = poll(&config(dir.path(), "a"), a.clone()).await;
        assert_eq!(rows, 3);
        let again = "BRSA_LISTE_059_CD059_20261122230000.csv";
        sim::drop_file(&folder, PARTENAIRE, again, &bytes, Default::default()).unwrap();
        let (rows, outcomes) = poll(&config(dir.path(), "b"), b.clone()).await;
        assert_eq!(rows, 0, "instance B read again what A read");
        assert!(
            matches!(&outcomes[..], [FileOutcome::Duplicate { first: f, .. }] if f == first),
            "{outcomes:?}"
        );

        // The sink: a batch A wrote, delivered again to B (A died before the acks),
        // is not written again; a transfer A never wrote is.
        let box_of = |store: Arc<dyn PeerStore>, state: &'static str| {
            let cfg = config(dir.path(), state);
            async move {
                BoxOfSink::new(cfg.sent_ledger_shared("CD059", store).await.unwrap())
                    .with_box("CD059", cfg.folder().unwrap())
                    .unwrap()
            }
        };
        let batch = vec![signalement("t-1", "Benali"), signalement("t-2", "Benali")];
        let by_a = box_of(a.clone(), "a")
            .await
            .deliver_batch(batch.clone())
            .await;
        assert!(
            by_a.iter()
                .all(|r| r.as_ref().unwrap().status == ReceiptStatus::Delivered)
        );
        assert_eq!(jeunes_of_files(&folder).len(), 1);
        let sink_b = box_of(b.clone(), "b").await;
        let by_b = sink_b.deliver_batch(batch).await;
        assert!(
            by_b.iter()
                .all(|r| r.as_ref().unwrap().status == ReceiptStatus::Delivered)
        );
        assert_eq!(
            jeunes_of_files(&folder).len(),
            1,
            "instance B wrote again transfers A had written"
        );
        // (A second file would take the next second's name: B's clock may be on it.)
        sink_b.deliver(signalement("t-3", "Benali")).await.unwrap();
        assert_eq!(
            jeunes_of_files(&folder).len(),
            2,
            "a new transfer is written"
        );

        // FAJ events: done on A, done for B; raced by both, handed on by one.
        let (sa, sb) = (
            PeerSeenStore::open(a.clone(), "FAJ059", None)
                .await
                .unwrap(),
            PeerSeenStore::open(b.clone(), "FAJ059", None)
                .await
                .unwrap(),
        );
        assert_eq!(
            sa.reserve("evenement:EVT-1").await.unwrap(),
            Reservation::Fresh
        );
        sa.complete("evenement:EVT-1").await.unwrap();
        assert_eq!(
            sb.reserve("evenement:EVT-1").await.unwrap(),
            Reservation::Done
        );
        let (sa, sb) = (Arc::new(sa), Arc::new(sb));
        let mut races = Vec::new();
        for i in 0..10 {
            let key = format!("evenement:EVT-R{i}");
            let (sa, sb) = (sa.clone(), sb.clone());
            races.push(tokio::spawn(async move {
                let (ra, rb) = tokio::join!(sa.reserve(&key), sb.reserve(&key));
                [ra.unwrap(), rb.unwrap()]
            }));
        }
        for r in races {
            let got = r.await.unwrap();
            assert_eq!(
                got.iter().filter(|r| **r == Reservation::Fresh).count(),
                1,
                "one instance hands the event on: {got:?}"
            );
        }

        // What the state holds: ids, file names, digests, stages and times.
        let text = everything(b.as_ref()).await;
        assert!(text.contains(first) && text.contains("t-1"), "{text}");
        assert!(
            !text.contains("EVT-"),
            "event ids are kept as digests: {text}"
        );
        for p in &people {
            for value in [&p.nom, &p.prenoms, &p.caf, &p.adresse] {
                assert!(
                    !text.contains(value.as_str()),
                    "a personal value in the state"
                );
            }
        }
        for value in ["Benali", "Karim"] {
            assert!(!text.contains(value), "a personal value in the state");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres() {
        let Some(db) = common::PgDatabase::new("peeracross").await else {
            return;
        };
        let (a, b) = (db.state().await, db.state().await);
        scenario(Arc::new(a), Arc::new(b)).await;
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite() {
        let h = sqlite().await.unwrap();
        scenario(h.store().await, h.store().await).await;
    }
}
