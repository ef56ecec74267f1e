//! End-to-end nights on real RabbitMQ and PostgreSQL with every peer simulator: every
//! flow moves; `kill -9` of `passerelle sync` then a rerun, and a broker restart during
//! a night, lose nothing and duplicate nothing; a peer down all night ends in visible
//! dead letters (and a replay); an `art9` field is projected away with the attempt
//! journaled.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{
    NIGHT_FLOWS, amqp, fresh_database, imilo_faults, imilo_stats, on_services, services,
    status_counts,
};
use passerelle_audit::Filter;
use passerelle_connector::{ConnectorError, Delivery, Receipt, Sink, Source};
use passerelle_hub::{NightReport, TransferStatus};
use passerelle_model::Jeune;
use passerelle_runtime::wiring::{self, Hub};
use passerelle_world::{World, WorldOptions};

/// Test 1: a whole night, every flow, on RabbitMQ with the journal on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_moves_on_rabbitmq_with_the_journal_on_postgres() {
    let Some(s) = services("every_flow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(&dir.path().join("world"), &WorldOptions::new(300, 21))
        .await
        .unwrap();
    let journal = fresh_database(&s.pg_url, "every_flow").await;
    let config = on_services(&world.config, amqp(&s.amqp_url, "every-flow"), &journal);
    let hub = Hub::open(&config, &dir.path().join("hub")).await.unwrap();
    assert_eq!(hub.engine.journal().engine(), "postgres");

    let requests = world.conseiller_requests(&hub, 6).await.unwrap();
    assert!(requests.sent > 0, "{requests:?}");
    let mut night = wiring::plan(&config, &hub, &[]).await.unwrap();
    let box_files = common::BoxFiles::default();
    let between = || -> Result<(), wiring::BoxError> {
        box_files.peers_answer(&world)?;
        std::thread::sleep(Duration::from_millis(600));
        Ok(())
    };
    let mut report = night
        .run_with(&hub.engine, &|_| {}, Some(&between))
        .await
        .unwrap();
    let demande = report.flows.entry("faj-demande".into()).or_default();
    demande.sent += &requests;

    for flow in [
        "brsa-orientation",
        "ase-majorite",
        "of-signalement",
        "of-suivi",
        "faj-demande",
        "faj-decision",
    ] {
        let r = report
            .flows
            .get(flow)
            .unwrap_or_else(|| panic!("no {flow} in {report:?}"));
        assert!(r.sent.sent > 0, "{flow} moved nothing: {r:?}");
        assert_eq!(r.delivered.dead_lettered, 0, "{flow}: {r:?}");
        assert_eq!(
            r.sent.sent,
            r.applied() + r.rejected() + r.awaiting(),
            "{flow}: every transfer has its receipt: {r:?}"
        );
    }
    let o = &report.flows["brsa-orientation"];
    assert_eq!(o.sent.sent, o.applied(), "{o:?}");
    // Reports in the box wait for the CD's answer (read the next night).
    let of = &report.flows["of-signalement"];
    assert_eq!(of.sent.sent, of.awaiting(), "{of:?}");

    // The sender's view: a receipt for every transfer, final but for the reports the CD
    // has yet to answer; each applied once at I-MILO, written once for the CD.
    let counts = status_counts(hub.engine.state(), &NIGHT_FLOWS).await;
    let stored: u64 = counts.values().flat_map(|c| c.values()).sum();
    let sent: u64 = report.flows.values().map(|r| r.sent.sent).sum();
    assert_eq!(stored, sent, "{counts:?}");
    common::assert_once_everywhere(hub.engine.state(), &world, &box_files).await;

    let v = hub.engine.journal().verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert!(
        v.entries >= 2 * sent,
        "{} entries for {sent} transfers",
        v.entries
    );
    hub.close().await.unwrap();
    world.stop().await;
}

