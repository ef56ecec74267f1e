//! `passerelle simulate cnaf`: writes a CAF or MSA bénéficiaire file (VRSB0801 or
//! VRSD0301) into a folder, under its real name.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use passerelle_cnaf::sim::{SimOptions, write_flux};
use passerelle_model::Departement;

/// Arguments of `passerelle simulate cnaf`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Households (InfosFoyerRSA) to write; each holds one to five persons.
    #[arg(long, default_value_t = 100)]
    jeunes: u64,
    /// Seed of the generator: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the file.
    #[arg(long)]
    dir: PathBuf,
    /// Share of households whose demandeur is invalid (bad NIR key, impossible date,
    /// unknown code).
    #[arg(long, default_value_t = 0.0)]
    invalid_share: f64,
    /// The département (3 characters).
    #[arg(long, default_value = "059")]
    departement: String,
    /// DTREF and the file date (YYYY-MM-DD); today by default.
    #[arg(long)]
    date: Option<chrono::NaiveDate>,
    /// Write a file cut short (to test refusals).
    #[arg(long)]
    truncate: bool,
    /// An MSA file (APPLIEME AGO, `MSABE…`, 15-digit matricules) instead of a CAF one.
    #[arg(long)]
    msa: bool,
    /// A daily file (TYPEFLUX I, `…BEI_`) instead of a monthly one.
    #[arg(long)]
    daily: bool,
    /// The layout: `vrsb0801` or the CNAF's newer `vrsd0301`.
    #[arg(long, default_value = "vrsb0801")]
    layout: String,
    /// Households announced as sent apart in the anomaly flux (NBTOTDOSRSATRANSMANO).
    #[arg(long, default_value_t = 0)]
    anomalies: u64,
}

#[allow(clippy::print_stdout)]
pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.invalid_share),
        "--invalid-share must be between 0 and 1"
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut opts = SimOptions::new(args.jeunes, args.seed);
    opts.invalid_share = args.invalid_share;
    opts.departement =
        Departement::parse(&args.departement).map_err(|e| anyhow::anyhow!("--departement {e}"))?;
    opts.date = args
        .date
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    opts.truncate = args.truncate;
    opts.msa = args.msa;
    opts.daily = args.daily;
    opts.anomalies = args.anomalies;
    opts.layout = match args.layout.to_ascii_lowercase().as_str() {
        "vrsb0801" => passerelle_cnaf::Layout::Vrsb0801,
        "vrsd0301" => passerelle_cnaf::Layout::Vrsd0301,
        other => anyhow::bail!("--layout {other}: expected vrsb0801 or vrsd0301"),
    };
    let dir = args.dir.clone();
    let summary = tokio::task::spawn_blocking(move || write_flux(&dir, &opts)).await??;
    println!(
        "{}: {} foyers, {} records expected ({} invalid){}",
        summary.path.display(),
        summary.foyers,
        summary.records,
        summary.invalid,
        if args.truncate { ", truncated" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
