//! A journal that says what happened, once: a crash between recording a receipt and
//! journaling it is finished by the next engine (journaled once, not lost, not
//! repeated); a redelivery after a crash acknowledges a transfer already applied
//! without a second `applied`; an answer read twice and a denial read again are
//! journaled once.

use std::collections::BTreeMap;
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
use passerelle_transport::embedded::EmbeddedConfig;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A peer that applies (or takes as delivered, for a file peer) once per transfer id.
#[derive(Default)]
struct Peer {
    file: bool,
    applied: Mutex<BTreeMap<String, u32>>,
}

#[async_trait]
impl Sink for Peer {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        *self
            .applied
            .lock()
            .unwrap()
            .entry(d.transfer_id.clone())
            .or_default() += 1;
        Ok(Receipt {
            transfer_id: d.transfer_id,
            status: if self.file {
                ReceiptStatus::Delivered
            } else {
                ReceiptStatus::Applied { peer_ref: None }
            },
        })
    }
}

const RECORDS: [&str; 2] = [
    r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND1"}],
     "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"1234567"},"solis":"IND0000001"},
     "etat_civil":{"nom_naissance":"Martin","prenoms":["Inès"],"date_naissance":"2005-01-02"},
     "rsa":{"role":"DEM","etat_droit":"2"},
     "orientation":{"type":"sociale","organisme":{"type":"ML","code":"59350S00"}}}"#,
    r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND2"}],
     "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"7654321"},"solis":"IND0000002"},
     "etat_civil":{"nom_naissance":"Petit","prenoms":["Hugo"],"date_naissance":"2004-05-06"},
     "rsa":{"role":"DEM","etat_droit":"2"},
     "orientation":{"type":"sociale","organisme":{"type":"ML","code":"59350S00"}}}"#,
];

fn records() -> Vec<Jeune> {
    RECORDS
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

async fn engine(dir: &Path) -> Engine {
    let keyring = Keyring::open(dir).unwrap();
    for org in ["59350S00", "CD059"] {
        if keyring.open_for(org).is_err() {
            keyring.generate(org).unwrap();
        }
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    // Short leases: a message left unacknowledged by a crash comes back quickly.
    let mut queue = EmbeddedConfig::new(dir.join("queue.sqlite"));
    queue.lease_ms = 400;
    let transport = Arc::new(queue.build().await.unwrap());
    let journal = JournalConfig::sqlite_file(&dir.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let state = HubState::open(&dir.join("state.sqlite")).await.unwrap();
    let policy = Arc::new(Policy::load(workspace().join("schemas/policy/flows.toml")).unwrap());
    Engine::new(
        policy,
        state,
        journal,
        transport,
        Arc::new(KeyringSealer::new(keyring)),
        pseudonyms,
    )
    .await
    .unwrap()
}

fn cd() -> Party<'static> {
    Party::new(OrgKind::Cd, "CD059", System::Solis)
}

fn ml() -> Party<'static> {
    Party::new(OrgKind::Ml, "59350S00", System::Imilo)
}

async fn events(engine: &Engine) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in engine.journal().entries(&Default::default()).await.unwrap() {
        *out.entry(e.event).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn a_crash_between_the_receipt_and_its_journal_entry_is_journaled_once_after() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    {
        let first = engine(dir.path()).await;
        let sent = first
            .send("brsa-orientation", cd(), ml(), records())
            .await
            .unwrap();
        assert_eq!(sent.sent, 2);
        // The journal goes away under the engine: the receipts are recorded, their
        // entries cannot be appended, and the messages are not acknowledged (a crash
        // right after the state's commit).
        first.journal().clone().close().await;
        assert!(
            first
                .deliver("59350S00", &peer, Duration::from_millis(300))
                .await
                .is_err()
        );
        first.state().close().await;
    }
    assert_eq!(peer.applied.lock().unwrap().len(), 2);

    // The next engine journals what was left pending, once.
    let second = engine(dir.path()).await;
    assert_eq!(events(&second).await.get("applied"), Some(&2));
    drop(second);
    let third = engine(dir.path()).await;
    assert_eq!(events(&third).await.get("applied"), Some(&2), "not twice");

    // The messages come back: acknowledged, neither applied nor journaled again.
    let d = third
        .deliver("59350S00", &peer, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!((d.redelivered, d.applied), (2, 0), "{d:?}");
    assert!(peer.applied.lock().unwrap().values().all(|n| *n == 1));
    let e = events(&third).await;
    assert_eq!((e["published"], e["applied"]), (2, 2), "{e:?}");
    assert!(third.journal().verify().await.unwrap().is_intact());
    assert!(third.state().pending_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_answer_read_twice_and_a_denial_read_again_are_journaled_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let peer = Peer {
        file: true,
        ..Peer::default()
    };
    engine
        .send("brsa-orientation", cd(), ml(), records())
        .await
        .unwrap();
    let d = engine
        .deliver("59350S00", &peer, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(d.delivered, 2);
    let answers: Vec<Receipt> = peer
        .applied
        .lock()
        .unwrap()
        .keys()
        .map(|id| Receipt {
            transfer_id: id.clone(),
            status: ReceiptStatus::Applied { peer_ref: None },
        })
        .collect();
    // Two nights read the same ACK file.
    let first = engine.settle_late(&answers).await.unwrap();
    let again = engine.settle_late(&answers).await.unwrap();
    let flow = "brsa-orientation";
    assert_eq!((first[flow].applied, first[flow].already), (2, 0));
    assert_eq!((again[flow].applied, again[flow].already), (0, 2));
    assert_eq!(events(&engine).await["applied"], 2);

    // A record denied (no flow to an ML of another département), read again unchanged.
    let other = Party::new(OrgKind::Ml, "75056S00", System::Imilo);
    for _ in 0..3 {
        let s = engine
            .send("brsa-orientation", cd(), other, records())
            .await
            .unwrap();
        assert_eq!(s.denied, 2);
    }
    assert_eq!(
        events(&engine).await["denied"],
        2,
        "journaled the first time only"
    );
    assert!(engine.journal().verify().await.unwrap().is_intact());
}