/// Test 4: I-MILO down all night. Deliveries are retried, then dead-lettered; the
/// sender sees it (report, state, journal, the dead-letter queue); once I-MILO is back,
/// a replay gets them applied, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_all_night_ends_in_dead_letters_that_replay() {
    let Some(s) = services("peer_down") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(&dir.path().join("world"), &WorldOptions::new(80, 41))
        .await
        .unwrap();
    let mut base = world.config.clone();
    // The client gives up at once: retries are the transport's.
    base.imilo.as_mut().unwrap().client.retry.max_attempts = 1;
    let mut a = amqp(&s.amqp_url, "peer-down");
    a.max_deliveries = 3;
    a.retry_delays_ms = vec![100];
    let journal = fresh_database(&s.pg_url, "peer_down").await;
    let config = on_services(&base, a, &journal);
    let hub = Hub::open(&config, &dir.path().join("hub")).await.unwrap();
    let engine = hub.engine.as_ref();
    let flow = "brsa-orientation";

    let mut night = wiring::plan(&config, &hub, &[flow.to_owned()])
        .await
        .unwrap();
    only(&mut night, flow);
    night.idle = Some(Duration::from_millis(600));
    // No cap on failed batches in a row: this test follows each delivery to the
    // transport's dead letters (the cap, which leaves them queued for the next night,
    // has its own tests in the hub and the cli).
    night.deadlines.failures = 0;
    let mut report = NightReport::default();
    night.collect(engine, &mut report, &|_| {}).await.unwrap();
    night.send(engine, &mut report, &|_| {}).await.unwrap();
    let sent = report.flows[flow].sent.sent;
    assert!(sent > 0, "{report:?}");

    // I-MILO answers 503 to everything from now on.
    imilo_faults(world.imilo_addr, serde_json::json!({"rate_503": 1.0})).await;
    night.deliver(engine, &mut report, &|_| {}).await.unwrap();
    let r = &report.flows[flow];
    assert_eq!(r.delivered.dead_lettered, sent, "{r:?}");
    assert_eq!(r.delivered.applied, 0, "{r:?}");
    assert_eq!(r.delivered.retried, 2 * sent, "two retries each: {r:?}");
    assert!(!report.completed());
    let stats = imilo_stats(world.imilo_addr).await;
    assert_eq!(stats["faults"]["http_503"], 3 * sent, "{stats}");
    assert_eq!(stats["writes"]["orientations"], 0, "{stats}");

    // The sender's view.
    let counts = status_counts(engine.state(), &[flow]).await;
    assert_eq!(
        counts[flow].get(&TransferStatus::DeadLettered).copied(),
        Some(sent),
        "{counts:?}"
    );
    let dead_entries: Vec<_> = engine
        .journal()
        .entries(&Filter {
            flow: Some(flow.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "dead_lettered")
        .collect();
    assert_eq!(dead_entries.len() as u64, sent);
    assert!(
        dead_entries
            .iter()
            .all(|e| e.subject.is_some() && e.reason.as_deref().is_some_and(|r| !r.is_empty())),
        "{dead_entries:?}"
    );

    // The dead letters, per ML, on the broker.
    let mls: BTreeSet<String> = engine
        .state()
        .transfers_of("CD059", Some(flow))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.recipient)
        .collect();
    let mut letters = Vec::new();
    for ml in &mls {
        letters.extend(hub.transport.dead_letters(ml).await.unwrap());
    }
    assert_eq!(letters.len() as u64, sent, "dead letters on the broker");
    for l in &letters {
        assert_eq!(l.envelope.header.flow, flow);
        assert!(l.delivery_count >= 3, "{}", l.delivery_count);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&l.envelope.payload).is_err(),
            "a dead letter holds a sealed payload"
        );
    }

    // I-MILO is back: replaying the dead letters gets each applied, once.
    imilo_faults(world.imilo_addr, serde_json::json!({})).await;
    for l in &letters {
        hub.transport.replay(&l.id).await.unwrap();
    }
    let mut again = NightReport::default();
    night.deliver(engine, &mut again, &|_| {}).await.unwrap();
    assert_eq!(again.flows[flow].delivered.applied, sent, "{again:?}");
    let counts = status_counts(engine.state(), &[flow]).await;
    assert_eq!(
        counts[flow].get(&TransferStatus::Applied).copied(),
        Some(sent),
        "{counts:?}"
    );
    let stats = imilo_stats(world.imilo_addr).await;
    assert_eq!(stats["writes"]["orientations"], sent, "{stats}");
    for ml in &mls {
        assert!(hub.transport.dead_letters(ml).await.unwrap().is_empty());
    }
    assert!(engine.journal().verify().await.unwrap().is_intact());
    hub.close().await.unwrap();
    world.stop().await;
}

