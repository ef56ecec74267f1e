//! `passerelle keys`: generate and rotate an organisation's keys in the configured key
//! store (`[keys]`: the keyring under `--data-dir` by default, else the store several
//! instances share, which only this command writes). Prints key ids, never key bytes.

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
    /// Copy a one-machine keyring (`DIR/keyring`) into the configured shared key store,
    /// so that the hub keeps its envelopes, pseudonyms and blind indexes.
    Import {
        /// The data directory the hub ran with on one machine.
        #[arg(long)]
        from: std::path::PathBuf,
    },
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
    writeln!(out, "keyring: {ring}")?;
    Ok(())
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let keys = passerelle_runtime::config::HubConfig::load_or_default(&globals.config)?.keys;
    let ring = keys.open_for_writing(&globals.data_dir).with_context(|| {
        format!(
            "cannot open the keyring under {}",
            globals.data_dir.display()
        )
    })?;
    match args.command {
        KeysCommand::Generate { org } => {
            let info = ring.generate(&org).context("cannot generate keys")?;
            print_info("generated", &info, &ring)?;
            // A shared store's pseudonym key comes from here too: instances never make one.
            if !ring.generates() && ring.init_pseudonym_key()? {
                writeln!(std::io::stdout(), "generated the pseudonym key in {ring}")?;
            }
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
        KeysCommand::Import { from } => {
            let source = Keyring::open_existing(&from)
                .with_context(|| format!("no keyring under {}", from.display()))?;
            let done = passerelle_keystore::import(&source, &ring).context("cannot import")?;
            let mut out = std::io::stdout().lock();
            for (org, added) in &done.orgs {
                writeln!(out, "{org}: {added} key(s) added")?;
            }
            writeln!(
                out,
                "pseudonym key copied: {}",
                if done.pseudonym {
                    "yes"
                } else {
                    "no (already there)"
                }
            )?;
            writeln!(out, "keyring: {ring}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
