//! Logging set-up, failure reporting and progress display shared by the subcommands.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

/// How a command prints its rows on stdout: the one `--format` option of every
/// command that prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for a person.
    Table,
    /// JSON (one document, or JSON Lines for row listings).
    Json,
    /// CSV with a header line.
    Csv,
}

/// Logs go to stderr as plain lines, filtered by `RUST_LOG` (default `warn`), so that
/// stdout stays clean for data (JSON Lines, tables).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Prints the one-line cause chain of a failure and returns the failure status. A
/// closed stdout (`passerelle audit export … | head`) is the reader's choice, not a
/// failure: the command ends quietly.
pub fn fail(e: &anyhow::Error) -> ExitCode {
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe (os error 32)")
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("passerelle: {e:#}");
    }
    ExitCode::from(2)
}

/// A progress display: a bar on a terminal, nothing otherwise (callers print plain
/// summary lines themselves).
#[allow(dead_code)] // the long-running commands (import, simulate) use it
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
