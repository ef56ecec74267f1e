//! `e2e-sync --config FILE --data-dir DIR`: what `passerelle sync` does (load the
//! configuration file, open the hub, plan and run one night, close, verify the
//! journal), through the same library calls, built with the end-to-end tests so that
//! they can `kill -9` a night in a child process without a second cargo build of the
//! `passerelle` binary under other features.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use passerelle_hub::Progress;
use passerelle_runtime::config::HubConfig;
use passerelle_runtime::wiring::{self, Hub};

fn arg(args: &[String], name: &str) -> Result<PathBuf> {
    let i = args
        .iter()
        .position(|a| a == name)
        .with_context(|| format!("{name} is required"))?;
    match args.get(i + 1) {
        Some(v) => Ok(PathBuf::from(v)),
        None => bail!("{name} needs a value"),
    }
}

fn show(p: &Progress<'_>) {
    match p {
        Progress::Read { .. } => {}
        Progress::SourceDone {
            source,
            flow,
            report,
        } => eprintln!(
            "{source} read; {flow} so far: {} read, {} sent",
            report.read, report.sent.sent
        ),
        Progress::Delivered { recipient, summary } => eprintln!(
            "delivered to {recipient}: {} applied, {} awaiting an answer, {} dead-lettered",
            summary.applied, summary.delivered, summary.dead_lettered
        ),
        Progress::Receipts { summary } => eprintln!(
            "answers: {} applied, {} rejected",
            summary.applied, summary.rejected
        ),
    }
}

async fn sync(config: PathBuf, data_dir: PathBuf) -> Result<bool> {
    let config = HubConfig::load(&config)?;
    let hub = Hub::open(&config, &data_dir).await?;
    let mut night = wiring::plan(&config, &hub, &[])
        .await
        .context("cannot prepare the night")?;
    let report = night
        .run(&hub.engine, &|p| show(&p))
        .await
        .context("the night stopped")?;
    hub.close().await?;
    let v = hub.engine.journal().verify().await?;
    for (flow, r) in &report.flows {
        println!(
            "{flow} read {} sent {} unchanged {} applied {} awaiting {} rejected {} dead {}",
            r.read,
            r.sent.sent,
            r.sent.unchanged,
            r.applied(),
            r.awaiting(),
            r.rejected(),
            r.delivered.dead_lettered
        );
    }
    println!(
        "audit journal: {} entries, chain {}",
        v.entries,
        if v.is_intact() { "intact" } else { "BROKEN" }
    );
    Ok(report.completed() && v.is_intact())
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let run = || -> Result<bool> {
        let config = arg(&args, "--config")?;
        let data_dir = arg(&args, "--data-dir")?;
        tokio::runtime::Runtime::new()?.block_on(sync(config, data_dir))
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