/// A sink that keeps what it is handed, then passes it on.
struct Recorder {
    inner: Arc<dyn Sink>,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

#[async_trait]
impl Sink for Recorder {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        self.seen.lock().unwrap().push(delivery.clone());
        self.inner.deliver(delivery).await
    }

    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        self.seen.lock().unwrap().extend(deliveries.iter().cloned());
        self.inner.deliver_batch(deliveries).await
    }
}

/// The personal values of a record that must never show in clear outside it.
fn personal_values(j: &Jeune) -> Vec<String> {
    let v = serde_json::to_value(j).unwrap();
    let mut out = Vec::new();
    let mut push = |x: &serde_json::Value| {
        if let Some(s) = x.as_str()
            && s.chars().count() >= 5
        {
            out.push(s.to_owned());
        }
    };
    for p in [
        "/etat_civil/nom_naissance",
        "/etat_civil/nom_usage",
        "/identifiants/nir",
        "/contact/email",
    ] {
        if let Some(x) = v.pointer(p) {
            push(x);
        }
    }
    for p in [
        "/etat_civil/prenoms",
        "/contact/telephones",
        "/sensible/commentaires",
        "/sensible/freins_sante",
    ] {
        if let Some(xs) = v.pointer(p).and_then(|x| x.as_array()) {
            xs.iter().for_each(&mut push);
        }
    }
    out
}

