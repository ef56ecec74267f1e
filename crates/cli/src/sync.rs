//! `passerelle sync`: one nightly run of every configured flow (or the named ones), on
//! the peers `passerelle.toml` names; resumes cleanly after a crash (sources are
//! acknowledged only once sent); prints and logs a per-flow summary.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use passerelle_hub::{NightReport, Progress};
use passerelle_runtime::config::HubConfig;
use passerelle_runtime::lock::{EXIT_NIGHT_RUNNING, LockError, NightLock};
use passerelle_runtime::wiring::{self, Hub};

use crate::output::Format;

/// Arguments of `passerelle sync`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    passerelle sync                                  every configured flow\n  \
    passerelle sync --flow brsa-orientation --format json\n  \
    passerelle sync --wait 600                       from cron, beside `serve`\n\n\
    Exit status: 0 complete, 3 partial (the failing peers named on stderr and in the summary), \
    2 could not run, 4 another night holds the data folder (after --wait).")]
pub struct Args {
    /// Run only the sources of this flow (repeatable): brsa-orientation, brsa-suivi,
    /// faj-demande, faj-decision, ase-majorite, of-signalement, of-suivi. A source is
    /// read whole, so the other flows it feeds move too (nothing is skipped for good).
    #[arg(long = "flow")]
    flows: Vec<String>,
    /// How the summary is printed on stdout.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Same as `--format json` (kept for older scripts).
    #[arg(long, hide = true)]
    json: bool,
    /// When another night holds the data folder, wait up to SECS for it to end
    /// before giving up (exit 4).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait: u64,
}

/// Takes the data folder's night lock for `what`, or says a night is running.
pub async fn lock(
    globals: &crate::Globals,
    what: &str,
    wait: u64,
) -> Result<std::result::Result<NightLock, ExitCode>> {
    match NightLock::acquire(&globals.data_dir, what, Duration::from_secs(wait)).await {
        Ok(l) => Ok(Ok(l)),
        Err(e @ LockError::Busy { .. }) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("passerelle: {e}");
            }
            Ok(Err(ExitCode::from(EXIT_NIGHT_RUNNING)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(globals: &crate::Globals, args: Args) -> Result<ExitCode> {
    let config = HubConfig::load(&globals.config)?;
    crate::config_cmd::at_start(&config)?;
    // A typo in a cron line fails here, not as a night that reads nothing.
    let flows = passerelle_runtime::choices::flows(&config, &args.flows)?;
    let _lock = match lock(globals, "sync", args.wait).await? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let hub = Hub::open(&config, &globals.data_dir).await?;
    let mut night = wiring::plan(&config, &hub, &flows)
        .await
        .context("cannot prepare the night")?;
    night.coordination.wait = Duration::from_secs(args.wait);
    let bar = progress_bar(last_night_seconds(&globals.data_dir));
    let report = match night.run(&hub.engine, &|p| bar.show(&p)).await {
        // Another instance's night, on the cluster's state: as for the data folder.
        Err(e) if passerelle_runtime::lock::another_night(&e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("passerelle: {e}");
            }
            return Ok(ExitCode::from(EXIT_NIGHT_RUNNING));
        }
        r => r.context("the night stopped")?,
    };
    bar.done();
    remember_night_seconds(&globals.data_dir, report.seconds);
    // Files a past night set aside and whose retention has passed; a failure here is
    // told and makes the night partial, the files wait for the next one.
    let swept = passerelle_runtime::retention::sweep_all(
        &config,
        hub.engine.journal(),
        std::time::SystemTime::now(),
    )
    .await;
    hub.close().await?;
    let verification =
        passerelle_runtime::verified::verify_night(hub.engine.journal(), &globals.data_dir).await?;
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        Format::Csv => print_csv(&report)?,
        Format::Table => print_summary(&report, &verification),
    }
    tracing::info!(
        seconds = report.seconds,
        flows = report.flows.len(),
        "night done"
    );
    let code = exit_code(&report, verification.is_intact());
    if let Err(e) = swept {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("passerelle: partial night: {e:#}");
        }
        if code == ExitCode::SUCCESS {
            return Ok(ExitCode::from(EXIT_PARTIAL));
        }
    }
    Ok(code)
}

