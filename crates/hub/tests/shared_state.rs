//! Two hub instances on one PostgreSQL state (`PASSERELLE_TEST_PG_URL`), each with its
//! own transport and journal, both started before anyone was known: a person one sent
//! is the same person for the other (one hub id, so one transfer id, found unchanged),
//! a new person both read at the same time gets one hub id, and a receipt either
//! records is what the other sees.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use passerelle_audit::JournalConfig;
use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptStatus, Sink};
use passerelle_crypto::Keyring;
use passerelle_hub::*;
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, Policy, System};
use passerelle_transport::Transport;
use passerelle_transport::embedded::EmbeddedConfig;

mod common;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A peer that applies every delivery once per transfer id.
#[derive(Default)]
struct Peer {
    applied: Mutex<BTreeMap<String, Jeune>>,
}

#[async_trait]
impl Sink for Peer {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        self.applied
            .lock()
            .unwrap()
            .entry(d.transfer_id.clone())
            .or_insert(d.record);
        Ok(Receipt {
            transfer_id: d.transfer_id,
            status: ReceiptStatus::Applied { peer_ref: None },
        })
    }
}

fn jeune(caf: &str, solis: &str, nom: &str, ne_le: &str) -> Jeune {
    let json = format!(
        r#"{{"schema":"passerelle.jeune/1","sources":[{{"system":"solis","organisation":"CD059","record_id":"{solis}"}}],
 "identifiants":{{"caf":{{"organisme":"CAF","numero_allocataire":"{caf}"}},"solis":"{solis}"}},
 "etat_civil":{{"civilite":"M","nom_naissance":"{nom}","prenoms":["Test"],"date_naissance":"{ne_le}"}},
 "rsa":{{"role":"DEM","etat_droit":"2"}},
 "orientation":{{"type":"professionnelle","date":"2026-10-20","organisme":{{"type":"ML","code":"59350S00"}}}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

struct Instance {
    engine: Engine,
    transport: Arc<dyn Transport>,
}

/// An instance with its own queue and journal under `own`, the keyring of `keys`
/// (the instances of one hub share its keys) and the state at `url`.
async fn instance(keys: &Path, own: &Path, url: &str) -> Instance {
    std::fs::create_dir_all(own).unwrap();
    let keyring = Keyring::open(keys).unwrap();
    if keyring.open_for("59350S00").is_err() {
        keyring.generate("59350S00").unwrap();
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let transport: Arc<dyn Transport> = Arc::new(
        EmbeddedConfig::new(own.join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let journal = JournalConfig::sqlite_file(&own.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let state = HubState::connect(url).await.unwrap();
    let policy = Arc::new(Policy::load(workspace().join("schemas/policy/flows.toml")).unwrap());
    let engine = Engine::new(
        policy,
        state,
        journal,
        transport.clone(),
        Arc::new(KeyringSealer::new(keyring)),
        pseudonyms,
    )
    .await
    .unwrap();
    Instance { engine, transport }
}

fn cd059() -> Party<'static> {
    Party::new(OrgKind::Cd, "CD059", System::Solis)
}

fn ml() -> Party<'static> {
    Party::new(OrgKind::Ml, "59350S00", System::Imilo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_state_decide_persons_and_receipts_once() {
    let Some(db) = common::PgDatabase::new("hubshared").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    // The keyring exists before the instances start (they share it).
    Keyring::open(&keys).unwrap().generate("59350S00").unwrap();
    let a = instance(&keys, &dir.path().join("a"), &db.url).await;
    let b = instance(&keys, &dir.path().join("b"), &db.url).await;
    let first = vec![
        jeune("1000001", "IND01", "Aubépine", "2003-01-01"),
        jeune("1000002", "IND02", "Bruyère", "2003-02-02"),
    ];

    let sent = a
        .engine
        .send("brsa-orientation", cd059(), ml(), first.clone())
        .await
        .unwrap();
    assert_eq!(sent.sent, 2);
    // B loaded its index before A knew anyone: the store tells it who they are, so
    // the same records are the same transfers, found unchanged.
    let again = b
        .engine
        .send("brsa-orientation", cd059(), ml(), first)
        .await
        .unwrap();
    assert_eq!((again.sent, again.unchanged), (0, 2));

    // A new person read by both at once: one hub id.
    let new = || vec![jeune("1000003", "IND03", "Camomille", "2003-03-03")];
    let (x, y) = tokio::join!(
        a.engine.send("brsa-orientation", cd059(), ml(), new()),
        b.engine.send("brsa-orientation", cd059(), ml(), new()),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.sent + x.unchanged, 1);
    assert_eq!(y.sent + y.unchanged, 1);
    let rows = a
        .engine
        .state()
        .transfers_of("CD059", Some("brsa-orientation"))
        .await
        .unwrap();
    let persons: HashSet<_> = rows.iter().map(|r| r.hub_id).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(persons.len(), 3, "three persons, one hub id each");

    // A delivers its queue: the receipts are in the shared state, B sees them.
    let peer = Peer::default();
    let delivered = a
        .engine
        .deliver("59350S00", &peer, Duration::from_millis(800))
        .await
        .unwrap();
    assert!(delivered.applied >= 2, "{delivered:?}");
    let seen_by_b = b.engine.state().receipts_of("CD059", None).await.unwrap();
    assert_eq!(seen_by_b.len(), 3);
    let applied: Vec<_> = seen_by_b
        .iter()
        .filter(|r| r.row.status == TransferStatus::Applied)
        .collect();
    assert_eq!(applied.len(), peer.applied.lock().unwrap().len());

    // B delivers what it published itself (the new person, if B published it) and
    // settles a late answer about a transfer A published: either way A sees it.
    b.engine
        .deliver("59350S00", &peer, Duration::from_millis(800))
        .await
        .unwrap();
    let late = b
        .engine
        .settle_late(&[Receipt {
            transfer_id: rows[0].transfer_id.to_string(),
            status: ReceiptStatus::Rejected {
                reasons: vec!["late".into()],
            },
        }])
        .await
        .unwrap();
    assert_eq!(late.values().map(|s| s.already).sum::<u64>(), 1, "{late:?}");
    let now = a.engine.state().receipts_of("CD059", None).await.unwrap();
    assert!(
        now.iter().all(|r| r.row.status == TransferStatus::Applied),
        "applied never goes back: {now:?}"
    );

    a.transport.close().await.unwrap();
    b.transport.close().await.unwrap();
    db.finish().await;
}
