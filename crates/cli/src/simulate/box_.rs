//! `passerelle simulate box`: plays a département on a box folder: drops
//! `BRSA_LISTE` and `OF_SUIVI` files into `{partenaire}/depot/` (some bad on request),
//! then checks the ACK files the hub writes into `retour/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use passerelle_box::folder::LocalFolder;
use passerelle_box::sim::{Departement, Fault, SimConfig, load_manifest, save_manifest};

/// Arguments of `passerelle simulate box`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The box root (the folder holding `{partenaire}/depot` and `{partenaire}/retour`).
    #[arg(long)]
    dir: PathBuf,
    /// Seed of the generator: the same seed drops the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Young people per BRSA_LISTE file.
    #[arg(long, default_value_t = 20)]
    jeunes: usize,
    /// Bad files to drop as well: checksum, no-sentinel, duplicate, malformed, xlsx.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// The partner's code (the folder under the box root).
    #[arg(long, default_value = "59350S00")]
    partenaire: String,
    /// The département (3 characters), used in file names.
    #[arg(long, default_value = "059")]
    departement: String,
    /// Do not drop anything: check the hub's ACKs for the files an earlier run dropped.
    #[arg(long)]
    check: bool,
    /// After dropping, wait up to this many seconds for the hub's ACKs, then check them.
    #[arg(long)]
    wait: Option<u64>,
}

#[allow(clippy::print_stdout)]
pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || simulate(args))
        .await
        .context("the simulator task failed")?
}

#[allow(clippy::print_stdout)]
fn simulate(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let folder = LocalFolder::new(&args.dir);
    let dept = Departement {
        folder: &folder,
        config: SimConfig {
            partenaire: args.partenaire.clone(),
            dept: args.departement.clone(),
            emetteur: format!("CD{}", args.departement),
            seed: args.seed,
            jeunes: args.jeunes,
            faults: args.faults.clone(),
        },
    };
    let dropped = if args.check {
        load_manifest(&args.dir, &args.partenaire)
            .context("nothing to check: run without --check first")?
    } else {
        let dropped = dept.play().context("cannot drop the files")?;
        save_manifest(&args.dir, &args.partenaire, &dropped)?;
        for d in &dropped {
            println!("dropped {}", d.name);
        }
        dropped
    };
    if !args.check && args.wait.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait.unwrap_or(0));
    let problems = loop {
        let problems = dept.check_acks(&dropped)?;
        if problems.is_empty() || Instant::now() >= deadline {
            break problems;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for p in &problems {
        println!("discrepancy: {p}");
    }
    if problems.is_empty() {
        println!("all {} ACK files as expected", dropped.len());
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
