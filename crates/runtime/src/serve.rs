//! `passerelle serve`'s assembly: the long-running hub. One consumer per recipient
//! delivers its queue as messages arrive; the nightly schedule (cron, `[server]
//! schedule`) reads the sources and sends; the FAJ decision webhook feeds the engine;
//! `/health`, `/ready`, `/metrics`, `/api/status` and the status page tell operators how
//! it goes. Cancelling stops accepting, lets the running night and in-flight
//! deliveries finish. The binary parses the arguments and calls `run`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::Utc;
use passerelle_audit::{Event, NewEntry, Outcome};
use passerelle_faj::{DecisionIntake, PeerSeenStore, RefusalWindow, WebhookAudit, WebhookState};
use passerelle_hub::{NightReport, SinkPlan};
use passerelle_server::{
    AppState, CounterVec, FlowMetrics, FlowOutcome, FlowStatus, Metrics, Readiness, Scheduler,
    SharedStatus, Status,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::HubConfig;
use crate::hooks::FajHook;
use crate::lock::NightLock;
use crate::wiring::{self, EngineDecisions, Hub};

/// How `serve` runs, from its arguments.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Run one night at start-up, then follow the schedule.
    pub night_now: bool,
    /// When a `sync` holds the data folder at a scheduled night, wait this long for
    /// it; past that the night is skipped (logged, in the status).
    pub wait: Duration,
}

/// Serves until Ctrl-C or SIGTERM; `listening` is told the address once the nights
/// and consumers are set up, before the server binds it.
pub async fn run(
    config: Arc<HubConfig>,
    data_dir: &Path,
    options: ServeOptions,
    listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let hub = Arc::new(Hub::open(&config, data_dir).await?);
    let metrics = Metrics::new();
    let status: SharedStatus =
        Status::new(env!("CARGO_PKG_VERSION"), config.server.nights_kept()).shared();
    let shutdown = CancellationToken::new();

    // Consumers: each recipient's queue, delivered as it fills.
    let planned = wiring::plan(&config, &hub, &[]).await?;
    let deliveries = metrics
        .counter(
            "passerelle_deliveries_total",
            "Transfers settled by the consumers, per flow and receipt status",
            &["flow", "status"],
        )
        .context("metrics")?;
    // The FAJ form's desk: the platform's consumer goes through it, so that the form
    // learns each request's id and can show its decision.
    let desk = crate::faj_desk::FajDesk::new(&config, &hub)?.map(Arc::new);
    let mut consumers = Vec::new();
    for mut plan in planned.sinks {
        if let Some(d) = desk.as_ref().filter(|d| d.platform() == plan.recipient) {
            plan.sink = d.observe(plan.sink);
        }
        consumers.push(tokio::spawn(consume(
            hub.clone(),
            plan,
            deliveries.clone(),
            shutdown.clone(),
        )));
    }

    // The FAJ decision webhook (the first platform: one shared secret per route).
    let faj = match config.faj.first() {
        Some(f) => {
            let built = f.build().context("FAJ client")?;
            let handler = Arc::new(EngineDecisions {
                engine: hub.engine.clone(),
                platform: f.platform.clone(),
                report: Default::default(),
                recipients: Default::default(),
            });
            // Durable: a webhook replayed after a restart is still known (issue 16).
            let seen_file = format!("faj-seen-{}.log", f.platform);
            passerelle_connector::safe_fs::check_name(&seen_file)
                .map_err(|e| anyhow::anyhow!("FAJ platform name: {e}"))?;
            let old_file = data_dir.join(&seen_file);
            let seen = PeerSeenStore::open(hub.peer_store(), &f.platform, Some(&old_file))
                .await
                .context("FAJ webhook seen-store")?;
            let intake = DecisionIntake::new(handler, Arc::new(seen))
                .with_origin_lookup(built.client.clone());
            Some(WebhookState::with_limits(
                built.webhook_secret,
                intake,
                Arc::new(JournalAudit {
                    hub: hub.clone(),
                    platform: f.platform.clone(),
                }),
                f.webhook.clone(),
            ))
        }
        None => None,
    };

    // The nightly schedule.
    let schedule = config.server.schedule().context("[server] schedule")?;
    let flow_metrics = FlowMetrics::new(&metrics).context("metrics")?;
    let night_job = {
        let (hub, config, status) = (hub.clone(), config.clone(), status.clone());
        let flow_metrics = Arc::new(flow_metrics);
        let wait = options.wait;
        move || {
            let (hub, config, status, fm) = (
                hub.clone(),
                config.clone(),
                status.clone(),
                flow_metrics.clone(),
            );
            async move {
                // One night at a time on this data folder: held for the night only,
                // so that a manual `sync` can run between two scheduled nights.
                let _lock = match NightLock::acquire(&hub.data_dir, "serve", wait).await {
                    Ok(l) => l,
                    Err(e) => {
                        warn!("night skipped: {e}");
                        return;
                    }
                };
                if let Err(e) = night(&hub, &config, &status, &fm).await {
                    warn!("the night stopped: {e:#}");
                }
            }
        }
    };
    if options.night_now {
        night_job().await;
    }
    let scheduler = match schedule {
        Some(s) => {
            let sch = Scheduler::new("night", s)
                .with_metrics(&metrics)
                .with_status(status.clone());
            let token = shutdown.clone();
            Some(tokio::spawn(async move { sch.run(token, night_job).await }))
        }
        None => {
            info!("no [server] schedule: nights run only with --night-now or `passerelle sync`");
            None
        }
    };

    // HTTP.
    let readiness = {
        let (journal_hub, state_hub) = (hub.clone(), hub.clone());
        Readiness::new(config.server.readiness_timeout())
            .check("journal", move || {
                let h = journal_hub.clone();
                async move { h.engine.journal().head().await.map(|_| ()) }
            })
            .check("state", move || {
                let h = state_hub.clone();
                async move { h.engine.state().cursor("ready").await.map(|_| ()) }
            })
    };
    let mut web = web_app(&hub, &config.server, status.clone())
        .await?
        .with_dpo(dpo_setup(&hub, &config)?)
        .with_review_desk(Arc::new(crate::review_desk::ReviewDesk(hub.engine.clone())))
        .with_replay_desk(Arc::new(crate::review_desk::ReplayDesk(
            hub.transport.clone(),
        )));
    if let Some(d) = desk {
        web = web.with_faj_desk(d);
    }
    let state = AppState::new(status, metrics)
        .with_readiness(readiness)
        .draining_on(shutdown.clone());
    // Kept to hand the audit the refusals still being counted when serving stops.
    let hooks = faj.clone();
    let webhooks = faj.map(|w| Arc::new(FajHook(w)) as Arc<dyn passerelle_server::Webhook>);
    let app = passerelle_server::app_with_web(state, webhooks, web);
    let addr: SocketAddr = config.server.listen_addr().context("[server] listen")?;
    listening(addr);
    passerelle_server::serve_with_limits(
        addr,
        app,
        shutdown.clone(),
        config.server.shutdown_grace(),
        &config.server.http,
    )
    .await?;

    // Drain: the webhook refusals counted, the night in progress, then the consumers.
    shutdown.cancel();
    if let Some(h) = &hooks {
        h.flush_refusals().await;
    }
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    for c in consumers {
        let _ = c.await;
    }
    hub.close().await?;
    Ok(())
}

