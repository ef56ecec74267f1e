//! `passerelle receipts`: what became of the transfers an organisation sent (published,
//! delivered, applied, rejected with the peer's reasons, dead-lettered), from the hub
//! state under `--data-dir`. Transfer ids and hub ids only, never a person's data.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use passerelle_cli::config::HubConfig;
use passerelle_cli::{choices, wiring};
use passerelle_hub::HubState;

use crate::output::Format;

/// Arguments of `passerelle receipts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sending organisation (CD059, 59350S00, FAJ059).
    #[arg(long)]
    sender: String,
    /// Only this flow.
    #[arg(long)]
    flow: Option<String>,
    /// Only transfers in this status (published, delivered, applied, rejected,
    /// dead_lettered).
    #[arg(long)]
    status: Option<String>,
    /// How the receipts are printed (JSON: one object a line).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let path = globals.data_dir.join("state.sqlite");
    anyhow::ensure!(
        path.exists(),
        "no hub state in {} (run a night first, or give --data-dir)",
        std::path::absolute(&globals.data_dir)
            .unwrap_or_else(|_| globals.data_dir.clone())
            .display()
    );
    let state = HubState::open(&path)
        .await
        .context("cannot open the hub state")?;
    // Filters checked against what exists: a typo is refused with the valid values.
    let config = HubConfig::load_or_default(&globals.config)?;
    let mut orgs: Vec<String> = wiring::organisations(&config).into_iter().collect();
    for o in state.senders().await? {
        if !orgs.contains(&o) {
            orgs.push(o);
        }
    }
    let sender = choices::pick("organisation", &args.sender, &orgs)?;
    let flow = match &args.flow {
        Some(f) => Some(choices::pick("flow", f, &choices::flow_ids(&config)?)?),
        None => None,
    };
    let status = args.status.as_deref().map(choices::status).transpose()?;
    let rows: Vec<_> = state
        .transfers_of(&sender, flow.as_deref())
        .await?
        .into_iter()
        .filter(|r| status.as_deref().is_none_or(|s| r.status.as_str() == s))
        .collect();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            for r in &rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        Format::Csv => {
            writeln!(out, "transfer,flow,recipient,status,reason")?;
            for r in &rows {
                let reason = r.reason.as_deref().unwrap_or("").replace('"', "\"\"");
                writeln!(
                    out,
                    "{},{},{},{},\"{reason}\"",
                    r.transfer_id,
                    r.flow,
                    r.recipient,
                    r.status.as_str()
                )?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:<36} {:<16} {:<10} {:<14} reason",
                "transfer", "flow", "recipient", "status"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<36} {:<16} {:<10} {:<14} {}",
                    r.transfer_id,
                    r.flow,
                    r.recipient,
                    r.status.as_str(),
                    r.reason.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
