//! `passerelle bilan`: the flow `bilan` of domain.md, the shared bilan of issue 23.
//! The indicators defined in `schemas/bilans/indicateurs.toml` (`--list`), computed by
//! `passerelle_hub::bilan` from the hub state under `--data-dir` for a month (and the
//! months before it with `--months`), an organisation and a partner: the same figures,
//! and for CSV and XLSX the same bytes, as the `/bilans` page's exports. JSON adds the
//! transfer counts per flow, pair and status this command printed before. Organisation
//! codes and figures only: no person, no pseudonym; small counts are `< 5`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{NaiveDate, TimeZone, Utc};
use passerelle_hub::bilan::{self, Bilans, Scope};

/// Arguments of `passerelle bilan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the indicators' definitions and exit (no data folder needed).
    #[arg(long)]
    list: bool,
    /// The month (YYYY-MM) [default: the current month].
    #[arg(long)]
    month: Option<String>,
    /// How many months, ending with --month (12 for a year's trend).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=120))]
    months: u16,
    /// The organisation whose bilan it is (a CD or an ML code) [default: every one].
    #[arg(long)]
    org: Option<String>,
    /// Only the exchanges with this partner.
    #[arg(long)]
    partner: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Write to this file instead of stdout (XLSX needs one unless stdout is redirected).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
    Xlsx,
    /// The one-page bilan of the last month (organisations by kind and code).
    Pdf,
}

fn month_bounds(month: Option<&str>) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    let m = match month {
        Some(m) => m.to_owned(),
        None => bilan::month_of(Utc::now()),
    };
    let first = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| m.len() == 7)
        .with_context(|| format!("--month `{m}` must be YYYY-MM"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .context("month out of range")?;
    Ok((first, next))
}

fn list(out: &mut dyn Write) -> anyhow::Result<()> {
    for d in bilan::definitions() {
        writeln!(out, "{:<28} {:<9} {}", d.id, d.unite.as_str(), d.libelle)?;
        writeln!(out, "{:<28} {:<9} {}", "", "", d.formule)?;
    }
    Ok(())
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    if args.list {
        list(&mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let (first, next) = month_bounds(args.month.as_deref())?;
    let config = passerelle_runtime::config::HubConfig::load_or_default(&globals.config)?;
    if !passerelle_runtime::wiring::state_exists(&config, &globals.data_dir) {
        bail!(
            "no hub state in {} (run a night first, or give --data-dir)",
            std::path::absolute(&globals.data_dir)
                .unwrap_or_else(|_| globals.data_dir.clone())
                .display()
        );
    }
    let state = passerelle_runtime::wiring::open_state(&config, &globals.data_dir).await?;
    let month = first.format("%Y-%m").to_string();
    let months = bilan::months_ending(&month, args.months.into())?;
    let scope = Scope {
        org: args.org.clone(),
        partner: args.partner.clone(),
    };
    let figures = Bilans::open(&state)
        .await
        .context("cannot open the bilan")?
        .bilan(&scope, &months)
        .await
        .context("cannot compute the bilan")?;
    let bytes = match args.format {
        Format::Csv => passerelle_server::web::bilans::csv(&figures),
        Format::Pdf => {
            let names = passerelle_server::web::WebConfig::default();
            passerelle_server::web::bilans::pdf(&figures, &|o: &str| names.org_name(o))
        }
        Format::Xlsx => passerelle_server::web::bilans::xlsx(&figures)
            .map_err(|e| anyhow::anyhow!("cannot write the workbook: {e}"))?,
        Format::Json => {
            let at =
                |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
            let from = NaiveDate::parse_from_str(&format!("{}-01", months[0]), "%Y-%m-%d")?;
            let lines: Vec<_> = state
                .bilan(at(from), at(next))
                .await?
                .into_iter()
                .filter(|r| scope_holds(&scope, &r.sender, &r.recipient))
                .collect();
            let v = serde_json::json!({
                "month": month,
                "months": months,
                "org": args.org,
                "partner": args.partner,
                "lines": lines,
                "indicateurs": figures.figures,
            });
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s.into_bytes()
        }
    };
    state.close().await;
    match &args.output {
        Some(p) => {
            std::fs::write(p, &bytes).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            use std::io::IsTerminal;
            if args.format == Format::Xlsx && std::io::stdout().is_terminal() {
                bail!(
                    "an XLSX workbook is not for a terminal: give --output FILE or redirect stdout"
                );
            }
            std::io::stdout().lock().write_all(&bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a transfer between `sender` and `recipient` is in the scope (the old
/// counts follow the same filter as the figures).
fn scope_holds(scope: &Scope, sender: &str, recipient: &str) -> bool {
    [&scope.org, &scope.partner]
        .iter()
        .all(|o| o.as_deref().is_none_or(|o| sender == o || recipient == o))
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

    #[test]
    fn the_list_names_every_definition_with_its_formula() {
        let mut out = Vec::new();
        list(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2 * bilan::COMPUTED.len());
        assert!(text.contains("brsa_delai_suivi_p90"), "{text}");
        assert!(text.contains("Montant accordé"), "{text}");
    }

    #[test]
    fn the_scope_filters_pairs() {
        let s = Scope {
            org: Some("59350S00".into()),
            partner: Some("CD059".into()),
        };
        assert!(scope_holds(&s, "CD059", "59350S00"));
        assert!(!scope_holds(&s, "FAJ059", "59350S00"));
        assert!(scope_holds(&Scope::default(), "a", "b"));
    }
}