/// What the DPO's console needs of the running hub: its flows and where they come
/// from, the security measures of this configuration (the register's), the anchor key
/// and the anchor file (the one `passerelle audit` keeps, under the data folder).
pub fn dpo_setup(hub: &Hub, config: &HubConfig) -> Result<passerelle_server::DpoSetup> {
    let flows_source = match &config.flows {
        Some(p) => format!(
            "le fichier des flux {}",
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
        ),
        None => format!(
            "la copie du fichier des flux intégrée à passerelle {} (aucun fichier nommé par la configuration)",
            env!("CARGO_PKG_VERSION")
        ),
    };
    Ok(passerelle_server::DpoSetup {
        policy: Arc::new(hub.engine.policy().clone()),
        flows_source,
        measures: crate::facts::running_facts(config),
        anchor_key: Some(
            hub.keyring
                .anchor_key()
                .context("cannot read or create the anchor key")?,
        ),
        anchor_file: Some(hub.data_dir.join("journal.anchors.jsonl")),
        tsa_certificate: config
            .audit
            .tsa_certificate
            .as_deref()
            .map(crate::tsa::certificate)
            .transpose()?,
        stamper: crate::tsa::TsaClient::from_config(&config.audit)?
            .map(|t| Arc::new(t) as Arc<dyn passerelle_server::Stamper>),
    })
}

/// The web application over this hub's state store, journal and pseudonym key.
pub async fn web_app(
    hub: &Hub,
    server: &passerelle_server::ServerConfig,
    status: SharedStatus,
) -> Result<passerelle_server::WebApp> {
    let deps = passerelle_server::WebDeps {
        store: passerelle_hub::WebStore::open(hub.engine.state())
            .await
            .context("cannot open the web accounts")?,
        journal: hub.engine.journal().clone(),
        pseudonyms: hub
            .keyring
            .pseudonym_key()
            .context("cannot read the pseudonym key")?,
        config: server.web.clone(),
        timezone: server.timezone(),
    };
    let bilans = passerelle_hub::bilan::Bilans::open(hub.engine.state())
        .await
        .context("cannot open the bilan")?;
    Ok(passerelle_server::WebApp::new(deps, status)
        .with_sealer(hub.engine.sealer())
        .with_bilans(bilans))
}

