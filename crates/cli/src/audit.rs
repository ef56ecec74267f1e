//! `passerelle audit`: verify, query, export, register and purge the audit journal (for
//! DPOs). The logic is in `passerelle_audit`; this module parses, connects and prints.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use passerelle_audit::{
    Anchor, Anchored, Entry, Event, ExportFormat, Exporter, Filter, Journal, JournalConfig, Lookup,
    NewEntry, Outcome, Subject, anchor,
};
use passerelle_crypto::Keyring;
use passerelle_model::{Date, Nir, NumeroAllocataire};
use passerelle_policy::Policy;

/// Arguments of `passerelle audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The journal: `sqlite://PATH` or `postgres://…` [default: `[journal] url` of the
    /// configuration, else `journal.sqlite` in the data folder]. It must exist: these
    /// commands never create one.
    #[arg(
        long,
        global = true,
        env = "PASSERELLE_JOURNAL_URL",
        hide_env_values = true
    )]
    journal: Option<String>,

    /// The anchor file, a copy of the signed anchors kept outside the journal's
    /// database (put it on another disk or mount) [default: journal.anchors.jsonl in the
    /// data folder].
    #[arg(long, global = true, env = "PASSERELLE_ANCHOR_FILE")]
    anchor_file: Option<PathBuf>,

    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain and its signed anchors: exit 0 and the entry count
    /// when intact, exit 1 and the first bad entry's sequence number otherwise.
    Verify,
    /// Sign the journal's head with the hub's anchor key (created in the keyring on
    /// first use) and store the anchor in the journal and the anchor file.
    Anchor,
    /// The answer to a person's access request (GDPR Art. 15), found from their
    /// identifiers, in French; the lookup is itself journaled.
    Subject(SubjectArgs),
    /// Entries of a period (dates inclusive, UTC), optionally of one flow.
    Export(ExportArgs),
    /// The register of processing activities (GDPR Art. 30), in French, from the flows
    /// the hub runs with.
    Register(RegisterArgs),
    /// Remove the entries older than a date past every flow's audit retention, leaving
    /// a signed checkpoint the rest verifies from.
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
    /// Who looks the person up (journaled with the lookup); defaults to $USER.
    #[arg(long)]
    actor: Option<String>,
    /// The flows file [default: as the hub: `flows` of the configuration, else the
    /// embedded copy].
    #[arg(long, env = "PASSERELLE_FLOWS")]
    flows: Option<PathBuf>,
    /// `table` is the report in French; `csv` and `json` the raw entries.
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
    /// The flows file [default: as the hub: `flows` of the configuration, else the
    /// embedded copy].
    #[arg(long, env = "PASSERELLE_FLOWS")]
    flows: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = RegisterFormat::Md)]
    format: RegisterFormat,
}

#[derive(Debug, clap::Args)]
struct PurgeArgs {
    /// Remove entries before this day (00:00 UTC) or this RFC 3339 time; refused when
    /// inside the audit retention a flow declares.
    #[arg(long)]
    before: String,
    /// Who purges (recorded with the purge); defaults to $USER.
    #[arg(long)]
    actor: Option<String>,
    /// Say what would go, by flow and month, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (required when the input is not a terminal).
    #[arg(long)]
    yes: bool,
    /// The flows file whose retentions apply [default: as the hub].
    #[arg(long, env = "PASSERELLE_FLOWS")]
    flows: Option<PathBuf>,
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

/// Where the journal and its anchors are, resolved once.
struct Place {
    /// The data folder, absolute (for messages that name it).
    data_dir: PathBuf,
    /// An explicit journal URL (option, variable or configuration).
    url: Option<String>,
    anchor_file: PathBuf,
    config: passerelle_runtime::config::HubConfig,
}

impl Place {
    fn new(globals: &crate::Globals, args: &Args) -> anyhow::Result<Self> {
        let data_dir =
            std::path::absolute(&globals.data_dir).unwrap_or_else(|_| globals.data_dir.clone());
        let config = passerelle_runtime::config::HubConfig::load_or_default(&globals.config)?;
        let url = args.journal.clone().or_else(|| config.journal.url.clone());
        let anchor_file = args
            .anchor_file
            .clone()
            .unwrap_or_else(|| data_dir.join("journal.anchors.jsonl"));
        Ok(Self {
            data_dir,
            url,
            anchor_file,
            config,
        })
    }

