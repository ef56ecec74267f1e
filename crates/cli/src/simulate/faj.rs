//! `passerelle simulate faj`: runs the FAJ platform simulator (token endpoint,
//! requests, commission, signed decision webhooks) until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use passerelle_faj::sim::{Faults, SimConfig, spawn};

/// Arguments of `passerelle simulate faj`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Seed of the commission's decisions and of the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where decision webhooks are pushed (e.g. http://127.0.0.1:8080/hooks/faj);
    /// without it decisions are only visible by reading.
    #[arg(long)]
    webhook: Option<String>,
    /// The OAuth2 client id the token endpoint accepts.
    #[arg(long, default_value = "sim-client")]
    client_id: String,
    /// The client secret the token endpoint accepts (a simulator's, not a real one).
    #[arg(long, default_value = "sim-secret")]
    client_secret: String,
    /// The HMAC secret of `X-FAJ-Signature`.
    #[arg(long, default_value = "sim-webhook")]
    webhook_secret: String,
    /// A token's life in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_s: u64,
    /// Delay between filing and the commission's decision, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    commission_delay_ms: u64,
    /// The département in request ids (FAJ-059-2026-000123).
    #[arg(long, default_value = "059")]
    departement: String,
}

pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.webhook {
        let ok = url.starts_with("http://") || url.starts_with("https://");
        anyhow::ensure!(ok, "--webhook must be an http(s) URL");
    }
    let config = SimConfig {
        addr: SocketAddr::new(args.bind, args.port),
        seed: args.seed,
        client_id: args.client_id,
        client_secret: args.client_secret,
        webhook_secret: args.webhook_secret,
        webhook_url: args.webhook,
        token_ttl: Duration::from_secs(args.token_ttl_s.max(1)),
        departement: args.departement,
        faults: Faults {
            commission_delay_ms: args.commission_delay_ms,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let (addr, handle) = spawn(config)
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    #[allow(clippy::print_stderr)]
    {
        eprintln!("faj simulator listening on http://{addr} (Ctrl-C to stop)");
    }
    wait_for_stop().await?;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Waits for Ctrl-C or SIGTERM (a background process may ignore SIGINT; supervisors
/// stop with SIGTERM).
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
