//! What the hub remembers of the records it wrote into `JEUNES_OF` files: transfer id,
//! file name and whether the file got its sentinel. It makes `BoxOfSink` idempotent on
//! the transfer id: a batch delivered again after a crash or a lost answer writes
//! only what no complete file carries yet.
//!
//! Kept in a `PeerStore` (`SentLedger::shared`: the hub's state, so that an instance
//! taking over a CD's queue knows what another one wrote), in a JSON file, or in
//! memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_connector::{BlockingPeerStore, ConnectorError, PeerStore};
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

/// Transfers written into box files: in a `PeerStore`, in memory, or in a JSON file
/// (`{state_dir}/box-sent-{name}.json`, rewritten through a temporary file and a
/// rename so that a crash never leaves half a file).
#[derive(Debug)]
pub struct SentLedger {
    backend: Backend,
    keep_secs: i64,
}

#[derive(Debug)]
enum Backend {
    /// In memory, saved whole to `path` when there is one.
    Local {
        path: Option<PathBuf>,
        entries: HashMap<String, SentEntry>,
    },
    /// One key per transfer id under `namespace`; the value: file, stage and time.
    Shared {
        store: BlockingPeerStore,
        namespace: String,
    },
}

/// What a shared ledger keeps under a transfer id (the id is the key).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedValue {
    file: String,
    stage: SentStage,
    at: i64,
}

/// The namespace of a CD's ledger in a `PeerStore`.
pub fn sent_namespace(name: &str) -> String {
    format!("box/sent/{name}")
}

impl Default for SentLedger {
    fn default() -> Self {
        Self::memory()
    }
}

impl SentLedger {
    /// A ledger that lives as long as the process (tests, the simulator).
    pub fn memory() -> Self {
        Self {
            backend: Backend::Local {
                path: None,
                entries: HashMap::new(),
            },
            keep_secs: crate::state::DEFAULT_KEEP_SECS,
        }
    }

    /// A ledger in `store`, shared by every hub instance on it, forgetting entries
    /// older than the retention. A JSON ledger an earlier hub left under `state_dir`
    /// (`box-sent-{name}.json`) is moved in once (its entries added where the store
    /// has none, the file renamed `….json.migrated`), so that a transfer it wrote is
    /// not written again.
    pub async fn shared(
        store: Arc<dyn PeerStore>,
        state_dir: &Path,
        name: &str,
    ) -> Result<Self, ConnectorError> {
        crate::folder::check_rel_path(name)?;
        let namespace = sent_namespace(name);
        let now = chrono::Utc::now();
        let keep_secs = crate::state::DEFAULT_KEEP_SECS;
        let old = state_dir.join(format!("box-sent-{name}.json"));
        if old.exists() {
            let file = Self::open(state_dir, name)?;
            if let Backend::Local { entries, .. } = &file.backend {
                for e in entries
                    .values()
                    .filter(|e| e.at >= now.timestamp() - keep_secs)
                {
                    store
                        .insert_if_absent(&namespace, &e.transfer_id, &shared_value(e))
                        .await?;
                }
            }
            crate::state::migrated(&old)?;
        }
        store
            .delete_older_than(&namespace, now - chrono::Duration::seconds(keep_secs))
            .await?;
        Ok(Self {
            backend: Backend::Shared {
                store: BlockingPeerStore::new(store)?,
                namespace,
            },
            keep_secs,
        })
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
            backend: Backend::Local {
                path: Some(path),
                entries: list
                    .into_iter()
                    .map(|e| (e.transfer_id.clone(), e))
                    .collect(),
            },
            keep_secs: crate::state::DEFAULT_KEEP_SECS,
        })
    }

    /// The entry of a transfer.
    pub fn get(&self, transfer_id: &str) -> Result<Option<SentEntry>, ConnectorError> {
        match &self.backend {
            Backend::Local { entries, .. } => Ok(entries.get(transfer_id).cloned()),
            Backend::Shared { store, namespace } => store
                .get(namespace, transfer_id)?
                .map(|v| parse_shared(transfer_id, &v))
                .transpose(),
        }
    }

    /// How many transfers are remembered.
    pub fn len(&self) -> Result<usize, ConnectorError> {
        match &self.backend {
            Backend::Local { entries, .. } => Ok(entries.len()),
            Backend::Shared { store, namespace } => Ok(store.list(namespace, "")?.len()),
        }
    }

    pub fn is_empty(&self) -> Result<bool, ConnectorError> {
        self.len().map(|n| n == 0)
    }

    /// Records transfers as being written into `file`, then saves.
    pub fn writing<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        file: &str,
        now: i64,
    ) -> Result<(), ConnectorError> {
        for id in ids {
            let at = self.get(id)?.map_or(now, |e| e.at);
            self.set(SentEntry {
                transfer_id: id.to_owned(),
                file: file.to_owned(),
                stage: SentStage::Writing,
                at,
            })?;
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
            if let Some(mut e) = self.get(id)? {
                e.stage = SentStage::Written;
                self.set(e)?;
            }
        }
        self.save(now)
    }

    fn set(&mut self, e: SentEntry) -> Result<(), ConnectorError> {
        match &mut self.backend {
            Backend::Local { entries, .. } => {
                entries.insert(e.transfer_id.clone(), e);
                Ok(())
            }
            Backend::Shared { store, namespace } => {
                Ok(store.put(namespace, &e.transfer_id, &shared_value(&e))?)
            }
        }
    }

    fn save(&mut self, now: i64) -> Result<(), ConnectorError> {
        // The box purges files after 30 days; a transfer is never retried that late.
        let oldest = now - self.keep_secs;
        let (path, entries) = match &mut self.backend {
            // Each entry is written as it changes; old ones go when the ledger opens.
            Backend::Shared { .. } => return Ok(()),
            Backend::Local { path, entries } => (path, entries),
        };
        entries.retain(|_, e| e.at >= oldest);
        let Some(path) = path else {
            return Ok(());
        };
        let mut list: Vec<&SentEntry> = entries.values().collect();
        list.sort_by(|a, b| (a.at, &a.transfer_id).cmp(&(b.at, &b.transfer_id)));
        let bytes = serde_json::to_vec(&list).unwrap_or_default();
        // Written whole and private (0600), never through a link.
        passerelle_connector::safe_fs::write_file(path, &bytes)
            .map_err(|e| ConnectorError::io(path.display().to_string(), e))
    }
}

