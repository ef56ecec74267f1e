//! What the hub remembers of the files it read from a box: name, SHA-256 and how far
//! it got, so that a file dropped twice (same name or same content) is acknowledged
//! and ignored, and a crash between the ACK and the clean-up is finished quietly.
//! `BoxState` is a trait so that the engine can keep this in its own store.

use std::path::{Path, PathBuf};

use passerelle_connector::ConnectorError;
use serde::{Deserialize, Serialize};

/// How far the hub got with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Read and acknowledged; the files may still be in `depot/`.
    Acked,
    /// Acknowledged and removed from `depot/`.
    Removed,
}

/// One file the hub read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenFile {
    pub name: String,
    /// Hex SHA-256 of the data file.
    pub sha256: String,
    pub stage: Stage,
    /// Unix seconds when first read, to forget old entries.
    pub seen_at: i64,
}

/// Where seen files are kept.
pub trait BoxState: Send + std::fmt::Debug {
    /// The latest entry for a file name.
    fn by_name(&self, name: &str) -> Option<SeenFile>;
    /// An entry with this content digest.
    fn by_digest(&self, sha256: &str) -> Option<SeenFile>;
    /// Inserts or updates the entry for `file.name`.
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError>;
}

/// Entries in memory (tests, the simulator).
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    entries: Vec<SeenFile>,
}

impl BoxState for MemoryState {
    fn by_name(&self, name: &str) -> Option<SeenFile> {
        self.entries.iter().find(|e| e.name == name).cloned()
    }
    fn by_digest(&self, sha256: &str) -> Option<SeenFile> {
        self.entries.iter().find(|e| e.sha256 == sha256).cloned()
    }
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError> {
        upsert(&mut self.entries, file);
        Ok(())
    }
}

fn upsert(entries: &mut Vec<SeenFile>, file: SeenFile) {
    match entries.iter_mut().find(|e| e.name == file.name) {
        Some(e) => *e = file,
        None => entries.push(file),
    }
}

/// Entries in a JSON file (`{state_dir}/box-{partenaire}.json`), rewritten through a
/// temporary file and a rename so that a crash never leaves half a file.
#[derive(Debug)]
pub struct JsonFileState {
    path: PathBuf,
    entries: Vec<SeenFile>,
    /// Entries older than this many seconds are forgotten on write (the box purges
    /// after 30 days, so a copy older than that cannot be a re-delivery of a purged one
    /// we would miss: we keep three times as long).
    keep_secs: i64,
}

/// How long seen files are remembered by default: 90 days.
pub const DEFAULT_KEEP_SECS: i64 = 90 * 24 * 3600;

impl JsonFileState {
    /// Opens (or starts) the state of one partner's box.
    pub fn open(state_dir: &Path, partenaire: &str) -> Result<Self, ConnectorError> {
        passerelle_connector::safe_fs::private_dir(state_dir)
            .map_err(|e| ConnectorError::io(state_dir.display().to_string(), e))?;
        let path = state_dir.join(format!("box-{partenaire}.json"));
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Invalid {
                location: path.display().to_string(),
                reason: format!("box state is not valid json: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ConnectorError::io(path.display().to_string(), e)),
        };
        Ok(Self {
            path,
            entries,
            keep_secs: DEFAULT_KEEP_SECS,
        })
    }

    fn save(&self) -> Result<(), ConnectorError> {
        // Written whole and private (0600), never through a link.
        let bytes = serde_json::to_vec_pretty(&self.entries).unwrap_or_default();
        passerelle_connector::safe_fs::write_file(&self.path, &bytes)
            .map_err(|e| ConnectorError::io(self.path.display().to_string(), e))
    }
}

impl BoxState for JsonFileState {
    fn by_name(&self, name: &str) -> Option<SeenFile> {
        self.entries.iter().find(|e| e.name == name).cloned()
    }
    fn by_digest(&self, sha256: &str) -> Option<SeenFile> {
        self.entries.iter().find(|e| e.sha256 == sha256).cloned()
    }
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError> {
        let oldest = file.seen_at - self.keep_secs;
        upsert(&mut self.entries, file);
        self.entries.retain(|e| e.seen_at >= oldest);
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, sha: &str, at: i64) -> SeenFile {
        SeenFile {
            name: name.into(),
            sha256: sha.into(),
            stage: Stage::Acked,
            seen_at: at,
        }
    }

    #[test]
    fn json_state_survives_reopening_and_forgets_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = JsonFileState::open(dir.path(), "59350S00").unwrap();
        s.record(seen("old.csv", "aa", 0)).unwrap();
        s.record(seen("a.csv", "bb", DEFAULT_KEEP_SECS + 10))
            .unwrap();
        let mut done = seen("a.csv", "bb", DEFAULT_KEEP_SECS + 10);
        done.stage = Stage::Removed;
        s.record(done.clone()).unwrap();
        let s = JsonFileState::open(dir.path(), "59350S00").unwrap();
        assert_eq!(s.by_name("a.csv"), Some(done.clone()));
        assert_eq!(s.by_digest("bb"), Some(done));
        assert_eq!(s.by_name("old.csv"), None);
    }
}