/// The SOLIS BRSA export's records, read from a copy of the export folder.
async fn solis_records(world: &World, copy: &Path) -> Vec<Jeune> {
    let solis = world.config.departements[0].solis.clone().unwrap();
    let from = solis.export_dir.clone().unwrap();
    std::fs::create_dir_all(copy).unwrap();
    for e in std::fs::read_dir(&from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    let mut c = solis;
    c.export_dir = Some(copy.to_owned());
    c.import_dir = None;
    let mut source = c.build_export_source().unwrap();
    let mut out = Vec::new();
    loop {
        let batch = source.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        out.extend(batch.into_iter().filter_map(|i| i.outcome.ok()));
    }
    out
}

/// Test 5: SOLIS records carrying `sensible` (observations, RQTH) go to I-MILO under
/// `brsa-orientation` without them; the journal holds a `denied` entry naming the
/// special fields for that subject; neither the journal database nor the broker holds
/// a personal value in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art9_fields_are_projected_away_and_the_attempt_journaled() {
    let Some(s) = services("art9") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(&dir.path().join("world"), &WorldOptions::new(200, 51))
        .await
        .unwrap();
    let records = solis_records(&world, &dir.path().join("solis-copy")).await;
    let special: BTreeMap<String, &Jeune> = records
        .iter()
        .filter(|j| !j.sensible.is_empty())
        .filter_map(|j| Some((j.identifiants.solis.as_ref()?.to_string(), j)))
        .collect();
    assert!(
        !special.is_empty(),
        "the SOLIS simulator wrote no Observations/Sante"
    );
    let mut secrets: BTreeSet<String> = records.iter().flat_map(personal_values).collect();
    secrets.retain(|s| s.len() >= 5);
    assert!(secrets.len() > 100, "{} values", secrets.len());

    let journal = fresh_database(&s.pg_url, "art9").await;
    let a = amqp(&s.amqp_url, "art9");
    let prefix = a.prefix.clone();
    let config = on_services(&world.config, a, &journal);
    let hub = Hub::open(&config, &dir.path().join("hub")).await.unwrap();
    let engine = hub.engine.as_ref();
    let flow = "brsa-orientation";
    let mut night = wiring::plan(&config, &hub, &[flow.to_owned()])
        .await
        .unwrap();
    only(&mut night, flow);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mls: BTreeSet<String> = config
        .imilo
        .as_ref()
        .unwrap()
        .structures
        .iter()
        .cloned()
        .collect();
    for plan in &mut night.sinks {
        if mls.contains(&plan.recipient) {
            plan.sink = Arc::new(Recorder {
                inner: plan.sink.clone(),
                seen: seen.clone(),
            });
        }
    }
    let mut report = NightReport::default();
    night.collect(engine, &mut report, &|_| {}).await.unwrap();
    night.send(engine, &mut report, &|_| {}).await.unwrap();
    assert!(report.flows[flow].sent.special_dropped > 0, "{report:?}");

    // On the broker: a sealed envelope, no personal value.
    let peeked = peek(&s.amqp_url, &prefix, &mls).await;
    assert!(!peeked.is_empty(), "no message waiting on the broker");
    for body in &peeked {
        assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
        let text = String::from_utf8_lossy(body);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a personal value on the broker"
            );
        }
    }

    night.deliver(engine, &mut report, &|_| {}).await.unwrap();
    let delivered = seen.lock().unwrap().clone();
    assert!(!delivered.is_empty());
    let mut checked = 0;
    for d in &delivered {
        assert!(
            d.record.sensible.is_empty(),
            "a delivered record carries special data"
        );
        if let Some(id) = &d.record.identifiants.solis
            && special.contains_key(&id.to_string())
        {
            checked += 1;
        }
    }
    assert!(checked > 0, "no record with special data was delivered");

    // The journal: a denied entry per such subject, naming the special fields; each
    // subject denied is one that was published (the transfer went on without them).
    let entries = engine
        .journal()
        .entries(&Filter {
            flow: Some(flow.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let denied: Vec<_> = entries.iter().filter(|e| e.event == "denied").collect();
    assert!(
        denied.len() >= checked,
        "{} denied for {checked}",
        denied.len()
    );
    let published: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.event == "published")
        .filter_map(|e| e.subject.as_deref())
        .collect();
    for e in &denied {
        assert!(!e.fields.is_empty());
        // Only special classes (art9, art10, nir) are named.
        assert!(
            e.fields
                .iter()
                .all(|f| passerelle_model::class_of(f).is_some_and(|c| c.is_special())),
            "{:?}",
            e.fields
        );
        assert!(
            e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("special-data"))
        );
        let subject = e
            .subject
            .as_deref()
            .expect("a denied entry names its subject");
        assert!(published.contains(subject));
    }
    assert!(
        denied
            .iter()
            .any(|e| e.fields.iter().any(|f| f == "sensible.commentaires")),
        "{denied:?}"
    );

    // Nothing personal in clear anywhere in the journal database.
    let dump = dump_database(&journal).await;
    assert!(dump.len() > 1000, "the journal database looks empty");
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "a personal value in clear in the journal database"
        );
    }
    assert!(engine.journal().verify().await.unwrap().is_intact());
    hub.close().await.unwrap();
    world.stop().await;
}

