//! `passerelle bilan`: the flow `bilan` of domain.md, aggregated indicators per flow
//! and month for both sides (how many transfers each organisation sent and received,
//! and what became of them), from the hub state under `--data-dir`. Organisation codes
//! and counts only: no person, no pseudonym.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};

/// Arguments of `passerelle bilan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The month (YYYY-MM) [default: the current month].
    #[arg(long)]
    month: Option<String>,
    /// Only the lines that concern this organisation (as sender or recipient).
    #[arg(long)]
    org: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

fn month_bounds(month: Option<&str>) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    let first = match month {
        Some(m) => NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
            .with_context(|| format!("--month `{m}` must be YYYY-MM"))?,
        None => {
            let t = Utc::now().date_naive();
            NaiveDate::from_ymd_opt(t.year(), t.month(), 1).context("no current month")?
        }
    };
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .context("month out of range")?;
    Ok((first, next))
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let (first, next) = month_bounds(args.month.as_deref())?;
    let config = passerelle_cli::config::HubConfig::load_or_default(&globals.config)?;
    if !passerelle_cli::wiring::state_exists(&config, &globals.data_dir) {
        bail!(
            "no hub state in {} (run a night first, or give --data-dir)",
            std::path::absolute(&globals.data_dir)
                .unwrap_or_else(|_| globals.data_dir.clone())
                .display()
        );
    }
    let state = passerelle_cli::wiring::open_state(&config, &globals.data_dir).await?;
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    let rows: Vec<_> = state
        .bilan(at(first), at(next))
        .await?
        .into_iter()
        .filter(|r| {
            args.org
                .as_deref()
                .is_none_or(|o| r.sender == o || r.recipient == o)
        })
        .collect();
    let month = first.format("%Y-%m").to_string();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Csv => {
            writeln!(out, "month,flow,sender,recipient,status,transfers")?;
            for r in &rows {
                writeln!(
                    out,
                    "{month},{},{},{},{},{}",
                    r.flow,
                    r.sender,
                    r.recipient,
                    r.status.as_str(),
                    r.transfers
                )?;
            }
        }
        Format::Json => {
            let v = serde_json::json!({ "month": month, "lines": rows });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_bounds_and_bad_ones_a_clear_error() {
        let (a, b) = month_bounds(Some("2026-12")).unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        let e = month_bounds(Some("12/2026")).unwrap_err().to_string();
        assert!(e.contains("YYYY-MM"), "{e}");
    }
}
