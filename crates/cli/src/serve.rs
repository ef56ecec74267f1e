//! `passerelle serve`: the long-running hub (`passerelle_runtime::serve`), with its
//! arguments, the offline checks at start and the line that says where it listens.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use passerelle_runtime::config::HubConfig;
use passerelle_runtime::serve::{self, ServeOptions};

/// Arguments of `passerelle serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run one night at start-up, then follow the schedule.
    #[arg(long)]
    night_now: bool,
    /// When a `sync` holds the data folder at a scheduled night, wait up to SECS for
    /// it; past that the night is skipped (logged, in the status).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait: u64,
}

pub async fn run(globals: &crate::Globals, args: Args) -> Result<ExitCode> {
    let config = Arc::new(HubConfig::load(&globals.config)?);
    crate::config_cmd::at_start(&config)?;
    let options = ServeOptions {
        night_now: args.night_now,
        wait: Duration::from_secs(args.wait),
    };
    serve::run(config, &globals.data_dir, options, |addr| {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("passerelle serving on http://{addr} (Ctrl-C to stop)");
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
