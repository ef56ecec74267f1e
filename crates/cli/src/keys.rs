//! `passerelle keys`: generate and rotate an organisation's keys in the keyring under
//! `--data-dir`. Prints key ids, never key bytes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use passerelle_crypto::{KeyInfo, Keyring};

/// Arguments of `passerelle keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create the first key of an organisation (refused if it already has keys).
    Generate {
        /// Organisation code: ML structure code (59350S00), CD code (CD059), platform id.
        #[arg(long)]
        org: String,
    },
    /// Add a new current key; older keys stay to open the messages sealed with them.
    Rotate {
        /// Organisation code.
        #[arg(long)]
        org: String,
    },
    /// List the organisations and their key ids.
    List,
}

fn print_info(verb: &str, info: &KeyInfo, ring: &Keyring) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{verb} key {} for {} (created {})",
        info.id,
        info.org,
        info.created.to_rfc3339()
    )?;
    writeln!(
        out,
        "keys of {} (oldest first): {}",
        info.org,
        info.all.join(", ")
    )?;
    writeln!(out, "keyring: {}", ring.dir().display())?;
    Ok(())
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let ring = Keyring::open(&globals.data_dir).with_context(|| {
        format!(
            "cannot open the keyring under {}",
            globals.data_dir.display()
        )
    })?;
    match args.command {
        KeysCommand::Generate { org } => {
            let info = ring.generate(&org).context("cannot generate keys")?;
            print_info("generated", &info, &ring)?;
        }
        KeysCommand::Rotate { org } => {
            let info = ring.rotate(&org).context("cannot rotate keys")?;
            print_info("rotated to", &info, &ring)?;
        }
        KeysCommand::List => {
            let mut out = std::io::stdout().lock();
            for org in ring.orgs()? {
                let keys = ring.open_for(&org)?;
                let ids: Vec<&str> = keys.keys().iter().map(|k| k.id()).collect();
                writeln!(
                    out,
                    "{org}\tcurrent {}\t{}",
                    keys.current().id(),
                    ids.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
