//! A whole night through `Night`: a source feeding two flows with a refused item, routing,
//! acknowledgement after sending, delivery per flow, a file peer answering later, and a
//! reply that goes back only about persons its recipient sent first (with the
//! recipient's own reference filled in). Every night runs twice: with the hub state in
//! SQLite, and in PostgreSQL (`PASSERELLE_TEST_PG_URL`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use passerelle_audit::JournalConfig;
use passerelle_connector::{
    AckToken, ConnectorError, Delivery, LateReceipts, Receipt, ReceiptSource, ReceiptStatus,
    RecordIssue, Sink, Source, SourceItem,
};
use passerelle_crypto::Keyring;
use passerelle_hub::routes::{self, Territoires};
use passerelle_hub::*;
use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Policy, System};
use passerelle_transport::embedded::EmbeddedConfig;

mod common;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A source over a list, remembering what was acknowledged.
struct ListSource {
    items: Vec<SourceItem>,
    acked: Arc<Mutex<Vec<AckToken>>>,
}

#[async_trait]
impl Source for ListSource {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        let n = self.items.len().min(3);
        Ok(self.items.drain(..n).collect())
    }
    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError> {
        self.acked.lock().unwrap().extend_from_slice(tokens);
        Ok(())
    }
}

/// A peer: applies API flows at once, takes file flows as "delivered" and keeps them
/// for a later answer.
#[derive(Default)]
struct Peer {
    got: Mutex<Vec<Delivery>>,
}

#[async_trait]
impl Sink for Peer {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        let status = if d.flow == "brsa-suivi" {
            ReceiptStatus::Delivered
        } else {
            ReceiptStatus::Applied { peer_ref: None }
        };
        let id = d.transfer_id.clone();
        self.got.lock().unwrap().push(d);
        Ok(Receipt {
            transfer_id: id,
            status,
        })
    }
}

/// The file peer's answers: everything it was given, applied.
struct Answers {
    peer: Arc<Peer>,
    acked: Vec<AckToken>,
}

#[async_trait]
impl ReceiptSource for Answers {
    async fn next_receipts(&mut self) -> Result<Vec<LateReceipts>, ConnectorError> {
        if !self.acked.is_empty() {
            return Ok(Vec::new());
        }
        let receipts: Vec<Receipt> = self
            .peer
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.flow == "brsa-suivi")
            .map(|d| Receipt {
                transfer_id: d.transfer_id.clone(),
                status: ReceiptStatus::Applied { peer_ref: None },
            })
            .collect();
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![LateReceipts {
            receipts,
            ack: AckToken("SOLIS_ACK_1.xml".into()),
        }])
    }
    async fn ack(&mut self, token: &AckToken) -> Result<(), ConnectorError> {
        self.acked.push(token.clone());
        Ok(())
    }
}

fn jeune(json: &str) -> Jeune {
    serde_json::from_str(json).unwrap()
}

/// Two young people the CD orients to the ML (one known to SOLIS by id), one oriented
/// to France Travail, and a line SOLIS could not read.
fn solis_items() -> Vec<SourceItem> {
    let item = |j: Option<Jeune>, n: usize| SourceItem {
        outcome: j.ok_or_else(|| {
            vec![RecordIssue {
                reference: "ligne-3".into(),
                line: Some(3),
                field: "etat_civil.date_naissance".into(),
                reason: "invalid date".into(),
            }]
        }),
        warnings: Vec::new(),
        ack: AckToken(format!("line-{n}")),
    };
    vec![
        item(
            Some(jeune(
                r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND1"}],
            "identifiants":{"solis":"IND0000001","caf":{"organisme":"CAF","numero_allocataire":"1234567"}},
            "etat_civil":{"nom_naissance":"Martin","prenoms":["Inès"],"date_naissance":"2005-01-02"},
            "orientation":{"type":"sociale","organisme":{"type":"ML","code":"59350S00"}}}"#,
            )),
            1,
        ),
        item(
            Some(jeune(
                r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND2"}],
            "identifiants":{"solis":"IND0000002"},"rsa":{"etat_droit":"2"},
            "etat_civil":{"nom_naissance":"Petit","prenoms":["Hugo"],"date_naissance":"2004-05-06"},
            "orientation":{"type":"professionnelle","organisme":{"type":"FT","code":"FT59"}}}"#,
            )),
            2,
        ),
        item(None, 3),
        item(
            Some(jeune(
                r#"{"schema":"passerelle.jeune/1","sources":[{"system":"solis","organisation":"CD059","record_id":"IND4"}],
            "identifiants":{"solis":"IND0000004"},"rsa":{"etat_droit":"2"},
            "etat_civil":{"nom_naissance":"Roux","prenoms":["Lina"],"date_naissance":"2006-07-08"},
            "orientation":{"type":"sociale","organisme":{"type":"ML","code":"59350S00"}}}"#,
            )),
            4,
        ),
    ]
}