/// The exit status of a night that ran: 0 complete; 3 partial (a peer failed or its
/// deadline passed, transfers dead-lettered, the journal's chain broken), the failing
/// peers named on stderr. (2: the night could not run; 4: another night was running.)
pub const EXIT_PARTIAL: u8 = 3;

pub fn exit_code(report: &NightReport, intact: bool) -> ExitCode {
    if report.completed() && intact {
        return ExitCode::SUCCESS;
    }
    #[allow(clippy::print_stderr)]
    {
        for (peer, reason) in &report.failed {
            eprintln!("passerelle: partial night: {peer}: {reason}");
        }
        let dead: u64 = report
            .flows
            .values()
            .map(|r| r.delivered.dead_lettered)
            .sum();
        if dead > 0 {
            eprintln!(
                "passerelle: partial night: {dead} transfers dead-lettered (`passerelle receipts --status dead_lettered`)"
            );
        }
        if !intact {
            eprintln!(
                "passerelle: partial night: the audit journal's chain is broken (`passerelle audit verify`)"
            );
        }
    }
    ExitCode::from(EXIT_PARTIAL)
}

/// Where `sync` keeps how long its last night took: a night's size is not known
/// before its sources are read, so the last one's duration is the estimate.
const LAST_NIGHT_FILE: &str = "night.last";

fn last_night_seconds(data_dir: &std::path::Path) -> Option<f64> {
    std::fs::read_to_string(data_dir.join(LAST_NIGHT_FILE))
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
}

/// Best effort: without it the next night shows no estimate, nothing else changes.
fn remember_night_seconds(data_dir: &std::path::Path, seconds: f64) {
    if let Err(e) = std::fs::write(data_dir.join(LAST_NIGHT_FILE), format!("{seconds:.1}\n")) {
        tracing::debug!("the night's duration not kept for the next estimate: {e}");
    }
}

/// What the progress says of the time: elapsed, and against the last night's
/// duration how long is probably left.
fn timing(elapsed: Duration, previous: Option<f64>) -> String {
    let e = elapsed.as_secs();
    match previous {
        Some(p) if elapsed.as_secs_f64() < p => format!(
            "night running for {e} s (the last one took {p:.0} s: about {:.0} s left)",
            p - elapsed.as_secs_f64()
        ),
        Some(p) => format!("night running for {e} s (longer than the last one, {p:.0} s)"),
        None => format!("night running for {e} s"),
    }
}

/// Progress on stderr: a spinner with the current source, the elapsed time and an
/// estimate of what is left (from the last night's duration) on a terminal; otherwise
/// a plain line every `PASSERELLE_PROGRESS_S` seconds (default 10) with the same
/// timing and the latest counts, so that a long delivery is never silent in a log
/// file. Counts and peer names only, never a person's data.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    latest: std::sync::Arc<std::sync::Mutex<String>>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    started: std::time::Instant,
    previous: Option<f64>,
}

pub fn progress_bar(previous: Option<f64>) -> Bar {
    use std::io::IsTerminal;
    let latest = std::sync::Arc::new(std::sync::Mutex::new(String::from("starting")));
    let started = std::time::Instant::now();
    if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        return Bar {
            bar: Some(b),
            latest,
            stop: None,
            started,
            previous,
        };
    }
    let every = std::env::var("PASSERELLE_PROGRESS_S")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let shown = latest.clone();
    std::thread::spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_secs(every))
        {
            let line = shown.lock().map(|l| l.clone()).unwrap_or_default();
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{}; {line}", timing(started.elapsed(), previous));
            }
        }
    });
    Bar {
        bar: None,
        latest,
        stop: Some(tx),
        started,
        previous,
    }
}

