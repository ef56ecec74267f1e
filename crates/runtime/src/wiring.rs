//! From `passerelle.toml` to a running hub: opens the transport, journal, state and
//! keyring under `--data-dir`, builds each configured connector, and plans the night
//! (which source feeds which flow, which sink reaches which recipient, which cursor each
//! source resumes from). `sync`, `serve`, `demo`, the end-to-end tests and the night
//! benchmark all plan here, then run the same `hub::Night`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use passerelle_audit::{Journal, JournalConfig};
use passerelle_box::{BoxOfSink, BoxSource, FLOW_OF_SIGNALEMENT};
use passerelle_connector::Sink;
use passerelle_crypto::Keyring;
use passerelle_faj::{Decision, DecisionHandler, FajSink, HandlerError};
use passerelle_hub::routes::Territoires;
use passerelle_hub::{
    Cursor, Engine, FlowRoute, HubState, KeyringSealer, Night, Org, Routed, SinkByFlow, SinkPlan,
    SourcePlan,
};
use passerelle_imilo::{EventSource, ImiloSink, ReconcileSource};
use passerelle_policy::{OrgKind, Policy, System};
use passerelle_transport::Transport;
use passerelle_transport::embedded::EmbeddedConfig;
use tokio::sync::Mutex;

use crate::config::{HubConfig, TransportKind, Via};
use crate::decisions::FajDecisions;
use crate::routing::Routing;

/// What a night's interlude may fail with (see `hub::Night::run_with`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The flows file shipped with the hub, used when the configuration names none.
pub const SHIPPED_FLOWS: &str = include_str!("../../../schemas/policy/flows.toml");

/// The hub's own parts, opened.
pub struct Hub {
    pub engine: Arc<Engine>,
    pub transport: Arc<dyn Transport>,
    pub keyring: Keyring,
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens the hub under `data_dir` as `config` says.
    pub async fn open(config: &HubConfig, data_dir: &Path) -> Result<Self> {
        private_data_dir(config, data_dir)?;
        let keyring = config
            .keys
            .open(data_dir)
            .context("cannot open the keyring")?;
        // Records held for an identity review are sealed to the hub's own review key
        // (created here on one machine; in a shared key store, by `passerelle keys`).
        keyring
            .ensure(passerelle_hub::REVIEW_ORG)
            .context("the identity reviews' key")?;
        let pseudonyms = keyring
            .pseudonym_key()
            .context("cannot read the pseudonym key")?;
        let transport: Arc<dyn Transport> = match config.transport.kind {
            TransportKind::Embedded => Arc::new(
                EmbeddedConfig::new(data_dir.join("queue.sqlite"))
                    .build()
                    .await
                    .context("cannot open the embedded transport")?,
            ),
            TransportKind::Rabbitmq => {
                let c = config
                    .transport
                    .rabbitmq
                    .as_ref()
                    .context("transport.rabbitmq is missing")?;
                Arc::new(c.build().await.context("cannot reach RabbitMQ")?)
            }
        };
        let journal = open_journal(config, data_dir).await?;
        let state = open_state(config, data_dir).await?;
        let policy = Arc::new(match &config.flows {
            Some(p) => Policy::load(p).with_context(|| format!("flows file {}", p.display()))?,
            None => Policy::from_toml_str(SHIPPED_FLOWS).context("the shipped flows file")?,
        });
        let engine = Engine::new(
            policy,
            state,
            journal,
            transport.clone(),
            Arc::new(KeyringSealer::new(keyring.clone())),
            pseudonyms,
        )
        .await
        .context("cannot start the engine")?;
        Ok(Self {
            engine: Arc::new(engine),
            transport,
            keyring,
            data_dir: data_dir.to_owned(),
        })
    }

    /// Creates the keys of an organisation this hub seals for, once (on one machine;
    /// a shared key store must already hold them).
    pub fn ensure_keys(&self, org: &str) -> Result<()> {
        self.keyring
            .ensure(org)
            .with_context(|| format!("the keys of {org}"))?;
        Ok(())
    }

    /// The connectors' memory of their peers (box files, sent ledgers, FAJ events and
    /// requests): the hub's state, so that every instance on a PostgreSQL state shares it.
    pub fn peer_store(&self) -> Arc<dyn passerelle_connector::PeerStore> {
        Arc::new(self.engine.state().clone())
    }

