//! What the hub remembers of the files it read from a box: name, SHA-256 and how far
//! it got, so that a file dropped twice (same name or same content) is acknowledged
//! and ignored, and a crash between the ACK and the clean-up is finished quietly.
//! `BoxState` is a trait so that the engine can keep this in its own store:
//! [`PeerBoxState`] keeps it in a `PeerStore` (the hub's state, shared by every
//! instance), [`JsonFileState`] in a JSON file (a box used without a hub state), and
//! [`MemoryState`] in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_connector::{BlockingPeerStore, ConnectorError, PeerStore};
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
    fn by_name(&self, name: &str) -> Result<Option<SeenFile>, ConnectorError>;
    /// An entry with this content digest.
    fn by_digest(&self, sha256: &str) -> Result<Option<SeenFile>, ConnectorError>;
    /// Inserts or updates the entry for `file.name`.
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError>;
}

/// Entries in memory (tests, the simulator).
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    entries: Vec<SeenFile>,
}

impl BoxState for MemoryState {
    fn by_name(&self, name: &str) -> Result<Option<SeenFile>, ConnectorError> {
        Ok(self.entries.iter().find(|e| e.name == name).cloned())
    }
    fn by_digest(&self, sha256: &str) -> Result<Option<SeenFile>, ConnectorError> {
        Ok(self.entries.iter().find(|e| e.sha256 == sha256).cloned())
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
    fn by_name(&self, name: &str) -> Result<Option<SeenFile>, ConnectorError> {
        Ok(self.entries.iter().find(|e| e.name == name).cloned())
    }
    fn by_digest(&self, sha256: &str) -> Result<Option<SeenFile>, ConnectorError> {
        Ok(self.entries.iter().find(|e| e.sha256 == sha256).cloned())
    }
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError> {
        let oldest = file.seen_at - self.keep_secs;
        upsert(&mut self.entries, file);
        self.entries.retain(|e| e.seen_at >= oldest);
        self.save()
    }
}

/// The namespace of a partner's box files in a `PeerStore`.
pub fn seen_namespace(partenaire: &str) -> String {
    format!("box/seen/{partenaire}")
}

/// Entries in a `PeerStore` (the hub's state: on PostgreSQL, every instance sees the
/// files the others read), one key per file name under [`seen_namespace`], its value
/// the `SeenFile` as JSON: name, digest, stage and time, nothing read from the file.
/// Called on the box's blocking threads (see `BlockingPeerStore`).
#[derive(Debug)]
pub struct PeerBoxState {
    store: BlockingPeerStore,
    namespace: String,
}

fn to_json(file: &SeenFile) -> String {
    serde_json::to_string(file).unwrap_or_default()
}

impl PeerBoxState {
    /// Opens a partner's state in `store`, forgetting entries older than the
    /// retention. A JSON state an earlier hub left in `state_dir`
    /// (`box-{partenaire}.json`) is moved in once: its entries are added where the
    /// store has none for that name, then the file is renamed `….json.migrated`, so
    /// an existing data folder keeps knowing what it read.
    pub async fn open(
        store: Arc<dyn PeerStore>,
        state_dir: &Path,
        partenaire: &str,
    ) -> Result<Self, ConnectorError> {
        let namespace = seen_namespace(partenaire);
        let now = chrono::Utc::now();
        let old = state_dir.join(format!("box-{partenaire}.json"));
        if old.exists() {
            let file = JsonFileState::open(state_dir, partenaire)?;
            let oldest = now.timestamp() - DEFAULT_KEEP_SECS;
            for e in file.entries.iter().filter(|e| e.seen_at >= oldest) {
                store
                    .insert_if_absent(&namespace, &e.name, &to_json(e))
                    .await?;
            }
            migrated(&old)?;
        }
        store
            .delete_older_than(
                &namespace,
                now - chrono::Duration::seconds(DEFAULT_KEEP_SECS),
            )
            .await?;
        Ok(Self {
            store: BlockingPeerStore::new(store)?,
            namespace,
        })
    }

    fn parse(value: &str) -> Result<SeenFile, ConnectorError> {
        serde_json::from_str(value).map_err(|_| ConnectorError::Protocol {
            peer: "peer store".to_owned(),
            reason: "a box state entry is not a seen file".to_owned(),
        })
    }
}

/// Renames a file moved into the store to `{name}.migrated` (kept, not deleted: a
/// copy of what was moved). Another instance may have renamed it first.
pub(crate) fn migrated(path: &Path) -> Result<(), ConnectorError> {
    let mut to = path.as_os_str().to_owned();
    to.push(".migrated");
    match std::fs::rename(path, PathBuf::from(to)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ConnectorError::io(path.display().to_string(), e))
        }
        _ => Ok(()),
    }
}

impl BoxState for PeerBoxState {
    fn by_name(&self, name: &str) -> Result<Option<SeenFile>, ConnectorError> {
        self.store
            .get(&self.namespace, name)?
            .map(|v| Self::parse(&v))
            .transpose()
    }
    fn by_digest(&self, sha256: &str) -> Result<Option<SeenFile>, ConnectorError> {
        // A partner drops a few files a day, remembered 90 days: the list is short.
        for (_, v) in self.store.list(&self.namespace, "")? {
            let file = Self::parse(&v)?;
            if file.sha256 == sha256 {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }
    fn record(&mut self, file: SeenFile) -> Result<(), ConnectorError> {
        Ok(self
            .store
            .put(&self.namespace, &file.name, &to_json(&file))?)
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
        assert_eq!(s.by_name("a.csv").unwrap(), Some(done.clone()));
        assert_eq!(s.by_digest("bb").unwrap(), Some(done));
        assert_eq!(s.by_name("old.csv").unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peer_state_takes_an_old_json_state_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp();
        {
            let mut s = JsonFileState::open(dir.path(), "59350S00").unwrap();
            s.record(seen("a.csv", "aa", now)).unwrap();
        }
        let store: Arc<dyn PeerStore> = Arc::new(passerelle_connector::MemoryPeerStore::new());
        // Already known to the store under that name: the store's entry stays.
        store
            .put(
                &seen_namespace("59350S00"),
                "b.csv",
                &to_json(&seen("b.csv", "b2", now)),
            )
            .await
            .unwrap();
        let s = PeerBoxState::open(store.clone(), dir.path(), "59350S00")
            .await
            .unwrap();
        assert!(!dir.path().join("box-59350S00.json").exists());
        assert!(dir.path().join("box-59350S00.json.migrated").exists());
        let (name, digest) = tokio::task::spawn_blocking(move || {
            let mut s = s;
            s.record(seen("c.csv", "cc", now)).unwrap();
            (s.by_name("a.csv").unwrap(), s.by_digest("cc").unwrap())
        })
        .await
        .unwrap();
        assert_eq!(name, Some(seen("a.csv", "aa", now)));
        assert_eq!(digest.map(|f| f.name).as_deref(), Some("c.csv"));
        // Opened again (another instance, a restart): nothing to move, all still known.
        let s = PeerBoxState::open(store, dir.path(), "59350S00")
            .await
            .unwrap();
        let known = tokio::task::spawn_blocking(move || {
            ["a.csv", "b.csv", "c.csv"].map(|n| s.by_name(n).unwrap().map(|f| f.sha256))
        })
        .await
        .unwrap();
        assert_eq!(
            known,
            [Some("aa".into()), Some("b2".into()), Some("cc".into())]
        );
    }
}
