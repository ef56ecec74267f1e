//! `passerelle import`: parses one peer file the way its connector does in production
//! and prints canonical JSON Lines on stdout, rejections on stderr, and a JSON report.
//!
//! Each connector is one arm of `open`: a function that checks the file whole (a
//! refusal there means nothing reaches stdout) and returns an iterator of items.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use passerelle_connector::{ConnectorError, FileReport, SourceItem};

/// Arguments of `passerelle import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connector whose file format to read.
    #[arg(long, value_enum)]
    connector: Connector,
    /// The file to read.
    #[arg(long)]
    file: PathBuf,
    /// The département's mapping (SOLIS: element-name aliases, TOML; box: columns).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Connector {
    Solis,
    Cnaf,
    /// A departmental secure box `BRSA_LISTE` (CSV or XLSX).
    #[value(name = "box")]
    Box,
}

/// How often a line tells the progress off a terminal.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A file checked whole and ready to be read item by item.
struct Opened {
    items: Box<dyn Iterator<Item = Result<SourceItem, ConnectorError>>>,
}

fn open(connector: Connector, file: &Path, mapping: Option<&Path>) -> Result<Opened, Refusal> {
    match connector {
        Connector::Solis => solis(file, mapping),
        Connector::Cnaf => cnaf(file, mapping),
        Connector::Box => box_(file, mapping),
    }
}

/// Why a file is not read at all: refused (exit 2, reported) or a usage error.
enum Refusal {
    File(ConnectorError),
    Usage(anyhow::Error),
}

impl From<ConnectorError> for Refusal {
    fn from(e: ConnectorError) -> Self {
        Self::File(e)
    }
}

fn solis(file: &Path, mapping: Option<&Path>) -> Result<Opened, Refusal> {
    let config = match mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the mapping {}", path.display()))
                .map_err(Refusal::Usage)?;
            passerelle_solis::SolisConfig::from_toml(&text)
                .with_context(|| format!("mapping {}", path.display()))
                .map_err(Refusal::Usage)?
        }
        None => passerelle_solis::SolisConfig::default(),
    };
    let export = passerelle_solis::Export::open(file, &config)?;
    Ok(Opened {
        items: Box::new(export.records()?),
    })
}

fn cnaf(file: &Path, mapping: Option<&Path>) -> Result<Opened, Refusal> {
    if mapping.is_some() {
        return Err(Refusal::Usage(anyhow::anyhow!(
            "--mapping does not apply to cnaf files (the format is national)"
        )));
    }
    let flux = passerelle_cnaf::Flux::open(file)?;
    Ok(Opened {
        items: Box::new(flux.records()?),
    })
}

fn box_(file: &Path, mapping: Option<&Path>) -> Result<Opened, Refusal> {
    let mapping = match mapping {
        Some(path) => passerelle_box::Mapping::load(path)
            .with_context(|| format!("mapping {}", path.display()))
            .map_err(Refusal::Usage)?,
        None => passerelle_box::Mapping::default_brsa(),
    };
    Ok(Opened {
        items: Box::new(passerelle_box::read_file(file, &mapping)?),
    })
}

pub async fn run(_globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    // Reading is blocking file I/O: keep it off the async workers.
    tokio::task::spawn_blocking(move || import(args))
        .await
        .context("the import task failed")?
}

#[allow(clippy::print_stderr)]
fn import(args: Args) -> anyhow::Result<ExitCode> {
    let mut report = FileReport::new(args.file.display().to_string());
    let opened = match open(args.connector, &args.file, args.mapping.as_deref()) {
        Ok(o) => Some(o),
        Err(Refusal::Usage(e)) => return Err(e),
        Err(Refusal::File(e)) => {
            eprintln!("passerelle: {e}");
            report.refuse(e.to_string());
            None
        }
    };
    if let Some(opened) = opened {
        let bar = crate::output::progress(None, "records");
        // Off a terminal (a log file, cron), a line every 10 s so a long file is never
        // silent; on one, the bar says the same.
        let started = std::time::Instant::now();
        let mut told = started;
        let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
        let stderr = std::io::stderr();
        let mut err = std::io::BufWriter::new(stderr.lock());
        for item in opened.items {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    // Only I/O can fail here (the file was checked whole before).
                    out.flush().context("cannot write to stdout")?;
                    writeln!(err, "passerelle: {e}")?;
                    report.refuse(e.to_string());
                    break;
                }
            };
            report.read += 1;
            bar.inc(1);
            if quiet && report.read.is_multiple_of(1024) && told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                writeln!(
                    err,
                    "import: {} records read in {} s",
                    report.read,
                    started.elapsed().as_secs()
                )?;
            }
            for w in &item.warnings {
                writeln!(err, "warning: {}", w.to_line())?;
            }
            report.warnings.extend(item.warnings);
            match item.outcome {
                Ok(record) => {
                    report.ok += 1;
                    out.write_all(record.to_json_line().as_bytes())?;
                    out.write_all(b"\n")?;
                }
                Err(issues) => {
                    for i in &issues {
                        writeln!(err, "rejected: {}", i.to_line())?;
                    }
                    report.rejected.extend(issues);
                }
            }
        }
        out.flush().context("cannot write to stdout")?;
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            err,
            "import: {}: {} records read, {} accepted, {} rejected, {} warnings, in {secs:.1} s ({:.0} records/s)",
            args.file.display(),
            report.read,
            report.ok,
            report.read - report.ok,
            report.warnings.len(),
            report.read as f64 / secs.max(1e-3)
        )?;
        err.flush()?;
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    Ok(ExitCode::from(report.exit_code()))
}