/// What the ML's I-MILO says a few days later: Inès (same CAF number) and someone the
/// CD never sent, both followed and known to the CAF.
fn imilo_items() -> Vec<SourceItem> {
    [
        r#"{"schema":"passerelle.jeune/1","sources":[{"system":"imilo","organisation":"59350S00","record_id":"101"}],
            "identifiants":{"imilo_dossier":"101","caf":{"organisme":"CAF","numero_allocataire":"1234567"}},
            "etat_civil":{"nom_naissance":"Martin","prenoms":["Inès"],"date_naissance":"2005-01-02"},
            "accompagnement":{"dispositif":"CEJ","date_debut":"2026-11-02"}}"#,
        r#"{"schema":"passerelle.jeune/1","sources":[{"system":"imilo","organisation":"59350S00","record_id":"102"}],
            "identifiants":{"imilo_dossier":"102","caf":{"organisme":"CAF","numero_allocataire":"7654321"}},
            "etat_civil":{"nom_naissance":"Leroy","prenoms":["Sami"],"date_naissance":"2003-03-03"},
            "accompagnement":{"dispositif":"PACEA","date_debut":"2026-10-01"}}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, j)| SourceItem {
        outcome: Ok(jeune(j)),
        warnings: Vec::new(),
        ack: AckToken(format!("dossier-{i}")),
    })
    .collect()
}

/// An engine under `dir`, its state in SQLite there, or in PostgreSQL at `pg`.
async fn engine(dir: &Path, pg: Option<&str>) -> Engine {
    let keyring = Keyring::open(dir).unwrap();
    for org in ["59350S00", "CD059"] {
        keyring.generate(org).unwrap();
    }
    let pseudonyms = keyring.pseudonym_key().unwrap();
    let transport = Arc::new(
        EmbeddedConfig::new(dir.join("queue.sqlite"))
            .build()
            .await
            .unwrap(),
    );
    let journal = JournalConfig::sqlite_file(&dir.join("journal.sqlite"))
        .build()
        .await
        .unwrap();
    let state = match pg {
        None => HubState::open(&dir.join("state.sqlite")).await.unwrap(),
        Some(url) => HubState::connect(url).await.unwrap(),
    };
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

async fn a_night_routes_acknowledges_delivers_and_settles_late_answers(pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), pg).await;
    let peer = Arc::new(Peer::default());
    let solis_acked = Arc::new(Mutex::new(Vec::new()));
    let cd = Org::new(OrgKind::Cd, "CD059", System::Solis);

    // Night 1: the CD orients.
    let mut night = Night {
        sources: vec![SourcePlan {
            name: "solis".into(),
            source: Box::new(ListSource {
                items: solis_items(),
                acked: solis_acked.clone(),
            }),
            flows: vec![FlowRoute::new(
                "brsa-orientation",
                routes::brsa_orientation(cd, Arc::new(Territoires::default())),
            )],
            cursor: None,
            reads: Default::default(),
        }],
        sinks: vec![SinkPlan {
            recipient: "59350S00".into(),
            sink: peer.clone(),
        }],
        receipts: Vec::new(),
        idle: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let report = night.run(&engine, &|_| {}).await.unwrap();
    let r = &report.flows["brsa-orientation"];
    assert_eq!(r.read, 4);
    assert_eq!(r.refused_at_source, 1);
    assert_eq!(r.unrouted, 1, "oriented to France Travail: not this flow");
    assert_eq!(r.sent.sent, 2);
    assert_eq!(r.delivered.applied, 2);
    assert!(report.completed());
    // Every item is acknowledged, the refused one too (it is reported, not retried).
    assert_eq!(solis_acked.lock().unwrap().len(), 4);

    // Night 2: the ML follows; only Inès goes back, carrying the CD's own id.
    let mut night = Night {
        sources: vec![SourcePlan {
            name: "imilo".into(),
            source: Box::new(ListSource {
                items: imilo_items(),
                acked: Arc::new(Mutex::new(Vec::new())),
            }),
            flows: vec![
                FlowRoute::new("brsa-suivi", routes::brsa_suivi(System::Solis)).replies_only(),
            ],
            cursor: None,
            reads: Default::default(),
        }],
        sinks: vec![SinkPlan {
            recipient: "CD059".into(),
            sink: peer.clone(),
        }],
        receipts: vec![Box::new(Answers {
            peer: peer.clone(),
            acked: Vec::new(),
        })],
        idle: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let report = night.run(&engine, &|_| {}).await.unwrap();
    let r = &report.flows["brsa-suivi"];
    assert_eq!(r.read, 2);
    assert_eq!(r.sent.not_known, 1, "Sami was never sent by the CD");
    assert_eq!(r.sent.sent, 1);
    assert_eq!(r.delivered.delivered, 1);
    assert_eq!(r.late.applied, 1, "the ACK file settles it");
    assert_eq!(r.awaiting(), 0);
    let suivi: Vec<Delivery> = peer
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.flow == "brsa-suivi")
        .cloned()
        .collect();
    assert_eq!(suivi.len(), 1);
    assert_eq!(
        suivi[0]
            .record
            .identifiants
            .solis
            .as_ref()
            .map(|s| s.as_str()),
        Some("IND0000001"),
        "the CD's own reference is filled in"
    );
    assert_eq!(suivi[0].sender, "59350S00");
    let counts = engine.state().status_counts("brsa-suivi").await.unwrap();
    assert_eq!(counts, vec![(TransferStatus::Applied, 1)]);
    assert!(engine.journal().verify().await.unwrap().is_intact());

    // Night 3: nothing changed, nothing moves.
    let mut night = Night {
        sources: vec![SourcePlan {
            name: "imilo".into(),
            source: Box::new(ListSource {
                items: imilo_items(),
                acked: Arc::new(Mutex::new(Vec::new())),
            }),
            flows: vec![
                FlowRoute::new("brsa-suivi", routes::brsa_suivi(System::Solis)).replies_only(),
            ],
            cursor: None,
            reads: Default::default(),
        }],
        ..Default::default()
    };
    let report = night.run(&engine, &|_| {}).await.unwrap();
    assert_eq!(report.flows["brsa-suivi"].sent.sent, 0);
    assert_eq!(report.flows["brsa-suivi"].sent.unchanged, 1);
}

