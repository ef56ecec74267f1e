//! `SolisAckSource`: the ACK files SOLIS answers imports with, served as late receipts,
//! one group per ACK file.
//!
//! Every transfer of the answered import gets exactly one receipt: the element's own
//! answer (`Applied` for OK, `Rejected{["code: message"]}` for KO); under a file-level
//! KO every element of the import is rejected (the import file, still in the import
//! folder or its `traites/`, names them); an element the ACK forgets is rejected as
//! `ELEMENT_ABSENT`. A malformed ACK file blocks nothing: it is served as a group with
//! no receipts and a warning naming the file, and its `ack` moves it to `refuses/`
//! instead of `traites/` for a person to look at. A second ACK for an import already
//! answered settles nothing (no receipts) and is set aside in `refuses/` too.
//!
//! KO messages are SOLIS's free text: receipts keep the code and the message's digest
//! and length (`passerelle_connector::redact`), never the message.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use passerelle_connector::feed::{DONE_DIR, REFUSED_DIR, move_into};
use passerelle_connector::{
    AckToken, ConnectorError, LateReceipts, Receipt, ReceiptSource, ReceiptStatus,
};

use crate::config::{SolisPeerConfig, existing_dir};
use crate::import::{read_ack, read_import_refs};

/// ACK file names start with this.
pub const ACK_PREFIX: &str = "SOLIS_ACK_";
/// The reason given to every element of an import SOLIS refused whole.
pub const FILE_KO: &str = "FICHIER_KO: solis refused the whole import file";
/// The reason given to an element the ACK does not answer.
pub const ELEMENT_ABSENT: &str = "ELEMENT_ABSENT: the solis ack does not answer this element";

/// The folders an ACK source reads.
#[derive(Debug, Clone)]
struct Folders {
    import_dir: PathBuf,
    ack_dir: PathBuf,
}

/// A `ReceiptSource` over SOLIS ACK files (see the module doc).
#[derive(Debug)]
pub struct SolisAckSource {
    folders: Folders,
    /// ACK files found malformed in this run (counted for metrics).
    malformed: HashSet<String>,
}

impl SolisPeerConfig {
    /// Builds the ACK source: checks `import_dir` and the ACK folder exist.
    pub fn build_ack_source(&self) -> Result<SolisAckSource, ConnectorError> {
        self.validate()?;
        let import_dir = existing_dir("import_dir", self.import_dir.as_deref())?;
        let ack_dir = existing_dir("ack_dir", self.ack_folder())?;
        Ok(SolisAckSource::new(import_dir, ack_dir))
    }
}

/// What reading one ACK file gave.
enum Answer {
    Receipts(Vec<Receipt>),
    Malformed,
    /// An ACK for an import answered already (its first ACK is in `traites/`): it
    /// settles nothing again, so that the journal never holds two contradicting
    /// answers for one transfer.
    Repeat,
}

