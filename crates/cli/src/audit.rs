//! `passerelle audit`: verify, query, export, register and purge the audit journal (for
//! DPOs). The logic is in `passerelle_audit`; this module parses, connects and prints.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use passerelle_audit::{
    Entry, ExportFormat, Exporter, Filter, Journal, JournalConfig, Lookup, Verification,
};
use passerelle_crypto::Keyring;
use passerelle_model::{Date, Nir, NumeroAllocataire};

/// Arguments of `passerelle audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The journal: `sqlite://PATH` or `postgres://…`; default `journal.sqlite` in the
    /// data folder.
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_JOURNAL_URL",
        hide_env_values = true
    )]
    journal: Option<String>,

    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain: exit 0 and the entry count when intact, exit 1 and
    /// the first bad entry's sequence number otherwise.
    Verify,
    /// Every journal entry about one person (GDPR Art. 15), found from their identifiers.
    Subject(SubjectArgs),
    /// Entries of a period (dates inclusive, UTC), optionally of one flow.
    Export(ExportArgs),
    /// The register of processing activities (GDPR Art. 30), from the flows file.
    Register(RegisterArgs),
    /// Remove the entries older than a date, leaving a checkpoint the rest verifies from.
    Purge(PurgeArgs),
}

#[derive(Debug, clap::Args)]
struct SubjectArgs {
    /// NIR (13 or 15 characters, spaces allowed).
    #[arg(long, conflicts_with_all = ["caf", "nom", "prenom", "date_naissance"])]
    nir: Option<String>,
    /// CAF or MSA allocataire number (7 digits).
    #[arg(long, conflicts_with_all = ["nom", "prenom", "date_naissance"])]
    caf: Option<String>,
    /// Family name (birth or usage name), with --prenom and --date-naissance.
    #[arg(long, requires_all = ["prenom", "date_naissance"])]
    nom: Option<String>,
    /// Given name.
    #[arg(long, requires_all = ["nom", "date_naissance"])]
    prenom: Option<String>,
    /// Birth date, DD/MM/YYYY or YYYY-MM-DD.
    #[arg(long, requires_all = ["nom", "prenom"])]
    date_naissance: Option<String>,
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// First day (YYYY-MM-DD or DD/MM/YYYY, from 00:00 UTC) or an RFC 3339 time.
    #[arg(long)]
    from: String,
    /// Last day, included (to 24:00 UTC), or an RFC 3339 time (excluded).
    #[arg(long)]
    to: String,
    /// Only this flow id.
    #[arg(long)]
    flow: Option<String>,
    #[arg(long, value_enum)]
    format: DataFormat,
}

#[derive(Debug, clap::Args)]
struct RegisterArgs {
    /// The flows file.
    #[arg(
        long,
        env = "PASSERELLE_FLOWS",
        default_value = "schemas/policy/flows.toml"
    )]
    flows: PathBuf,
    #[arg(long, value_enum, default_value_t = RegisterFormat::Md)]
    format: RegisterFormat,
}

#[derive(Debug, clap::Args)]
struct PurgeArgs {
    /// Remove entries before this day (00:00 UTC) or this RFC 3339 time.
    #[arg(long)]
    before: String,
    /// Who purges (journaled with the purge); defaults to $USER.
    #[arg(long)]
    actor: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DataFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RegisterFormat {
    Md,
    Html,
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    if let AuditCommand::Register(r) = &args.command {
        // The register needs the policy only, not the journal.
        return register(r);
    }
    let journal = open(globals, args.journal.as_deref()).await?;
    let code = match args.command {
        AuditCommand::Verify => verify(&journal).await,
        AuditCommand::Subject(s) => subject(globals, &journal, s).await,
        AuditCommand::Export(e) => export(&journal, e).await,
        AuditCommand::Purge(p) => purge(&journal, p).await,
        AuditCommand::Register(_) => Ok(ExitCode::SUCCESS),
    };
    journal.close().await;
    code
}

async fn open(globals: &crate::Globals, url: Option<&str>) -> anyhow::Result<Journal> {
    let config = match url {
        Some(u) => JournalConfig::new(u),
        None => {
            std::fs::create_dir_all(&globals.data_dir).with_context(|| {
                format!(
                    "cannot create the data folder {}",
                    globals.data_dir.display()
                )
            })?;
            JournalConfig::sqlite_file(&globals.data_dir.join("journal.sqlite"))
        }
    };
    // Never print the URL itself: a postgres URL may hold a password.
    config
        .build()
        .await
        .context("cannot open the audit journal")
}

fn stdout() -> BufWriter<std::io::StdoutLock<'static>> {
    BufWriter::new(std::io::stdout().lock())
}

