//! The engine end to end on its embedded defaults: embedded transport, SQLite journal
//! and state, a real keyring, the shipped flows file; a sink that records what the
//! peer would receive.

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
use passerelle_transport::Transport;
use passerelle_transport::embedded::EmbeddedConfig;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A peer that applies every delivery once per transfer id, as I-MILO does with
/// `referenceExterne`, and remembers what it was given.
#[derive(Default)]
struct Peer {
    applied: Mutex<BTreeMap<String, Jeune>>,
    calls: Mutex<u64>,
}

#[async_trait]
impl Sink for Peer {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        *self.calls.lock().unwrap() += 1;
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

const LEA: &str = r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND0004412"}],
 "identifiants":{"nir":"204035935012349","caf":{"organisme":"CAF","numero_allocataire":"1234567"},"solis":"IND0004412"},
 "etat_civil":{"civilite":"MME","nom_naissance":"Lefèvre","prenoms":["Léa","Marie"],"date_naissance":"2004-03-12"},
 "contact":{"telephones":["+33612345678"],"email":"lea.lefevre@example.org"},
 "rsa":{"role":"DEM","etat_droit":"2","soumis_droits_devoirs":true,"date_ouverture":"2025-09-01"},
 "orientation":{"type":"socio_professionnelle","date":"2026-10-02","organisme":{"type":"ML","code":"59350S00"}},
 "sensible":{"rqth":true,"commentaires":["suivi psychologique"]}}"#;

const KARIM: &str = r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND0007781"}],
 "identifiants":{"caf":{"organisme":"CAF","numero_allocataire":"7654321"},"solis":"IND0007781"},
 "etat_civil":{"civilite":"M","nom_naissance":"Benali","prenoms":["Karim"],"date_naissance":"2002-11-30"},
 "rsa":{"role":"DEM","etat_droit":"3"},
 "orientation":{"type":"professionnelle","date":"2026-10-20","organisme":{"type":"ML","code":"59350S00"}}}"#;

