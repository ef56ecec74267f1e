//! `passerelle receipts`: what became of the transfers an organisation sent (published,
//! delivered, applied, rejected with the peer's reasons, dead-lettered), from the hub
//! state under `--data-dir`: the date, the flow, the recipient and its name, the
//! sender's own reference (the place in its file, or its dossier number, opened from
//! its sealed form with the keyring when this hub holds the sender's keys), the status
//! and the reason. Nothing else about the person.

use std::io::Write;
use std::process::ExitCode;

use passerelle_hub::engine::open_sender_ref;
use passerelle_hub::{KeyringSealer, ReceiptRow, Sealer};
use passerelle_runtime::config::HubConfig;
use passerelle_runtime::{choices, wiring};

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
    let config = HubConfig::load_or_default(&globals.config)?;
    anyhow::ensure!(
        wiring::state_exists(&config, &globals.data_dir),
        "no hub state in {} (run a night first, or give --data-dir)",
        std::path::absolute(&globals.data_dir)
            .unwrap_or_else(|_| globals.data_dir.clone())
            .display()
    );
    let state = wiring::open_state(&config, &globals.data_dir).await?;
    // Filters checked against what exists: a typo is refused with the valid values.
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
        .receipts_of(&sender, flow.as_deref())
        .await?
        .into_iter()
        .filter(|r| status.as_deref().is_none_or(|s| r.row.status.as_str() == s))
        .collect();
    // Read-only: a sealed reference opens only where the sender's keys are; nothing is
    // created in the data folder.
    let sealer = config
        .keys
        .open_existing(&globals.data_dir)
        .ok()
        .map(KeyringSealer::new);
    let lines: Vec<Line> = rows
        .iter()
        .map(|r| Line::of(r, &config.organisations, sealer.as_ref()))
        .collect();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            for l in &lines {
                writeln!(out, "{}", serde_json::to_string(l)?)?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", CSV_HEADER.join(","))?;
            for l in &lines {
                let cells: Vec<String> = l.cells().iter().map(|c| csv_cell(c)).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:<20} {:<16} {:<32} {:<44} {:<14} reason",
                "date", "flow", "recipient", "sender reference", "status"
            )?;
            for l in &lines {
                let to = match &l.recipient_name {
                    Some(n) => format!("{} ({n})", l.recipient),
                    None => l.recipient.clone(),
                };
                writeln!(
                    out,
                    "{:<20} {:<16} {:<32} {:<44} {:<14} {}",
                    l.date,
                    l.flow,
                    to,
                    l.sender_ref.as_deref().unwrap_or("-"),
                    l.status,
                    l.reason.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The CSV columns, in order.
const CSV_HEADER: &[&str] = &[
    "date",
    "flow",
    "recipient",
    "recipient_name",
    "sender_ref",
    "status",
    "reason",
    "transfer",
];

/// One receipt as printed.
#[derive(Debug, serde::Serialize)]
struct Line {
    /// When the hub published it (UTC).
    date: String,
    flow: String,
    recipient: String,
    recipient_name: Option<String>,
    /// The place in the sender's file (`{file}:{line}`), or the sender's own id.
    sender_ref: Option<String>,
    status: &'static str,
    reason: Option<String>,
    /// Its last move (UTC).
    updated: String,
    transfer: String,
}

impl Line {
    fn of(
        r: &ReceiptRow,
        names: &std::collections::BTreeMap<String, String>,
        sealer: Option<&KeyringSealer>,
    ) -> Self {
        let t = &r.row;
        let sender_ref = r.sender_ref.as_deref().map(|stored| {
            open_sender_ref(
                sealer.map(|s| s as &dyn Sealer),
                &t.transfer_id,
                &t.sender,
                stored,
            )
            .unwrap_or_else(|| "(sealed: no key for the sender here)".to_owned())
        });
        Self {
            date: short_date(&r.created_at),
            flow: t.flow.clone(),
            recipient: t.recipient.clone(),
            recipient_name: names.get(&t.recipient).cloned(),
            sender_ref,
            status: t.status.as_str(),
            reason: t.reason.clone(),
            updated: short_date(&r.updated_at),
            transfer: t.transfer_id.to_string(),
        }
    }

    fn cells(&self) -> [String; 8] {
        [
            self.date.clone(),
            self.flow.clone(),
            self.recipient.clone(),
            self.recipient_name.clone().unwrap_or_default(),
            self.sender_ref.clone().unwrap_or_default(),
            self.status.to_owned(),
            self.reason.clone().unwrap_or_default(),
            self.transfer.clone(),
        ]
    }
}

/// `2026-12-03T19:40:12Z` from the stored RFC 3339 (as stored when unreadable).
fn short_date(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        },
    )
}

/// A CSV cell, quoted when it must be, and never read as a formula by a spreadsheet.
fn csv_cell(cell: &str) -> String {
    let cell = passerelle_connector::csv::neutralise(cell);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.into_owned()
    }
}