async fn verify(journal: &Journal) -> anyhow::Result<ExitCode> {
    let v: Verification = journal
        .verify()
        .await
        .context("cannot verify the journal")?;
    let mut out = stdout();
    let from = match &v.checkpoint {
        Some(c) => format!(
            " after checkpoint seq {} hash {} (purged before {})",
            c.seq, c.hash, c.purged_before
        ),
        None => String::new(),
    };
    match &v.problem {
        None => {
            writeln!(
                out,
                "journal intact: {} entries, last seq {}{from}",
                v.entries, v.last_seq
            )?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            writeln!(out, "journal broken at entry {}: {p}", p.seq())?;
            writeln!(out, "{} entries verified before it{from}", v.entries)?;
            out.flush()?;
            Ok(ExitCode::from(1))
        }
    }
}

fn lookup_of(s: &SubjectArgs) -> anyhow::Result<Lookup> {
    // Errors name the option and the rule, never the value typed.
    if let Some(n) = &s.nir {
        return Ok(Lookup::Nir(
            Nir::parse(n).map_err(|e| anyhow::anyhow!("--nir is not a valid NIR: {e}"))?,
        ));
    }
    if let Some(c) = &s.caf {
        return Ok(Lookup::Caf(NumeroAllocataire::parse(c).map_err(|e| {
            anyhow::anyhow!("--caf is not a valid allocataire number: {e}")
        })?));
    }
    match (&s.nom, &s.prenom, &s.date_naissance) {
        (Some(nom), Some(prenom), Some(d)) => Ok(Lookup::Identite {
            nom: nom.clone(),
            prenom: prenom.clone(),
            date_naissance: Date::parse(d)
                .map_err(|e| anyhow::anyhow!("--date-naissance is not a valid date: {e}"))?,
        }),
        _ => bail!("give --nir, --caf, or --nom with --prenom and --date-naissance"),
    }
}

async fn subject(
    globals: &crate::Globals,
    journal: &Journal,
    s: SubjectArgs,
) -> anyhow::Result<ExitCode> {
    let lookup = lookup_of(&s)?;
    let key = Keyring::open(&globals.data_dir)
        .and_then(|k| k.pseudonym_key())
        .with_context(|| {
            format!(
                "cannot read the pseudonym key from the keyring under {}",
                globals.data_dir.display()
            )
        })?;
    let entries = journal
        .subject_entries(&key, &lookup)
        .await
        .context("cannot query the journal")?;
    let mut out = stdout();
    match s.format {
        ListFormat::Table => print_table(&mut out, &entries)?,
        ListFormat::Csv => write_all(ExportFormat::Csv, &mut out, &entries)?,
        ListFormat::Json => write_all(ExportFormat::Json, &mut out, &entries)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_all(format: ExportFormat, out: &mut impl Write, entries: &[Entry]) -> anyhow::Result<()> {
    let mut x = Exporter::new(format, out)?;
    for e in entries {
        x.write(e)?;
    }
    x.finish()?;
    Ok(())
}

/// A readable report: one line per entry, then a count.
fn print_table(out: &mut impl Write, entries: &[Entry]) -> anyhow::Result<()> {
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:>8}  {:<27}  {:<13}  {:<16}  {:<12}  {:<12}  {:<8}  {:>6}  reason",
        "seq", "time (UTC)", "event", "flow", "from", "to", "outcome", "fields"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:>8}  {:<27}  {:<13}  {:<16}  {:<12}  {:<12}  {:<8}  {:>6}  {}",
            e.seq,
            e.at,
            e.event,
            dash(&e.flow),
            dash(&e.sender),
            dash(&e.recipient),
            e.outcome,
            e.fields.len(),
            dash(&e.reason)
        )?;
    }
    let subjects: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e.subject.as_deref())
        .collect();
    writeln!(
        out,
        "{} entries about {} pseudonym(s)",
        entries.len(),
        subjects.len()
    )?;
    Ok(())
}

/// A day at 00:00 UTC (DD/MM/YYYY or YYYY-MM-DD), or an RFC 3339 time; the bool says
/// whether it was a day.
fn parse_when(option: &str, s: &str) -> anyhow::Result<(DateTime<Utc>, bool)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok((t.with_timezone(&Utc), false));
    }
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s.trim(), "%d/%m/%Y"))
        .map_err(|_| {
            anyhow::anyhow!(
                "{option} must be a date (YYYY-MM-DD or DD/MM/YYYY) or an RFC 3339 time"
            )
        })?;
    Ok((d.and_time(NaiveTime::MIN).and_utc(), true))
}

async fn export(journal: &Journal, e: ExportArgs) -> anyhow::Result<ExitCode> {
    let (from, _) = parse_when("--from", &e.from)?;
    let (mut to, to_is_day) = parse_when("--to", &e.to)?;
    if to_is_day {
        // The last day is included.
        to += chrono::Duration::days(1);
    }
    if to <= from {
        bail!("--to must not be before --from");
    }
    let filter = Filter {
        from: Some(from),
        to: Some(to),
        flow: e.flow,
        subjects: None,
    };
    let format = match e.format {
        DataFormat::Csv => ExportFormat::Csv,
        DataFormat::Json => ExportFormat::Json,
    };
    let mut out = stdout();
    let mut x = Exporter::new(format, &mut out)?;
    let n = journal
        .for_each(&filter, |entry| x.write(&entry))
        .await
        .context("cannot export the journal")?;
    x.finish()?;
    out.flush()?;
    tracing::info!(entries = n, "journal exported");
    Ok(ExitCode::SUCCESS)
}