/// Delivers one recipient's queue until shutdown.
async fn consume(hub: Arc<Hub>, plan: SinkPlan, counts: CounterVec, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        // A short idle ends each round, so that shutdown is seen within seconds.
        match hub
            .engine
            .deliver_by_flow(&plan.recipient, plan.sink.as_ref(), Duration::from_secs(2))
            .await
        {
            Ok(by_flow) => {
                for (flow, d) in by_flow {
                    for (status, n) in [
                        ("applied", d.applied),
                        ("delivered", d.delivered),
                        ("rejected", d.rejected),
                        ("dead_lettered", d.dead_lettered),
                        ("retried", d.retried),
                    ] {
                        if n > 0 {
                            counts.with(&[&flow, status]).inc_by(n);
                        }
                    }
                }
            }
            Err(e) => {
                warn!(recipient = %plan.recipient, "delivery stopped, retrying: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// One scheduled night: sources and sends; the consumers deliver.
async fn night(
    hub: &Hub,
    config: &HubConfig,
    status: &SharedStatus,
    metrics: &FlowMetrics,
) -> Result<()> {
    let started = Utc::now();
    if let Ok(mut s) = status.write() {
        s.begin_night(started);
    }
    let mut night = wiring::plan(config, hub, &[]).await?;
    night.sinks.clear();
    // Every instance of a cluster (a state in PostgreSQL) runs this schedule: one night
    // at a time, the others wait for it and find its sources read, or take over what a
    // dead one left. One machine (SQLite) reads its sources each night as before.
    if hub.engine.state().engine_name() == "postgres" {
        night.coordination.night = Some(crate::lock::slot_name(started));
        night.coordination.wait = crate::lock::CLUSTER_WAIT;
    }
    let result = night
        .run(&hub.engine, &|_| {})
        .await
        .map_err(anyhow::Error::from);
    let ended = Utc::now();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if let Ok(mut s) = status.write() {
                s.record_flow(FlowStatus {
                    flow: "night".into(),
                    outcome: FlowOutcome::Failed,
                    started_at: Some(started),
                    ended_at: Some(ended),
                    error: Some(format!("{e:#}")),
                    ..Default::default()
                });
                s.end_night(ended);
            }
            return Err(e);
        }
    };
    for (peer, reason) in &report.failed {
        warn!("partial night: {peer}: {reason}");
    }
    if let Err(e) =
        crate::retention::sweep_all(config, hub.engine.journal(), std::time::SystemTime::now())
            .await
    {
        warn!("partial night: {e:#}");
    }
    record(status, metrics, &report, started, ended);
    Ok(())
}

/// The night's figures into the status page and the metrics.
pub fn record(
    status: &SharedStatus,
    metrics: &FlowMetrics,
    report: &NightReport,
    started: chrono::DateTime<Utc>,
    ended: chrono::DateTime<Utc>,
) {
    let Ok(mut s) = status.write() else {
        return;
    };
    for (flow, r) in &report.flows {
        if flow.is_empty() {
            continue;
        }
        let f = FlowStatus {
            flow: flow.clone(),
            outcome: if r.rejected() + r.delivered.dead_lettered > 0 {
                FlowOutcome::Partial
            } else {
                FlowOutcome::Completed
            },
            read: r.read,
            sent: r.sent.sent,
            unchanged: r.sent.unchanged,
            applied: r.applied(),
            rejected: r.rejected(),
            denied: r.sent.denied,
            dead_lettered: r.delivered.dead_lettered,
            started_at: Some(started),
            ended_at: Some(ended),
            error: None,
        };
        metrics.observe(&f);
        s.record_flow(f);
    }
    s.end_night(ended);
}

/// Refused webhooks go to the audit journal, one entry per window with counts by
/// reason (no body content, no address).
struct JournalAudit {
    hub: Arc<Hub>,
    platform: String,
}

#[async_trait]
impl WebhookAudit for JournalAudit {
    async fn refused(&self, window: RefusalWindow) {
        let mut e = NewEntry::new(Event::Denied, "system", Outcome::Refused);
        e.flow = Some("faj-decision".into());
        e.sender = Some(self.platform.clone());
        e.reason = Some(format!(
            "webhooks refused from {} to {}: {}",
            window.from.to_rfc3339(),
            window.to.to_rfc3339(),
            window.summary()
        ));
        if let Err(err) = self.hub.engine.journal().append(e).await {
            warn!("cannot journal a refused webhook: {err}");
        }
    }
}
