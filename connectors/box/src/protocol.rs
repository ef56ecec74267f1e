//! The box completeness protocol, hub side: read only files whose `.ok` sentinel
//! exists, check the `.sha256`, acknowledge every file with `ACK_{stem}.csv` in
//! `retour/`, ignore (but acknowledge) a file dropped twice, and write the hub's own
//! files as data under a temporary name, rename, checksum, then sentinel.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use passerelle_connector::{ConnectorError, ItemOutcome, RecordIssue};
use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};

use crate::brsa::{MappedRow, parse_name};
use crate::folder::BoxFolder;
use crate::mapping::Mapping;
use crate::of::{BOM, OfSuiviUpdate, Signalement, push_csv_line, read_of_suivi, write_jeunes_of};
use crate::state::{BoxState, SeenFile, Stage};
use crate::table::{BrsaReader, prescan};

/// ACK codes (`code_erreur`).
pub mod codes {
    /// The whole file is refused (checksum, format, header).
    pub const FICHIER_REFUSE: &str = "FICHIER_REFUSE";
    /// The file was received before (same content); nothing changed.
    pub const DOUBLON: &str = "DOUBLON";
    /// The row does not have the header's number of columns.
    pub const COLONNES: &str = "NOMBRE_COLONNES";
    /// A field of the row failed validation.
    pub const CHAMP_INVALIDE: &str = "CHAMP_INVALIDE";
    /// The row went through, but a contact value was dropped.
    pub const VALEUR_IGNOREE: &str = "VALEUR_IGNOREE";
    /// The row was read, but no declared flow takes it to an organisation the hub
    /// serves (no ML for its place, oriented elsewhere, rights not open…).
    pub const SANS_DESTINATAIRE: &str = "SANS_DESTINATAIRE";
    /// The row was read, but the flow's policy refused it.
    pub const REFUS_POLITIQUE: &str = "REFUS_POLITIQUE";
    /// The row was read, but the person could not be told apart from another one:
    /// kept for a person to check, nothing sent yet.
    pub const IDENTITE_A_VERIFIER: &str = "IDENTITE_A_VERIFIER";
    /// The row was read, but it answers about a person the recipient never sent.
    pub const INCONNU_DU_DESTINATAIRE: &str = "INCONNU_DU_DESTINATAIRE";
    /// The row was read, but the hub did not send it (any other reason).
    pub const NON_TRANSMIS: &str = "NON_TRANSMIS";
}

/// The ACK code for what the hub did with a row it read: `None` when the row went on.
fn code_of(outcome: &ItemOutcome) -> Option<(&'static str, &str)> {
    match outcome {
        ItemOutcome::Refused | ItemOutcome::Sent | ItemOutcome::Unchanged => None,
        ItemOutcome::NotSent { code, reason } => Some((
            match code.as_str() {
                "NO_ROUTE" => codes::SANS_DESTINATAIRE,
                "DENIED" => codes::REFUS_POLITIQUE,
                "IDENTITY_REVIEW" => codes::IDENTITE_A_VERIFIER,
                "NOT_KNOWN" => codes::INCONNU_DU_DESTINATAIRE,
                _ => codes::NON_TRANSMIS,
            },
            reason.as_str(),
        )),
    }
}

/// The header of ACK files.
pub const ACK_HEADER: &[&str] = &["ligne", "statut", "code_erreur", "message"];

/// One item read from a file in `depot/`.
#[derive(Debug, Clone)]
pub enum Received {
    /// A `BRSA_LISTE` row (a record or a rejected row).
    Brsa(Box<MappedRow>),
    /// An `OF_SUIVI` row (an update or a rejected row).
    OfSuivi(Result<OfSuiviUpdate, RecordIssue>),
}

/// What happened to one file in `depot/` during a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// No sentinel yet: left alone.
    Pending { name: String },
    /// Read and acknowledged row by row.
    Read {
        name: String,
        rows: u64,
        ok: u64,
        rejected: u64,
    },
    /// Refused as a whole (`FICHIER_REFUSE`).
    Refused { name: String, reason: String },
    /// Same content as a file read before: acknowledged, nothing else.
    Duplicate { name: String, first: String },
    /// Read before a crash: only the clean-up was finished.
    Finished { name: String },
}

/// A file read whose ACK waits until its rows are handed on: the ACK is written only
/// then, so that it can say what the hub did with each row it read (sent, or refused
/// after reading: no route, policy, identity to check), not only what the reader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAck {
    pub name: String,
    pub digest: String,
    lines: Vec<AckLine>,
}

