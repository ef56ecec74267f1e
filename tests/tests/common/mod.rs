//! Shared pieces of the end-to-end tests: the services scripts/test started (or why
//! they are missing), a fresh PostgreSQL database and AMQP prefix per test, the
//! configuration written as TOML for a child `passerelle`, and what the simulators saw.

#![allow(dead_code, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use passerelle_hub::{HubState, TransferStatus};
use passerelle_runtime::config::{HubConfig, TransportKind};
use passerelle_transport::amqp::AmqpConfig;
use sqlx::Connection;

/// The services a test runs on.
#[derive(Debug, Clone)]
pub struct Services {
    pub amqp_url: String,
    pub pg_url: String,
}

/// The services from the environment; `None` (with the reason printed) when one is
/// missing outside CI. In CI a missing service fails the test.
pub fn services(test: &str) -> Option<Services> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let amqp = std::env::var("PASSERELLE_TEST_AMQP_URL").ok();
    let pg = std::env::var("PASSERELLE_TEST_PG_URL").ok();
    match (amqp, pg) {
        (Some(amqp_url), Some(pg_url)) => Some(Services { amqp_url, pg_url }),
        _ => {
            let why = "PASSERELLE_TEST_AMQP_URL and PASSERELLE_TEST_PG_URL are needed \
                       (run scripts/test -p passerelle-e2e)";
            assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
            eprintln!("{test}: skipped: {why}");
            None
        }
    }
}

/// A name unique to this test run: `e2e_{name}_{pid}_{millis}`.
pub fn unique(name: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!(
        "e2e_{}_{}_{}",
        name.replace('-', "_"),
        std::process::id(),
        ms
    )
}

/// Creates a fresh database on the test server; returns its URL.
pub async fn fresh_database(pg_url: &str, name: &str) -> String {
    let db = unique(name);
    let mut conn = sqlx::PgConnection::connect(pg_url)
        .await
        .expect("cannot connect to the test PostgreSQL");
    // The name is ours: letters, digits and underscores.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .expect("cannot create a test database");
    conn.close().await.ok();
    let base = pg_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("a postgres URL has a database path");
    format!("{base}/{db}")
}

/// An AMQP configuration on the test broker, under its own prefix.
pub fn amqp(url: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(url);
    c.prefix = unique(name).replace('_', "-");
    c
}

/// `config` on RabbitMQ (`amqp`) with its journal in `journal_url`.
pub fn on_services(config: &HubConfig, amqp: AmqpConfig, journal_url: &str) -> HubConfig {
    let mut c = config.clone();
    c.transport.kind = TransportKind::Rabbitmq;
    c.transport.rabbitmq = Some(amqp);
    c.journal.url = Some(journal_url.to_owned());
    c
}

fn value<T: serde::Serialize>(v: &T) -> toml::Value {
    toml::Value::try_from(v).expect("a config section serializes to TOML")
}

fn path(p: &Path) -> toml::Value {
    toml::Value::String(p.display().to_string())
}

