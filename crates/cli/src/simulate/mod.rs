//! `passerelle simulate <peer>`: runs one peer simulator alone; each peer's options
//! live in its own file here and its logic in its connector crate.

use std::process::ExitCode;

mod box_;
mod cnaf;
mod faj;
mod imilo;
mod solis;

/// Arguments of `passerelle simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    peer: Peer,
}

#[derive(Debug, clap::Subcommand)]
enum Peer {
    /// SOLIS: writes export files, answers import files with ACK files.
    Solis(solis::Args),
    /// CNAF: writes VRSB0801 beneficiary files.
    Cnaf(cnaf::Args),
    /// A departmental secure box: drops files, reads what the hub writes, checks its ACKs.
    #[command(name = "box")]
    Box(box_::Args),
    /// I-MILO: serves the REST API on a synthetic population.
    Imilo(imilo::Args),
    /// A FAJ platform: token endpoint, requests, commission and webhooks.
    Faj(faj::Args),
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    match args.peer {
        Peer::Solis(a) => solis::run(globals, a).await,
        Peer::Cnaf(a) => cnaf::run(globals, a).await,
        Peer::Box(a) => box_::run(globals, a).await,
        Peer::Imilo(a) => imilo::run(globals, a).await,
        Peer::Faj(a) => faj::run(globals, a).await,
    }
}