impl Bar {
    pub fn show(&self, p: &Progress<'_>) {
        let line = match p {
            Progress::Read { source, flow, read } => {
                // Per batch: the bar shows these, the periodic line takes the latest.
                let line = format!("{source} → {flow}: {read} read");
                match &self.bar {
                    Some(b) => b.set_message(format!(
                        "{}; {line}",
                        timing(self.started.elapsed(), self.previous)
                    )),
                    None => {
                        if let Ok(mut l) = self.latest.lock() {
                            *l = line;
                        }
                    }
                }
                return;
            }
            Progress::SourceDone {
                source,
                flow,
                report,
            } => format!(
                "{source} read; {flow} so far: {} read, {} sent, {} unchanged, {} denied",
                report.read, report.sent.sent, report.sent.unchanged, report.sent.denied
            ),
            Progress::Delivered { recipient, summary } => format!(
                "delivered to {recipient}: {} applied, {} awaiting an answer, {} rejected, {} dead-lettered",
                summary.applied, summary.delivered, summary.rejected, summary.dead_lettered
            ),
            Progress::Receipts { summary } => format!(
                "answers: {} applied, {} rejected",
                summary.applied, summary.rejected
            ),
        };
        if let Ok(mut l) = self.latest.lock() {
            l.clone_from(&line);
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if let Some(stop) = &self.stop {
            let _ = stop.send(());
        }
    }
}

/// The table's columns after the flow, with their widths, in the order of `figures`.
const TABLE: [(&str, usize); 11] = [
    ("read", 7),
    ("refused", 8),
    ("unrouted", 8),
    ("sent", 7),
    ("unchanged", 9),
    ("applied", 8),
    ("awaiting", 8),
    ("rejected", 8),
    ("dead", 6),
    ("denied", 6),
    ("review", 6),
];

/// The per-flow table.
#[allow(clippy::print_stdout)]
pub fn print_summary(report: &NightReport, verification: &passerelle_audit::Verification) {
    let (entries, intact) = (verification.entries, verification.is_intact());
    use std::fmt::Write as _;
    let mut head = format!("{:<17}", "flow");
    for (name, width) in TABLE {
        let _ = write!(head, " {name:>width$}");
    }
    println!("{head}");
    for (flow, r) in &report.flows {
        if flow.is_empty() {
            continue;
        }
        let mut line = format!("{flow:<17}");
        for (n, (_, width)) in figures(r).into_iter().zip(TABLE) {
            let _ = write!(line, " {n:>width$}");
        }
        println!("{line}");
    }
    // Why records were not routed: an operator can fix a territory table or a mapping.
    for (flow, r) in &report.flows {
        for (why, n) in &r.unrouted_reasons {
            println!("unrouted: {flow}: {n} {why}");
        }
    }
    for (source, names) in &report.not_read {
        println!(
            "not read: {source}: {} file(s) no name pattern takes: {}",
            names.len(),
            names.join(", ")
        );
    }
    for (peer, reason) in &report.failed {
        println!("failed: {peer}: {reason}");
    }
    println!(
        "night: {:.1} s{}; audit journal: {entries} entries checked (to entry {}), chain {}",
        report.seconds,
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(", partial ({} peers failed)", report.failed.len())
        },
        verification.last_seq,
        if intact { "intact" } else { "BROKEN" }
    );
}

/// A flow's figures in the order of the table's and the CSV's columns (read, refused,
/// unrouted, sent, unchanged, applied, awaiting, rejected, dead-lettered, denied, review).
fn figures(r: &passerelle_hub::FlowReport) -> [u64; 11] {
    [
        r.read,
        r.refused_at_source,
        r.unrouted + r.sent.not_known,
        r.sent.sent,
        r.sent.unchanged,
        r.applied(),
        r.awaiting(),
        r.rejected(),
        r.delivered.dead_lettered,
        r.sent.denied,
        r.sent.review,
    ]
}

/// The per-flow figures as CSV, one line per flow.
pub fn print_csv(report: &NightReport) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "flow,read,refused,unrouted,sent,unchanged,applied,awaiting,rejected,dead_lettered,denied,review"
    )?;
    for (flow, r) in &report.flows {
        if flow.is_empty() {
            continue;
        }
        let figures = figures(r).map(|n| n.to_string());
        writeln!(out, "{flow},{}", figures.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_comes_from_the_last_night() {
        let d = Duration::from_secs(20);
        assert_eq!(timing(d, None), "night running for 20 s");
        assert_eq!(
            timing(d, Some(52.4)),
            "night running for 20 s (the last one took 52 s: about 32 s left)"
        );
        assert_eq!(
            timing(d, Some(12.0)),
            "night running for 20 s (longer than the last one, 12 s)"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_night_seconds(dir.path()), None);
        remember_night_seconds(dir.path(), 41.26);
        assert_eq!(last_night_seconds(dir.path()), Some(41.3));
        std::fs::write(dir.path().join(LAST_NIGHT_FILE), "nan").unwrap();
        assert_eq!(last_night_seconds(dir.path()), None);
    }
}
