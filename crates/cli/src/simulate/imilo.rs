//! `passerelle simulate imilo`: serves the I-MILO API on a synthetic population until
//! Ctrl-C (or SIGTERM), then shuts down gracefully.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use passerelle_imilo::sim::{self, Faults, SimConfig, SimKeys};

/// Arguments of `passerelle simulate imilo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dossiers in the population (ids 1 to N).
    #[arg(long, default_value_t = 100_000)]
    jeunes: u64,
    /// The same seed gives the same population.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8480)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// JSON file {"dossiers", "events", "situations", "partenaires"} with the keys;
    /// without it the key of family F is `sim-F`.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Requests per second per key before 429, as the real API (0: no limit).
    #[arg(long, default_value_t = 20.0)]
    rate_limit: f64,
}

pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let keys = match &args.keys {
        Some(path) => SimKeys::from_file(path).context("cannot read the simulator keys")?,
        None => SimKeys::default(),
    };
    let faults = Faults {
        rate_limit_per_s: (args.rate_limit > 0.0).then_some(args.rate_limit),
        ..Faults::default()
    };
    let (addr, handle) = sim::spawn(SimConfig {
        jeunes: args.jeunes,
        seed: args.seed,
        addr: SocketAddr::new(args.bind, args.port),
        keys,
        faults,
    })
    .await
    .context("cannot start the I-MILO simulator")?;
    tracing::info!(%addr, jeunes = args.jeunes, seed = args.seed, "i-milo simulator listening");
    // On stdout, so that scripts using `--port 0` can read the address.
    #[allow(clippy::print_stdout)]
    {
        println!(
            "i-milo simulator listening on http://{addr} ({} dossiers, seed {})",
            args.jeunes, args.seed
        );
    }
    shutdown_signal().await;
    tracing::info!("i-milo simulator shutting down");
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