/// A peer that cannot be reached.
struct Down;

#[async_trait]
impl Sink for Down {
    async fn deliver(&self, _d: Delivery) -> Result<Receipt, ConnectorError> {
        Err(ConnectorError::Unavailable {
            peer: "imilo.example.fr".into(),
            reason: "connection refused".into(),
            retry_after: None,
        })
    }
}

/// A source whose peer cannot be reached.
struct DownSource;

#[async_trait]
impl Source for DownSource {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        Err(ConnectorError::Unavailable {
            peer: "faj.example.fr".into(),
            reason: "connection refused".into(),
            retry_after: None,
        })
    }
    async fn ack(&mut self, _tokens: &[AckToken]) -> Result<(), ConnectorError> {
        Ok(())
    }
}

async fn a_peer_down_fails_its_own_part_and_what_waits_goes_the_next_night(pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), pg).await;
    let cd = Org::new(OrgKind::Cd, "CD059", System::Solis);
    let solis = |acked: &Arc<Mutex<Vec<AckToken>>>| SourcePlan {
        name: "solis".into(),
        source: Box::new(ListSource {
            items: solis_items(),
            acked: acked.clone(),
        }),
        flows: vec![FlowRoute::new(
            "brsa-orientation",
            routes::brsa_orientation(cd.clone(), Arc::new(Territoires::default())),
        )],
        cursor: None,
        reads: Default::default(),
    };
    let acked = Arc::new(Mutex::new(Vec::new()));
    // The ML's system is down, and so is another source's peer.
    let mut night = Night {
        sources: vec![
            SourcePlan::new("faj:FAJ059", Box::new(DownSource), Vec::new()),
            solis(&acked),
        ],
        sinks: vec![SinkPlan {
            recipient: "59350S00".into(),
            sink: Arc::new(Down),
        }],
        idle: Some(Duration::from_millis(300)),
        deadlines: passerelle_hub::Deadlines {
            peer: Some(Duration::from_secs(20)),
            night: Some(Duration::from_secs(60)),
            failures: 1,
        },
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let report = night.run(&engine, &|_| {}).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(!report.completed());
    let failed: Vec<&String> = report.failed.keys().collect();
    assert_eq!(failed, ["delivery to 59350S00", "source faj:FAJ059"]);
    assert!(report.failed["source faj:FAJ059"].contains("faj.example.fr"));
    assert!(
        report.failed["delivery to 59350S00"].contains("its transfers wait in their queue"),
        "{:?}",
        report.failed
    );
    // The source that worked was read, sent and acknowledged; nothing dead-lettered.
    let r = &report.flows["brsa-orientation"];
    assert_eq!(r.sent.sent, 2);
    assert_eq!(r.delivered.dead_lettered, 0);
    assert_eq!(acked.lock().unwrap().len(), 4);

    // The next night, the ML is back: what waited is delivered. A transfer tried more
    // than once in the first night waits out its retry delay (2, then 4 s) before it
    // shows in the queue again: the night stays open long enough to see it (on a
    // loaded machine a 300 ms idle ended the night before the second one came back).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peer = Arc::new(Peer::default());
    let mut night = Night {
        sinks: vec![SinkPlan {
            recipient: "59350S00".into(),
            sink: peer.clone(),
        }],
        idle: Some(Duration::from_secs(6)),
        ..Default::default()
    };
    let report = night.run(&engine, &|_| {}).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.flows["brsa-orientation"].delivered.applied, 2);
    assert_eq!(peer.got.lock().unwrap().len(), 2);
}