/// One row of an ACK file as the reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AckLine {
    line: u64,
    ok: bool,
    code: String,
    message: String,
}

impl PendingAck {
    /// The ACK file: the reader's verdict for each row, except rows it accepted that
    /// the hub then did not send, which become `KO` with the hub's code and reason.
    fn render(&self, outcomes: &std::collections::HashMap<u64, ItemOutcome>) -> String {
        let mut ack = String::from(BOM);
        push_csv_line(&mut ack, ACK_HEADER);
        for l in &self.lines {
            let line = l.line.to_string();
            let later = outcomes.get(&l.line).filter(|_| l.ok).and_then(code_of);
            match later {
                Some((code, reason)) => {
                    // What the reader dropped (an invalid allocataire number) is often
                    // why the hub could not place the row: both are said.
                    let message = if l.code == codes::VALEUR_IGNOREE {
                        format!("{reason} | {}", l.message)
                    } else {
                        reason.to_owned()
                    };
                    push_csv_line(&mut ack, &[line.as_str(), "KO", code, &message])
                }
                None => push_csv_line(
                    &mut ack,
                    &[
                        line.as_str(),
                        if l.ok { "OK" } else { "KO" },
                        l.code.as_str(),
                        l.message.as_str(),
                    ],
                ),
            }
        }
        ack
    }
}

/// What reading one file left to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Fully handled (refused, duplicate, finished after a crash).
    Done(FileOutcome),
    /// Rows handed out; `BoxHub::complete` writes the ACK and removes the file.
    Read {
        outcome: FileOutcome,
        pending: PendingAck,
    },
}

/// The hub's side of one partner's box (`{partenaire}/depot`, `{partenaire}/retour`).
#[derive(Debug)]
pub struct BoxHub<S: BoxState> {
    folder: Arc<dyn BoxFolder>,
    partenaire: String,
    state: S,
    mapping: Mapping,
    clock: fn() -> i64,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads the digest out of a `sha256sum`-format file (`<hex>  <name>`).
pub fn parse_sha256_file(text: &str) -> Option<String> {
    let token = text.split_whitespace().next()?;
    let ok = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| token.to_ascii_lowercase())
}

/// Whether a name in `depot/` is a data file (not a sentinel, checksum or upload).
fn is_data_file(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with(".ok")
        || name.ends_with(".sha256")
        || name.ends_with(".tmp")
        || name.ends_with(".part"))
}

/// `ACK_{stem}.csv`: the data file's name without its extension.
pub fn ack_name(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    format!("ACK_{stem}.csv")
}

/// Writes one of the hub's files into a folder: data under a temporary name, rename,
/// then the checksum, then the sentinel, so a reader never sees a partial file.
#[instrument(skip(folder, bytes), fields(len = bytes.len()))]
pub fn write_complete(
    folder: &dyn BoxFolder,
    dir: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), ConnectorError> {
    let path = format!("{dir}/{name}");
    // An older copy's sentinel goes first, so nobody reads the file while it changes.
    folder.remove(&format!("{path}.ok"))?;
    let tmp = format!("{dir}/.{name}.tmp");
    folder.write(&tmp, bytes)?;
    folder.rename(&tmp, &path)?;
    let sum = format!("{}  {name}\n", sha256_hex(bytes));
    folder.write(&format!("{path}.sha256"), sum.as_bytes())?;
    folder.write(&format!("{path}.ok"), b"")?;
    Ok(())
}

impl<S: BoxState> BoxHub<S> {
    pub fn new(
        folder: Arc<dyn BoxFolder>,
        partenaire: impl Into<String>,
        state: S,
        mapping: Mapping,
    ) -> Self {
        Self {
            folder,
            partenaire: partenaire.into(),
            state,
            mapping,
            clock: now_unix,
        }
    }

    /// The partner's code: its folder in the box.
    pub fn partenaire(&self) -> &str {
        &self.partenaire
    }

    /// The state (for tests and the engine).
    pub fn state(&self) -> &S {
        &self.state
    }

    fn depot(&self) -> String {
        format!("{}/depot", self.partenaire)
    }

    fn retour(&self) -> String {
        format!("{}/retour", self.partenaire)
    }

