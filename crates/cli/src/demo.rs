//! `passerelle demo`: one process, no external service. Starts the peer simulators,
//! runs one nightly sync of every flow whose connectors are wired on the hub's
//! embedded defaults (embedded transport, SQLite journal and state, keyring), prints
//! what moved per flow, then serves a status page until Ctrl-C (`--once`: exits).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use passerelle_audit::JournalConfig;
use passerelle_connector::Sink;
use passerelle_crypto::Keyring;
use passerelle_hub::{DeliverSummary, Engine, HubState, KeyringSealer, SendSummary};
use passerelle_imilo::{ImiloConfig, ImiloSink, KeySource, KeySources};
use passerelle_model::{Jeune, OrganismeType};
use passerelle_policy::{OrgKind, Party, Policy, System};
use passerelle_transport::Transport;
use passerelle_transport::embedded::EmbeddedConfig;

/// The flows file shipped with the hub, used when none is given.
const SHIPPED_FLOWS: &str = include_str!("../../../schemas/policy/flows.toml");

/// Arguments of `passerelle demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Synthetic young people per simulated system.
    #[arg(long, default_value_t = 2000)]
    jeunes: u64,
    /// Seed of the synthetic populations (the same seed gives the same people).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Port of the status page on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Exit after the sync: status 0 when every flow completed.
    #[arg(long)]
    once: bool,
}

/// What moved under one flow during the demo night.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct FlowReport {
    read: u64,
    rejected_at_source: u64,
    sent: SendSummary,
    delivered: DeliverSummary,
}