fn register(r: &RegisterArgs) -> anyhow::Result<ExitCode> {
    let policy = passerelle_policy::Policy::load(&r.flows)
        .with_context(|| format!("cannot load the flows file {}", r.flows.display()))?;
    let text = match r.format {
        RegisterFormat::Md => passerelle_policy::register::to_markdown(&policy),
        RegisterFormat::Html => passerelle_policy::register::to_html(&policy),
    };
    let mut out = stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn purge(journal: &Journal, p: PurgeArgs) -> anyhow::Result<ExitCode> {
    let (before, _) = parse_when("--before", &p.before)?;
    let actor = p
        .actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let report = journal
        .purge_before(before, &actor)
        .await
        .context("cannot purge the journal")?;
    let mut out = stdout();
    match &report.checkpoint {
        None => writeln!(out, "nothing to purge before {}", before.to_rfc3339())?,
        Some(c) => {
            writeln!(
                out,
                "purged {} entries before {}",
                report.removed, c.purged_before
            )?;
            writeln!(out, "checkpoint: seq {} hash {}", c.seq, c.hash)?;
            writeln!(
                out,
                "keep this checkpoint outside the journal (signed mail, ticket): verification now starts from it"
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_times_parse() {
        let (t, day) = parse_when("--from", "2025-03-01").expect("day");
        assert!(day);
        assert_eq!(t.to_rfc3339(), "2025-03-01T00:00:00+00:00");
        let (t, day) = parse_when("--from", "01/03/2025").expect("french day");
        assert!(day);
        assert_eq!(t.to_rfc3339(), "2025-03-01T00:00:00+00:00");
        let (t, day) = parse_when("--to", "2025-03-01T10:00:00+01:00").expect("time");
        assert!(!day);
        assert_eq!(t.to_rfc3339(), "2025-03-01T09:00:00+00:00");
        assert!(parse_when("--to", "yesterday").is_err());
    }

    #[test]
    fn lookup_errors_do_not_echo_the_value() {
        let args = SubjectArgs {
            nir: Some("1990575123999".into()),
            caf: None,
            nom: None,
            prenom: None,
            date_naissance: None,
            format: ListFormat::Table,
        };
        // A 13-character NIR always parses (its key is computed): use a bad 15-character one.
        let args = SubjectArgs {
            nir: Some("199057512345600".into()),
            ..args
        };
        let err = lookup_of(&args).expect_err("bad key").to_string();
        assert!(err.contains("--nir"), "{err}");
        assert!(!err.contains("1990575"), "{err}");
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_exits_0_when_intact_and_1_when_an_entry_changed() {
        use passerelle_audit::{Event, NewEntry, Outcome};
        let dir = tempfile::tempdir().expect("temp dir");
        let globals = crate::Globals {
            data_dir: dir.path().to_owned(),
            data_dir_given: true,
            config: dir.path().join("passerelle.toml"),
        };
        let path = dir.path().join("journal.sqlite");
        let j = JournalConfig::sqlite_file(&path)
            .build()
            .await
            .expect("journal");
        for actor in ["actor-one", "actor-TWO", "actor-six"] {
            j.append(NewEntry::new(Event::Consulted, actor, Outcome::Ok))
                .await
                .expect("append");
        }
        j.close().await;
        let parse = |a: &[&str]| {
            <Cli as clap::Parser>::parse_from(std::iter::once("audit").chain(a.iter().copied()))
                .args
        };
        let code = run(&globals, parse(&["verify"]))
            .await
            .expect("verify runs");
        assert_eq!(code, ExitCode::SUCCESS);
        let code = run(
            &globals,
            parse(&[
                "export",
                "--from",
                "2000-01-01",
                "--to",
                "2999-12-31",
                "--format",
                "csv",
            ]),
        )
        .await
        .expect("export runs");
        assert_eq!(code, ExitCode::SUCCESS);

        // Change one byte of entry 2 in the file itself, as someone with the disk would.
        let mut bytes = std::fs::read(&path).expect("read journal file");
        let at = bytes
            .windows(9)
            .position(|w| w == b"actor-TWO")
            .expect("the entry is in the file (WAL checkpointed on close)");
        bytes[at + 6] = b'X';
        std::fs::write(&path, bytes).expect("write journal file");
        let code = run(&globals, parse(&["verify"]))
            .await
            .expect("verify runs");
        assert_eq!(code, ExitCode::from(1));
    }
}