/// A file peer that takes everything and never answers.
struct Silent;

#[async_trait]
impl Sink for Silent {
    async fn deliver(&self, d: Delivery) -> Result<Receipt, ConnectorError> {
        Ok(Receipt {
            transfer_id: d.transfer_id,
            status: ReceiptStatus::Delivered,
        })
    }
}

async fn a_transfer_never_answered_is_settled_then_sent_again(pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), pg).await;
    let cd = Org::new(OrgKind::Cd, "CD059", System::Solis);
    let night = |answer_within: Option<Duration>| Night {
        sources: vec![SourcePlan::new(
            "solis",
            Box::new(ListSource {
                items: solis_items(),
                acked: Arc::new(Mutex::new(Vec::new())),
            }),
            vec![FlowRoute::new(
                "brsa-orientation",
                routes::brsa_orientation(cd.clone(), Arc::new(Territoires::default())),
            )],
        )],
        sinks: vec![SinkPlan {
            recipient: "59350S00".into(),
            sink: Arc::new(Silent),
        }],
        idle: Some(Duration::from_millis(300)),
        answer_within,
        ..Default::default()
    };
    let report = night(None).run(&engine, &|_| {}).await.unwrap();
    assert_eq!(report.flows["brsa-orientation"].delivered.delivered, 2);
    // Read again with no answer in between: unchanged, still waiting.
    let report = night(Some(Duration::from_secs(3600)))
        .run(&engine, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.flows["brsa-orientation"].sent.unchanged, 2);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // Past the bound: settled, named, and sent again by the same night's source.
    let report = night(Some(Duration::ZERO))
        .run(&engine, &|_| {})
        .await
        .unwrap();
    let why = &report.failed["answers from 59350S00"];
    assert!(why.starts_with("2 transfers had no answer"), "{why}");
    assert_eq!(report.flows["brsa-orientation"].sent.sent, 2);
    let rows = engine.state().transfers_of("CD059", None).await.unwrap();
    let dead: Vec<_> = rows
        .iter()
        .filter(|r| r.status == TransferStatus::DeadLettered)
        .collect();
    assert_eq!(dead.len(), 2);
    assert!(dead[0].reason.as_deref().unwrap().starts_with("NO_ANSWER"));
    // The same content keeps its transfer id: the peer got it again (delivered), and
    // its answer, when it comes, still settles it (applied comes after dead-lettered).
    assert_eq!(rows.len(), 2);
    assert_eq!(report.flows["brsa-orientation"].delivered.delivered, 2);
}

/// The state two instances share: PostgreSQL at `pg`, or one SQLite file under `dir`.
fn shared_url(dir: &Path, pg: Option<&str>) -> String {
    pg.map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite:{}", dir.join("state.sqlite").display()))
}

/// The same plan on every instance, for the night `name`.
fn coordinated_night(
    instance: &str,
    name: &str,
    acked: &Arc<Mutex<Vec<AckToken>>>,
    wait: Duration,
) -> Night {
    let cd = Org::new(OrgKind::Cd, "CD059", System::Solis);
    Night {
        sources: vec![SourcePlan::new(
            "solis:RSA",
            Box::new(ListSource {
                items: solis_items(),
                acked: acked.clone(),
            }),
            vec![FlowRoute::new(
                "brsa-orientation",
                routes::brsa_orientation(cd, Arc::new(Territoires::default())),
            )],
        )],
        idle: Some(Duration::from_millis(100)),
        coordination: Coordination {
            instance: instance.into(),
            wait,
            night: Some(name.into()),
            lease: Duration::from_secs(3),
        },
        ..Default::default()
    }
}