/// `config` as a `passerelle.toml` (the box and AMQP sections by hand: their structs
/// only deserialize).
pub fn config_toml(config: &HubConfig) -> String {
    let mut root = toml::Table::new();
    if let Some(f) = &config.flows {
        root.insert("flows".into(), path(f));
    }
    let mut transport = toml::Table::new();
    if config.transport.kind == TransportKind::Rabbitmq {
        transport.insert("kind".into(), "rabbitmq".into());
        let a = config
            .transport
            .rabbitmq
            .as_ref()
            .expect("rabbitmq section");
        let mut t = toml::Table::new();
        t.insert("url".into(), a.url.clone().into());
        t.insert("prefix".into(), a.prefix.clone().into());
        t.insert("max_deliveries".into(), i64::from(a.max_deliveries).into());
        t.insert(
            "retry_delays_ms".into(),
            toml::Value::Array(
                a.retry_delays_ms
                    .iter()
                    .map(|d| toml::Value::Integer(*d as i64))
                    .collect(),
            ),
        );
        t.insert(
            "reconnect_timeout_ms".into(),
            (a.reconnect_timeout_ms as i64).into(),
        );
        transport.insert("rabbitmq".into(), toml::Value::Table(t));
    } else {
        transport.insert("kind".into(), "embedded".into());
    }
    root.insert("transport".into(), toml::Value::Table(transport));
    if let Some(url) = &config.journal.url {
        let mut j = toml::Table::new();
        j.insert("url".into(), url.clone().into());
        root.insert("journal".into(), toml::Value::Table(j));
    }
    let ml: Vec<toml::Value> = config
        .territoires
        .ml
        .iter()
        .map(|m| {
            let mut t = toml::Table::new();
            t.insert("code".into(), m.code.clone().into());
            t.insert("codes_postaux".into(), value(&m.codes_postaux));
            t.insert("defaut".into(), m.defaut.into());
            toml::Value::Table(t)
        })
        .collect();
    let mut territoires = toml::Table::new();
    territoires.insert("ml".into(), toml::Value::Array(ml));
    root.insert("territoires".into(), toml::Value::Table(territoires));
    if let Some(i) = &config.imilo {
        let mut t = toml::Table::new();
        t.insert("structures".into(), value(&i.structures));
        t.insert("client".into(), value(&i.client));
        t.insert(
            "reconcile_every_days".into(),
            i64::from(i.reconcile_every_days).into(),
        );
        root.insert("imilo".into(), toml::Value::Table(t));
    }
    let mut deps = Vec::new();
    for d in &config.departements {
        let mut t = toml::Table::new();
        t.insert("code".into(), d.code.clone().into());
        if let Some(s) = &d.solis {
            t.insert("solis".into(), value(s));
        }
        if let Some(c) = &d.cnaf {
            t.insert("cnaf".into(), value(c));
        }
        if let Some(via) = d.of_signalement {
            let via = match via {
                passerelle_runtime::config::Via::Solis => "solis",
                passerelle_runtime::config::Via::Box => "box",
            };
            t.insert("of_signalement".into(), via.into());
        }
        let boxes: Vec<toml::Value> = d
            .boxes
            .iter()
            .map(|b| {
                assert!(b.sftp.is_none() && b.mapping.is_none(), "local boxes only");
                let mut bt = toml::Table::new();
                bt.insert("url".into(), b.url.clone().into());
                bt.insert("partenaire".into(), b.partenaire.clone().into());
                bt.insert("state_dir".into(), path(&b.state_dir));
                toml::Value::Table(bt)
            })
            .collect();
        t.insert("box".into(), toml::Value::Array(boxes));
        deps.push(toml::Value::Table(t));
    }
    root.insert("departement".into(), toml::Value::Array(deps));
    root.insert(
        "faj".into(),
        toml::Value::Array(config.faj.iter().map(value).collect()),
    );
    let text = toml::to_string(&root).expect("the configuration writes as TOML");
    // Written by hand in part: a field this writer does not know yet must not be lost.
    let back = HubConfig::from_toml(&text).expect("the written configuration loads");
    assert_eq!(
        format!("{back:?}"),
        format!("{config:?}"),
        "the written configuration differs from the one in memory"
    );
    text
}

/// Transfers per status, for each flow named.
pub async fn status_counts(
    state: &HubState,
    flows: &[&str],
) -> BTreeMap<String, BTreeMap<TransferStatus, u64>> {
    let mut out = BTreeMap::new();
    for flow in flows {
        let counts = state.status_counts(flow).await.expect("status counts");
        out.insert((*flow).to_owned(), counts.into_iter().collect());
    }
    out
}

/// The flows a night of the simulated world carries.
pub const NIGHT_FLOWS: [&str; 7] = [
    "brsa-orientation",
    "ase-majorite",
    "brsa-suivi",
    "of-signalement",
    "of-suivi",
    "faj-demande",
    "faj-decision",
];

/// `GET /sim/stats` of the I-MILO simulator.
pub async fn imilo_stats(addr: std::net::SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{addr}/sim/stats"))
        .await
        .expect("I-MILO simulator stats")
        .json()
        .await
        .expect("I-MILO stats are JSON")
}

/// `POST /sim/faults` of the I-MILO simulator.
pub async fn imilo_faults(addr: std::net::SocketAddr, faults: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/sim/faults"))
        .json(&faults)
        .send()
        .await
        .expect("I-MILO simulator faults");
    assert!(r.status().is_success(), "faults refused: {}", r.status());
}

/// Every `referenceExterne` of every SOLIS import file under the world's imports
/// folder (answered ones included), with the number of times each appears.
pub fn solis_import_refs(world_dir: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if e.file_name().to_string_lossy().starts_with("SOLIS_IMPORT_") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&world_dir.join("peers/solis/imports"), &mut files);
    let mut refs = BTreeMap::new();
    for f in files {
        for r in passerelle_solis::read_import_refs(&f).expect("an import file reads") {
            *refs.entry(r).or_insert(0) += 1;
        }
    }
    refs
}