pub async fn run(globals: &crate::Globals, args: Args) -> Result<ExitCode> {
    let data_dir = if globals.data_dir_given {
        globals.data_dir.clone()
    } else {
        let dir = std::env::temp_dir().join(format!("passerelle-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        dir
    };
    say(&format!("data folder: {}", data_dir.display()));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;

    // The peers.
    let (imilo_addr, imilo) = passerelle_imilo::sim::spawn(passerelle_imilo::sim::SimConfig {
        jeunes: args.jeunes,
        seed: args.seed,
        ..Default::default()
    })
    .await
    .context("cannot start the I-MILO simulator")?;
    say(&format!(
        "I-MILO simulator on http://{imilo_addr} ({} dossiers)",
        args.jeunes
    ));
    let solis_dir = data_dir.join("peers/solis");
    std::fs::create_dir_all(&solis_dir)?;
    let export = passerelle_solis::sim::write_export(
        &solis_dir,
        &passerelle_solis::sim::SimOptions::new(args.jeunes, args.seed),
    )
    .context("cannot write the SOLIS export")?;
    say(&format!(
        "SOLIS simulator wrote {} ({} individus)",
        export.path.display(),
        export.written
    ));

    // The hub on its embedded defaults.
    let keyring = Keyring::open(&data_dir).context("cannot open the keyring")?;
    let pseudonyms = keyring
        .pseudonym_key()
        .context("cannot read the pseudonym key")?;
    let transport: Arc<dyn Transport> = Arc::new(
        EmbeddedConfig::new(data_dir.join("queue.sqlite"))
            .build()
            .await
            .context("cannot open the embedded transport")?,
    );
    let journal = JournalConfig::sqlite_file(&data_dir.join("journal.sqlite"))
        .build()
        .await
        .context("cannot open the audit journal")?;
    let state = HubState::open(&data_dir.join("state.sqlite"))
        .await
        .context("cannot open the hub state")?;
    let policy = Arc::new(
        Policy::from_toml_str(SHIPPED_FLOWS).context("the shipped flows file is invalid")?,
    );
    let engine = Engine::new(
        policy,
        state,
        journal,
        transport.clone(),
        Arc::new(KeyringSealer::new(Keyring::open(&data_dir)?)),
        pseudonyms,
    )
    .await?;
    let imilo_sink = ImiloSink::new(imilo_client(&data_dir, imilo_addr)?);

    // brsa-orientation: SOLIS export → the ML each young person is oriented to.
    let mut reports: BTreeMap<&'static str, FlowReport> = BTreeMap::new();
    let report = brsa_orientation(&engine, &keyring, &export.path, &imilo_sink).await?;
    reports.insert("brsa-orientation", report);

    let verification = engine.journal().verify().await?;
    print_summary(&reports, verification.entries, verification.is_intact());
    let completed = verification.is_intact()
        && reports.values().all(|r| {
            r.delivered.dead_lettered == 0
                && r.sent.sent == r.delivered.applied + r.delivered.rejected + r.delivered.delivered
        });

    if !args.once {
        serve_status(args.port, &reports).await?;
    }
    transport.close().await?;
    imilo.shutdown().await;
    Ok(if completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads the SOLIS export, sends each young person to the ML they are oriented to, and
/// delivers each ML's queue to I-MILO.
async fn brsa_orientation(
    engine: &Engine,
    keyring: &Keyring,
    export: &Path,
    sink: &dyn Sink,
) -> Result<FlowReport> {
    let config = passerelle_solis::SolisConfig::default();
    let file = passerelle_solis::Export::open(export, &config).context("SOLIS export refused")?;
    let cd = format!("CD{}", file.header.departement);
    let mut report = FlowReport::default();
    let mut by_ml: BTreeMap<String, Vec<Jeune>> = BTreeMap::new();
    for item in file.records()? {
        let item = item?;
        report.read += 1;
        match item.outcome {
            Ok(record) => {
                let ml = record
                    .orientation
                    .as_ref()
                    .and_then(|o| o.organisme.as_ref())
                    .filter(|o| o.kind == OrganismeType::Ml)
                    .and_then(|o| o.code.clone());
                // Oriented elsewhere (CD, France Travail): not this flow.
                if let Some(code) = ml {
                    by_ml.entry(code).or_default().push(record);
                }
            }
            Err(_) => report.rejected_at_source += 1,
        }
    }
    for (ml, records) in by_ml {
        if keyring.open_for(&ml).is_err() {
            keyring
                .generate(&ml)
                .with_context(|| format!("cannot create the keys of {ml}"))?;
        }
        let from = Party::new(OrgKind::Cd, &cd, System::Solis);
        let to = Party::new(OrgKind::Ml, &ml, System::Imilo);
        add_sent(
            &mut report.sent,
            &engine.send("brsa-orientation", from, to, records).await?,
        );
        add_delivered(
            &mut report.delivered,
            &engine
                .deliver(&ml, sink, Duration::from_millis(300))
                .await?,
        );
    }
    let counts = engine.state().status_counts("brsa-orientation").await?;
    tracing::info!(?counts, "brsa-orientation receipts");
    Ok(report)
}

/// An I-MILO client with the simulator's default keys, kept in owner-only files as
/// production keys would be.
fn imilo_client(data_dir: &Path, addr: SocketAddr) -> Result<passerelle_imilo::ImiloClient> {
    let secrets = data_dir.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let file = |family: &str| -> Result<KeySource> {
        let path: PathBuf = secrets.join(format!("imilo-{family}.key"));
        write_private(&path, format!("sim-{family}").as_bytes())?;
        Ok(KeySource::File(path))
    };
    let keys = KeySources {
        dossiers: file("dossiers")?,
        events: file("events")?,
        situations: file("situations")?,
        partenaires: file("partenaires")?,
    };
    let mut config = ImiloConfig::new(format!("http://{addr}"), keys);
    // The local simulator enforces no limit by default: the client's limiter is off
    // (0) so that the demo does not crawl at the production 20 requests/s.
    config.rate_limit_per_s = 0.0;
    config.validate()?;
    Ok(config.build()?)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

fn add_sent(total: &mut SendSummary, s: &SendSummary) {
    total.read += s.read;
    total.sent += s.sent;
    total.unchanged += s.unchanged;
    total.denied += s.denied;
    total.review += s.review;
    total.special_dropped += s.special_dropped;
}

fn add_delivered(total: &mut DeliverSummary, d: &DeliverSummary) {
    total.delivered += d.delivered;
    total.applied += d.applied;
    total.rejected += d.rejected;
    total.retried += d.retried;
    total.dead_lettered += d.dead_lettered;
}

#[allow(clippy::print_stdout)]
fn print_summary(reports: &BTreeMap<&'static str, FlowReport>, entries: u64, intact: bool) {
    println!(
        "{:<18} {:>6} {:>9} {:>6} {:>10} {:>8} {:>9} {:>7} {:>7}",
        "flow", "read", "refused", "sent", "unchanged", "applied", "rejected", "denied", "review"
    );
    for (flow, r) in reports {
        println!(
            "{:<18} {:>6} {:>9} {:>6} {:>10} {:>8} {:>9} {:>7} {:>7}",
            flow,
            r.read,
            r.rejected_at_source,
            r.sent.sent,
            r.sent.unchanged,
            r.delivered.applied,
            r.delivered.rejected,
            r.sent.denied,
            r.sent.review
        );
    }
    println!(
        "audit journal: {entries} entries, chain {}",
        if intact { "intact" } else { "BROKEN" }
    );
    println!(
        "not wired in the demo yet: brsa-suivi, faj-demande, faj-decision, ase-majorite, of-signalement, of-suivi, box-depot, bilan"
    );
}

fn say(line: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{line}");
    }
}

/// A status page with the night's figures, until Ctrl-C.
async fn serve_status(port: u16, reports: &BTreeMap<&'static str, FlowReport>) -> Result<()> {
    let mut rows = String::new();
    for (flow, r) in reports {
        rows.push_str(&format!(
            "<tr><td>{flow}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.read, r.sent.sent, r.sent.unchanged, r.delivered.applied, r.delivered.rejected, r.sent.denied
        ));
    }
    let page = format!(
        "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\"><title>Passerelle demo</title>\
         <h1>Passerelle: the demo night</h1><table border=\"1\" cellpadding=\"4\">\
         <tr><th>flow</th><th>read</th><th>sent</th><th>unchanged</th><th>applied</th><th>rejected</th><th>denied</th></tr>{rows}</table></html>"
    );
    let json = serde_json::to_string(reports)?;
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        )
        .route(
            "/api/summary",
            axum::routing::get(
                move || async move { ([("content-type", "application/json")], json) },
            ),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    say(&format!(
        "status page on http://127.0.0.1:{port} (Ctrl-C to stop)"
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
