//! `passerelle demo`: one process, no external service. Starts every peer simulator
//! (I-MILO, SOLIS, CNAF, a departmental box, a FAJ platform), runs one nightly sync of
//! every flow through the same wiring as `sync`, on the hub's embedded defaults
//! (embedded transport, SQLite journal and state, keyring), prints what moved per flow,
//! then serves a status page until Ctrl-C (`--once`: exits).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use passerelle_hub::NightReport;
use passerelle_runtime::wiring::{self, Hub};
use passerelle_world::{World, WorldOptions};

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
    /// When another night holds the data folder, wait up to SECS for it (else exit 4).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait: u64,
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
    let globals = crate::Globals {
        data_dir: data_dir.clone(),
        ..globals.clone()
    };
    let _lock = match crate::sync::lock(&globals, "demo", args.wait).await? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };

    // The peers, then the hub on its embedded defaults pointed at them.
    let mut world = World::start(&data_dir, &WorldOptions::new(args.jeunes, args.seed)).await?;
    for line in &world.written {
        say(line);
    }
    let hub = Hub::open(&world.config, &data_dir).await?;
    let accounts = demo_accounts(&hub, &world.config).await?;

    // During the day, conseillers file FAJ requests through the hub.
    let requests = world.conseiller_requests(&hub, 12).await?;
    say(&format!(
        "conseillers filed {} FAJ requests through the hub",
        requests.sent
    ));

    // The night.
    let mut night = wiring::plan(&world.config, &hub, &[]).await?;
    let bar = crate::sync::progress_bar(None);
    let between = || -> std::result::Result<(), passerelle_runtime::wiring::BoxError> {
        // SOLIS processes the night's imports, the CD reads its box; the FAJ
        // commission meets.
        world.peers_answer()?;
        std::thread::sleep(Duration::from_millis(600));
        Ok(())
    };
    let night_started = chrono::Utc::now();
    let mut report = night
        .run_with(&hub.engine, &|p| bar.show(&p), Some(&between))
        .await?;
    bar.done();
    let demande = report.flows.entry("faj-demande".into()).or_default();
    demande.sent += &requests;
    demande.read += requests.read;

    let verification = hub.engine.journal().verify().await?;
    crate::sync::print_summary(&report, &verification);
    let completed = verification.is_intact() && report.completed();

    if !args.once {
        serve_web(
            &hub,
            &world.config,
            args.port,
            &report,
            night_started,
            &accounts,
        )
        .await?;
    }
    hub.close().await?;
    world.stop().await;
    Ok(if completed {
        ExitCode::SUCCESS
    } else {
        crate::sync::exit_code(&report, verification.is_intact())
    })
}

fn say(line: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{line}");
    }
}

/// One demo account per role, with a fresh password each run, printed once.
async fn demo_accounts(
    hub: &Hub,
    config: &passerelle_runtime::config::HubConfig,
) -> Result<Vec<(String, String, String)>> {
    use passerelle_hub::Role;
    let orgs = wiring::organisations(config);
    let ml = orgs
        .iter()
        .find(|o| o.len() == 8 && o.as_bytes()[5] == b'S')
        .cloned();
    let cd = orgs.iter().find(|o| o.starts_with("CD")).cloned();
    let web = passerelle_hub::WebStore::open(hub.engine.state()).await?;
    let mut out = Vec::new();
    let mut wanted = vec![];
    if let Some(ml) = &ml {
        wanted.push(("conseiller.ml", Role::Conseiller, Some(ml.clone())));
        wanted.push(("operateur.ml", Role::Operateur, Some(ml.clone())));
    }
    if let Some(cd) = &cd {
        wanted.push(("conseiller.cd", Role::Conseiller, Some(cd.clone())));
    }
    wanted.push(("dpo", Role::Dpo, None));
    wanted.push(("admin", Role::Admin, None));
    for (login, role, org) in wanted {
        // Four words of a random token: long enough, and typed easily in a demo.
        let password = format!(
            "demo-{}",
            &passerelle_server::web::auth::random_token()[..16]
        );
        if web.account(login).await?.is_some() {
            let h = passerelle_server::web::hash_password(&password)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            web.set_password(login, &h).await?;
        } else {
            crate::users::add(&web, login, role, org.as_deref(), &password).await?;
        }
        let what = format!(
            "{}{}",
            role.as_str(),
            org.map(|o| format!(" of {o}")).unwrap_or_default()
        );
        out.push((login.to_owned(), password, what));
    }
    Ok(out)
}

/// The web application (the same as `serve`'s) with the night's figures, until Ctrl-C.
async fn serve_web(
    hub: &Hub,
    config: &passerelle_runtime::config::HubConfig,
    port: u16,
    report: &NightReport,
    started: chrono::DateTime<chrono::Utc>,
    accounts: &[(String, String, String)],
) -> Result<()> {
    let metrics = passerelle_server::Metrics::new();
    let status = passerelle_server::Status::new(env!("CARGO_PKG_VERSION"), 7).shared();
    let fm = passerelle_server::FlowMetrics::new(&metrics).context("metrics")?;
    if let Ok(mut s) = status.write() {
        s.begin_night(started);
    }
    passerelle_runtime::serve::record(&status, &fm, report, started, chrono::Utc::now());
    let mut web = passerelle_runtime::serve::web_app(hub, &config.server, status.clone())
        .await?
        .with_dpo(passerelle_runtime::serve::dpo_setup(hub, config)?)
        .with_review_desk(Arc::new(passerelle_runtime::review_desk::ReviewDesk(
            hub.engine.clone(),
        )))
        .with_replay_desk(Arc::new(passerelle_runtime::review_desk::ReplayDesk(
            hub.transport.clone(),
        )));
    // No consumer runs after the demo's night: the form's desk delivers each request
    // to the simulated platform itself.
    if let (Some(desk), Some(f)) = (
        passerelle_runtime::faj_desk::FajDesk::new(config, hub)?,
        config.faj.first(),
    ) {
        let sink = Arc::new(passerelle_faj::FajSink::new(f.build()?.client));
        web = web.with_faj_desk(Arc::new(desk.delivering_now(sink)));
    }
    let state = passerelle_server::AppState::new(status, metrics);
    let app = passerelle_server::app_with_web(state, None, web);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    say(&format!(
        "web application on http://127.0.0.1:{port} (Ctrl-C to stop); demo accounts:"
    ));
    for (login, password, what) in accounts {
        say(&format!("  {login:<15} {password}  ({what})"));
    }
    passerelle_server::serve(addr, app, tokio_util::sync::CancellationToken::new()).await?;
    Ok(())
}