    fn sqlite_path(&self) -> Option<PathBuf> {
        self.url
            .is_none()
            .then(|| self.data_dir.join("journal.sqlite"))
    }

    /// The journal, which must exist: nothing is created.
    async fn journal(&self) -> anyhow::Result<Journal> {
        let config = match (&self.url, self.sqlite_path()) {
            (Some(u), _) => JournalConfig::new(u.clone()),
            (None, Some(path)) => {
                if !path.is_file() {
                    bail!(
                        "no journal in {}: no hub has run with this data folder (give --data-dir, or --journal)",
                        self.data_dir.display()
                    );
                }
                JournalConfig::sqlite_file(&path)
            }
            (None, None) => unreachable!("a path when there is no URL"),
        };
        // Never print the URL itself: a postgres URL may hold a password.
        config
            .open_existing()
            .await
            .context("cannot open the audit journal")
    }

    /// The keyring, which must exist (a wrong folder is refused, not filled).
    fn keyring(&self) -> anyhow::Result<Keyring> {
        self.config
            .keys
            .open_existing(&self.data_dir)
            .with_context(|| {
                format!(
                    "no hub keyring in {} (give the --data-dir the hub runs with)",
                    self.data_dir.display()
                )
            })
    }

    fn outside_anchors(&self) -> anyhow::Result<Vec<Anchor>> {
        anchor::read_file(&self.anchor_file).map_err(|e| anyhow::anyhow!("anchor file {e}"))
    }

    fn keep_outside(&self, anchors: &[Anchor]) -> anyhow::Result<()> {
        let known = self.outside_anchors()?;
        let new: Vec<Anchor> = anchors
            .iter()
            .filter(|a| !known.contains(a))
            .cloned()
            .collect();
        if !new.is_empty() {
            anchor::append_file(&self.anchor_file, &new).with_context(|| {
                format!(
                    "cannot write the anchor file {}",
                    self.anchor_file.display()
                )
            })?;
        }
        Ok(())
    }