/// Transfers per flow (whatever their status).
pub async fn transfers_per_flow(state: &HubState) -> BTreeMap<String, u64> {
    status_counts(state, &NIGHT_FLOWS)
        .await
        .into_iter()
        .map(|(f, c)| (f, c.values().sum()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What two clean nights of the same world send, per flow (the file peers answering in
/// between): a world with the same seed
/// under `dir`, the hub on its embedded defaults, no SOLIS answer during the night
/// (as `passerelle sync`).
pub async fn reference_night(
    dir: &Path,
    opts: &passerelle_world::WorldOptions,
) -> BTreeMap<String, u64> {
    use passerelle_runtime::wiring::{self, Hub};
    let mut world = passerelle_world::World::start(&dir.join("world"), opts)
        .await
        .expect("reference world");
    let hub = Hub::open(&world.config, &dir.join("hub"))
        .await
        .expect("reference hub");
    let mut night = wiring::plan(&world.config, &hub, &[])
        .await
        .expect("reference plan");
    night
        .run(&hub.engine, &|_| {})
        .await
        .expect("reference night");
    // SOLIS answers; the second night collects the answers and sends what the first
    // night's writes changed (I-MILO dossiers the orientations opened).
    world.peers_answer().expect("reference answers");
    let mut night = wiring::plan(&world.config, &hub, &[])
        .await
        .expect("reference plan");
    night
        .run(&hub.engine, &|_| {})
        .await
        .expect("reference second night");
    let out = transfers_per_flow(hub.engine.state()).await;
    hub.close().await.ok();
    world.stop().await;
    out
}

/// Every file under `dir` whose name starts with `prefix`, recursively.
fn files(dir: &Path, prefix: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, prefix, out);
        } else if e.file_name().to_string_lossy().starts_with(prefix) {
            out.push(p);
        }
    }
}

/// The `JEUNES_OF` files the hub dropped in the CD's box, kept before the CD takes
/// them away (it removes what it answers): file name → content.
#[derive(Debug, Default)]
pub struct BoxFiles(std::sync::Mutex<BTreeMap<String, String>>);

impl BoxFiles {
    /// Keeps a copy of every complete `JEUNES_OF` file now in the box.
    pub fn capture(&self, world: &passerelle_world::World) {
        let mut found = Vec::new();
        files(&world.dir.join("peers/box"), "JEUNES_OF_", &mut found);
        let mut kept = self.0.lock().expect("box files lock");
        for p in found {
            let complete = p.with_extension("csv.ok").exists();
            if p.extension().is_some_and(|e| e == "csv") && complete {
                let text = std::fs::read_to_string(&p).expect("a box file reads");
                kept.insert(p.display().to_string(), text);
            }
        }
    }

    /// The peers answer (SOLIS its imports, the CD its box), the box files kept first.
    pub fn peers_answer(&self, world: &passerelle_world::World) -> anyhow::Result<()> {
        self.capture(world);
        world.peers_answer()
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .expect("box files lock")
            .values()
            .cloned()
            .collect()
    }
}

/// No duplicate effect at any target, and nothing lost on the way: no transfer is left
/// published or dead-lettered; each transfer to a CD (SOLIS import or box `JEUNES_OF`
/// file) is written exactly once across all files, unless rejected before writing, and
/// only those still in a file may wait for the CD's answer (`delivered`); I-MILO
/// applied each prescription and événement once (its writes equal the applied
/// transfers).
pub async fn assert_once_everywhere(
    state: &HubState,
    world: &passerelle_world::World,
    box_files: &BoxFiles,
) {
    let counts = status_counts(state, &NIGHT_FLOWS).await;
    for (flow, c) in &counts {
        for s in [TransferStatus::Published, TransferStatus::DeadLettered] {
            assert_eq!(
                c.get(&s),
                None,
                "{flow}: transfers left {}: {counts:?}",
                s.as_str()
            );
        }
        if !["brsa-suivi", "of-signalement"].contains(&flow.as_str()) {
            assert_eq!(
                c.get(&TransferStatus::Delivered),
                None,
                "{flow}: {counts:?}"
            );
        }
    }

    // What the CD's systems were handed: SOLIS import elements and box rows.
    let solis = solis_import_refs(&world.dir);
    let twice: Vec<_> = solis.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "SOLIS elements written twice: {twice:?}");
    box_files.capture(world);
    let box_text = box_files.text();
    let mls = &world
        .config
        .imilo
        .as_ref()
        .expect("I-MILO configured")
        .structures;
    let mut to_cd = 0;
    for ml in mls {
        for flow in ["brsa-suivi", "of-signalement"] {
            for t in state.transfers_of(ml, Some(flow)).await.expect("transfers") {
                to_cd += 1;
                let id = t.transfer_id.to_string();
                let written =
                    solis.get(&id).copied().unwrap_or(0) + box_text.matches(&id).count() as u64;
                if t.status == TransferStatus::Rejected {
                    assert!(written <= 1, "{flow} {id} written {written} times");
                } else {
                    assert_eq!(
                        written, 1,
                        "{flow} {id} ({:?}) written {written} times",
                        t.status
                    );
                }
            }
        }
    }
    let total_to_cd: u64 = ["brsa-suivi", "of-signalement"]
        .iter()
        .filter_map(|f| counts.get(*f))
        .flat_map(|c| c.values())
        .sum();
    assert_eq!(to_cd, total_to_cd, "transfers to the CD found by sender");

    // A rejected write changed nothing at I-MILO: applied transfers only.
    let applied = |flows: &[&str]| -> u64 {
        flows
            .iter()
            .filter_map(|f| counts.get(*f)?.get(&TransferStatus::Applied))
            .sum()
    };
    let stats = imilo_stats(world.imilo_addr).await;
    assert_eq!(
        stats["writes"]["orientations"],
        applied(&["brsa-orientation", "ase-majorite"]),
        "I-MILO prescriptions vs transfers: {stats} {counts:?}"
    );
    assert_eq!(
        stats["writes"]["evenements"],
        applied(&["faj-decision", "of-suivi"]),
        "I-MILO événements vs transfers: {stats} {counts:?}"
    );
}
