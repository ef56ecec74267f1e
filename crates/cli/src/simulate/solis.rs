//! `passerelle simulate solis`: not built yet (see the open issues).

use std::process::ExitCode;

/// Arguments of `passerelle simulate solis`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_globals: &crate::Globals, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`passerelle simulate solis` is not built yet")
}