/// The bodies of the messages waiting in the recipients' queues, left in place.
/// Through a consumer, not basic.get: RabbitMQ refuses basic.get on a quorum queue with
/// single active consumer, which recipient queues are.
async fn peek(url: &str, prefix: &str, recipients: &BTreeSet<String>) -> Vec<Vec<u8>> {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in recipients {
        let queue = format!("{prefix}.q.{r}");
        // A channel each: a missing queue closes the channel it was asked on.
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let Ok(mut consumer) = ch
            .basic_consume(
                queue.as_str().into(),
                "peek".into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
        else {
            continue;
        };
        if let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
        {
            out.push(d.data.clone());
            d.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        ch.close(200, "peeked".into()).await.ok();
    }
    conn.close(0, "peeked".into()).await.ok();
    out
}

/// Every row of every table of the database, as JSON text.
async fn dump_database(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    assert!(!tables.is_empty());
    let mut dump = String::new();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {t} t"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for r in rows {
            dump.push_str(&r.get::<String, _>(0));
            dump.push('\n');
        }
    }
    conn.close().await.ok();
    dump
}

/// How a child `passerelle sync` ended.
struct Run {
    status: std::process::ExitStatus,
    killed: bool,
    stdout: String,
    stderr: String,
}

/// When to `kill -9` a sync.
#[derive(Debug, Clone, Copy)]
struct Kill<'a> {
    /// Once a stderr line contains this,
    at: &'a str,
    /// (then slowing I-MILO down to 100 ms a request and waiting for its first write,
    /// so that writes are in flight,)
    slow_imilo: Option<std::net::SocketAddr>,
    /// wait this long, then kill.
    after_ms: u64,
}

