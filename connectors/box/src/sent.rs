//! What the hub remembers of the records it wrote into `JEUNES_OF` files: transfer id,
//! file name and whether the file got its sentinel. It makes `BoxOfSink` idempotent on
//! the transfer id: a batch delivered again after a crash or a lost answer writes
//! only what no complete file carries yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use passerelle_connector::ConnectorError;
use serde::{Deserialize, Serialize};

/// How far the hub got with a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentStage {
    /// About to be written into the named file; written only if its `.ok` exists.
    Writing,
    /// The file carrying it is complete (its `.ok` sentinel exists).
    Written,
}

/// One transfer written (or being written) into a box file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentEntry {
    pub transfer_id: String,
    /// The file's path inside the box (`59350S00/retour/JEUNES_OF_….csv`).
    pub file: String,
    pub stage: SentStage,
    /// Unix seconds of the first attempt, to forget old entries.
    pub at: i64,
}

/// Transfers written into box files, in memory or in a JSON file
/// (`{state_dir}/box-sent-{name}.json`, rewritten through a temporary file and a
/// rename so that a crash never leaves half a file).
#[derive(Debug, Default)]
pub struct SentLedger {
    path: Option<PathBuf>,
    entries: HashMap<String, SentEntry>,
    keep_secs: i64,
}

impl SentLedger {
    /// A ledger that lives as long as the process (tests, the simulator).
    pub fn memory() -> Self {
        Self {
            path: None,
            entries: HashMap::new(),
            keep_secs: crate::state::DEFAULT_KEEP_SECS,
        }
    }

    /// Opens (or starts) a ledger kept under `state_dir`.
    pub fn open(state_dir: &Path, name: &str) -> Result<Self, ConnectorError> {
        crate::folder::check_rel_path(name)?;
        passerelle_connector::safe_fs::private_dir(state_dir)
            .map_err(|e| ConnectorError::io(state_dir.display().to_string(), e))?;
        let path = state_dir.join(format!("box-sent-{name}.json"));
        let list: Vec<SentEntry> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Invalid {
                location: path.display().to_string(),
                reason: format!("box sent ledger is not valid json: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ConnectorError::io(path.display().to_string(), e)),
        };
        Ok(Self {
            path: Some(path),
            entries: list
                .into_iter()
                .map(|e| (e.transfer_id.clone(), e))
                .collect(),
            keep_secs: crate::state::DEFAULT_KEEP_SECS,
        })
    }

    /// The entry of a transfer.
    pub fn get(&self, transfer_id: &str) -> Option<&SentEntry> {
        self.entries.get(transfer_id)
    }

    /// How many transfers are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records transfers as being written into `file`, then saves.
    pub fn writing<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        file: &str,
        now: i64,
    ) -> Result<(), ConnectorError> {
        for id in ids {
            let at = self.entries.get(id).map_or(now, |e| e.at);
            self.entries.insert(
                id.to_owned(),
                SentEntry {
                    transfer_id: id.to_owned(),
                    file: file.to_owned(),
                    stage: SentStage::Writing,
                    at,
                },
            );
        }
        self.save(now)
    }

    /// Marks transfers as written (their file is complete), then saves.
    pub fn written<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        now: i64,
    ) -> Result<(), ConnectorError> {
        for id in ids {
            if let Some(e) = self.entries.get_mut(id) {
                e.stage = SentStage::Written;
            }
        }
        self.save(now)
    }

    fn save(&mut self, now: i64) -> Result<(), ConnectorError> {
        // The box purges files after 30 days; a transfer is never retried that late.
        let oldest = now - self.keep_secs;
        self.entries.retain(|_, e| e.at >= oldest);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut list: Vec<&SentEntry> = self.entries.values().collect();
        list.sort_by(|a, b| (a.at, &a.transfer_id).cmp(&(b.at, &b.transfer_id)));
        let bytes = serde_json::to_vec(&list).unwrap_or_default();
        // Written whole and private (0600), never through a link.
        passerelle_connector::safe_fs::write_file(path, &bytes)
            .map_err(|e| ConnectorError::io(path.display().to_string(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening_and_forgets_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = SentLedger::open(dir.path(), "CD059").unwrap();
        l.writing(["old"], "a/retour/F0.csv", 0).unwrap();
        let now = crate::state::DEFAULT_KEEP_SECS + 10;
        l.writing(["t1", "t2"], "a/retour/F1.csv", now).unwrap();
        l.written(["t1"], now).unwrap();
        let l = SentLedger::open(dir.path(), "CD059").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("t1").unwrap().stage, SentStage::Written);
        assert_eq!(l.get("t2").unwrap().stage, SentStage::Writing);
        assert_eq!(l.get("t2").unwrap().file, "a/retour/F1.csv");
        assert!(l.get("old").is_none());
        assert!(SentLedger::open(dir.path(), "../x").is_err());
    }
}