    /// The policy the hub runs with, and where it comes from: `--flows`, else the
    /// configuration's `flows`, else the copy embedded in this program (which is what
    /// `sync` and `serve` use when the configuration names none).
    fn policy(&self, explicit: Option<&std::path::Path>) -> anyhow::Result<(Policy, String)> {
        let named = explicit
            .map(ToOwned::to_owned)
            .or_else(|| self.config.flows.clone());
        match named {
            Some(p) => {
                let abs = std::path::absolute(&p).unwrap_or(p);
                let policy = Policy::load(&abs)
                    .with_context(|| format!("cannot load the flows file {}", abs.display()))?;
                Ok((policy, format!("le fichier des flux {}", abs.display())))
            }
            None => Ok((
                Policy::from_toml_str(passerelle_runtime::wiring::SHIPPED_FLOWS)
                    .context("the embedded flows file")?,
                format!(
                    "la copie du fichier des flux intégrée à passerelle {} (aucun fichier nommé par la configuration)",
                    env!("CARGO_PKG_VERSION")
                ),
            )),
        }
    }
}

pub async fn run(globals: &crate::Globals, args: Args) -> anyhow::Result<ExitCode> {
    let place = Place::new(globals, &args)?;
    if let AuditCommand::Register(r) = &args.command {
        // The register needs the policy only, not the journal.
        return register(&place, r);
    }
    if let AuditCommand::Verify = &args.command
        && let Some(path) = place.sqlite_path()
        && !path.is_file()
    {
        // A journal deleted whole still contradicts the anchors kept outside it.
        let outside = place.outside_anchors()?;
        if let Some(last) = outside.iter().max_by_key(|a| a.seq) {
            let mut out = stdout();
            writeln!(
                out,
                "journal broken: {} is missing, but the anchor file {} says the chain reached entry {} at {}",
                path.display(),
                place.anchor_file.display(),
                last.seq,
                last.at
            )?;
            out.flush()?;
            return Ok(ExitCode::from(1));
        }
    }
    let journal = place.journal().await?;
    let code = match args.command {
        AuditCommand::Verify => verify(&place, &journal).await,
        AuditCommand::Anchor => anchor_head(&place, &journal).await,
        AuditCommand::Subject(s) => subject(&place, &journal, s).await,
        AuditCommand::Export(e) => export(&journal, e).await,
        AuditCommand::Purge(p) => purge(&place, &journal, p).await,
        AuditCommand::Register(_) => Ok(ExitCode::SUCCESS),
    };
    journal.close().await;
    code
}

fn actor_of(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

fn stdout() -> BufWriter<std::io::StdoutLock<'static>> {
    BufWriter::new(std::io::stdout().lock())
}

async fn verify(place: &Place, journal: &Journal) -> anyhow::Result<ExitCode> {
    // The keyring is only read: a journal copied elsewhere verifies without one, and
    // then says it cannot check the anchors.
    let key = match Keyring::open_existing(&place.data_dir) {
        Ok(k) => k
            .existing_anchor_key()
            .context("cannot read the anchor key")?,
        Err(_) => None,
    };
    let public = key.as_ref().map(|k| k.public_hex());
    let outside = place.outside_anchors()?;
    let v: Anchored = journal
        .verify_anchored(public.as_deref(), &outside)
        .await
        .context("cannot verify the journal")?;
    let mut v = v;
    // With a TSA certificate configured, every anchor's token is checked against it.
    let stamps = match &place.config.audit.tsa_certificate {
        Some(path) => {
            let cert = passerelle_runtime::tsa::certificate(path)?;
            let mut anchors = journal.anchors().await.context("cannot read the anchors")?;
            for a in &outside {
                if !anchors.contains(a) {
                    anchors.push(a.clone());
                }
            }
            let t = anchor::check_timestamps(&anchors, &cert);
            v.problems.extend(t.problems.iter().cloned());
            Some(t)
        }
        None => None,
    };
    let c = &v.chain;
    let mut out = stdout();
    if let Some(t) = &stamps {
        writeln!(
            out,
            "time-stamp tokens: {} checked against {}{}{}",
            t.good,
            place
                .config
                .audit
                .tsa_certificate
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            t.last_gen_time
                .as_ref()
                .map(|g| format!(", latest stamped {g}"))
                .unwrap_or_default(),
            if t.without > 0 {
                format!(", {} anchors without a token", t.without)
            } else {
                String::new()
            }
        )?;
    }
    let from = match &c.checkpoint {
        Some(c) => format!(
            " after checkpoint seq {} hash {} (purged before {})",
            c.seq, c.hash, c.purged_before
        ),
        None => String::new(),
    };
    match &public {
        Some(pk) => writeln!(out, "hub anchor key (Ed25519): {pk}")?,
        None => writeln!(
            out,
            "no anchor key in the keyring under {}: signatures cannot be checked",
            place.data_dir.display()
        )?,
    }
    writeln!(
        out,
        "anchors: {} ({} in the journal, the rest only in {})",
        v.anchors,
        v.in_journal,
        place.anchor_file.display()
    )?;
    if let Some(p) = &c.problem {
        writeln!(out, "journal broken at entry {}: {p}", p.seq())?;
        writeln!(out, "{} entries verified before it{from}", c.entries)?;
        out.flush()?;
        return Ok(ExitCode::from(1));
    }
    if !v.problems.is_empty() {
        for p in &v.problems {
            writeln!(out, "journal broken: {p}")?;
        }
        writeln!(
            out,
            "the chain walks ({} entries, last seq {}{from}) but its signed anchors contradict it",
            c.entries, c.last_seq
        )?;
        out.flush()?;
        return Ok(ExitCode::from(1));
    }
    writeln!(
        out,
        "journal intact: {} entries, last seq {}{from}",
        c.entries, c.last_seq
    )?;
    match &v.last {
        Some(a) => writeln!(
            out,
            "last anchor: entry {} hash {} signed at {}{}",
            a.seq,
            a.hash,
            a.at,
            if a.seq < c.last_seq {
                format!(
                    " ({} entries since: run `passerelle audit anchor`)",
                    c.last_seq - a.seq
                )
            } else {
                String::new()
            }
        )?,
        None => writeln!(
            out,
            "not anchored yet: a cut tail or a recomputed chain would go unnoticed; run `passerelle audit anchor`"
        )?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn anchor_head(place: &Place, journal: &Journal) -> anyhow::Result<ExitCode> {
    let key = place
        .keyring()?
        .anchor_key()
        .context("cannot read or create the anchor key")?;
    let v = journal
        .verify()
        .await
        .context("cannot verify the journal")?;
    if let Some(p) = v.problem {
        bail!("the chain is broken ({p}): it is not anchored, so that no tampering is signed");
    }
    let tsa = passerelle_runtime::tsa::TsaClient::from_config(&place.config.audit)?;
    let mut out = stdout();
    match anchor_stamped(journal, &key, tsa.as_ref()).await? {
        None => writeln!(out, "the journal is empty: nothing to anchor")?,
        Some(a) => {
            place.keep_outside(std::slice::from_ref(&a))?;
            writeln!(out, "anchored entry {} hash {} at {}", a.seq, a.hash, a.at)?;
            writeln!(out, "hub anchor key (Ed25519): {}", a.public_key)?;
            writeln!(out, "signature: {}", a.signature)?;
            if a.timestamp.is_some() {
                writeln!(
                    out,
                    "time-stamped by the authority (RFC 3161 token kept with the anchor)"
                )?;
            }
            writeln!(out, "copy kept in {}", place.anchor_file.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Anchors the head, time-stamped by the configured TSA when there is one: an
/// authority that cannot stamp stores no anchor (run `audit anchor` again once it answers).
async fn anchor_stamped(
    journal: &Journal,
    key: &passerelle_crypto::AnchorKey,
    tsa: Option<&passerelle_runtime::tsa::TsaClient>,
) -> anyhow::Result<Option<Anchor>> {
    let a = match tsa {
        None => journal.anchor(key).await,
        Some(t) => {
            journal
                .anchor_with(key, async |statement: Vec<u8>| {
                    t.stamp(&statement)
                        .await
                        .map(Some)
                        .map_err(|e| format!("{e:#}"))
                })
                .await
        }
    };
    a.context("cannot anchor the journal")
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

async fn subject(place: &Place, journal: &Journal, s: SubjectArgs) -> anyhow::Result<ExitCode> {
    let lookup = lookup_of(&s)?;
    let (policy, source) = place.policy(s.flows.as_deref())?;
    let key = place
        .keyring()?
        .existing_pseudonym_key()
        .context("cannot read the pseudonym key")?;
    let actor = actor_of(s.actor.clone());
    let entries = journal
        .subject_entries(&key, &lookup)
        .await
        .context("cannot query the journal")?;
    // The lookup is a consultation of the person's data: journaled before it is shown.
    let pseudonyms: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e.subject.as_deref())
        .collect();
    let mut looked = Vec::new();
    for p in &pseudonyms {
        let mut e = NewEntry::new(Event::Consulted, actor.clone(), Outcome::Ok);
        e.subject = Some(Subject {
            pseudonym: (*p).to_owned(),
            identifiers: Vec::new(),
        });
        e.reason = Some(format!("Art. 15 access report ({})", lookup.kind()));
        looked.push(e);
    }
    if looked.is_empty() {
        let mut e = NewEntry::new(Event::Consulted, actor.clone(), Outcome::Ok);
        e.reason = Some(format!(
            "Art. 15 search ({}): no entry found",
            lookup.kind()
        ));
        looked.push(e);
    }
    journal
        .append_batch(looked)
        .await
        .context("cannot journal the lookup")?;
    let mut out = stdout();
    match s.format {
        ListFormat::Table => {
            let date = |t| {
                passerelle_server::web::html::date_fr(t, passerelle_server::Timezone::EuropeParis)
            };
            let text = passerelle_audit::art15::report(
                &entries,
                &policy,
                &passerelle_audit::art15::Context {
                    now: Utc::now(),
                    actor: &actor,
                    names: &place.config.organisations,
                    flows_source: &source,
                    date: &date,
                },
            );
            out.write_all(text.as_bytes())?;
        }
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

fn register(place: &Place, r: &RegisterArgs) -> anyhow::Result<ExitCode> {
    let (policy, source) = place.policy(r.flows.as_deref())?;
    let measures = passerelle_runtime::facts::running_facts(&place.config);
    let fr = passerelle_policy::register::French {
        source: &source,
        measures: &measures,
    };
    #[allow(clippy::print_stderr)]
    {
        // Said on stderr so that the register on stdout stays clean.
        eprintln!("passerelle: register from {source}");
    }
    let text = match r.format {
        RegisterFormat::Md => passerelle_policy::register::to_markdown_fr(&policy, &fr),
        RegisterFormat::Html => passerelle_policy::register::to_html_fr(&policy, &fr),
    };
    let mut out = stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The latest cut-off every flow's audit retention allows, and the flow that sets it.
fn earliest_purge(policy: &Policy, now: DateTime<Utc>) -> Option<(DateTime<Utc>, String, u32)> {
    let longest = policy
        .flows()
        .iter()
        .max_by_key(|f| f.retention_days.audit)?;
    let days = longest.retention_days.audit;
    let day = (now - chrono::Duration::days(i64::from(days))).date_naive();
    Some((
        day.and_time(NaiveTime::MIN).and_utc(),
        longest.id.clone(),
        days,
    ))
}

async fn purge(place: &Place, journal: &Journal, p: PurgeArgs) -> anyhow::Result<ExitCode> {
    let (before, _) = parse_when("--before", &p.before)?;
    let (policy, source) = place.policy(p.flows.as_deref())?;
    if let Some((limit, flow, days)) = earliest_purge(&policy, Utc::now())
        && before > limit
    {
        bail!(
            "--before {} is inside the retention the flows declare: flow {flow} keeps its audit entries {days} days, so the latest cut-off allowed today is {} (flows from {source}); nothing removed",
            p.before,
            limit.format("%Y-%m-%d")
        );
    }
    let lines = journal
        .purge_preview(before)
        .await
        .context("cannot count the entries to purge")?;
    let total: u64 = lines.iter().map(|l| l.entries).sum();
    let mut out = stdout();
    writeln!(out, "{:<8}  {:<20}  {:>9}", "month", "flow", "entries")?;
    for l in &lines {
        writeln!(
            out,
            "{:<8}  {:<20}  {:>9}",
            l.month,
            l.flow.as_deref().unwrap_or("(none)"),
            l.entries
        )?;
    }
    writeln!(
        out,
        "{total} entries before {} would be removed",
        before.to_rfc3339()
    )?;
    out.flush()?;
    if p.dry_run {
        writeln!(out, "dry run: nothing removed")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if total == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if !p.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!("--yes is required when the input is not a terminal; nothing removed");
        }
        #[allow(clippy::print_stderr)]
        {
            eprint!("remove these {total} entries for good? type yes to confirm: ");
        }
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("purge not confirmed; nothing removed");
        }
    }
    let key = place
        .keyring()?
        .anchor_key()
        .context("cannot read or create the anchor key")?;
    let actor = actor_of(p.actor);
    let report = journal
        .purge_signed(before, &actor, &key)
        .await
        .context("cannot purge the journal")?;
    // The record goes to the anchor file too, then the new head is anchored.
    let mut kept: Vec<Anchor> = report.record.iter().cloned().collect();
    let tsa = passerelle_runtime::tsa::TsaClient::from_config(&place.config.audit)?;
    if let Some(a) = anchor_stamped(journal, &key, tsa.as_ref()).await? {
        kept.push(a);
    }
    place.keep_outside(&kept)?;
    match &report.checkpoint {
        None => writeln!(out, "nothing to purge before {}", before.to_rfc3339())?,
        Some(c) => {
            writeln!(
                out,
                "purged {} entries before {} (by {actor})",
                report.removed, c.purged_before
            )?;
            writeln!(out, "checkpoint: seq {} hash {}", c.seq, c.hash)?;
            writeln!(
                out,
                "signed purge record kept in the journal and in {}; hub anchor key {}",
                place.anchor_file.display(),
                key.public_hex()
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
            actor: None,
            flows: None,
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