fn records() -> Vec<Jeune> {
    [LEA, KARIM]
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

struct Hub {
    engine: Engine,
    transport: Arc<dyn Transport>,
}

async fn hub(dir: &Path, state_file: &str) -> Hub {
    let keyring = Keyring::open(dir).unwrap();
    if keyring.open_for("59350S00").is_err() {
        keyring.generate("59350S00").unwrap();
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let transport: Arc<dyn Transport> = Arc::new(
        EmbeddedConfig::new(dir.join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let journal = JournalConfig::sqlite_file(&dir.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let state = HubState::open(&dir.join(state_file)).await.unwrap();
    let policy = Arc::new(Policy::load(workspace().join("schemas/policy/flows.toml")).unwrap());
    let sealer = Arc::new(KeyringSealer::new(keyring));
    let engine = Engine::new(
        policy,
        state,
        journal,
        transport.clone(),
        sealer,
        pseudonyms,
    )
    .await
    .unwrap();
    Hub { engine, transport }
}

fn cd059() -> Party<'static> {
    Party::new(OrgKind::Cd, "CD059", System::Solis)
}

fn ml(code: &'static str) -> Party<'static> {
    Party::new(OrgKind::Ml, code, System::Imilo)
}

#[tokio::test]
async fn a_night_moves_minimised_records_once_with_receipts_and_a_clean_journal() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), "state.sqlite").await;
    let peer = Peer::default();

    let sent = hub
        .engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    assert_eq!(sent.read, 2);
    assert_eq!(sent.sent, 2);
    // Léa's NIR and her two Art. 9 fields are projected away, and journaled.
    assert_eq!(sent.special_dropped, 3);

    let delivered = hub
        .engine
        .deliver("59350S00", &peer, Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(delivered.applied, 2);
    let applied = peer.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 2);
    for record in applied.values() {
        let json = record.to_json_line();
        assert!(record.hub_id.is_some());
        assert!(
            !json.contains("nir") && !json.contains("sensible"),
            "{json}"
        );
        assert!(json.contains("orientation"));
    }
    let receipts = hub
        .engine
        .state()
        .transfers_of("CD059", Some("brsa-orientation"))
        .await
        .unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|t| t.status == TransferStatus::Applied));

    // A second night with nothing new sends nothing.
    let again = hub
        .engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    assert_eq!((again.sent, again.unchanged), (0, 2));

    // A changed record goes again, under a new transfer id.
    let mut changed = records();
    changed[1].rsa.etat_droit = Some(passerelle_model::EtatDroit::Clos);
    let third = hub
        .engine
        .send("brsa-orientation", cd059(), ml("59350S00"), changed)
        .await
        .unwrap();
    assert_eq!((third.sent, third.unchanged), (1, 1));
    hub.engine
        .deliver("59350S00", &peer, Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(peer.applied.lock().unwrap().len(), 3);

    let verification = hub.engine.journal().verify().await.unwrap();
    assert!(verification.is_intact());
    // published ×3, applied ×3, and Léa's NIR and Art. 9 fields projected away once:
    // with the transfer that carried her record, not again when nothing was sent.
    let events: Vec<String> = hub
        .engine
        .journal()
        .entries(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(
        (count("published"), count("applied"), count("denied")),
        (3, 3, 1),
        "{events:?}"
    );
    assert_eq!(verification.entries, 7);

    hub.transport.close().await.unwrap();
    // Neither the journal nor the queue nor the state holds a personal value in clear.
    for file in ["journal.sqlite", "queue.sqlite", "state.sqlite"] {
        let mut bytes = std::fs::read(dir.path().join(file)).unwrap();
        for extra in ["-wal"] {
            if let Ok(more) = std::fs::read(dir.path().join(format!("{file}{extra}"))) {
                bytes.extend(more);
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "Lefèvre",
            "Benali",
            "204035935012349",
            "lea.lefevre",
            "+33612345678",
            "1234567",
            "IND0004412",
            "suivi psychologique",
        ] {
            assert!(!text.contains(secret), "{file} holds {secret} in clear");
        }
    }
}

#[tokio::test]
async fn a_rerun_after_a_crash_between_publish_and_record_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    let first = hub(dir.path(), "state.sqlite").await;
    first
        .engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    first.engine.state().close().await;
    // The crash: published and journaled, but killed before the transfers were
    // recorded. Removing the records of this run stands for it.
    let url = format!("sqlite://{}", dir.path().join("state.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM sent_hash")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM transfer")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let second = hub(dir.path(), "state.sqlite").await;
    let resent = second
        .engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    assert_eq!(
        resent.sent, 2,
        "without its records the hub publishes again"
    );
    second
        .engine
        .deliver("59350S00", &peer, Duration::from_millis(800))
        .await
        .unwrap();
    // Four messages, two transfer ids: the peer applied each person once.
    assert_eq!(*peer.calls.lock().unwrap(), 4);
    assert_eq!(peer.applied.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn no_flow_means_no_transfer_and_a_journaled_denial() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), "state.sqlite").await;
    // brsa-orientation joins a CD to the MLs of its own département only.
    let sent = hub
        .engine
        .send("brsa-orientation", cd059(), ml("75056S00"), records())
        .await
        .unwrap();
    assert_eq!((sent.sent, sent.denied), (0, 2));
    let err = hub
        .engine
        .send("nope", cd059(), ml("59350S00"), records())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "flow `nope` is not declared");
    let entries = hub
        .engine
        .journal()
        .entries(&Default::default())
        .await
        .unwrap();
    let denied: Vec<_> = entries.iter().filter(|e| e.event == "denied").collect();
    assert_eq!(denied.len(), 2);
    assert!(
        denied[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("outside-flow"),
        "{:?}",
        denied[0].reason
    );
}

/// A peer that refuses some transfers for good and breaks on others.
struct Picky;

#[async_trait]
impl Sink for Picky {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        if d.record.etat_civil.prenoms.first().map(String::as_str) == Some("Karim") {
            return Err(ConnectorError::Protocol {
                peer: "imilo".into(),
                reason: "unexpected answer".into(),
            });
        }
        Ok(Receipt {
            transfer_id: d.transfer_id,
            status: ReceiptStatus::Rejected {
                reasons: vec!["422 STRUCTURE_INCONNUE: unknown codeStructure".into()],
            },
        })
    }
}

#[tokio::test]
async fn refusals_and_broken_peers_become_visible_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), "state.sqlite").await;
    hub.engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    let d = hub
        .engine
        .deliver("59350S00", &Picky, Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!((d.rejected, d.dead_lettered, d.applied), (1, 1, 0));
    let mut statuses: Vec<(TransferStatus, Option<String>)> = hub
        .engine
        .state()
        .transfers_of("CD059", None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.status, t.reason))
        .collect();
    statuses.sort();
    assert_eq!(statuses[0].0, TransferStatus::Rejected);
    assert!(
        statuses[0]
            .1
            .as_deref()
            .unwrap()
            .contains("STRUCTURE_INCONNUE")
    );
    assert_eq!(statuses[1].0, TransferStatus::DeadLettered);
    // The dead letter waits in the transport for a person to replay it.
    assert_eq!(
        hub.transport.dead_letters("59350S00").await.unwrap().len(),
        1
    );
    let events: Vec<String> = hub
        .engine
        .journal()
        .entries(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(
        events.contains(&"rejected".to_owned()) && events.contains(&"dead_lettered".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn two_sources_about_one_person_do_not_resend_each_other_every_night() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), "state.sqlite").await;
    // Léa as the SOLIS export has her, and as the CNAF file has her (same CAF number
    // and role, so the same person, but not the same content).
    let solis: Jeune = serde_json::from_str(LEA).unwrap();
    let mut cnaf = solis.clone();
    cnaf.sources = serde_json::from_str(
        r#"[{"system":"cnaf","organisation":"CAF591","record_id":"1234567/1"}]"#,
    )
    .unwrap();
    cnaf.identifiants.solis = None;
    let from_cnaf = Party::new(OrgKind::Cd, "CD059", System::Cnaf);
    for night in 0..3 {
        let a = hub
            .engine
            .send("brsa-orientation", cd059(), ml("59350S00"), [solis.clone()])
            .await
            .unwrap();
        let b = hub
            .engine
            .send(
                "brsa-orientation",
                from_cnaf,
                ml("59350S00"),
                [cnaf.clone()],
            )
            .await
            .unwrap();
        let expected = if night == 0 { (1, 1) } else { (0, 0) };
        assert_eq!((a.sent, b.sent), expected, "night {night}");
    }
}