impl Folders {
    /// The ACK files waiting, by name.
    fn waiting(&self) -> Result<Vec<String>, ConnectorError> {
        let what = || self.ack_dir.display().to_string();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.ack_dir).map_err(|e| ConnectorError::io(what(), e))? {
            let entry = entry.map_err(|e| ConnectorError::io(what(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(ACK_PREFIX)
                && name.to_ascii_lowercase().ends_with(".xml")
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The import file an ACK answers, wherever it is now.
    fn import_path(&self, import: &str) -> Option<PathBuf> {
        [
            self.import_dir.join(import),
            self.import_dir.join(DONE_DIR).join(import),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    /// Whether the import this ACK answers was answered already.
    fn answered(&self, name: &str) -> bool {
        let import = &name[ACK_PREFIX.len()..];
        self.ack_dir.join(DONE_DIR).join(name).is_file() && !self.import_dir.join(import).is_file()
    }

    fn read(&self, name: &str) -> Answer {
        if self.answered(name) {
            tracing::warn!(
                file = name,
                "a second solis ack for an import already answered: ignored, set aside"
            );
            return Answer::Repeat;
        }
        let ack = match read_ack(&self.ack_dir.join(name)) {
            Ok(ack) => ack,
            Err(e) => {
                tracing::warn!(file = name, error = %e, "malformed solis ack, served with no receipts");
                return Answer::Malformed;
            }
        };
        let import = &name[ACK_PREFIX.len()..];
        if !ack.fichier.is_empty() && ack.fichier != import {
            // The attribute is the peer's text: not logged as given.
            tracing::warn!(
                file = name,
                fichier = %passerelle_connector::redact::free_text(&ack.fichier),
                "solis ack names another import than its file name, trusting the file name"
            );
        }
        let refs = match self.import_path(import).map(|p| read_import_refs(&p)) {
            Some(Ok(refs)) => Some(refs),
            Some(Err(e)) => {
                tracing::warn!(file = import, error = %e, "import file unreadable");
                None
            }
            None => None,
        };
        // The ACK's own answers, first one per transfer.
        let mut answers: HashMap<String, ReceiptStatus> = HashMap::new();
        let mut order = Vec::new();
        for r in ack.receipts {
            if let std::collections::hash_map::Entry::Vacant(e) = answers.entry(r.transfer_id) {
                order.push(e.key().clone());
                e.insert(r.status);
            }
        }
        let settle = |status: Option<ReceiptStatus>| -> ReceiptStatus {
            match (ack.ok, status) {
                (_, Some(s @ ReceiptStatus::Rejected { .. })) => s,
                (true, Some(s)) => s,
                (true, None) => ReceiptStatus::Rejected {
                    reasons: vec![ELEMENT_ABSENT.to_owned()],
                },
                (false, _) => ReceiptStatus::Rejected {
                    reasons: vec![FILE_KO.to_owned()],
                },
            }
        };
        let receipts = match refs {
            Some(refs) => {
                let known: HashSet<&str> = refs.iter().map(String::as_str).collect();
                let strangers = order.iter().filter(|t| !known.contains(t.as_str())).count();
                if strangers > 0 {
                    tracing::warn!(
                        file = name,
                        strangers,
                        "solis ack answers elements its import does not hold, ignored"
                    );
                }
                let mut seen = HashSet::new();
                refs.into_iter()
                    .filter(|t| seen.insert(t.clone()))
                    .map(|t| {
                        let status = settle(answers.remove(&t));
                        Receipt {
                            transfer_id: t,
                            status,
                        }
                    })
                    .collect()
            }
            None => {
                if !ack.ok && order.is_empty() {
                    tracing::warn!(
                        file = name,
                        "solis refused an import that is no longer here: its transfers cannot be named"
                    );
                }
                order
                    .into_iter()
                    .map(|t| {
                        let status = settle(answers.remove(&t));
                        Receipt {
                            transfer_id: t,
                            status,
                        }
                    })
                    .collect()
            }
        };
        Answer::Receipts(receipts)
    }

    fn ack(&self, name: &str) -> Result<(), ConnectorError> {
        let path = self.ack_dir.join(name);
        if !path.exists() {
            // Already set aside (an ack repeated after a restart).
            return Ok(());
        }
        if self.answered(name) {
            // Kept for a person to look at, under a free name (never over another).
            return set_aside(&self.ack_dir, name);
        }
        // Read again rather than remembered, so that a restart changes nothing.
        if read_ack(&path).is_err() {
            return move_into(&self.ack_dir, name, REFUSED_DIR);
        }
        // The import first: a crash in between leaves the ACK to be served again,
        // and its import is still found under `traites/`.
        let import = &name[ACK_PREFIX.len()..];
        if self.import_dir.join(import).is_file() {
            move_into(&self.import_dir, import, DONE_DIR)?;
        }
        move_into(&self.ack_dir, name, DONE_DIR)
    }
}

impl SolisAckSource {
    /// Reads ACK files from `ack_dir` about imports written into `import_dir`.
    pub fn new(import_dir: impl Into<PathBuf>, ack_dir: impl Into<PathBuf>) -> Self {
        Self {
            folders: Folders {
                import_dir: import_dir.into(),
                ack_dir: ack_dir.into(),
            },
            malformed: HashSet::new(),
        }
    }

    /// The folder ACK files are read from.
    pub fn ack_dir(&self) -> &Path {
        &self.folders.ack_dir
    }

    /// ACK files found malformed in this run (served with no receipts).
    pub fn malformed(&self) -> usize {
        self.malformed.len()
    }

    /// `next_receipts`, synchronously.
    pub fn next_receipts_blocking(&mut self) -> Result<Vec<LateReceipts>, ConnectorError> {
        let (out, bad) = scan(&self.folders)?;
        self.malformed.extend(bad);
        Ok(out)
    }

    /// `ack`, synchronously.
    pub fn ack_blocking(&mut self, token: &AckToken) -> Result<(), ConnectorError> {
        let name = check_token(token)?;
        self.folders.ack(name)
    }
}

/// Moves an ACK into `refuses/` under a name free there.
fn set_aside(dir: &Path, name: &str) -> Result<(), ConnectorError> {
    use passerelle_connector::safe_fs::SafeDir;
    let io = |e| ConnectorError::io(format!("setting {name} aside"), e);
    let here = SafeDir::open(dir).map_err(io)?;
    let aside = here.sub_create(REFUSED_DIR).map_err(io)?;
    here.move_aside(std::ffi::OsStr::new(name), &aside)
        .map(drop)
        .map_err(io)
}

fn check_token(token: &AckToken) -> Result<&str, ConnectorError> {
    let name = token.0.as_str();
    if !name.starts_with(ACK_PREFIX) || name.contains(['/', '\\']) {
        return Err(ConnectorError::Invalid {
            location: "ack token".into(),
            reason: "not a solis ack file name".into(),
        });
    }
    Ok(name)
}

type Scan = (Vec<LateReceipts>, Vec<String>);

fn scan(folders: &Folders) -> Result<Scan, ConnectorError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for name in folders.waiting()? {
        let receipts = match folders.read(&name) {
            Answer::Receipts(r) => r,
            Answer::Malformed => {
                bad.push(name.clone());
                Vec::new()
            }
            Answer::Repeat => Vec::new(),
        };
        out.push(LateReceipts {
            receipts,
            ack: AckToken(name),
        });
    }
    Ok((out, bad))
}

#[async_trait]
impl ReceiptSource for SolisAckSource {
    async fn next_receipts(&mut self) -> Result<Vec<LateReceipts>, ConnectorError> {
        let folders = self.folders.clone();
        let (out, bad) = tokio::task::spawn_blocking(move || scan(&folders))
            .await
            .map_err(|e| ConnectorError::Unavailable {
                peer: "solis".into(),
                reason: format!("ack scan task failed: {e}"),
                retry_after: None,
            })??;
        self.malformed.extend(bad);
        Ok(out)
    }

    async fn ack(&mut self, token: &AckToken) -> Result<(), ConnectorError> {
        let name = check_token(token)?.to_owned();
        let folders = self.folders.clone();
        tokio::task::spawn_blocking(move || folders.ack(&name))
            .await
            .map_err(|e| ConnectorError::Unavailable {
                peer: "solis".into(),
                reason: format!("ack task failed: {e}"),
                retry_after: None,
            })?
    }
}
