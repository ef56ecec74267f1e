//! `passerelle config check`: see `passerelle_runtime::check`.

use std::process::ExitCode;

use anyhow::Result;
use passerelle_runtime::check;
use passerelle_runtime::config::HubConfig;

/// Arguments of `passerelle config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check the configuration file, then reach every peer: one line per peer, OK or
    /// what to fix; exit 0 when every line is OK, 1 otherwise.
    ///
    /// Example: passerelle --config /etc/passerelle/passerelle.toml config check
    Check {
        /// Only what needs no peer (what `sync` and `serve` check at start).
        #[arg(long)]
        offline: bool,
    },
}

pub async fn run(globals: &crate::Globals, args: Args) -> Result<ExitCode> {
    let Command::Check { offline } = args.command;
    // Unknown keys, bad codes: the file itself (exit 2, the key named).
    let config = HubConfig::load(&globals.config)?;
    let lines = if offline {
        check::offline(&config)
    } else {
        check::online(&config).await
    };
    #[allow(clippy::print_stdout)]
    {
        println!("configuration {}: OK", globals.config.display());
        for l in &lines {
            println!("{l}");
        }
    }
    Ok(if lines.iter().all(check::Line::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The offline checks `sync` and `serve` run at start: every problem at once.
pub fn at_start(config: &HubConfig) -> Result<()> {
    let lines = check::offline(config);
    // A peer whose folder is missing now (a share not mounted) is one peer down: the
    // night runs without it, that peer fails its own flows and is named in the summary.
    for l in lines.iter().filter(|l| l.problems.is_empty() && !l.ok()) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("passerelle: warning: {l}; this peer's flows wait for the next night");
        }
    }
    let bad: Vec<String> = lines
        .into_iter()
        .filter(|l| !l.problems.is_empty())
        .map(|l| l.to_string())
        .collect();
    anyhow::ensure!(
        bad.is_empty(),
        "the configuration does not hold (`passerelle config check` for every peer):\n  {}",
        bad.join("\n  ")
    );
    Ok(())
}