    /// Closes the transport (settling what is in flight).
    pub async fn close(&self) -> Result<()> {
        self.transport.close().await?;
        Ok(())
    }
}

/// The data folder is 0700 and the databases the hub keeps there are 0600 before
/// SQLite opens them (SQLite gives its `-wal` and `-shm` files the database's mode):
/// they hold sealed payloads, pseudonyms and blind indexes.
fn private_data_dir(config: &HubConfig, data_dir: &Path) -> Result<()> {
    use passerelle_connector::safe_fs::{private_dir, private_file};
    private_dir(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut files = Vec::new();
    if config.state.url.is_none() {
        files.push("state.sqlite");
    }
    if config.transport.kind == TransportKind::Embedded {
        files.push("queue.sqlite");
    }
    if config.journal.url.is_none() {
        files.push("journal.sqlite");
    }
    for name in files {
        let path = data_dir.join(name);
        private_file(&path).with_context(|| format!("cannot make {} private", path.display()))?;
    }
    Ok(())
}

/// Opens the hub's state: where `[state] url` says, else `state.sqlite` under
/// `data_dir` (created when missing).
pub async fn open_state(config: &HubConfig, data_dir: &Path) -> Result<HubState> {
    match &config.state.url {
        Some(url) => HubState::connect(url).await,
        None => HubState::open(&data_dir.join("state.sqlite")).await,
    }
    .context("cannot open the hub state")
}

/// Whether a hub state exists to be read (read-only commands refuse to create one):
/// a configured URL is taken as existing, the default file must be there.
pub fn state_exists(config: &HubConfig, data_dir: &Path) -> bool {
    config.state.url.is_some() || data_dir.join("state.sqlite").exists()
}

async fn open_journal(config: &HubConfig, data_dir: &Path) -> Result<Journal> {
    let c = match &config.journal.url {
        Some(url) => JournalConfig::new(url.clone()),
        None => JournalConfig::sqlite_file(&data_dir.join("journal.sqlite")),
    };
    c.build().await.context("cannot open the audit journal")
}

const CURSOR_IMILO: &str = "imilo:dossiers";

/// Whether tonight reads I-MILO through the structure listings: the first night (no
/// reconciliation yet: the full load), when `every_days` have passed since the last
/// one (or it is 0), or when the cursor cannot be read. Other nights read the events.
pub fn reconciliation_due(
    last: Option<&str>,
    every_days: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(last) = last else { return true };
    if every_days == 0 {
        return true;
    }
    match chrono::DateTime::parse_from_rfc3339(last) {
        Ok(t) => now.signed_duration_since(t) >= chrono::Duration::days(i64::from(every_days)),
        Err(_) => true,
    }
}

fn cursor_faj(platform: &str) -> String {
    format!("faj:{platform}:decisions")
}

/// Which flows the night carries, after `--flow` filters.
fn wanted(flows: &[String], flow: &str) -> bool {
    flows.is_empty() || flows.iter().any(|f| f == flow)
}

/// Whether a source is read: when it feeds a wanted flow. It is then read whole, for
/// every flow it feeds: a source acknowledges what it served (a file moves to
/// `traites/`, a cursor advances), so a record skipped for an unwanted flow would
/// never come back.
fn feeds_wanted(fl: &[FlowRoute], flows: &[String]) -> bool {
    fl.iter().any(|f| wanted(flows, &f.flow))
}

/// A route's answer kept only when its recipient is one this hub delivers to.
fn served_only(
    served: &BTreeSet<String>,
    routed: std::result::Result<(Org, Org), passerelle_hub::Unrouted>,
) -> std::result::Result<(Org, Org), passerelle_hub::Unrouted> {
    let (from, to) = routed?;
    if served.contains(&to.org) {
        Ok((from, to))
    } else {
        Err(format!("{} is not an organisation this hub delivers to", to.org).into())
    }
}

/// Plans the night from the configuration: every source, route, sink and receipt
/// source of the configured peers, and each source's cursor; with `flows`, only the
/// sources that feed one of them (each for all the flows it feeds, see
/// `feeds_wanted`). The FAJ platforms' decisions are replies: read once the night's
/// first deliveries (their requests) are done.
pub async fn plan(config: &HubConfig, hub: &Hub, flows: &[String]) -> Result<Night> {
    // Which flows each kind of source feeds: flows.toml's `sources`.
    let policy = hub.engine.policy();
    let mut routing = Routing {
        territoires: Arc::new(config.territoires.clone()),
        today: chrono::Local::now().date_naive(),
        cd_systems: Default::default(),
    };
    let mut night = Night {
        deadlines: config.night.deadlines(),
        answer_within: Some(std::time::Duration::from_secs(
            config.night.answer_within_h.max(1) * 3600,
        )),
        ..Night::default()
    };
    // How each CD takes what MLs send it: SOLIS imports, or its box.
    let mut cd_sinks: BTreeMap<String, SinkByFlow> = BTreeMap::new();
    let mut cd_systems: BTreeMap<String, System> = BTreeMap::new();
    // CDs a peer of which is down tonight: their queues wait whole (see `folder_missing`).
    let mut cds_down: std::collections::BTreeSet<String> = Default::default();

    for d in &config.departements {
        let cd = d.cd();
        if let Some(solis) = &d.solis {
            let source = match solis
                .export_dir
                .as_ref()
                .map(|_| solis.build_export_source())
            {
                Some(Err(e)) if folder_missing(&e) => {
                    night
                        .unplanned
                        .insert(format!("source solis:{cd}"), format!("SOLIS exports: {e}"));
                    None
                }
                Some(r) => Some(r.with_context(|| format!("{cd}: SOLIS exports"))?),
                None => None,
            };
            if let Some(source) = source {
                let from = Org::new(OrgKind::Cd, &cd, System::Solis);
                let fl = routing.fed(policy, "solis", &from, None)?;
                if feeds_wanted(&fl, flows) {
                    night.sources.push(SourcePlan::new(
                        format!("solis:{cd}"),
                        Box::new(source),
                        fl,
                    ));
                }
            }
            let built = solis
                .import_dir
                .as_ref()
                .map(|_| (solis.build_sink(), solis.build_ack_source()));
            let built = match built {
                Some((Err(e), _) | (_, Err(e))) if folder_missing(&e) => {
                    // The CD's whole queue waits: a sink without this flow would
                    // dead-letter what is for it.
                    night
                        .unplanned
                        .insert(format!("delivery to {cd}"), format!("SOLIS imports: {e}"));
                    cds_down.insert(cd.clone());
                    None
                }
                Some((sink, acks)) => Some((
                    sink.with_context(|| format!("{cd}: SOLIS imports"))?,
                    acks.with_context(|| format!("{cd}: SOLIS ACKs"))?,
                )),
                None => None,
            };
            if let Some((sink, acks)) = built {
                let sink: Arc<dyn Sink> = Arc::new(sink);
                let mut s = cd_sinks.remove(&cd).unwrap_or_default();
                for flow in passerelle_solis::SolisSink::FLOWS {
                    // Unless the CD takes its reports through its box.
                    if *flow == FLOW_OF_SIGNALEMENT && d.of_signalement == Some(Via::Box) {
                        continue;
                    }
                    s = s.with(flow, sink.clone());
                }
                cd_sinks.insert(cd.clone(), s);
                cd_systems.insert(cd.clone(), System::Solis);
                night.receipts.push(Box::new(acks));
            }
        }
        let cnaf_fl = match &d.cnaf {
            Some(_) => routing.fed(
                policy,
                "cnaf",
                &Org::new(OrgKind::Cd, &cd, System::Cnaf),
                None,
            )?,
            None => Vec::new(),
        };
        let cnaf = match &d.cnaf {
            Some(cnaf) if feeds_wanted(&cnaf_fl, flows) => match cnaf.build() {
                Err(e) if folder_missing(&e) => {
                    night
                        .unplanned
                        .insert(format!("source cnaf:{cd}"), format!("CNAF files: {e}"));
                    None
                }
                r => Some((cnaf, r.with_context(|| format!("{cd}: CNAF files"))?)),
            },
            _ => None,
        };
        if let Some((cnaf, source)) = cnaf {
            // Files no pattern takes are never read: said at every night, in its report.
            match cnaf.not_read() {
                Ok(names) => {
                    for name in &names {
                        tracing::warn!(
                            departement = %cd,
                            file = %name,
                            "not read: the name matches none of the CNAF patterns"
                        );
                    }
                    if !names.is_empty() {
                        night.not_read.insert(format!("cnaf:{cd}"), names);
                    }
                }
                Err(e) => {
                    tracing::warn!(departement = %cd, error = %e, "cannot list the CNAF folder")
                }
            }
            night.sources.push(SourcePlan::new(
                format!("cnaf:{cd}"),
                Box::new(source),
                cnaf_fl,
            ));
        }
        for b in &d.boxes {
            let from = Org::new(OrgKind::Cd, &cd, System::Box);
            let fl = routing.fed(policy, "box", &from, Some(&b.partenaire))?;
            let mut down = None;
            if feeds_wanted(&fl, flows) {
                match b.build_shared(hub.peer_store()).await {
                    Err(e) if folder_missing(&e) => {
                        let why = format!("box of {}: {e}", b.partenaire);
                        night
                            .unplanned
                            .insert(format!("source box:{cd}:{}", b.partenaire), why.clone());
                        down = Some(why);
                    }
                    r => night.sources.push(SourcePlan::new(
                        format!("box:{cd}:{}", b.partenaire),
                        Box::new(BoxSource::new(
                            r.with_context(|| format!("{cd}: box of {}", b.partenaire))?,
                        )),
                        fl,
                    )),
                }
            }
            // Reports go through the box unless SOLIS takes them.
            let s = cd_sinks.remove(&cd).unwrap_or_default();
            let has_of = s.flows().any(|f| f == FLOW_OF_SIGNALEMENT);
            let folder = match (has_of, down) {
                (true, _) => None,
                (false, Some(why)) => {
                    // As for SOLIS: the CD's queue waits whole.
                    night.unplanned.insert(format!("delivery to {cd}"), why);
                    cds_down.insert(cd.clone());
                    None
                }
                (false, None) => match b.folder() {
                    Err(e) if folder_missing(&e) => {
                        night.unplanned.insert(
                            format!("delivery to {cd}"),
                            format!("box of {}: {e}", b.partenaire),
                        );
                        cds_down.insert(cd.clone());
                        None
                    }
                    r => Some(r?),
                },
            };
            let s = match folder {
                None => s,
                Some(folder) => {
                    let sink = BoxOfSink::new(b.sent_ledger_shared(&cd, hub.peer_store()).await?)
                        .with_box(&cd, folder)
                        .with_context(|| format!("{cd}: box sink"))?;
                    s.with(FLOW_OF_SIGNALEMENT, Arc::new(sink))
                }
            };
            cd_sinks.insert(cd.clone(), s);
            cd_systems.entry(cd.clone()).or_insert(System::Box);
        }
    }
    for (cd, sink) in cd_sinks {
        if cds_down.contains(&cd) {
            continue;
        }
        hub.ensure_keys(&cd)?;
        night.sinks.push(SinkPlan {
            recipient: cd,
            sink: Arc::new(sink),
        });
    }

    if let Some(imilo) = &config.imilo {
        // On a shared state (PostgreSQL), every instance paces from the same buckets.
        let (rate, burst) = (imilo.client.rate_limit_per_s, imilo.client.rate_burst);
        let client = match hub.engine.state().shared_buckets("imilo", rate, burst) {
            Some(buckets) => imilo.client.build_with_buckets(buckets),
            None => imilo.client.build(),
        }
        .context("I-MILO client")?;
        let sink: Arc<dyn Sink> = Arc::new(ImiloSink::new(client.clone()));
        for ml in &imilo.structures {
            hub.ensure_keys(ml)?;
            night.sinks.push(SinkPlan {
                recipient: ml.clone(),
                sink: sink.clone(),
            });
        }
        // What MLs send CDs goes only to CDs this hub reaches, through their system.
        routing.cd_systems = Arc::new(cd_systems);
        // The sender is each record's ML (its routes read it from the record).
        let from = Org::new(OrgKind::Ml, "", System::Imilo);
        let fl = routing.fed(policy, "imilo", &from, None)?;
        if feeds_wanted(&fl, flows) {
            let since = hub.engine.state().cursor(CURSOR_IMILO).await?;
            if reconciliation_due(
                since.as_deref(),
                imilo.reconcile_every_days,
                chrono::Utc::now(),
            ) {
                let source = ReconcileSource::new(client, imilo.structures.clone(), since);
                let cursor = Cursor::at(
                    CURSOR_IMILO,
                    source.started_at().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                );
                // What the night writes to I-MILO is read by the next night, not this one.
                night.sources.push(
                    SourcePlan::new("imilo", Box::new(source), fl)
                        .with_cursor(cursor)
                        .reading(imilo.structures.iter().cloned()),
                );
            } else {
                // The changes since the last night, from the event queue: each changed
                // dossier fetched, each event acked once the engine has published what
                // it signals (the source's `ack`). The cursor stays the reconciliation's.
                night.sources.push(
                    SourcePlan::new("imilo:events", Box::new(EventSource::new(client)), fl)
                        .reading(imilo.structures.iter().cloned()),
                );
            }
        }
    }

    // A route to an organisation this hub does not reach would leave messages in a
    // queue nobody delivers: such records are not routed (counted as unrouted).
    let served: Arc<BTreeSet<String>> =
        Arc::new(night.sinks.iter().map(|s| s.recipient.clone()).collect());
    for plan in &mut night.sources {
        for fr in &mut plan.flows {
            let route = fr.route.clone();
            let served = served.clone();
            fr.route = Arc::new(move |record| served_only(&served, route(record)));
        }
    }

    for f in &config.faj {
        let built = f.build().context("FAJ client")?;
        hub.ensure_keys(&f.platform)?;
        if wanted(flows, passerelle_faj::FLOW_DEMANDE) {
            night.sinks.push(SinkPlan {
                recipient: f.platform.clone(),
                sink: Arc::new(FajSink::new(built.client.clone())),
            });
        }
        let fed: Vec<String> = policy
            .flows_fed_by("faj")
            .iter()
            .map(|fl| fl.id.clone())
            .collect();
        if fed.iter().any(|flow| wanted(flows, flow)) {
            let key = cursor_faj(&f.platform);
            let since = match hub.engine.state().cursor(&key).await? {
                Some(s) => DateTime::parse_from_rfc3339(&s)
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                None => DateTime::<Utc>::UNIX_EPOCH,
            };
            let cursor = Cursor::new(key);
            let source = FajDecisions::new(built.client, &f.platform, since, cursor.clone());
            let route = source.route();
            // Only to MLs this hub reaches.
            let served = served.clone();
            let route: passerelle_hub::Route =
                Arc::new(move |record| served_only(&served, route(record)));
            // Every flow a platform's decisions feed goes back to the filing ML.
            let fl = fed
                .iter()
                .map(|flow| FlowRoute::new(flow, route.clone()))
                .collect();
            night.replies.push(
                SourcePlan::new(format!("faj:{}", f.platform), Box::new(source), fl)
                    .with_cursor(cursor),
            );
        }
    }
    Ok(night)
}

/// Hands FAJ decisions to the engine (`faj-decision`, platform → the filing ML).
pub struct EngineDecisions {
    pub engine: Arc<Engine>,
    pub platform: String,
    /// Counts of this run, for the night's report.
    pub report: Mutex<passerelle_hub::SendSummary>,
    /// The MLs that were sent a decision.
    pub recipients: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for EngineDecisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineDecisions")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl DecisionHandler for EngineDecisions {
    async fn handle(&self, decision: Decision) -> std::result::Result<(), HandlerError> {
        let mut report = self.report.lock().await;
        let Some(ml) = decision.route().map(str::to_owned) else {
            // Filed without its ML: nobody to tell; counted, not guessed.
            report.read += 1;
            report.review += 1;
            return Ok(());
        };
        let record = decision.to_record(&self.platform)?;
        let routed = Routed {
            from: Org::new(OrgKind::Faj, &self.platform, System::Faj),
            to: Org::new(OrgKind::Ml, ml, System::Imilo),
            record,
            known_to_recipient: false,
        };
        self.recipients.lock().await.insert(routed.to.org.clone());
        let s = self
            .engine
            .send_routed(passerelle_faj::FLOW_DECISION, [routed])
            .await?;
        *report += &s;
        Ok(())
    }
}

/// Whether building a peer's connector failed because its folder is not there tonight
/// (a share not mounted, a peer not set up yet): that peer is down, the rest of the
/// night runs. The paths themselves were checked at start (absolute, folders).
fn folder_missing(e: &passerelle_connector::ConnectorError) -> bool {
    e.kind() == passerelle_connector::ErrorKind::NotFound
}

/// The organisations a configuration names, for `keys` and checks.
pub fn organisations(config: &HubConfig) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in &config.departements {
        out.insert(d.cd());
    }
    if let Some(i) = &config.imilo {
        out.extend(i.structures.iter().cloned());
    }
    for f in &config.faj {
        out.insert(f.platform.clone());
    }
    out
}

/// The territory table, for callers that route by hand (the demo's conseiller).
pub fn territoires(config: &HubConfig) -> Arc<Territoires> {
    Arc::new(config.territoires.clone())
}