    /// Drops one of the hub's files into `retour/` (`JEUNES_OF_…`, ACK files).
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.folder.create_dir_all(&self.retour())?;
        write_complete(self.folder.as_ref(), &self.retour(), name, bytes)
    }

    /// Writes the ACK of `name` into `retour/` under a name no earlier ACK holds:
    /// `ACK_{stem}.csv`, else `ACK_{stem}_2.csv`, `_3`… A file dropped again under the
    /// same name (a duplicate, a corrected file after a refusal) gets its own ACK and
    /// the first one, which said what became of each row, stays as it was.
    fn drop_ack(&self, name: &str, bytes: &[u8]) -> Result<String, ConnectorError> {
        self.folder.create_dir_all(&self.retour())?;
        let taken = self.folder.list(&self.retour())?;
        let first = ack_name(name);
        let stem = first.trim_end_matches(".csv");
        let free = std::iter::once(first.clone())
            .chain((2u32..).map(|n| format!("{stem}_{n}.csv")))
            .find(|n| !taken.contains(n) && !taken.contains(&format!("{n}.ok")))
            .unwrap_or(first);
        self.drop_file(&free, bytes)?;
        Ok(free)
    }

    /// Writes a `JEUNES_OF` file (flow `of-signalement`) into `retour/` and returns
    /// its name: `JEUNES_OF_{dept}_{emetteur}_{YYYYMMDDHHMMSS}.csv`.
    #[instrument(skip(self, items), fields(partenaire = %self.partenaire, n = items.len()))]
    pub fn send_jeunes_of(
        &self,
        dept: &str,
        emetteur: &str,
        at: chrono::NaiveDateTime,
        items: &[Signalement<'_>],
    ) -> Result<String, ConnectorError> {
        let text = write_jeunes_of(items).map_err(|e| ConnectorError::Invalid {
            location: format!("JEUNES_OF record {}", e.reference),
            reason: e.reason,
        })?;
        let name = format!(
            "JEUNES_OF_{dept}_{emetteur}_{}.csv",
            at.format("%Y%m%d%H%M%S")
        );
        self.drop_file(&name, text.as_bytes())?;
        Ok(name)
    }

    /// Reads every complete file in `depot/`, hands each row to `on_item`, writes the
    /// ACK files, and reports what happened to each file.
    #[instrument(skip(self, on_item), fields(partenaire = %self.partenaire))]
    pub fn poll(
        &mut self,
        on_item: &mut dyn FnMut(&str, Received),
    ) -> Result<Vec<FileOutcome>, ConnectorError> {
        let depot = self.depot();
        let mut names = self.folder.list(&depot)?;
        names.sort();
        let mut outcomes = Vec::new();
        for name in names.iter().filter(|n| is_data_file(n)) {
            if !names.contains(&format!("{name}.ok")) {
                outcomes.push(FileOutcome::Pending { name: name.clone() });
                continue;
            }
            let outcome = match self.process(name, on_item)? {
                Processed::Done(outcome) => outcome,
                Processed::Read { outcome, pending } => {
                    self.complete(pending)?;
                    outcome
                }
            };
            info!(file = %name, outcome = ?outcome, "box file handled");
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn process(
        &mut self,
        name: &str,
        on_item: &mut dyn FnMut(&str, Received),
    ) -> Result<Processed, ConnectorError> {
        // A name that cannot be written back (`ACK_…`), quoted for SFTP or shown as is
        // (quotes, globs, control characters, bytes that are not UTF-8) is refused
        // alone: reported, left where it is, and the rest of the folder goes on.
        if let Err(why) = passerelle_connector::safe_fs::check_name(name) {
            let shown = passerelle_connector::safe_fs::shown_name(std::ffi::OsStr::new(name));
            warn!(file = %shown, reason = %why, "box file refused alone: its name");
            return Ok(Processed::Done(FileOutcome::Refused {
                name: name.to_owned(),
                reason: format!("not read: {why}"),
            }));
        }
        let path = format!("{}/{name}", self.depot());
        // Copy to a local spool once, hashing on the way: both checks and both passes
        // of reading then work on a local file, whatever the backend.
        let mut spool = tempfile::tempfile().map_err(|e| ConnectorError::io("spool file", e))?;
        let digest = {
            let mut src = self.folder.open(&path)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = src
                    .read(&mut buf)
                    .map_err(|e| ConnectorError::io(&path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                spool
                    .write_all(&buf[..n])
                    .map_err(|e| ConnectorError::io("spool file", e))?;
            }
            hex::encode(hasher.finalize())
        };

        if let Some(seen) = self.state.by_name(name)?
            && seen.sha256 == digest
            && seen.stage == Stage::Acked
        {
            {
                // Acknowledged before a crash: finish the clean-up, write nothing new.
                self.clean_up(name, &digest)?;
                return Ok(Processed::Done(FileOutcome::Finished {
                    name: name.to_owned(),
                }));
            }
        }

        let expected = match self.folder.open(&format!("{path}.sha256")) {
            Ok(r) => {
                let mut text = String::new();
                r.take(4096)
                    .read_to_string(&mut text)
                    .map_err(|e| ConnectorError::io(format!("{path}.sha256"), e))?;
                parse_sha256_file(&text)
            }
            Err(e) if e.kind() == passerelle_connector::ErrorKind::NotFound => None,
            // Not a regular file (a FIFO, a link): never read, the file is refused.
            Err(ConnectorError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::InvalidInput =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let Some(expected) = expected else {
            return self.refuse(name, "no readable .sha256 checksum beside the file");
        };
        if expected != digest {
            return self.refuse(name, "sha-256 of the file does not match its .sha256");
        }

        if let Some(first) = self.state.by_digest(&digest)? {
            let mut ack = String::from(BOM);
            push_csv_line(&mut ack, ACK_HEADER);
            push_csv_line(
                &mut ack,
                &[
                    "0",
                    "OK",
                    codes::DOUBLON,
                    "file already received with the same content, nothing changed",
                ],
            );
            self.drop_ack(name, ack.as_bytes())?;
            self.clean_up(name, &digest)?;
            return Ok(Processed::Done(FileOutcome::Duplicate {
                name: name.to_owned(),
                first: first.name,
            }));
        }

        let Some(parsed) = parse_name(name) else {
            return self.refuse(
                name,
                "the file name does not follow {FLUX}_{DEPT}_{EMETTEUR}_{YYYYMMDDHHMMSS}.{ext}",
            );
        };
        let mut ack = Vec::new();
        let (mut rows, mut ok, mut rejected) = (0u64, 0u64, 0u64);
        match parsed.flux.as_str() {
            "BRSA_LISTE" => {
                rewind(&mut spool)?;
                // A first pass proves the whole file readable, so that a file refused
                // halfway never hands out its first rows.
                if let Err(e) = prescan(&mut spool, name, &self.mapping) {
                    return self.refuse(name, &refusal_reason(&e));
                }
                rewind(&mut spool)?;
                let reader = BrsaReader::open(&mut spool, name, &self.mapping)?;
                for item in reader {
                    let row = item.map_err(|e| ConnectorError::FileRefused {
                        file: name.to_owned(),
                        reason: e.to_string(),
                    })?;
                    rows += 1;
                    match &row.outcome {
                        Ok(_) => {
                            ok += 1;
                            ack_ok(&mut ack, row.line, &row.warnings);
                        }
                        Err(issues) => {
                            rejected += 1;
                            let code = if issues.iter().any(|i| i.field == "ligne") {
                                codes::COLONNES
                            } else {
                                codes::CHAMP_INVALIDE
                            };
                            ack_ko(&mut ack, row.line, code, issues);
                        }
                    }
                    on_item(name, Received::Brsa(Box::new(row)));
                }
            }
            "OF_SUIVI" => {
                rewind(&mut spool)?;
                let items: Vec<_> = match read_of_suivi(&mut spool) {
                    Ok(it) => it.collect(),
                    Err(e) => return self.refuse(name, &e.to_string()),
                };
                if let Some(Err(fatal)) = items.last()
                    && fatal.field == "ligne"
                    && fatal.reason.starts_with("cannot read")
                {
                    return self.refuse(name, &fatal.reason);
                }
                for item in items {
                    rows += 1;
                    match &item {
                        Ok(u) => {
                            ok += 1;
                            ack_ok(&mut ack, u.line, &[]);
                        }
                        Err(issue) => {
                            rejected += 1;
                            let code = if issue.field == "ligne" {
                                codes::COLONNES
                            } else {
                                codes::CHAMP_INVALIDE
                            };
                            ack_ko(
                                &mut ack,
                                issue.line.unwrap_or(0),
                                code,
                                std::slice::from_ref(issue),
                            );
                        }
                    }
                    on_item(name, Received::OfSuivi(item));
                }
            }
            other => {
                return self.refuse(
                    name,
                    &format!("the hub does not read flow {other} from depot"),
                );
            }
        }
        Ok(Processed::Read {
            outcome: FileOutcome::Read {
                name: name.to_owned(),
                rows,
                ok,
                rejected,
            },
            pending: PendingAck {
                name: name.to_owned(),
                digest,
                lines: ack,
            },
        })
    }

    /// Finishes a file whose rows were all handed on: writes its ACK, remembers its
    /// digest, then removes it from `depot/`. Until then the file stays in `depot/`
    /// and is served again after a restart.
    pub fn complete(&mut self, pending: PendingAck) -> Result<(), ConnectorError> {
        self.complete_with(pending, &std::collections::HashMap::new())
    }

    /// `complete`, the ACK saying what the hub did with each row (by line): a row the
    /// reader accepted and the hub did not send is `KO` with the hub's reason.
    pub fn complete_with(
        &mut self,
        pending: PendingAck,
        outcomes: &std::collections::HashMap<u64, ItemOutcome>,
    ) -> Result<(), ConnectorError> {
        let ack = pending.render(outcomes);
        let PendingAck { name, digest, .. } = pending;
        self.drop_ack(&name, ack.as_bytes())?;
        self.state.record(SeenFile {
            name: name.clone(),
            sha256: digest.clone(),
            stage: Stage::Acked,
            seen_at: (self.clock)(),
        })?;
        self.clean_up(&name, &digest)
    }

    /// Reads the first complete file in `depot/` not named in `skip`, handing its rows
    /// to `on_item`; `None` when there is none. A refused or duplicate file is fully
    /// handled here; a read one waits for `complete`.
    pub fn read_next(
        &mut self,
        skip: &std::collections::HashSet<String>,
        on_item: &mut dyn FnMut(&str, Received),
    ) -> Result<Option<Processed>, ConnectorError> {
        let mut names = self.folder.list(&self.depot())?;
        names.sort();
        for name in names.iter().filter(|n| is_data_file(n)) {
            if skip.contains(name) || !names.contains(&format!("{name}.ok")) {
                continue;
            }
            return self.process(name, on_item).map(Some);
        }
        Ok(None)
    }

    /// Writes `0;KO;FICHIER_REFUSE;<reason>` and removes the file, so that the
    /// département can drop a corrected one under the same name.
    fn refuse(&mut self, name: &str, reason: &str) -> Result<Processed, ConnectorError> {
        warn!(file = %name, reason, "box file refused");
        let mut ack = String::from(BOM);
        push_csv_line(&mut ack, ACK_HEADER);
        push_csv_line(&mut ack, &["0", "KO", codes::FICHIER_REFUSE, reason]);
        self.drop_ack(name, ack.as_bytes())?;
        self.remove_files(name)?;
        Ok(Processed::Done(FileOutcome::Refused {
            name: name.to_owned(),
            reason: reason.to_owned(),
        }))
    }

    fn remove_files(&self, name: &str) -> Result<(), ConnectorError> {
        let path = format!("{}/{name}", self.depot());
        // Sentinel first: if we stop halfway, what is left is never read again.
        self.folder.remove(&format!("{path}.ok"))?;
        self.folder.remove(&format!("{path}.sha256"))?;
        self.folder.remove(&path)
    }

    fn clean_up(&mut self, name: &str, digest: &str) -> Result<(), ConnectorError> {
        self.remove_files(name)?;
        let seen = self.state.by_name(name)?;
        let seen_at = seen.as_ref().map_or((self.clock)(), |s| s.seen_at);
        // Keep the first name seen for this content, for the duplicate's report.
        if seen.is_some_and(|s| s.sha256 == digest) {
            self.state.record(SeenFile {
                name: name.to_owned(),
                sha256: digest.to_owned(),
                stage: Stage::Removed,
                seen_at,
            })?;
        }
        Ok(())
    }
}

fn rewind(f: &mut std::fs::File) -> Result<(), ConnectorError> {
    f.seek(SeekFrom::Start(0))
        .map(drop)
        .map_err(|e| ConnectorError::io("spool file", e))
}

fn refusal_reason(e: &ConnectorError) -> String {
    match e {
        ConnectorError::FileRefused { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn ack_ok(ack: &mut Vec<AckLine>, line: u64, warnings: &[RecordIssue]) {
    let (code, message) = if warnings.is_empty() {
        (String::new(), String::new())
    } else {
        (codes::VALEUR_IGNOREE.to_owned(), join_issues(warnings))
    };
    ack.push(AckLine {
        line,
        ok: true,
        code,
        message,
    });
}

fn ack_ko(ack: &mut Vec<AckLine>, line: u64, code: &str, issues: &[RecordIssue]) {
    ack.push(AckLine {
        line,
        ok: false,
        code: code.to_owned(),
        message: join_issues(issues),
    });
}

/// `field: reason` pairs; reasons name rules, never values.
fn join_issues(issues: &[RecordIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {}", i.field, i.reason))
        .collect::<Vec<_>>()
        .join(" | ")
}