/// Runs `e2e-sync` on `config` and `data`; with `kill_at`, SIGKILLs it as soon
/// as a stderr line contains that text, after that many milliseconds.
async fn sync(bin: &Path, config: &Path, data: &Path, kill_at: Option<Kill<'_>>) -> Run {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env_remove("PASSERELLE_AMQP_URL")
        .env_remove("PASSERELLE_JOURNAL_URL")
        .env_remove("PASSERELLE_CONFIG")
        .env_remove("PASSERELLE_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start passerelle");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let mut killed = false;
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            if let Some(k) = &kill_at
                && line.contains(k.at)
            {
                if let Some(addr) = k.slow_imilo {
                    // Slowed down, a batch of 64 takes about 800 ms: once a write of
                    // this run is seen, its batch is still in flight.
                    let writes = |v: serde_json::Value| v["writes"]["orientations"].as_u64();
                    let before = writes(imilo_stats(addr).await);
                    imilo_faults(addr, serde_json::json!({"latency_ms": 100})).await;
                    for _ in 0..400 {
                        if writes(imilo_stats(addr).await) > before {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(k.after_ms)).await;
                child.start_kill().expect("cannot kill the sync");
                killed = true;
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("passerelle sync took more than 120 s");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .ok();
    let status = child.wait().await.unwrap();
    Run {
        status,
        killed,
        stdout,
        stderr,
    }
}

/// Test 2: `kill -9` of a sync process (`e2e-sync`, the library path of `passerelle
/// sync`) twice (once mid-send, once mid-delivery),
/// then reruns: nothing lost (the same transfers as a clean night of the same world,
/// each with its final receipt), nothing applied twice at I-MILO or SOLIS, the
/// journal intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_way_then_rerun_loses_nothing_and_duplicates_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let Some(s) = services("kill") else {
        return;
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_e2e-sync"));
    let dir = tempfile::tempdir().unwrap();
    let opts = WorldOptions::new(2000, 61);
    let mut world = World::start(&dir.path().join("world"), &opts)
        .await
        .unwrap();
    let journal = fresh_database(&s.pg_url, "kill").await;
    let config = on_services(&world.config, amqp(&s.amqp_url, "kill"), &journal);
    let text = common::config_toml(&config);
    let config_path = dir.path().join("passerelle.toml");
    let box_files = common::BoxFiles::default();
    std::fs::write(&config_path, &text).unwrap();
    let data = dir.path().join("hub");

    // Once its first source is read (sources partly sent, some acknowledged), then
    // during the deliveries to a slowed-down I-MILO (writes applied there whose
    // messages are not acknowledged yet).
    let kills = [
        Kill {
            at: " read; ",
            slow_imilo: None,
            after_ms: 0,
        },
        Kill {
            at: "imilo read; ",
            slow_imilo: Some(world.imilo_addr),
            after_ms: 200,
        },
    ];
    for kill_at in kills {
        let run = sync(bin, &config_path, &data, Some(kill_at)).await;
        imilo_faults(world.imilo_addr, serde_json::json!({})).await;
        assert!(
            run.killed && run.status.signal() == Some(9),
            "not killed at {kill_at:?}: {:?}\n{}",
            run.status,
            run.stderr
        );
    }
    let run = sync(bin, &config_path, &data, None).await;
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    // SOLIS answers its imports, the CD its box; the next night collects the answers.
    box_files.peers_answer(&world).unwrap();
    let run = sync(bin, &config_path, &data, None).await;
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("chain intact"), "{}", run.stdout);

    let state = passerelle_hub::HubState::open(&data.join("state.sqlite"))
        .await
        .unwrap();
    common::assert_once_everywhere(&state, &world, &box_files).await;
    let stats = imilo_stats(world.imilo_addr).await;
    eprintln!(
        "after the kills: I-MILO writes {}, replays {}",
        stats["writes"], stats["replays"]
    );
    assert!(
        stats["replays"].as_u64().is_some_and(|r| r > 0),
        "no write was in flight at the kill: the redelivery path was not exercised"
    );
    let reference = common::reference_night(&dir.path().join("reference"), &opts).await;
    assert_eq!(
        common::transfers_per_flow(&state).await,
        reference,
        "transfers per flow, after the kills vs a clean night"
    );
    let j = passerelle_audit::JournalConfig::new(journal)
        .build()
        .await
        .unwrap();
    assert!(j.verify().await.unwrap().is_intact());

    // Each transfer's steps once in the journal, as a person's Art. 15 report lists
    // them: published once, and applied or rejected once, redeliveries included.
    let key = passerelle_crypto::Keyring::open(&data)
        .unwrap()
        .pseudonym_key()
        .unwrap();
    type Step = (String, String, String, String);
    let mut journaled: BTreeMap<Step, u64> = BTreeMap::new();
    for e in j.entries(&Default::default()).await.unwrap() {
        if let (Some(s), Some(f), Some(r)) = (e.subject, e.flow, e.recipient) {
            *journaled.entry((s, f, r, e.event)).or_default() += 1;
        }
    }
    let mut senders: Vec<String> = world.config.imilo.as_ref().unwrap().structures.clone();
    senders.extend(["CD059".to_owned(), "FAJ059".to_owned()]);
    let mut expected: BTreeMap<Step, u64> = BTreeMap::new();
    for sender in &senders {
        for t in state.transfers_of(sender, None).await.unwrap() {
            let subject = key.pseudonym(&t.hub_id.to_string());
            let step = |event: &str| {
                (
                    subject.clone(),
                    t.flow.clone(),
                    t.recipient.clone(),
                    event.to_owned(),
                )
            };
            *expected.entry(step("published")).or_default() += 1;
            if matches!(t.status, TransferStatus::Applied | TransferStatus::Rejected) {
                *expected.entry(step(t.status.as_str())).or_default() += 1;
            }
        }
    }
    assert!(!expected.is_empty());
    for (step, n) in &expected {
        assert_eq!(journaled.get(step), Some(n), "{step:?} journaled");
    }
    world.stop().await;
}

/// A RabbitMQ broker of this test alone (so that restarting it disturbs no other
/// test), stopped on drop.
struct Broker {
    dir: std::path::PathBuf,
    port: u16,
}

impl Broker {
    fn script(&self, cmd: &str) {
        let out = std::process::Command::new(
            passerelle_e2e::workspace_root().join("deploy/rabbitmq/rabbitmq.sh"),
        )
        .arg(cmd)
        .arg(&self.dir)
        .arg(self.port.to_string())
        .output()
        .expect("cannot run rabbitmq.sh");
        assert!(
            out.status.success(),
            "rabbitmq.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(dir: &Path) -> Self {
        // A port whose distribution port (+20000) is free as well.
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        let base = 31_000 + (std::process::id() % 9_000) as u16;
        let port = (base..base + 500)
            .find(|p| free(*p) && free(p + 20_000))
            .expect("no free port pair for a broker");
        let b = Self {
            dir: dir.to_owned(),
            port,
        };
        b.script("start");
        b
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(
            passerelle_e2e::workspace_root().join("deploy/rabbitmq/rabbitmq.sh"),
        )
        .arg("stop")
        .arg(&self.dir)
        .arg(self.port.to_string())
        .output();
    }
}

/// Test 3: the broker is stopped and started again while a night runs. The night
/// either rides it out (reconnecting) or fails and is run again; either way nothing
/// is lost (the same transfers as a clean night) and nothing applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_during_a_night_loses_nothing_and_duplicates_nothing() {
    let Some(s) = services("restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| Broker::start(&dir.path().join("rabbitmq")));
    let opts = WorldOptions::new(1000, 71);
    let mut world = World::start(&dir.path().join("world"), &opts)
        .await
        .unwrap();
    let journal = fresh_database(&s.pg_url, "restart").await;
    let mut a = amqp(&broker.url(), "restart");
    a.reconnect_timeout_ms = 60_000;
    let config = on_services(&world.config, a, &journal);
    let data = dir.path().join("hub");
    let box_files = common::BoxFiles::default();

    let hub = Hub::open(&config, &data).await.unwrap();
    let mut night = wiring::plan(&config, &hub, &[]).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let progress = |p: passerelle_hub::Progress<'_>| {
        if matches!(p, passerelle_hub::Progress::SourceDone { .. })
            && let Some(t) = tx.lock().unwrap().take()
        {
            let _ = t.send(());
        }
    };
    let restart = async {
        rx.await.ok()?;
        let stopped = tokio::task::block_in_place(|| {
            broker.script("stop");
            let at = std::time::Instant::now();
            broker.script("start");
            at
        });
        Some(stopped)
    };
    let night = async {
        let r = night.run(&hub.engine, &progress).await;
        (r, std::time::Instant::now())
    };
    let ((first, ended), stopped) = tokio::join!(night, restart);
    let stopped = stopped.expect("the night ended before its first source was read");
    assert!(
        ended > stopped,
        "the night ended before the broker stopped: nothing was tested"
    );
    eprintln!(
        "the night {} the broker restart",
        if first.is_ok() {
            "rode out"
        } else {
            "stopped with"
        }
    );
    let hub = match first {
        Ok(_) => hub,
        Err(e) => {
            eprintln!("the night stopped with the broker ({e:#}); running it again");
            drop(hub);
            let hub = Hub::open(&config, &data).await.unwrap();
            let mut night = wiring::plan(&config, &hub, &[]).await.unwrap();
            night.run(&hub.engine, &|_| {}).await.unwrap();
            hub
        }
    };
    box_files.peers_answer(&world).unwrap();
    let mut night = wiring::plan(&config, &hub, &[]).await.unwrap();
    night.run(&hub.engine, &|_| {}).await.unwrap();

    common::assert_once_everywhere(hub.engine.state(), &world, &box_files).await;
    let reference = common::reference_night(&dir.path().join("reference"), &opts).await;
    assert_eq!(
        common::transfers_per_flow(hub.engine.state()).await,
        reference,
        "transfers per flow, after the restart vs a clean night"
    );
    assert!(hub.engine.journal().verify().await.unwrap().is_intact());
    hub.close().await.ok();
    world.stop().await;
}

/// Keeps only `flow` on the planned sources. `plan` reads a source whole for every flow
/// it feeds (a source acknowledges what it served); these tests look at one flow only,
/// and what the other flows would have sent does not matter to them.
fn only(night: &mut passerelle_hub::Night, flow: &str) {
    for source in &mut night.sources {
        source.flows.retain(|f| f.flow == flow);
    }
}
