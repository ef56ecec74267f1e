//! `passerelle policy`: validate the flows file and print its flows; render the Art. 30
//! register from it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use passerelle_policy::{DEFAULT_FLOWS_PATH, Endpoint, Flow, Policy, register};

/// Arguments of `passerelle policy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flows file [default: `flows` of the configuration file when it names one,
    /// else schemas/policy/flows.toml].
    #[arg(long, global = true, env = "PASSERELLE_FLOWS")]
    flows: Option<PathBuf>,

    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Validate the flows file and print the flows as a table.
    Check,
    /// Print the register of processing activities (GDPR Art. 30) generated from it.
    Register {
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Md,
    Html,
}

fn endpoint(e: &Endpoint) -> String {
    let kinds: Vec<&str> = e.kinds.iter().map(|k| k.as_str()).collect();
    let systems: Vec<&str> = e.systems.iter().map(|s| s.as_str()).collect();
    let mut s = format!("{}/{}", kinds.join("|"), systems.join("|"));
    if e.org != "*" {
        s.push_str(&format!(" {}", e.org));
    }
    if e.same_departement {
        s.push_str(" (same dept)");
    }
    s
}

fn row(f: &Flow) -> [String; 8] {
    let special: Vec<String> = f
        .special_classes()
        .iter()
        .map(ToString::to_string)
        .collect();
    [
        f.id.clone(),
        endpoint(&f.from),
        endpoint(&f.to),
        f.direction.as_str().to_owned(),
        // `schema` always travels; count what the flow chose.
        (f.effective_paths().len() - 1).to_string(),
        if special.is_empty() {
            "-".to_owned()
        } else {
            special.join(",")
        },
        format!("{}/{}", f.retention_days.recipient, f.retention_days.audit),
        format!("Art. {}", f.legal_basis.gdpr),
    ]
}

/// Renders rows as an aligned plain-text table.
fn table(header: [&str; 8], rows: &[[String; 8]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let config = passerelle_runtime::config::HubConfig::load_or_default(&globals.config)?;
    let named = match args.flows {
        Some(f) => Some(f),
        None => config.flows.clone(),
    };
    // Without a named file: the repository's when run from it, else the shipped one
    // (the flows `sync`, `serve` and `demo` use when the configuration names none).
    let flows = named.unwrap_or_else(|| PathBuf::from(DEFAULT_FLOWS_PATH));
    let from_file = flows.exists() || flows != std::path::Path::new(DEFAULT_FLOWS_PATH);
    let policy = if from_file {
        // The error already names the file, the flow, the key and the rule.
        Policy::load(&flows).context("invalid flows file")?
    } else {
        Policy::from_toml_str(passerelle_runtime::wiring::SHIPPED_FLOWS)
            .context("the shipped flows file")?
    };
    let source = if from_file {
        format!(
            "le fichier des flux {}",
            std::path::absolute(&flows)
                .unwrap_or(flows.clone())
                .display()
        )
    } else {
        "la copie du fichier des flux intégrée à passerelle".to_owned()
    };
    let mut out = std::io::stdout().lock();
    match args.command {
        PolicyCommand::Check => {
            let rows: Vec<[String; 8]> = policy.flows().iter().map(row).collect();
            let header = [
                "flow",
                "from",
                "to",
                "direction",
                "paths",
                "special",
                "retention",
                "basis",
            ];
            write!(out, "{}", table(header, &rows))?;
            writeln!(
                out,
                "{}: {} flows, valid (retention in days: recipient/audit)",
                flows.display(),
                policy.flows().len()
            )?;
        }
        PolicyCommand::Register { format } => {
            let measures = passerelle_runtime::facts::running_facts(&config);
            let fr = register::French {
                source: &source,
                measures: &measures,
            };
            #[allow(clippy::print_stderr)]
            {
                eprintln!("passerelle: register from {source}");
            }
            let text = match format {
                Format::Md => register::to_markdown_fr(&policy, &fr),
                Format::Html => register::to_html_fr(&policy, &fr),
            };
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_flows_render_one_aligned_row_each() {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/policy/flows.toml");
        let policy = Policy::load(path).unwrap();
        let rows: Vec<[String; 8]> = policy.flows().iter().map(row).collect();
        let text = table(
            [
                "flow",
                "from",
                "to",
                "direction",
                "paths",
                "special",
                "retention",
                "basis",
            ],
            &rows,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10);
        // Columns align: the `from` column starts at the same offset on every line.
        let col = lines[0].find("from").unwrap();
        assert!(lines[1].starts_with("brsa-orientation"));
        assert_eq!(&lines[1][col..col + 3], "cd/");
        assert!(lines[9].starts_with("bilan") && lines[9].contains(" 0 "));
    }
}
