//! `passerelle demo`: one process, no external service. Starts every peer simulator
//! (I-MILO, SOLIS, CNAF, a departmental box, a FAJ platform), runs one nightly sync of
//! every flow through the same wiring as `sync`, on the hub's embedded defaults
//! (embedded transport, SQLite journal and state, keyring), prints what moved per flow,
//! then serves a status page until Ctrl-C (`--once`: exits).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use passerelle_cli::wiring::{self, Hub};
use passerelle_cli::world::{World, WorldOptions};
use passerelle_hub::NightReport;

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

    // During the day, conseillers file FAJ requests through the hub.
    let requests = world.conseiller_requests(&hub, 12).await?;
    say(&format!(
        "conseillers filed {} FAJ requests through the hub",
        requests.sent
    ));

    // The night.
    let mut night = wiring::plan(&world.config, &hub, &[]).await?;
    let bar = crate::sync::progress_bar();
    let between = || -> std::result::Result<(), passerelle_cli::wiring::BoxError> {
        // SOLIS processes the night's imports, the CD reads its box; the FAJ
        // commission meets.
        world.peers_answer()?;
        std::thread::sleep(Duration::from_millis(600));
        Ok(())
    };
    let mut report = night
        .run_with(&hub.engine, &|p| bar.show(&p), Some(&between))
        .await?;
    bar.done();
    let demande = report.flows.entry("faj-demande".into()).or_default();
    demande.sent += &requests;
    demande.read += requests.read;

    let verification = hub.engine.journal().verify().await?;
    crate::sync::print_summary(&report, verification.entries, verification.is_intact());
    let completed = verification.is_intact() && report.completed();

    if !args.once {
        serve_status(args.port, &report).await?;
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

/// A status page with the night's figures, until Ctrl-C.
async fn serve_status(port: u16, report: &NightReport) -> Result<()> {
    let mut rows = String::new();
    for (flow, r) in &report.flows {
        rows.push_str(&format!(
            "<tr><td>{flow}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.read, r.sent.sent, r.sent.unchanged, r.applied(), r.rejected(), r.sent.denied
        ));
    }
    let page = format!(
        "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\"><title>Passerelle demo</title>\
         <h1>Passerelle: the demo night</h1><table border=\"1\" cellpadding=\"4\">\
         <tr><th>flow</th><th>read</th><th>sent</th><th>unchanged</th><th>applied</th><th>rejected</th><th>denied</th></tr>{rows}</table></html>"
    );
    let json = serde_json::to_string(report)?;
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
