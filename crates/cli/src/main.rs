//! The `passerelle` command: parses arguments, installs logging and TLS, and hands
//! each subcommand to its module; the logic lives in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bilan;
mod config_cmd;
#[cfg(feature = "sim")]
mod demo;
mod import;
mod keys;
mod mapping;
mod output;
mod policy;
mod receipts;
mod serve;
#[cfg(feature = "sim")]
mod simulate;
mod sync;
mod users;

/// Passerelle: the data-exchange hub between Missions Locales and Conseils
/// départementaux: reads each peer's exports, sends what each flow allows, delivers and
/// keeps every step in the audit journal.
#[derive(Debug, Parser)]
#[command(
    name = "passerelle",
    version,
    long_about = None,
    after_help = "Examples:\n  \
        passerelle demo --once                       one night on simulated peers, no service needed\n  \
        passerelle --config /etc/passerelle/passerelle.toml config check\n  \
        passerelle --config /etc/passerelle/passerelle.toml sync --wait 600\n  \
        passerelle receipts --sender CD059 --status rejected --format csv\n\n\
        Exit status of sync and demo --once: 0 complete, 3 partial (the failing peers named), \
        2 could not run, 4 another night holds the data folder.\n\
        Global options (--data-dir, --config, --log-format) go before or after the command."
)]
struct Cli {
    /// Where the embedded defaults live (SQLite journal and state, embedded queue,
    /// keyring) [default: ./passerelle-data; `demo` uses a fresh folder]
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_DATA_DIR",
        help_heading = "Global options"
    )]
    data_dir: Option<PathBuf>,

    /// The configuration file (TOML); `PASSERELLE_…` environment variables override it.
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_CONFIG",
        default_value = "passerelle.toml",
        help_heading = "Global options"
    )]
    config: PathBuf,

    /// How logs are written on stderr (plain lines, no colour off a terminal; or JSON).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "plain",
        env = "PASSERELLE_LOG_FORMAT",
        help_heading = "Global options"
    )]
    log_format: output::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole night on simulated peers, in one process with no external service.
    #[cfg(feature = "sim")]
    Demo(demo::Args),
    /// Run one night of every configured flow (or the named ones) and print a summary.
    Sync(sync::Args),
    /// Run the hub for good: deliveries as queues fill, the nightly schedule, FAJ
    /// webhooks, health, metrics and the status page.
    Serve(serve::Args),
    /// Show what became of the transfers an organisation sent (its receipts).
    Receipts(receipts::Args),
    /// Count transfers per flow and month, for both sides (no personal data).
    Bilan(bilan::Args),
    /// Parse one peer file into canonical JSON Lines, touching nothing.
    Import(import::Args),
    /// Run one peer simulator alone (for tests, demos and connector development).
    #[cfg(feature = "sim")]
    Simulate(simulate::Args),
    /// Generate or rotate an organisation's keys.
    Keys(keys::Args),
    /// Check the flows file and print the flows.
    Policy(policy::Args),
    /// Check the configuration and reach every peer before a night needs them.
    Config(config_cmd::Args),
    /// Verify, query, export and purge the audit journal (for DPOs).
    Audit(audit::Args),
    /// Manage the web application's local accounts (add, list, disable, reset-password).
    Users(users::Args),
    /// Draft or check a département's column mapping for its lists (values never shown).
    Mapping(mapping::Args),
}

/// What every subcommand may read from the global options.
#[derive(Debug, Clone)]
pub struct Globals {
    pub data_dir: PathBuf,
    /// Whether `--data-dir` (or its variable) was given, for commands whose default
    /// differs (`demo` then uses a fresh folder).
    pub data_dir_given: bool,
    pub config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.log_format);
    // One TLS provider for every client (lapin, reqwest, sqlx): ring, see notes/machine.md.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let globals = Globals {
        data_dir_given: cli.data_dir.is_some(),
        data_dir: cli
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./passerelle-data")),
        config: cli.config,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return output::fail(&anyhow::anyhow!(e).context("cannot start the async runtime"));
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            #[cfg(feature = "sim")]
            Command::Demo(args) => demo::run(&globals, args).await,
            Command::Sync(args) => sync::run(&globals, args).await,
            Command::Serve(args) => serve::run(&globals, args).await,
            Command::Receipts(args) => receipts::run(&globals, args).await,
            Command::Bilan(args) => bilan::run(&globals, args).await,
            Command::Import(args) => import::run(&globals, args).await,
            #[cfg(feature = "sim")]
            Command::Simulate(args) => simulate::run(&globals, args).await,
            Command::Keys(args) => keys::run(&globals, args).await,
            Command::Policy(args) => policy::run(&globals, args).await,
            Command::Audit(args) => audit::run(&globals, args).await,
            Command::Config(args) => config_cmd::run(&globals, args).await,
            Command::Users(args) => users::run(&globals, args).await,
            Command::Mapping(args) => mapping::run(&globals, args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => output::fail(&e),
    }
}