fn shared_value(e: &SentEntry) -> String {
    serde_json::to_string(&SharedValue {
        file: e.file.clone(),
        stage: e.stage,
        at: e.at,
    })
    .unwrap_or_default()
}

fn parse_shared(transfer_id: &str, value: &str) -> Result<SentEntry, ConnectorError> {
    let v: SharedValue = serde_json::from_str(value).map_err(|_| ConnectorError::Protocol {
        peer: "peer store".to_owned(),
        reason: "a box sent-ledger entry is not a sent entry".to_owned(),
    })?;
    Ok(SentEntry {
        transfer_id: transfer_id.to_owned(),
        file: v.file,
        stage: v.stage,
        at: v.at,
    })
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
        assert_eq!(l.len().unwrap(), 2);
        assert_eq!(l.get("t1").unwrap().unwrap().stage, SentStage::Written);
        assert_eq!(l.get("t2").unwrap().unwrap().stage, SentStage::Writing);
        assert_eq!(l.get("t2").unwrap().unwrap().file, "a/retour/F1.csv");
        assert!(l.get("old").unwrap().is_none());
        assert!(SentLedger::open(dir.path(), "../x").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_ledger_takes_an_old_json_ledger_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp();
        {
            let mut l = SentLedger::open(dir.path(), "CD059").unwrap();
            l.writing(["t1", "t2"], "a/retour/F1.csv", now).unwrap();
            l.written(["t1"], now).unwrap();
        }
        let store: Arc<dyn PeerStore> = Arc::new(passerelle_connector::MemoryPeerStore::new());
        let l = SentLedger::shared(store.clone(), dir.path(), "CD059")
            .await
            .unwrap();
        assert!(dir.path().join("box-sent-CD059.json.migrated").exists());
        assert!(!dir.path().join("box-sent-CD059.json").exists());
        let seen = tokio::task::spawn_blocking(move || {
            let mut l = l;
            l.writing(["t3"], "a/retour/F2.csv", now).unwrap();
            l.written(["t2"], now).unwrap();
            (
                l.len().unwrap(),
                ["t1", "t2", "t3"].map(|t| l.get(t).unwrap().map(|e| (e.stage, e.file))),
            )
        })
        .await
        .unwrap();
        assert_eq!(seen.0, 3);
        assert_eq!(
            seen.1,
            [
                Some((SentStage::Written, "a/retour/F1.csv".to_owned())),
                Some((SentStage::Written, "a/retour/F1.csv".to_owned())),
                Some((SentStage::Writing, "a/retour/F2.csv".to_owned())),
            ]
        );
        // What the store holds under a transfer id: file, stage and time only.
        let v = store
            .get(&sent_namespace("CD059"), "t3")
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&v).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["at", "file", "stage"]);
        assert!(SentLedger::shared(store, dir.path(), "../x").await.is_err());
    }
}
