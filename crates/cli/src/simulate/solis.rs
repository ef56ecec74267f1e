//! `passerelle simulate solis`: writes a SOLIS export into a folder and answers the
//! import files found there with ACK files (once, or in a loop with `--watch`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use passerelle_model::Departement;
use passerelle_solis::ExportFlux;
use passerelle_solis::sim::{SimOptions, answer_imports, write_export};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Flux {
    #[value(name = "BRSA", alias = "brsa")]
    Brsa,
    #[value(name = "ASE", alias = "ase")]
    Ase,
}

/// Arguments of `passerelle simulate solis`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Individuals to write in the export.
    #[arg(long, default_value_t = 100)]
    jeunes: u64,
    /// Seed of the generator: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The folder SOLIS shares with the hub (exports, imports and ACKs).
    #[arg(long)]
    dir: PathBuf,
    /// Share of individuals made invalid (bad NIR key, impossible date, unknown code).
    #[arg(long, default_value_t = 0.0)]
    invalid_share: f64,
    /// Share of individuals given a bad telephone (dropped with a warning).
    #[arg(long, default_value_t = 0.0)]
    bad_phone_share: f64,
    #[arg(long, value_enum, default_value = "BRSA")]
    flux: Flux,
    /// The département (3 characters).
    #[arg(long, default_value = "059")]
    departement: String,
    /// The export date (YYYY-MM-DD); today by default.
    #[arg(long)]
    date: Option<chrono::NaiveDate>,
    /// Write a file cut short (to test refusals).
    #[arg(long)]
    truncate: bool,
    /// Only answer the import files with ACK files, once; write no export.
    #[arg(long, conflicts_with = "watch")]
    answer_imports: bool,
    /// After writing the export, answer import files every `--interval` seconds until
    /// interrupted.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 2)]
    interval: u64,
}

#[allow(clippy::print_stdout)]
pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.invalid_share) && (0.0..=1.0).contains(&args.bad_phone_share),
        "--invalid-share and --bad-phone-share must be between 0 and 1"
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args.dir.clone();
    if args.answer_imports {
        let acks = tokio::task::spawn_blocking(move || answer_imports(&dir)).await??;
        for a in acks {
            println!("{}", a.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut opts = SimOptions::new(args.jeunes, args.seed);
    opts.invalid_share = args.invalid_share;
    opts.bad_phone_share = args.bad_phone_share;
    opts.flux = match args.flux {
        Flux::Brsa => ExportFlux::Brsa,
        Flux::Ase => ExportFlux::Ase,
    };
    opts.departement =
        Departement::parse(&args.departement).map_err(|e| anyhow::anyhow!("--departement {e}"))?;
    opts.date = args
        .date
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    opts.truncate = args.truncate;
    let summary = tokio::task::spawn_blocking(move || write_export(&dir, &opts)).await??;
    println!(
        "{}: {} individus ({} invalid, {} bad telephones){}",
        summary.path.display(),
        summary.written,
        summary.invalid,
        summary.bad_phones,
        if args.truncate { ", truncated" } else { "" }
    );
    if args.watch {
        loop {
            let dir = args.dir.clone();
            for a in tokio::task::spawn_blocking(move || answer_imports(&dir)).await?? {
                println!("{}", a.display());
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