/// A transport whose acks never reach the store, as when the hub dies right after
/// delivering: the deliveries come back later.
#[derive(Debug)]
struct AcksLost(Arc<dyn Transport>);

#[derive(Debug)]
struct LostSub(Box<dyn passerelle_transport::Subscription>);

#[derive(Debug)]
struct LostAck;

#[async_trait]
impl passerelle_transport::Settle for LostAck {
    async fn ack(self: Box<Self>) -> passerelle_transport::Result<()> {
        Err(passerelle_transport::TransportError::Unavailable(
            "the hub died before its ack".into(),
        ))
    }
    async fn retry(
        self: Box<Self>,
        _: Duration,
    ) -> passerelle_transport::Result<passerelle_transport::Settled> {
        Ok(passerelle_transport::Settled::Retried)
    }
    async fn dead_letter(self: Box<Self>, _: &str) -> passerelle_transport::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl passerelle_transport::Subscription for LostSub {
    async fn next(&mut self) -> passerelle_transport::Result<passerelle_transport::Delivery> {
        let d = self.0.next().await?;
        // The real delivery is dropped unsettled: it comes back after its lease.
        Ok(passerelle_transport::Delivery::new(
            d.envelope.clone(),
            d.message_id.clone(),
            d.delivery_count,
            Box::new(LostAck),
        ))
    }
    async fn close(self: Box<Self>, timeout: Duration) -> passerelle_transport::Result<usize> {
        self.0.close(timeout).await
    }
}

#[async_trait]
impl Transport for AcksLost {
    async fn declare_recipient(&self, r: &str) -> passerelle_transport::Result<()> {
        self.0.declare_recipient(r).await
    }
    async fn publish(
        &self,
        e: passerelle_transport::Envelope,
    ) -> passerelle_transport::Result<passerelle_transport::Confirmed> {
        self.0.publish(e).await
    }
    async fn subscribe(
        &self,
        r: &str,
    ) -> passerelle_transport::Result<Box<dyn passerelle_transport::Subscription>> {
        Ok(Box::new(LostSub(self.0.subscribe(r).await?)))
    }
    async fn dead_letters(
        &self,
        r: &str,
    ) -> passerelle_transport::Result<Vec<passerelle_transport::DeadLetter>> {
        self.0.dead_letters(r).await
    }
    async fn dead_letter(
        &self,
        id: &passerelle_transport::DeadLetterId,
    ) -> passerelle_transport::Result<passerelle_transport::DeadLetter> {
        self.0.dead_letter(id).await
    }
    async fn replay(
        &self,
        id: &passerelle_transport::DeadLetterId,
    ) -> passerelle_transport::Result<passerelle_transport::Confirmed> {
        self.0.replay(id).await
    }
    async fn close(&self) -> passerelle_transport::Result<()> {
        self.0.close().await
    }
}

#[tokio::test]
async fn receipts_are_recorded_before_the_messages_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::open(dir.path()).unwrap();
    keyring.generate("59350S00").unwrap();
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let inner: Arc<dyn Transport> = Arc::new(
        EmbeddedConfig::new(dir.path().join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let engine = Engine::new(
        Arc::new(Policy::load(workspace().join("schemas/policy/flows.toml")).unwrap()),
        HubState::open(&dir.path().join("state.sqlite"))
            .await
            .unwrap(),
        JournalConfig::sqlite_file(&dir.path().join("journal.sqlite"))
            .build()
            .await
            .unwrap(),
        Arc::new(AcksLost(inner)),
        Arc::new(KeyringSealer::new(keyring)),
        pseudonyms,
    )
    .await
    .unwrap();
    let sent = engine
        .send("brsa-orientation", cd059(), ml("59350S00"), records())
        .await
        .unwrap();
    assert_eq!(sent.sent, 2);
    let peer = Peer::default();
    // The ack fails, as if the process died there: the delivery stops with an error…
    assert!(
        engine
            .deliver("59350S00", &peer, Duration::from_millis(300))
            .await
            .is_err()
    );
    // …but the peer's answers are already the sender's receipts.
    let counts = engine
        .state()
        .status_counts("brsa-orientation")
        .await
        .unwrap();
    assert_eq!(counts, vec![(TransferStatus::Applied, 2)]);
    assert_eq!(peer.applied.lock().unwrap().len(), 2);
}