async fn two_instances_on_the_same_night_read_each_source_once(pg: Option<&str>) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = shared_url(da.path(), pg);
    let (a, b) = (
        engine(da.path(), Some(&url)).await,
        engine(db.path(), Some(&url)).await,
    );
    let (acked_a, acked_b) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let wait = Duration::from_secs(30);
    let mut na = coordinated_night("hub-a", "2026-12-07T02:00", &acked_a, wait);
    let mut nb = coordinated_night("hub-b", "2026-12-07T02:00", &acked_b, wait);
    // Both at once: one runs, the other waits for it, then finds the source read.
    let (ra, rb) = tokio::join!(na.run(&a, &|_| {}), nb.run(&b, &|_| {}));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let (la, lb) = (acked_a.lock().unwrap().len(), acked_b.lock().unwrap().len());
    assert_eq!(la + lb, 4, "the source's four items read once in all");
    assert!(la == 0 || lb == 0, "by one instance: {la} and {lb}");
    let sent = |r: &NightReport| r.flows.get("brsa-orientation").map_or(0, |f| f.sent.sent);
    assert_eq!(sent(&ra) + sent(&rb), 2);
    assert!(ra.failed.is_empty() && rb.failed.is_empty());
    // Another night is other work: read again (unchanged by then).
    let acked_c = Arc::new(Mutex::new(Vec::new()));
    coordinated_night("hub-b", "2026-12-08T02:00", &acked_c, wait)
        .run(&b, &|_| {})
        .await
        .unwrap();
    assert_eq!(acked_c.lock().unwrap().len(), 4);
}

async fn a_dead_instances_source_is_taken_over(pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let url = shared_url(dir.path(), pg);
    let engine = engine(dir.path(), Some(&url)).await;
    // hub-dead claimed the source and died (no renewal): its lease runs out.
    let lease = Duration::from_millis(1500);
    let t = std::time::Instant::now();
    assert!(
        engine
            .state()
            .claims("2026-12-07T02:00", "hub-dead")
            .claim(
                passerelle_hub::state::coord::WorkKind::Source,
                "solis:RSA",
                lease
            )
            .await
            .unwrap()
    );
    let acked = Arc::new(Mutex::new(Vec::new()));
    let report = coordinated_night("hub-b", "2026-12-07T02:00", &acked, Duration::ZERO)
        .run(&engine, &|_| {})
        .await
        .unwrap();
    assert!(
        t.elapsed() >= lease,
        "waited for the lease: {:?}",
        t.elapsed()
    );
    assert_eq!(acked.lock().unwrap().len(), 4, "taken over and read whole");
    assert_eq!(report.flows["brsa-orientation"].sent.sent, 2);
    let st = engine
        .state()
        .claims("2026-12-07T02:00", "x")
        .state_of(passerelle_hub::state::coord::WorkKind::Source, "solis:RSA")
        .await
        .unwrap()
        .unwrap();
    assert!(st.done);
    assert_eq!(st.holder.as_deref(), Some("hub-b"));
}

async fn a_second_night_is_refused_naming_the_first(pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let url = shared_url(dir.path(), pg);
    let engine = engine(dir.path(), Some(&url)).await;
    let other = HubState::connect(&url).await.unwrap();
    let held = other
        .night_lock("hub-a (pid 7)", Duration::ZERO)
        .await
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut night = coordinated_night(
        "hub-b",
        "2026-12-07T02:00",
        &acked,
        Duration::from_millis(300),
    );
    let e = night.run(&engine, &|_| {}).await.unwrap_err();
    assert!(matches!(&e, EngineError::Coord(c) if c.is_busy()), "{e}");
    assert!(
        e.to_string()
            .starts_with("a night is running on hub-a (pid 7) since "),
        "{e}"
    );
    assert!(acked.lock().unwrap().is_empty(), "nothing read");
    held.release().await;
    night.run(&engine, &|_| {}).await.unwrap();
    assert_eq!(acked.lock().unwrap().len(), 4);
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::common::PgDatabase::new("hubnight").await {
                        super::$name(Some(&db.url)).await;
                        db.finish().await;
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    a_night_routes_acknowledges_delivers_and_settles_late_answers,
    a_peer_down_fails_its_own_part_and_what_waits_goes_the_next_night,
    a_transfer_never_answered_is_settled_then_sent_again,
    two_instances_on_the_same_night_read_each_source_once,
    a_dead_instances_source_is_taken_over,
    a_second_night_is_refused_naming_the_first,
);
